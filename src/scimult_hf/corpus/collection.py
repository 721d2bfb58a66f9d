"""An encoded collection, read: ``scimult-hf encode``'s output folder (written by :mod:`.writer`).

Layout of ``DIR``::

    collection.json          model, input, columns, shard size; per task: dimension, similarity, backend,
                             and - once every shard is there - the number of papers (written last)
    papers/00000.jsonl       ids and titles of the shard's papers, in input order
    <task>/00000.npy         float32 embeddings of those papers through the task's expert
                             (unit length when the model compares by cosine)
    <task>/faiss.index       the FAISS index of the task, once ``--faiss`` asked for it

:class:`Collection` reads a finished folder shard by shard (memory-mapped); its top-k is
:func:`~scimult_hf.retrieval.search.sharded_topk` over the shards, or a FAISS index from
:func:`~scimult_hf.retrieval.search.faiss_index`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import atomic_file

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "collection.json"

__all__ = ["FORMAT", "MANIFEST", "Collection", "CollectionError", "read_ids", "read_manifest", "shard_name"]


class CollectionError(InputError):
    """The folder is not (or not yet) a usable collection, or belongs to another input or model."""


def shard_name(i: int) -> str:
    return f"{i:05d}"


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CollectionError(f"{path} is damaged ({err}); encode again with --overwrite.") from None


def read_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line]


class Collection:
    """A finished collection folder: shard-by-shard embeddings per task, paper ids and titles.

    >>> c = Collection("my-index")                                            # doctest: +SKIP
    >>> scores, rows = c.top_k("search", c.encoder("search")(["graph neural networks"], "query"), k=5)  # doctest: +SKIP
    >>> [c.paper(r)["title"] for r in rows[0]]                                # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = read_manifest(self.path) if self.path.is_dir() else None
        if manifest is None:
            raise CollectionError(
                f"{self.path} is not an encoded collection (no {MANIFEST}); make one with "
                "`scimult-hf encode --input PAPERS --output DIR`."
            )
        if manifest.get("format") != FORMAT:
            raise CollectionError(f"{self.path} has collection format {manifest.get('format')!r}; this "
                                  f"scimult-hf reads format {FORMAT}. Encode it again with --overwrite.")
        self.manifest = manifest
        if manifest.get("papers") is None:
            raise CollectionError(
                f"{self.path} is not finished: run the same `scimult-hf encode` command again and it resumes."
            )
        self._titles: dict[int, list[dict]] = {}
        self._faiss_indexes: dict[str, object] = {}

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def size(self) -> int:
        return int(self.manifest["papers"])

    @property
    def tasks(self) -> list[str]:
        return [t for t, info in self.manifest["tasks"].items() if info.get("complete")]

    def task_info(self, task: str) -> dict:
        if task not in self.tasks:
            have = ", ".join(self.tasks) or "none"
            raise CollectionError(
                f"{self.path} has no {task} embeddings (it has: {have}); add them with `scimult-hf encode "
                f"--task {task}` and the same --input and --output (the other tasks are kept)."
            )
        return self.manifest["tasks"][task]

    def _shard_sizes(self) -> list[int]:
        return list(self.manifest["shards"])

    def shards(self, task: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, embeddings)`` per shard, memory-mapped (read-only)."""
        self.task_info(task)
        offset = 0
        for i, rows in enumerate(self._shard_sizes()):
            emb = np.load(self.path / task / f"{shard_name(i)}.npy", mmap_mode="r")
            if emb.shape[0] != rows:
                raise CollectionError(f"{self.path / task / shard_name(i)}.npy has {emb.shape[0]} rows, not {rows}: "
                                      "the collection is damaged; encode again with --overwrite.")
            yield offset, emb
            offset += rows

    def embeddings(self, task: str) -> np.ndarray:
        """All embeddings of ``task`` in one array (N x d, float32, in RAM)."""
        return np.concatenate([emb for _, emb in self.shards(task)], axis=0)

    def embedding(self, task: str, row: int) -> np.ndarray:
        shard, at = divmod(row, self.manifest["shard_size"])
        self.task_info(task)
        return np.array(np.load(self.path / task / f"{shard_name(shard)}.npy", mmap_mode="r")[at])

    def paper(self, row: int) -> dict:
        """``{"id", "title"}`` of the paper in ``row``."""
        if not 0 <= row < self.size:
            raise IndexError(f"row {row} is outside the collection (0..{self.size - 1}).")
        shard, at = divmod(row, self.manifest["shard_size"])
        if shard not in self._titles:
            path = self.path / "papers" / f"{shard_name(shard)}.jsonl"
            self._titles[shard] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        return self._titles[shard][at]

    def find(self, paper_id: str) -> int:
        """The row of the paper with id ``paper_id`` (the first, if ids repeat)."""
        offset = 0
        for i, rows in enumerate(self._shard_sizes()):
            ids = read_ids(self.path / "papers" / f"{shard_name(i)}.jsonl")
            if paper_id in ids:
                return offset + ids.index(paper_id)
            offset += rows
        raise CollectionError(f"no paper with id {paper_id!r} in {self.path}; give its text with --text instead.")

    def encoder(self, task: str, *, device: str | None = None, batch_size: int = 32):
        """An :class:`~scimult_hf.corpus.encoders.Encoder` for queries, with the collection's model and backend."""
        from .encoders import load_encoder

        info = self.task_info(task)
        return load_encoder(self.model, task, backend=info.get("backend", "torch"), device=device,
                            batch_size=batch_size)

    def top_k(self, task: str, queries: np.ndarray, k: int, *, use_faiss: bool = False,
              exclude: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` rows per query by dot product (exact, shard by shard; or a FAISS flat index).

        ``exclude[i]``: rows never returned for query ``i`` (e.g. the query paper itself).
        Returns ``(scores, rows)``, each ``len(queries) x min(k, size)``, best first.
        """
        import torch

        from ..retrieval import sharded_topk

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.shape[1] != self.task_info(task)["dimension"]:
            raise InputError(f"query embeddings have {queries.shape[1]} dimensions, the collection "
                             f"{self.task_info(task)['dimension']}: encode them with the collection's model.")
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        want = min(k + extra, self.size)
        if use_faiss:
            scores, rows = self._faiss(task).search(queries, want)
            scores, rows = torch.from_numpy(scores), torch.from_numpy(rows.astype(np.int64))
        else:
            scores, rows = sharded_topk(queries, self.shards(task), want)
        out_s, out_r = [], []
        for i in range(len(queries)):
            banned = set(exclude[i]) if exclude else set()
            keep = [j for j, r in enumerate(rows[i].tolist()) if r not in banned][:k]
            out_s.append(scores[i, keep].numpy())
            out_r.append(rows[i, keep].numpy())
        return np.stack(out_s), np.stack(out_r)

    def _faiss(self, task: str):
        """The FAISS index of ``task`` (:func:`~scimult_hf.retrieval.search.faiss_index`: flat below 200,000
        papers, inverted-file above), built once and kept as ``<task>/faiss.index``."""
        from ..retrieval import faiss_index, require_faiss, set_nprobe

        if task in self._faiss_indexes:
            return self._faiss_indexes[task]
        faiss = require_faiss()
        path = self.path / task / "faiss.index"
        index = faiss.read_index(os.fspath(path)) if path.is_file() else None
        if index is None or index.ntotal != self.size:
            index = faiss_index(lambda: self.shards(task), self.size, self.task_info(task)["dimension"])
            with atomic_file(path) as tmp:
                faiss.write_index(index, os.fspath(tmp))
        set_nprobe(index)
        self._faiss_indexes[task] = index
        return index
