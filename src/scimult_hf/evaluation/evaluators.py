"""The paper's three evaluations, each with the task's expert on both sides.

* search (query -> papers): nDCG@10 (headline), Recall@100, MRR@10, MAP@100;
* link prediction (paper -> candidate papers): Recall@20/50/100, nDCG@10, MRR; or, given candidate
  lists per query, the reranking form with nDCG@5/10;
* classification (paper -> label texts): single-label sets report top-1 Micro-F1 and Macro-F1,
  multi-label sets Recall@k, Precision@k and nDCG@k (k = 20/50/100 by default, capped at the label count).

Every function takes a SentenceTransformer (or a folder / Hub id), the data (a loaded set or its folder)
and returns a result dict::

    {"model", "task", "expert", "dataset", "split", "form", "metrics": {name: value}, "main_metric",
     "num_queries", "num_documents", "prompt_name", "similarity", "search", "top_k"}

Example (the folder of a SciMult model and a BEIR folder)::

    >>> from scimult_hf.evaluation import evaluate_search                          # doctest: +SKIP
    >>> r = evaluate_search("scimult-folder", "../shared/data/scifact")            # doctest: +SKIP
    >>> r["metrics"]["ndcg@10"]                                                     # doctest: +SKIP
    0.648
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..configuration_scimult import DEFAULT_TASKS as TASKS
from ..errors import InputError
from ..models.tasks import prompt_for, task_names
from ..retrieval import (
    ClassificationData,
    EmbeddingCache,
    RetrievalData,
    encode_texts,
    exact_topk,
    faiss_topk,
    l2_normalize,
    load_beir,
    load_candidates,
    load_classification,
    model_label,
    require_faiss,
    resolve_model,
    similarity_kind,
    topk_to_run,
)
from .metrics import (
    CLASSIFICATION_K_VALUES,
    LINK_PREDICTION_METRICS,
    RERANKING_METRICS,
    SEARCH_METRICS,
    capped_k_values,
    multi_label_metrics,
    parse_metric,
    per_query_retrieval_metrics,
    single_label_metrics,
)

logger = logging.getLogger(__name__)

__all__ = [
    "TASKS",
    "evaluate_classification",
    "evaluate_link_prediction",
    "evaluate_retrieval",
    "evaluate_search",
    "evaluate_task",
    "evaluation_kind",
]


@contextmanager
def _timed(timings: dict[str, float], key: str):
    """Seconds spent in the block, recorded as ``timings[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - start


def _make_cache(cache_dir, cache: EmbeddingCache | None) -> EmbeddingCache | None:
    if cache is not None:
        return cache
    return EmbeddingCache(cache_dir) if cache_dir is not None else None


def _prepare(emb: np.ndarray, similarity: str) -> np.ndarray:
    return l2_normalize(emb) if similarity == "cosine" else emb


def _max_cutoff(metrics: Iterable[str]) -> int | None:
    """Largest cut-off among the metrics, or None when one needs the whole ranking (mrr, map, ndcg)."""
    best = 0
    for name in metrics:
        _, k = parse_metric(name)
        if k is None:
            return None
        best = max(best, k)
    return best


def _how_to_encode(st, task: str, prompt_name: str | None) -> tuple[str, str | None, str | None]:
    """``(similarity, expert, prompt name)``: how ``st`` compares, which expert ``task`` uses (None for a plain
    model) and the prompt the package's one rule picks (:func:`~scimult_hf.models.tasks.prompt_for`)."""
    expert = task if task_names(st) is not None else None
    return similarity_kind(st), expert, prompt_for(st, expert, prompt_name)


def _base_result(model, st, task, expert, name, split, form, prompt_name, similarity, model_name) -> dict:
    return {
        "model": model_name or model_label(model, st),
        "task": task,
        "expert": expert,
        "dataset": name,
        "split": split,
        "form": form,
        "prompt_name": prompt_name,
        "similarity": similarity,
    }


def evaluate_retrieval(
    model,
    data: RetrievalData | str | os.PathLike,
    task: str = "search",
    *,
    split: str = "test",
    metrics: Sequence[str] | None = None,
    main_metric: str | None = None,
    prompt_name: str | None = None,
    top_k: int | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    cache: EmbeddingCache | None = None,
    use_faiss: bool = False,
    chunk_size: int = 16384,
    ignore_identical_ids: bool | None = None,
    candidates: Mapping[str, Sequence[str]] | str | os.PathLike | None = None,
    show_progress_bar: bool | None = None,
    model_name: str | None = None,
) -> dict:
    """Rank the corpus for every judged query with ``task``'s expert and score the run.

    ``top_k`` documents are kept per query (default: the largest metric cut-off, or 1,000 when a metric
    needs the whole ranking such as ``mrr``). With ``candidates`` ({query id: [doc ids]} or a file for
    :func:`~scimult_hf.retrieval.data.load_candidates`) only those documents are scored per query (the
    reranking form). ``ignore_identical_ids`` (default: on for link prediction) drops a query's own id
    from its ranking, as BEIR does. ``cache_dir`` caches every embedding (see :mod:`.cache`).
    """
    if use_faiss:
        require_faiss()  # fail before any encoding when faiss is missing
    st = resolve_model(model)
    if not isinstance(data, RetrievalData):
        data = load_beir(data, split=split)
    cache = _make_cache(cache_dir, cache)
    if candidates is not None and not isinstance(candidates, Mapping):
        candidates = load_candidates(candidates)
    reranking = candidates is not None
    if metrics is None:
        metrics = RERANKING_METRICS if reranking else (LINK_PREDICTION_METRICS if task == "link_prediction" else SEARCH_METRICS)
    metrics = list(metrics)
    if main_metric is None:
        main_metric = "ndcg@10" if "ndcg@10" in metrics else metrics[0]
    if ignore_identical_ids is None:
        ignore_identical_ids = task == "link_prediction"
    similarity, expert, prompt_name = _how_to_encode(st, task, prompt_name)
    timings: dict[str, float] = {}

    query_ids = list(data.queries["id"])
    doc_ids_all = list(data.corpus["id"])
    with _timed(timings, "encode_queries_s"):
        q_emb = encode_texts(
            st, data.queries["text"], task, role="query", prompt_name=prompt_name, batch_size=batch_size,
            show_progress_bar=show_progress_bar, cache=cache, ids=query_ids, desc=f"{data.name} queries",
        )

    if reranking:
        missing = [q for q in query_ids if q not in candidates]
        if missing:
            raise InputError(f"No candidates for {len(missing)} judged queries, e.g. {missing[:3]}.")
        position = {d: i for i, d in enumerate(doc_ids_all)}
        needed = sorted({d for q in query_ids for d in candidates[q]}, key=lambda d: position.get(d, -1))
        unknown = [d for d in needed if d not in position]
        if unknown:
            raise InputError(f"{len(unknown)} candidate documents are not in the corpus, e.g. {unknown[:3]}.")
        texts_all = data.corpus["text"]
        doc_texts = [texts_all[position[d]] for d in needed]
        with _timed(timings, "encode_corpus_s"):
            d_emb = encode_texts(
                st, doc_texts, task, role="document", prompt_name=prompt_name, batch_size=batch_size,
                show_progress_bar=show_progress_bar, cache=cache, ids=needed, desc=f"{data.name} candidates",
            )
        q_emb, d_emb = _prepare(q_emb, similarity), _prepare(d_emb, similarity)
        row = {d: i for i, d in enumerate(needed)}
        run = {}
        for qi, qid in enumerate(query_ids):
            cands = [d for d in dict.fromkeys(candidates[qid]) if not (ignore_identical_ids and d == qid)]
            scores = d_emb[[row[d] for d in cands]] @ q_emb[qi]
            run[qid] = {d: float(s) for d, s in zip(cands, scores)}
        search = "candidates"
        num_docs = len(needed)
        effective_k = None
    else:
        with _timed(timings, "encode_corpus_s"):
            d_emb = encode_texts(
                st, data.corpus["text"], task, role="document", prompt_name=prompt_name, batch_size=batch_size,
                show_progress_bar=show_progress_bar, cache=cache, ids=doc_ids_all, desc=f"{data.name} corpus",
            )
        q_emb, d_emb = _prepare(q_emb, similarity), _prepare(d_emb, similarity)
        if top_k is None:
            top_k = _max_cutoff(metrics) or 1000
        effective_k = min(top_k, len(doc_ids_all))
        fetch = min(effective_k + (1 if ignore_identical_ids else 0), len(doc_ids_all))
        with _timed(timings, "search_s"):
            if use_faiss:
                scores, idx = faiss_topk(q_emb, d_emb, fetch)
            else:
                scores, idx = exact_topk(q_emb, d_emb, fetch, chunk_size=chunk_size, show_progress_bar=bool(show_progress_bar))
        run = topk_to_run(query_ids, doc_ids_all, scores, idx, ignore_identical_ids=ignore_identical_ids, k=effective_k)
        search = "faiss" if use_faiss else "exact"
        num_docs = len(doc_ids_all)

    per_query = per_query_retrieval_metrics(run, data.qrels, metrics)
    result = _base_result(model, st, task, expert, data.name, data.split, "reranking" if reranking else "retrieval",
                          prompt_name, similarity, model_name)
    result.update(
        metrics={name: sum(values.values()) / len(values) for name, values in per_query.items()},
        main_metric=main_metric,
        per_query=per_query,  # every metric per judged query: for paired comparisons (metrics.paired_bootstrap)
        num_queries=len(query_ids),
        num_documents=num_docs,
        search=search,
        top_k=effective_k,
        timings=timings,
    )
    return result


def evaluate_search(model, data, **kwargs) -> dict:
    """Search (query -> papers) with the search expert: nDCG@10, Recall@100, MRR@10, MAP@100."""
    return evaluate_retrieval(model, data, "search", **kwargs)


def evaluate_link_prediction(model, data, candidates=None, **kwargs) -> dict:
    """Link prediction (paper -> papers) with the link-prediction expert.

    Retrieval form: Recall@20/50/100, nDCG@10, MRR. With ``candidates`` per query: reranking form,
    nDCG@5/10.
    """
    return evaluate_retrieval(model, data, "link_prediction", candidates=candidates, **kwargs)


def evaluate_classification(
    model,
    data: ClassificationData | str | os.PathLike,
    *,
    task: str = "classification",
    split: str = "test",
    multi_label: bool | None = None,
    k_values: Sequence[int] = CLASSIFICATION_K_VALUES,
    prompt_name: str | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    cache: EmbeddingCache | None = None,
    chunk_size: int = 16384,
    show_progress_bar: bool | None = None,
    model_name: str | None = None,
) -> dict:
    """Classify each paper by the nearest label text (both through the classification expert).

    Single-label sets: top-1 Micro-F1 and Macro-F1. Multi-label sets: Recall@k, Precision@k, nDCG@k of
    the label ranking, k capped at the number of labels (so with 19 labels, 20/50/100 all become 19).
    """
    st = resolve_model(model)
    if not isinstance(data, ClassificationData):
        data = load_classification(data, split=split, multi_label=multi_label)
    cache = _make_cache(cache_dir, cache)
    similarity, expert, prompt_name = _how_to_encode(st, task, prompt_name)
    timings: dict[str, float] = {}

    paper_ids = list(data.papers["id"])
    label_ids = list(data.labels["id"])
    with _timed(timings, "encode_s"):
        p_emb = encode_texts(
            st, data.papers["text"], task, prompt_name=prompt_name, batch_size=batch_size,
            show_progress_bar=show_progress_bar, cache=cache, ids=paper_ids, desc=f"{data.name} papers",
        )
        l_emb = encode_texts(
            st, data.labels["text"], task, prompt_name=prompt_name, batch_size=batch_size,
            show_progress_bar=False, cache=cache, ids=label_ids, desc=f"{data.name} labels",
        )
    p_emb, l_emb = _prepare(p_emb, similarity), _prepare(l_emb, similarity)
    gold = data.papers["labels"]
    with _timed(timings, "score_s"):
        if data.multi_label:
            ks = capped_k_values(k_values, len(label_ids))
            scores, idx = exact_topk(p_emb, l_emb, max(ks), chunk_size=chunk_size)
            run = topk_to_run(paper_ids, label_ids, scores, idx)
            metrics = multi_label_metrics(run, dict(zip(paper_ids, gold)), ks, num_labels=len(label_ids))
            form, main = "multi_label", f"ndcg@{ks[0]}"
            qrels = {p: {label: 1 for label in g} for p, g in zip(paper_ids, gold)}
            names = [f"{kind}@{k}" for kind in ("recall", "precision", "ndcg") for k in ks]
            per_paper = per_query_retrieval_metrics(run, qrels, names)
        else:
            _, idx = exact_topk(p_emb, l_emb, 1, chunk_size=chunk_size)
            predicted = [label_ids[i] for i in idx[:, 0].tolist()]
            metrics = single_label_metrics([g[0] for g in gold], predicted)
            form, main = "single_label", "micro_f1"
            per_paper = {main: {p: float(guess == g[0]) for p, guess, g in zip(paper_ids, predicted, gold)}}
    result = _base_result(model, st, task, expert, data.name, data.split, form, prompt_name, similarity, model_name)
    result.update(
        metrics=metrics,
        main_metric=main,
        # per paper, for paired comparisons of two models (metrics.paired_bootstrap): every metric of a label
        # ranking; for one label, whether the top-1 is right (the mean is Micro-F1; Macro-F1 has no per-paper share)
        per_query=per_paper,
        num_queries=len(paper_ids),
        num_documents=len(label_ids),
        search="exact",
        top_k=None,
        timings=timings,
    )
    return result


def evaluation_kind(task: str, data: str | os.PathLike) -> str:
    """``"retrieval"`` or ``"classification"``: by the task's name for the three SciMult tasks, else (a model
    with tasks of its own) by the data folder: ``corpus.jsonl`` is a BEIR folder, ``labels.jsonl`` a
    classification one."""
    if task in ("search", "link_prediction"):
        return "retrieval"
    if task == "classification":
        return "classification"
    folder = Path(data)
    if (folder / "corpus.jsonl").is_file():
        return "retrieval"
    if (folder / "labels.jsonl").is_file():
        return "classification"
    raise InputError(
        f"task {task!r}: {folder} has neither corpus.jsonl (a BEIR folder: retrieval) nor labels.jsonl (a "
        "classification folder), so it is not clear how to evaluate it."
    )


def evaluate_task(model, task: str, data: str | os.PathLike, *, split: str = "test", **kwargs) -> dict:
    """Evaluate ``task``'s expert on ``data``: ``search`` / ``link_prediction`` rank a BEIR folder,
    ``classification`` matches papers to label names; a task of the model's own is evaluated by its data
    folder's kind (:func:`evaluation_kind`)."""
    if task == "link_prediction":
        return evaluate_link_prediction(model, data, split=split, **kwargs)
    if evaluation_kind(task, data) == "retrieval":
        return evaluate_retrieval(model, data, task, split=split, **kwargs)
    for retrieval_only in ("use_faiss", "candidates", "top_k", "ignore_identical_ids", "metrics", "main_metric"):
        if kwargs.get(retrieval_only) not in (None, False):
            raise InputError(f"{retrieval_only} does not apply to classification.")
        kwargs.pop(retrieval_only, None)
    return evaluate_classification(model, data, task=task, split=split, **kwargs)
