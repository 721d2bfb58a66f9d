"""Results as markdown tables and as ``huggingface_hub.EvalResult`` entries for model cards.

``huggingface_hub`` 2.4 still ships ``EvalResult`` (the ``model-index`` entries of a model card's
README metadata, used by ``ModelCardData(model_name=..., eval_results=[...])``); it also added
``EvalResultEntry`` for the newer ``.eval_results/*.yaml`` files, which need a benchmark dataset id on
the Hub and so do not fit local sets. :func:`to_eval_results` builds ``EvalResult`` entries.

Examples:
    >>> r = {"dataset": "scifact", "split": "test", "task": "search", "metrics": {"ndcg@10": 0.648}}
    >>> [(e.metric_type, e.metric_value) for e in to_eval_results(r, "m", "SciFact", "scifact", "text-retrieval")]
    [('ndcg_at_10', 0.648)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import InputError
from .metrics import metric_display_name

__all__ = ["format_table", "metric_type_id", "to_eval_results"]


def metric_type_id(name: str) -> str:
    """Model-index metric id as MTEB writes it: ``"ndcg@10"`` -> ``"ndcg_at_10"``."""
    return name.replace("@", "_at_")


def _display(name: str) -> str:
    try:
        return metric_display_name(name)
    except ValueError:
        return name


def format_table(results: Sequence[Mapping] | Mapping, digits: int = 3) -> str:
    """A markdown table, one row per result: dataset, split, task (expert), headline metric, all metrics.

    >>> print(format_table({"dataset": "d", "split": "test", "task": "search", "expert": "search",
    ...                     "main_metric": "ndcg@10", "metrics": {"ndcg@10": 0.5, "recall@100": 0.75}}))
    | Dataset | Split | Task (expert) | Headline | Metrics |
    |---|---|---|---|---|
    | d | test | search (search) | nDCG@10 = 0.500 | nDCG@10 0.500 · Recall@100 0.750 |
    """
    if isinstance(results, Mapping):
        results = [results]
    lines = ["| Dataset | Split | Task (expert) | Headline | Metrics |", "|---|---|---|---|---|"]
    for r in results:
        metrics = r["metrics"]
        main = r.get("main_metric") or next(iter(metrics))
        task = r.get("task", "")
        expert = r.get("expert")
        task_cell = f"{task} ({expert})" if expert else f"{task} (no experts)"
        if r.get("form") in ("reranking", "multi_label"):
            task_cell += f", {r['form'].replace('_', '-')}"
        all_cell = " · ".join(f"{_display(k)} {v:.{digits}f}" for k, v in metrics.items())
        lines.append(
            f"| {r.get('dataset', '')} | {r.get('split', '')} | {task_cell} | "
            f"{_display(main)} = {metrics[main]:.{digits}f} | {all_cell} |"
        )
    return "\n".join(lines)


def to_eval_results(
    results: Mapping,
    model_name: str,
    dataset_name: str,
    dataset_type: str,
    task_type: str,
    *,
    task_name: str | None = None,
    dataset_split: str | None = None,
    dataset_config: str | None = None,
    dataset_revision: str | None = None,
    source_name: str | None = None,
    source_url: str | None = None,
) -> list:
    """One ``huggingface_hub.EvalResult`` per metric of a result dict (or a plain {metric: value} dict).

    ``model_name`` is the name the card's ``model-index`` is filed under; the entries are checked by
    building that model index (``eval_results_to_model_index(model_name, entries)``), so what is returned
    goes straight into ``ModelCardData(model_name=model_name, eval_results=entries)``.
    ``dataset_type`` is the Hub dataset id (e.g. ``"allenai/scifact"`` or ``"mteb/scifact"``),
    ``dataset_name`` a pretty name, ``task_type`` a Hub task id (e.g. ``"text-retrieval"``,
    ``"text-classification"``, ``"sentence-similarity"``).
    """
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    if not model_name:
        raise InputError("model_name is required: the model-index of a card is filed under it.")
    metrics = results.get("metrics") if isinstance(results.get("metrics"), Mapping) else results
    if not metrics:
        raise InputError("No metrics to convert.")
    split = dataset_split if dataset_split is not None else results.get("split")
    entries = []
    for name, value in metrics.items():
        if not isinstance(value, (int, float)):
            raise InputError(f"Metric {name!r} has a non-numeric value {value!r}.")
        entries.append(
            EvalResult(
                task_type=task_type,
                task_name=task_name,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=split if isinstance(split, str) else None,
                dataset_config=dataset_config,
                dataset_revision=dataset_revision,
                metric_type=metric_type_id(name),
                metric_name=_display(name),
                metric_value=float(value),
                source_name=source_name,
                source_url=source_url,
            )
        )
    eval_results_to_model_index(model_name, entries)  # raises if the entries cannot form a model index
    return entries
