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
from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError, MissingDependencyError

__all__ = ["FAISS_IVF_FROM", "exact_topk", "faiss_index", "faiss_topk", "l2_normalize", "require_faiss", "set_nprobe",
           "sharded_topk", "topk_to_run"]


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


def sharded_topk(queries, shards: Iterable[tuple[int, object]], k: int, *, query_batch_size: int = 1024,
                 progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The one running top-k merge: best ``k`` dot-product scores and row indices over ``shards``.

    ``shards`` yields ``(first row, embeddings)`` (numpy arrays, memory maps or tensors); each shard is read
    once, its own top-k merged into the running one per query. Returns ``(scores, indices)`` of shape
    Q x at most ``k``, best first. ``progress`` (a tqdm) is advanced once per shard.
    """
    q = _as_tensor(queries)
    num_q = q.shape[0]
    best_scores = torch.full((num_q, 0), float("-inf"))
    best_idx = torch.zeros((num_q, 0), dtype=torch.long)
    for start, shard in shards:
        chunk = _as_tensor(shard)
        kc = min(k, chunk.shape[0])
        new_scores, new_idx = [], []
        for qs in range(0, num_q, query_batch_size):
            block = q[qs : qs + query_batch_size] @ chunk.T  # query_batch_size x shard rows at most
            s, i = torch.topk(block, kc, dim=1)
            del block
            merged_s = torch.cat([best_scores[qs : qs + query_batch_size], s], dim=1)
            merged_i = torch.cat([best_idx[qs : qs + query_batch_size], i + start], dim=1)
            top_s, pos = torch.topk(merged_s, min(k, merged_s.shape[1]), dim=1)
            new_scores.append(top_s)
            new_idx.append(torch.gather(merged_i, 1, pos))
        best_scores = torch.cat(new_scores, dim=0)
        best_idx = torch.cat(new_idx, dim=0)
        if progress is not None:
            progress.update(1)
    return best_scores, best_idx


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
    starts = range(0, n, chunk_size)
    bar = tqdm(total=len(starts), desc="Top-k", unit="chunk", disable=not show_progress_bar or len(starts) < 2)
    with bar:
        return sharded_topk(queries, ((s, corpus[s : s + chunk_size]) for s in starts), min(int(k), n),
                            query_batch_size=query_batch_size, progress=bar)


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


#: From this many rows :func:`faiss_index` builds an approximate inverted-file index instead of a flat one.
FAISS_IVF_FROM = 200_000
#: Share of the inverted lists an approximate FAISS search visits (16 of 1,000 at a million rows).
FAISS_NPROBE_SHARE = 0.016


def faiss_index(shards, size: int, dim: int, *, ivf_from: int = FAISS_IVF_FROM):
    """The one FAISS index builder: inner product over the rows of ``shards`` (a callable returning a fresh
    iterator of ``(first row, embeddings)``, read once or twice).

    Below ``ivf_from`` rows a flat index (exact); from there an inverted-file index (``IndexIVFFlat``, about
    sqrt(N) lists trained on an even sample of 50 rows per list, :data:`FAISS_NPROBE_SHARE` of the lists
    probed): approximate, and an order of magnitude faster than exact search at a million rows.
    """
    faiss = require_faiss()
    if size < ivf_from:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(size ** 0.5)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.linspace(0, size - 1, min(size, 50 * lists)).astype(np.int64)
        parts = [np.asarray(emb[sample[(sample >= o) & (sample < o + len(emb))] - o], dtype=np.float32)
                 for o, emb in shards()]
        index.train(np.concatenate(parts))
    for _, emb in shards():
        index.add(np.ascontiguousarray(emb, dtype=np.float32))
    set_nprobe(index)
    return index


def set_nprobe(index) -> None:
    """Probe :data:`FAISS_NPROBE_SHARE` of an inverted-file index's lists (a flat index has none)."""
    if hasattr(index, "nprobe"):
        index.nprobe = max(1, round(index.nlist * FAISS_NPROBE_SHARE))


def faiss_topk(queries, corpus, k: int, *, add_batch_size: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k inner-product search with a FAISS flat index (exact; faiss imported lazily).

    Same contract as :func:`exact_topk`. FAISS keeps its own float32 copy of the corpus (N x d x 4 bytes).
    """
    n, d = int(corpus.shape[0]), int(corpus.shape[1])
    if n == 0:
        raise InputError("The corpus is empty.")
    index = faiss_index(lambda: ((s, corpus[s : s + add_batch_size]) for s in range(0, n, add_batch_size)), n, d,
                        ivf_from=n + 1)
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(int(k), n))
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
