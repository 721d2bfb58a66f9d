"""Exact top-k by chunked matrix products (bounded memory), with FAISS as an option.

:func:`exact_topk` never builds the full queries x corpus score matrix: it walks the corpus in chunks of
``chunk_size`` rows and the queries in batches of ``query_batch_size``, keeping a running top-k per query
that is merged with each chunk's own top-k by ``torch.topk``. Peak extra memory is one
``query_batch_size x chunk_size`` float32 block (64 MiB at the defaults) plus the running ``Q x k`` lists.

>>> import numpy as np
>>> corpus = np.eye(4, dtype=np.float32)
>>> queries = np.array([[0.1, 0.9, 0.0, 0.5]], dtype=np.float32)
>>> scores, idx = exact_topk(queries, corpus, k=2, chunk_size=3)
>>> idx.tolist(), [round(s, 2) for s in scores[0].tolist()]
([[1, 3]], [0.9, 0.5])
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError, MissingDependencyError

__all__ = ["exact_topk", "faiss_topk", "l2_normalize", "require_faiss", "topk_to_run"]


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not x.flags.writeable:  # a read-only memory map: shared, never written to here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(x)
    return torch.from_numpy(x)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def exact_topk(
    queries,
    corpus,
    k: int,
    *,
    chunk_size: int = 16384,
    query_batch_size: int = 1024,
    show_progress_bar: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k dot-product scores and corpus row indices for every query (exact, chunked).

    ``queries`` (Q x d) and ``corpus`` (N x d) are numpy arrays (a memory map works: each corpus chunk is
    read once) or tensors. Returns ``(scores, indices)`` of shape Q x min(k, N), best first.
    """
    n = int(corpus.shape[0])
    if n == 0:
        raise InputError("The corpus is empty.")
    if queries.shape[1] != corpus.shape[1]:
        raise InputError(f"Embedding sizes differ: queries {queries.shape[1]}, corpus {corpus.shape[1]}.")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}.")
    if chunk_size < 1 or query_batch_size < 1:
        raise InputError("chunk_size and query_batch_size must be >= 1.")
    k = min(int(k), n)
    q = _as_tensor(queries)
    num_q = q.shape[0]
    best_scores = torch.full((num_q, 0), float("-inf"))
    best_idx = torch.zeros((num_q, 0), dtype=torch.long)
    starts = range(0, n, chunk_size)
    for start in tqdm(starts, desc="Top-k", unit="chunk", disable=not show_progress_bar or len(starts) < 2):
        chunk = _as_tensor(corpus[start : start + chunk_size])
        kc = min(k, chunk.shape[0])
        new_scores, new_idx = [], []
        for qs in range(0, num_q, query_batch_size):
            block = q[qs : qs + query_batch_size] @ chunk.T  # query_batch_size x chunk_size at most
            s, i = torch.topk(block, kc, dim=1)
            del block
            merged_s = torch.cat([best_scores[qs : qs + query_batch_size], s], dim=1)
            merged_i = torch.cat([best_idx[qs : qs + query_batch_size], i + start], dim=1)
            keep = min(k, merged_s.shape[1])
            top_s, pos = torch.topk(merged_s, keep, dim=1)
            new_scores.append(top_s)
            new_idx.append(torch.gather(merged_i, 1, pos))
        best_scores = torch.cat(new_scores, dim=0)
        best_idx = torch.cat(new_idx, dim=0)
    return best_scores, best_idx


def require_faiss():
    """The faiss module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            "The FAISS search option needs the faiss package, which is not installed. Install it with "
            "`pip install faiss-cpu` (or faiss-gpu), or leave the option off to use the exact chunked search."
        ) from None
    return faiss


def faiss_topk(queries, corpus, k: int, *, add_batch_size: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k inner-product search with a FAISS flat index (exact; faiss imported lazily).

    Same contract as :func:`exact_topk`. FAISS keeps its own float32 copy of the corpus (N x d x 4 bytes).
    """
    faiss = require_faiss()
    n, d = int(corpus.shape[0]), int(corpus.shape[1])
    if n == 0:
        raise InputError("The corpus is empty.")
    k = min(int(k), n)
    index = faiss.IndexFlatIP(d)
    for start in range(0, n, add_batch_size):
        index.add(np.ascontiguousarray(corpus[start : start + add_batch_size], dtype=np.float32))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return torch.from_numpy(scores), torch.from_numpy(idx.astype(np.int64))


def topk_to_run(
    query_ids, doc_ids, scores: torch.Tensor, indices: torch.Tensor, *, ignore_identical_ids: bool = False,
    k: int | None = None,
) -> dict[str, dict[str, float]]:
    """A run dict {query id: {doc id: score}} from top-k results; optionally drop a query's own id."""
    run: dict[str, dict[str, float]] = {}
    scores_l, idx_l = scores.tolist(), indices.tolist()
    for qid, s_row, i_row in zip(query_ids, scores_l, idx_l, strict=True):
        hits = {}
        for s, i in zip(s_row, i_row):
            if i < 0:  # FAISS pads with -1 when fewer than k results exist
                continue
            did = doc_ids[i]
            if ignore_identical_ids and did == qid:
                continue
            hits[did] = float(s)
            if k is not None and len(hits) >= k:
                break
        run[qid] = hits
    return run
