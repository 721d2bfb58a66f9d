"""Ranking and classification metrics, as plain functions (the ``evaluate`` modules call these too).

Ranking metrics are trec_eval's definitions, computed by ``pytrec_eval`` (pytrec-eval-terrier) exactly as
BEIR and MTEB do:

========================  ==========================  ==================================================
name here                 trec_eval measure           meaning
========================  ==========================  ==================================================
``ndcg@k``                ``ndcg_cut_k``              nDCG of the top k (graded gains, log2 discount)
``recall@k``              ``recall_k``                relevant documents in the top k / all relevant
``precision@k``           ``P_k``                     relevant documents in the top k / k
``map@k``                 ``map_cut_k``               average precision of the top k / all relevant
``mrr@k``                 ``recip_rank`` on top k     1 / rank of the first relevant document in the
                                                      top k, else 0 (BEIR's and MTEB's MRR@k)
``mrr``, ``map``,         ``recip_rank``, ``map``,    the same over the whole ranking
``ndcg``                  ``ndcg``
========================  ==========================  ==================================================

Rankings follow trec_eval's order: score descending, ties broken by document id descending (string
order). A document is relevant when its qrels grade is >= 1. Scores are averaged over the queries of
the qrels: a query missing from the run scores 0 on every metric (as a query with an empty ranking does
in ``pytrec_eval``); queries of the run without qrels are ignored.

>>> run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1}}
>>> qrels = {"q1": {"d2": 1}}
>>> retrieval_metrics(run, qrels, ["mrr@10", "recall@1", "ndcg@10"])["mrr@10"]
0.5
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from ..errors import InputError, MissingDependencyError

__all__ = [
    "CLASSIFICATION_K_VALUES",
    "LINK_PREDICTION_METRICS",
    "RERANKING_METRICS",
    "SEARCH_METRICS",
    "capped_k_values",
    "metric_display_name",
    "multi_label_metrics",
    "paired_bootstrap",
    "per_query_retrieval_metrics",
    "parse_metric",
    "qrels_from_records",
    "retrieval_metrics",
    "run_from_records",
    "single_label_metrics",
    "trec_order",
]

# The paper's metrics per task family (the first one is the headline figure).
SEARCH_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "map@100")
LINK_PREDICTION_METRICS: tuple[str, ...] = ("recall@20", "recall@50", "recall@100", "ndcg@10", "mrr")
RERANKING_METRICS: tuple[str, ...] = ("ndcg@5", "ndcg@10")
CLASSIFICATION_K_VALUES: tuple[int, ...] = (20, 50, 100)

_NAME = re.compile(r"^(ndcg|recall|precision|map|mrr)(?:@(\d+))?$")
_TREC = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut"}
_DISPLAY = {"ndcg": "nDCG", "recall": "Recall", "precision": "P", "map": "MAP", "mrr": "MRR"}


def parse_metric(name: str) -> tuple[str, int | None]:
    m = _NAME.match(name.strip().lower())
    if not m:
        raise InputError(
            f"Unknown metric {name!r}. Use ndcg@k, recall@k, precision@k, map@k, mrr@k (k a positive integer), "
            "or ndcg, map, mrr for the whole ranking."
        )
    kind, k = m.group(1), m.group(2)
    if k is not None and int(k) < 1:
        raise InputError(f"Metric {name!r}: k must be >= 1.")
    if k is None and kind in ("recall", "precision"):
        raise InputError(f"Metric {name!r} needs a cut-off, e.g. {kind}@10.")
    return kind, None if k is None else int(k)


def metric_display_name(name: str) -> str:
    """``"ndcg@10"`` -> ``"nDCG@10"``, ``"micro_f1"`` -> ``"Micro-F1"`` (for tables and model cards)."""
    special = {"micro_f1": "Micro-F1", "macro_f1": "Macro-F1", "accuracy": "Accuracy"}
    if name in special:
        return special[name]
    kind, k = parse_metric(name)
    return _DISPLAY[kind] + ("" if k is None else f"@{k}")


def trec_order(doc_scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) pairs in trec_eval's ranking order: score descending, then doc id descending.

    >>> trec_order({"a": 1.0, "b": 1.0, "c": 2.0})
    [('c', 2.0), ('b', 1.0), ('a', 1.0)]
    """
    return sorted(((str(d), float(s)) for d, s in doc_scores.items()), key=lambda x: (x[1], x[0]), reverse=True)


