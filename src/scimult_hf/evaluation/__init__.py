"""Evaluation of SciMult's three task families: search, link prediction, classification.

* loaders, encoding, the embedding cache and top-k search live in :mod:`scimult_hf.retrieval`;
* :mod:`.metrics` - trec_eval ranking metrics (pytrec_eval) and F1 (scikit-learn) as plain functions;
* :mod:`.evaluators` - ``evaluate_search``, ``evaluate_link_prediction``, ``evaluate_classification``;
* :mod:`.results` - markdown tables and ``huggingface_hub.EvalResult`` entries for model cards;
* :mod:`.cli` - ``scimult-hf evaluate``; :mod:`.mteb_bridge` - an MTEB encoder routing tasks to experts;
* ``evaluate`` modules ``scimult_retrieval`` and ``scimult_classification``: ``evaluate.load(metric_path(name))``.

>>> import evaluate                                                            # doctest: +SKIP
>>> metric = evaluate.load(metric_path("scimult_retrieval"))                   # doctest: +SKIP
>>> metric.compute(predictions=[{"doc_ids": ["d1", "d2"], "scores": [0.9, 0.1]}],
...                references=[{"doc_ids": ["d2"], "relevance": [1]}], metrics=["mrr@10"])  # doctest: +SKIP
{'mrr@10': 0.5}
"""

from __future__ import annotations

from pathlib import Path

import lazy_loader

from ..errors import InputError

METRIC_NAMES = ("scimult_retrieval", "scimult_classification")


def metric_path(name: str) -> str:
    """Folder of a shipped ``evaluate`` module, for ``evaluate.load(metric_path(name))`` (works offline).

    >>> Path(metric_path("scimult_retrieval")).name
    'scimult_retrieval'
    """
    if name not in METRIC_NAMES:
        raise InputError(f"Unknown metric module {name!r}; shipped: {list(METRIC_NAMES)}.")
    path = Path(__file__).resolve().parent.parent / "metrics" / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"{path / (name + '.py')} is missing: the package was installed without its metric scripts "
            "(package data 'metrics/*/*.py'). Reinstall scimult-hf."
        )
    return str(path)

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, _lazy_all = lazy_loader.attach(
    __name__,
    submod_attrs={
        'evaluators': ['TASKS', 'evaluate_classification', 'evaluate_link_prediction', 'evaluate_retrieval', 'evaluate_search', 'evaluate_task', 'evaluation_kind'],
        'metrics': ['LINK_PREDICTION_METRICS', 'RERANKING_METRICS', 'SEARCH_METRICS', 'multi_label_metrics', 'qrels_from_records', 'retrieval_metrics', 'run_from_records', 'single_label_metrics'],
        'results': ['format_table', 'to_eval_results'],
    },
)

__all__ = [*_lazy_all, "METRIC_NAMES", "metric_path"]
