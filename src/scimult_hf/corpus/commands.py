"""What ``search``, ``classify`` and ``recommend`` compute over an encoded collection, as plain functions.

Each returns plain records (lists of dicts) that the command line prints as a table or as JSON:

* :func:`search_papers` - the best papers for each query text, through the search expert;
* :func:`classify_papers` - the best labels (from a ``labels.jsonl``) for papers of the collection, through
  the classification expert;
* :func:`recommend_citations` - likely citations for a paper of the collection (by id) or any paper text,
  through the link-prediction expert; the paper itself is never recommended.

Each takes ``where``, an SQL filter over the collection's columns; search and recommend take ``mode``
(``dense``, ``lexical`` or ``hybrid``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import InputError
from .collection import MODES, Collection

__all__ = ["classify_papers", "recommend_citations", "search_papers"]


def search_papers(collection: Collection, queries: Sequence[str], *, k: int = 10, mode: str = "dense",
                  where: str | None = None, device: str | None = None, task: str = "search") -> list[dict]:
    """``[{"query", "results": [{"rank", "score", "id", "title", <metadata>...}, ...]}, ...]``; ``task``: the
    collection's task whose expert searches (a model's own task name works too); ``mode``: ``dense``,
    ``lexical`` (BM25) or ``hybrid`` (both, fused by reciprocal rank); ``where``: an SQL filter on the
    collection's columns."""
    queries = [q for q in queries if q and q.strip()]
    if not queries:
        raise InputError("give at least one non-empty query (--query TEXT or --queries FILE).")
    if mode not in MODES:
        raise InputError(f"--mode {mode!r}: use one of {', '.join(MODES)}.")
    vectors = [None] * len(queries)
    if mode != "lexical":
        vectors = collection.encoder(task, device=device)(list(queries), role="query")
    return [{"query": q, "results": collection.search(task, q, vector=v, k=k, mode=mode, where=where)}
            for q, v in zip(queries, vectors)]


def classify_papers(collection: Collection, labels: str | os.PathLike, *, k: int = 3,
                    ids: Sequence[str] | None = None, limit: int | None = None, where: str | None = None,
                    device: str | None = None, task: str = "classification") -> Iterator[dict]:
    """``{"id", "title", "labels": [{"rank", "score", "id", "name"}, ...]}`` per paper, batch by batch, through
    ``task``'s expert.

    ``ids``: only these papers (in this order); else every paper passing ``where``, or the first ``limit``.
    """
    from ..retrieval import load_labels

    label_rows = load_labels(labels)
    collection.task_info(task)
    encoder = collection.encoder(task, device=device)
    label_emb = encoder([label["text"] for label in label_rows], role="document")
    kk = min(k, len(label_rows))
    done = 0
    for papers, emb in collection.scan(task, where=where, ids=ids):
        scores = emb @ label_emb.T
        for paper, row in zip(papers, scores):
            if limit is not None and done >= limit:
                return
            top = np.argsort(-row, kind="stable")[:kk]
            yield {"id": paper["id"], "title": paper["title"], "labels": [
                {"rank": r, "score": round(float(row[j]), 4), "id": label_rows[j]["id"], "name": label_rows[j]["name"]}
                for r, j in enumerate(top.tolist(), 1)]}
            done += 1


def recommend_citations(collection: Collection, *, paper_id: str | None = None, text: str | None = None,
                        k: int = 10, mode: str = "dense", where: str | None = None, device: str | None = None,
                        task: str = "link_prediction") -> dict:
    """``{"paper": {"id", "title"} or {"text"}, "results": [{"rank", "score", "id", "title"}, ...]}`` through
    ``task``'s expert; the paper itself is never recommended."""
    if (paper_id is None) == (text is None):
        raise InputError("name the paper with exactly one of --id (a paper of the collection) or --text.")
    if paper_id is not None:
        vector = collection.vector(task, paper_id)
        row = collection._row(paper_id, ["id", "title", "text"])
        paper, query, exclude = {"id": row["id"], "title": row["title"]}, row["text"], [paper_id]
    else:
        if not text.strip():
            raise InputError("--text is empty; give the paper as 'title [SEP] abstract' (or just its title).")
        vector = None if mode == "lexical" else collection.encoder(task, device=device)([text], role="query")[0]
        paper, query, exclude = {"text": text}, text, []
    results = collection.search(task, query, vector=vector, k=k, mode=mode, where=where, exclude=exclude)
    return {"paper": paper, "results": results}