def _pytrec_eval():
    try:
        import pytrec_eval
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "Ranking metrics need pytrec_eval: pip install pytrec-eval-terrier (or pip install 'scimult-hf[eval]')."
        ) from e
    return pytrec_eval


def _clean_qrels(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    if not qrels:
        raise InputError("qrels is empty: there is nothing to evaluate against.")
    return {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}


def _clean_run(run: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for q, docs in run.items():
        scores = {}
        for d, s in docs.items():
            s = float(s)
            if math.isnan(s):
                raise InputError(f"run[{q!r}][{d!r}] is NaN; rankings need real-valued scores.")
            scores[str(d)] = s
        out[str(q)] = scores
    return out


def per_query_retrieval_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Iterable[str] = SEARCH_METRICS,
) -> dict[str, dict[str, float]]:
    """trec_eval metrics of a run ({query: {doc: score}}) for each query of ``qrels``: ``{metric: {query: value}}``
    (a query the run leaves out scores 0). :func:`retrieval_metrics` is their mean; these are what a paired
    comparison of two models over the same queries needs (:func:`paired_bootstrap`).

    >>> run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d3": 1.0}}
    >>> qrels = {"q1": {"d2": 1}, "q2": {"d3": 1}}
    >>> per_query_retrieval_metrics(run, qrels, ["mrr@10"])["mrr@10"]
    {'q1': 0.5, 'q2': 1.0}
    """
    names = list(dict.fromkeys(metrics))
    if not names:
        raise InputError("No metrics requested.")
    parsed = {n: parse_metric(n) for n in names}
    qrels = _clean_qrels(qrels)
    run = _clean_run(run)
    pytrec_eval = _pytrec_eval()

    # Measures over the full run.
    cut_measures: dict[str, set[int]] = {}
    plain: set[str] = set()
    mrr_cuts: set[int] = set()
    for kind, k in parsed.values():
        if kind == "mrr":
            if k is None:
                plain.add("recip_rank")
            else:
                mrr_cuts.add(k)
        elif k is None:
            plain.add(kind)  # "ndcg" or "map"
        else:
            cut_measures.setdefault(_TREC[kind], set()).add(k)
    measures = set(plain) | {f"{m}.{','.join(str(k) for k in sorted(ks))}" for m, ks in cut_measures.items()}

    # Every qrels query gets an entry (an empty ranking scores 0 everywhere).
    full_run = {q: run.get(q, {}) for q in qrels}
    per_query: dict[str, dict[str, float]] = {q: {} for q in qrels}
    if measures:
        scores = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(full_run)
        for q, vals in scores.items():
            per_query[q].update(vals)
    for k in sorted(mrr_cuts):
        truncated = {q: dict(trec_order(docs)[:k]) for q, docs in full_run.items()}
        scores = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(truncated)
        for q, vals in scores.items():
            per_query[q][f"recip_rank@{k}"] = vals["recip_rank"]

    def key(kind: str, k: int | None) -> str:
        if kind == "mrr":
            return "recip_rank" if k is None else f"recip_rank@{k}"
        if k is None:
            return kind
        return f"{_TREC[kind]}_{k}"

    return {name: {q: per_query[q].get(key(*parsed[name]), 0.0) for q in qrels} for name in names}


def retrieval_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Iterable[str] = SEARCH_METRICS,
) -> dict[str, float]:
    """Mean trec_eval metrics of a run ({query: {doc: score}}) against qrels ({query: {doc: grade}}).

    Hand-checked example (one query, relevant documents d2 and d4, d5 unretrieved)::

        rank 1 d1 (0), rank 2 d2 (1), rank 3 d3 (0), rank 4 d4 (1); 3 relevant in all
        recall@4    = 2/3
        precision@2 = 1/2
        mrr@1       = 0 (nothing relevant in the top 1); mrr@10 = 1/2

    >>> run = {"q": {"d1": 4.0, "d2": 3.0, "d3": 2.0, "d4": 1.0}}
    >>> qrels = {"q": {"d2": 1, "d4": 1, "d5": 1}}
    >>> m = retrieval_metrics(run, qrels, ["recall@4", "precision@2", "mrr@1", "mrr@10"])
    >>> round(m["recall@4"], 4), m["precision@2"], m["mrr@1"], m["mrr@10"]
    (0.6667, 0.5, 0.0, 0.5)
    """
    per_query = per_query_retrieval_metrics(run, qrels, metrics)
    return {name: sum(values.values()) / len(values) for name, values in per_query.items()}


