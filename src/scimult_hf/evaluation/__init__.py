"""Evaluation of SciMult's three task families: search, link prediction, classification.

* loaders, encoding, the embedding cache and top-k search live in :mod:`scimult_hf.retrieval`
  (re-exported here);
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

from ..retrieval import (
    ClassificationData,
    DataFormatError,
    EmbeddingCache,
    RetrievalData,
    default_cache_dir,
    exact_topk,
    faiss_topk,
    load_beir,
    load_candidates,
    load_classification,
    load_qrels,
    model_fingerprint,
    texts_fingerprint,
)
from ..text import label_text
from .evaluators import (
    TASKS,
    evaluate_classification,
    evaluate_link_prediction,
    evaluate_retrieval,
    evaluate_search,
    evaluate_task,
)
from .metrics import (
    LINK_PREDICTION_METRICS,
    RERANKING_METRICS,
    SEARCH_METRICS,
    multi_label_metrics,
    qrels_from_records,
    retrieval_metrics,
    run_from_records,
    single_label_metrics,
)
from .results import format_table, to_eval_results

METRIC_NAMES = ("scimult_retrieval", "scimult_classification")


def metric_path(name: str) -> str:
    """Folder of a shipped ``evaluate`` module, for ``evaluate.load(metric_path(name))`` (works offline).

    >>> Path(metric_path("scimult_retrieval")).name
    'scimult_retrieval'
    """
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric module {name!r}; shipped: {list(METRIC_NAMES)}.")
    path = Path(__file__).resolve().parent.parent / "metrics" / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"{path / (name + '.py')} is missing: the package was installed without its metric scripts "
            "(package data 'metrics/*/*.py'). Reinstall scimult-hf."
        )
    return str(path)


__all__ = [
    "LINK_PREDICTION_METRICS",
    "METRIC_NAMES",
    "RERANKING_METRICS",
    "SEARCH_METRICS",
    "TASKS",
    "ClassificationData",
    "DataFormatError",
    "EmbeddingCache",
    "RetrievalData",
    "default_cache_dir",
    "evaluate_classification",
    "evaluate_link_prediction",
    "evaluate_retrieval",
    "evaluate_search",
    "evaluate_task",
    "exact_topk",
    "faiss_topk",
    "format_table",
    "label_text",
    "load_beir",
    "load_candidates",
    "load_classification",
    "load_qrels",
    "metric_path",
    "model_fingerprint",
    "multi_label_metrics",
    "qrels_from_records",
    "retrieval_metrics",
    "run_from_records",
    "single_label_metrics",
    "texts_fingerprint",
    "to_eval_results",
]
