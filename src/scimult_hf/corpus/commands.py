"""What ``search``, ``classify`` and ``recommend`` compute over an encoded collection, as plain functions.

Each returns plain records (lists of dicts) that the command line prints as a table or as JSON:

* :func:`search_papers` - the best papers for each query text, through the search expert;
* :func:`classify_papers` - the best labels (from a ``labels.jsonl``) for papers of the collection, through
  the classification expert;
* :func:`recommend_citations` - likely citations for a paper of the collection (by id) or any paper text,
  through the link-prediction expert; the paper itself is never recommended.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import InputError
from .collection import Collection

__all__ = ["classify_papers", "recommend_citations", "search_papers"]


def _hits(collection: Collection, scores: np.ndarray, rows: np.ndarray) -> list[dict]:
    out = []
    for rank, (score, row) in enumerate(zip(scores.tolist(), rows.tolist()), 1):
        paper = collection.paper(row)
        out.append({"rank": rank, "score": round(float(score), 4), "id": paper["id"], "title": paper["title"]})
    return out


def search_papers(collection: Collection, queries: Sequence[str], *, k: int = 10, use_faiss: bool = False,
                  device: str | None = None, task: str = "search") -> list[dict]:
    """``[{"query", "results": [{"rank", "score", "id", "title"}, ...]}, ...]``; ``task``: the collection's task
    whose expert searches (a model's own task name works too)."""
    queries = [q for q in queries if q and q.strip()]
    if not queries:
        raise InputError("give at least one non-empty query (--query TEXT or --queries FILE).")
    encoder = collection.encoder(task, device=device)
    scores, rows = collection.top_k(task, encoder(list(queries), role="query"), k, use_faiss=use_faiss)
    return [{"query": q, "results": _hits(collection, s, r)} for q, s, r in zip(queries, scores, rows)]


def classify_papers(collection: Collection, labels: str | os.PathLike, *, k: int = 3,
                    ids: Sequence[str] | None = None, limit: int | None = None,
                    device: str | None = None, task: str = "classification") -> Iterator[dict]:
    """``{"id", "title", "labels": [{"rank", "score", "id", "name"}, ...]}`` per paper, shard by shard, through
    ``task``'s expert.

    ``ids``: only these papers (in this order); else every paper, or the first ``limit``.
    """
    from ..retrieval import load_labels

    label_rows = load_labels(labels)
    encoder = collection.encoder(task, device=device)
    label_emb = encoder([label["text"] for label in label_rows], role="document")
    kk = min(k, len(label_rows))

    def ranked(paper: dict, scores: np.ndarray) -> dict:
        top = np.argsort(-scores, kind="stable")[:kk]
        return {"id": paper["id"], "title": paper["title"], "labels": [
            {"rank": r, "score": round(float(scores[j]), 4), "id": label_rows[j]["id"], "name": label_rows[j]["name"]}
            for r, j in enumerate(top.tolist(), 1)]}

    if ids is not None:
        for pid in ids:
            row = collection.find(pid)
            yield ranked(collection.paper(row), collection.embedding(task, row) @ label_emb.T)
        return
    done = 0
    for offset, emb in collection.shards(task):
        scores = np.asarray(emb, dtype=np.float32) @ label_emb.T
        for i in range(len(scores)):
            if limit is not None and done >= limit:
                return
            yield ranked(collection.paper(offset + i), scores[i])
            done += 1


def recommend_citations(collection: Collection, *, paper_id: str | None = None, text: str | None = None,
                        k: int = 10, use_faiss: bool = False, device: str | None = None,
                        task: str = "link_prediction") -> dict:
    """``{"paper": {"id", "title"} or {"text"}, "results": [{"rank", "score", "id", "title"}, ...]}`` through
    ``task``'s expert."""
    if (paper_id is None) == (text is None):
        raise InputError("name the paper with exactly one of --id (a paper of the collection) or --text.")
    if paper_id is not None:
        row = collection.find(paper_id)
        query = collection.embedding(task, row)[None, :]
        exclude, paper = [[row]], collection.paper(row)
    else:
        if not text.strip():
            raise InputError("--text is empty; give the paper as 'title [SEP] abstract' (or just its title).")
        query = collection.encoder(task, device=device)([text], role="query")
        exclude, paper = None, {"text": text}
    scores, rows = collection.top_k(task, query, k, use_faiss=use_faiss, exclude=exclude)
    return {"paper": paper, "results": _hits(collection, scores[0], rows[0])}