# ---------------------------------------------------------------------------------------------- classification


def single_label_metrics(y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """Micro-F1 and Macro-F1 (scikit-learn) of top-1 predictions.

    Macro-F1 averages the per-label F1 over the labels that occur in ``y_true`` or ``y_pred``
    (scikit-learn's default label set); a label never predicted has F1 0. With one gold and one predicted
    label per paper, Micro-F1 equals accuracy.

    Hand-checked: gold [a, a, b, c], predicted [a, b, b, a]. Micro-F1 = 2/4 = 0.5.
    F1(a): P = 1/2, R = 1/2 -> 0.5; F1(b): P = 1/2, R = 1 -> 2/3; F1(c): 0. Macro-F1 = (0.5 + 2/3 + 0) / 3.

    >>> m = single_label_metrics(["a", "a", "b", "c"], ["a", "b", "b", "a"])
    >>> m["micro_f1"], round(m["macro_f1"], 4)
    (0.5, 0.3889)
    """
    if len(y_true) != len(y_pred):
        raise InputError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}.")
    if not y_true:
        raise InputError("No predictions to score.")
    from sklearn.metrics import f1_score

    y_true = [str(y) for y in y_true]
    y_pred = [str(y) for y in y_pred]
    return {
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def capped_k_values(k_values: Iterable[int], num_labels: int) -> list[int]:
    """Cut-offs capped at the number of labels, duplicates dropped, order kept.

    >>> capped_k_values((20, 50, 100), 23)
    [20, 23]
    """
    out: list[int] = []
    for k in k_values:
        k = int(k)
        if k < 1:
            raise InputError(f"k values must be >= 1, got {k}.")
        k = min(k, int(num_labels))
        if k not in out:
            out.append(k)
    return out


def multi_label_metrics(
    label_scores: Mapping[str, Mapping[str, float]],
    gold: Mapping[str, Sequence[str]],
    k_values: Iterable[int] = CLASSIFICATION_K_VALUES,
    num_labels: int | None = None,
) -> dict[str, float]:
    """Recall@k, Precision@k and nDCG@k of label rankings ({paper: {label: score}}) against gold label sets.

    The papers play the queries and the labels the documents of :func:`retrieval_metrics` (trec_eval's
    ``recall_k``, ``P_k``, ``ndcg_cut_k`` with binary gains). k values are capped at ``num_labels``
    (default: the number of distinct labels ranked or gold); the keys carry the capped k.

    Hand-checked: one paper with gold {x, z}; ranking x > y > z.
    Recall@2 = 1/2, Precision@2 = 1/2, nDCG@2 = 1 / (1 + 1/log2(3)) = 0.6131.

    >>> m = multi_label_metrics({"p": {"x": 3, "y": 2, "z": 1}}, {"p": ["x", "z"]}, k_values=[2])
    >>> m["recall@2"], m["precision@2"], round(m["ndcg@2"], 4)
    (0.5, 0.5, 0.6131)
    """
    if not gold:
        raise InputError("No gold labels to score against.")
    if num_labels is None:
        labels = {str(label) for scores in label_scores.values() for label in scores}
        labels |= {str(label) for gl in gold.values() for label in gl}
        num_labels = len(labels)
    ks = capped_k_values(k_values, num_labels)
    qrels = {str(p): {str(label): 1 for label in gl} for p, gl in gold.items()}
    names = [f"{kind}@{k}" for kind in ("recall", "precision", "ndcg") for k in ks]
    return retrieval_metrics(label_scores, qrels, names)


# ---------------------------------------------------------------------------------------------- record forms


def run_from_records(predictions: Sequence[Mapping], query_ids: Sequence[str] | None = None) -> dict:
    """Rankings in the record form of the ``evaluate`` modules -> a run dict.

    Each record is ``{"doc_ids": [...], "scores": [...]}``; query ids are the positions unless given.

    >>> run_from_records([{"doc_ids": ["d1", "d2"], "scores": [0.5, 0.2]}])
    {'0': {'d1': 0.5, 'd2': 0.2}}
    """
    ids = [str(i) for i in range(len(predictions))] if query_ids is None else [str(q) for q in query_ids]
    run = {}
    for qid, rec in zip(ids, predictions, strict=True):
        doc_ids, scores = rec["doc_ids"], rec["scores"]
        if len(doc_ids) != len(scores):
            raise InputError(f"prediction {qid}: {len(doc_ids)} doc_ids but {len(scores)} scores.")
        run[qid] = {str(d): float(s) for d, s in zip(doc_ids, scores)}
    return run


def qrels_from_records(references: Sequence[Mapping], query_ids: Sequence[str] | None = None) -> dict:
    """Judgements in the record form ``{"doc_ids": [...], "relevance": [...]}`` -> a qrels dict.

    ``relevance`` may be omitted: every listed document is then relevant with grade 1.

    >>> qrels_from_records([{"doc_ids": ["d2"], "relevance": [1]}])
    {'0': {'d2': 1}}
    """
    ids = [str(i) for i in range(len(references))] if query_ids is None else [str(q) for q in query_ids]
    qrels = {}
    for qid, rec in zip(ids, references, strict=True):
        doc_ids = rec["doc_ids"]
        rel = rec.get("relevance") or [1] * len(doc_ids)
        if len(doc_ids) != len(rel):
            raise InputError(f"reference {qid}: {len(doc_ids)} doc_ids but {len(rel)} relevance grades.")
        qrels[qid] = {str(d): int(r) for d, r in zip(doc_ids, rel)}
    return qrels


# ---------------------------------------------------------------------------------------------- comparisons


def paired_bootstrap(a: Mapping, b: Mapping, *, n_resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """How much model ``a`` beats model ``b`` on the same items, with a paired bootstrap interval (percentile).

    ``a`` and ``b`` map items (queries or papers) to scores, ``{id: score}``: the items are resampled with
    replacement and the mean of ``a - b`` taken each time. Or they map sets to such dicts, ``{set: {id:
    score}}``: the difference of the mean over sets, each set's items resampled within it (a stratified
    bootstrap: every set keeps its weight in the mean). Returns ``{"diff", "low", "high", "n"}`` (``n``: items
    in all); a goal such as "a beats b by 0.01" is met only when ``low >= 0.01``.

    >>> r = paired_bootstrap({"q1": 0.5, "q2": 0.7, "q3": 0.9}, {"q1": 0.4, "q2": 0.6, "q3": 0.8})
    >>> round(r["diff"], 4), round(r["low"], 4), round(r["high"], 4), r["n"]
    (0.1, 0.1, 0.1, 3)
    """
    import numpy as np

    nested = bool(a) and all(isinstance(v, Mapping) for v in a.values())
    sets_a, sets_b = (a, b) if nested else ({"": a}, {"": b})
    if set(sets_a) != set(sets_b):
        raise InputError(f"a paired comparison needs the same sets on both sides: {sorted(sets_a)} vs {sorted(sets_b)}.")
    diffs = []
    for name in sorted(sets_a):
        x, y = sets_a[name], sets_b[name]
        if set(x) != set(y):
            only = sorted(set(x) ^ set(y))
            raise InputError(f"a paired comparison needs the same items on both sides; {len(only)} differ"
                             f"{f' in {name}' if name else ''}, e.g. {only[:3]}.")
        if not x:
            raise InputError(f"No items to compare{f' in {name}' if name else ''}.")
        diffs.append(np.array([x[k] - y[k] for k in sorted(x)], dtype=np.float64))
    diff = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    means = np.zeros(n_resamples)
    for d in diffs:  # each set resampled within itself; the statistic is the mean of the set means
        means += d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(axis=1) if len(d) * n_resamples <= 1e7 \
            else np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_resamples)])
    means /= len(diffs)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"diff": diff, "low": float(min(low, diff)), "high": float(max(high, diff)), "n": sum(len(d) for d in diffs)}
