"""An encoded collection, read and searched: ``scimult-hf encode``'s output, a Lance dataset (:mod:`.store`).

:class:`Collection` opens a finished collection in a local folder or in object storage, and searches it
through the dataset's own indexes:

* ``dense``: nearest neighbours of a query embedding in the task's vector column, by dot product (the
  cosine for a cosine model: the rows are unit length). Exact (a flat scan) until the collection has an ANN
  index (built from :data:`ANN_FROM` papers: :data:`ANN_INDEX`, chosen by ``benchmarks/collection_scale.py``);
* ``lexical``: BM25 over ``text`` (title and abstract) through the full-text index;
* ``hybrid``: reciprocal rank fusion of the two lists (each :data:`HYBRID_DEPTH` deep).

Each takes ``where``, an SQL filter over the collection's columns (``"year >= 2020 AND venue = 'Nature'"``),
applied before the ranking (so ``k`` hits come back whenever ``k`` papers pass the filter).

>>> from scimult_hf.corpus import Collection                                     # doctest: +SKIP
>>> c = Collection("my-index")                                                   # doctest: +SKIP
>>> c.search("search", "graph neural networks", k=5, mode="hybrid", where="year >= 2020")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from .store import (
    FORMAT,
    CollectionError,
    is_remote,
    open_dataset,
    read_record,
    uri_of,
    vector_column,
)

__all__ = ["ANN_FROM", "ANN_INDEX", "HYBRID_DEPTH", "MODES", "NPROBES", "RRF_K", "Collection", "CollectionError",
           "nearest_query", "old_format_error", "quote", "reciprocal_rank_fusion"]

#: From this many papers a collection gets an approximate index per task; below it search is exact.
ANN_FROM = 100_000
#: The approximate index: IVF with sqrt(N) lists over the float32 vectors themselves (no quantization, so no
#: refine step). Measured on 1M clustered 384-d vectors (``benchmarks/collection_scale.py --index-types``):
#: IVF_FLAT 8.3 ms p50 at recall@10 0.98 (16 lists probed); IVF_PQ (48 codes) 7.6 ms at 0.84 with a refine
#: factor of 10 and 14.1 ms at 0.99 with 50; IVF_SQ and IVF_HNSW_SQ slower at the same recall. It costs a copy of
#: the vectors on disk (2x the vector column).
ANN_INDEX = "IVF_FLAT"
#: Lists probed at least per query; Lance probes more when a filter leaves fewer than ``k`` candidates.
NPROBES = 16
#: How deep each of the two lists goes before reciprocal rank fusion.
HYBRID_DEPTH = 100
#: The constant of reciprocal rank fusion: a hit at rank r adds 1 / (RRF_K + r).
RRF_K = 60
MODES = ("dense", "lexical", "hybrid")


def quote(value: str) -> str:
    """``value`` as an SQL string literal (for filters on ids)."""
    return "'" + str(value).replace("'", "''") + "'"


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, weights: Sequence[float] | None = None,
                           k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked id lists: each id scores ``sum(weight / (k + rank))`` (rank from 1), best first.

    >>> best, score = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]])[0]
    >>> best, round(score, 4)
    ('a', 0.0325)
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for w, ranking in zip(weights, rankings, strict=True):
        for rank, pid in enumerate(ranking, 1):
            scores[pid] = scores.get(pid, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def old_format_error(path: Path) -> CollectionError | None:
    """The refusal for a folder in the old format (``.npy`` shards and ``collection.json``), with the command that
    encodes it again; None when ``path`` is not one."""
    import json

    manifest_path = path / "collection.json"
    if is_remote(path) or not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    source = (manifest.get("input") or {}).get("path", "PAPERS")
    tasks = ",".join(manifest.get("tasks") or ["search"])
    model = manifest.get("model", "MODEL")
    return CollectionError(
        f"{path} is a collection in the old folder format (.npy shards); collections are Lance datasets now, and "
        f"this one must be encoded again: `scimult-hf encode --model {model} --input {source} --output {path} "
        f"--task {tasks} --overwrite`."
    )


class Collection:
    """A finished collection: papers, their metadata and one embedding column per task, in a Lance dataset.

    ``location``: a folder or a URI (``s3://bucket/papers``); ``storage_options``: Lance's object-store options
    (by default the environment's credentials and endpoint).
    """

    def __init__(self, location: str | os.PathLike, *, storage_options: dict | None = None):
        self.uri = uri_of(location)
        self.storage_options = storage_options
        self.dataset = open_dataset(self.uri, storage_options)
        if self.dataset is None:
            old = old_format_error(Path(self.uri))
            if old is not None:
                raise old
            raise CollectionError(f"{location} is not an encoded collection; make one with "
                                  "`scimult-hf encode --input PAPERS --output DIR`.")
        record = read_record(self.dataset)
        if record is None:
            raise CollectionError(f"{location} is a Lance dataset but not a scimult-hf collection; encode one with "
                                  "`scimult-hf encode --input PAPERS --output DIR`.")
        if record.get("format") != FORMAT:
            raise CollectionError(f"{location} has collection format {record.get('format')!r}; this scimult-hf reads "
                                  f"format {FORMAT}. Encode it again with --overwrite.")
        if record.get("papers") is None:
            raise CollectionError(f"{location} is not finished: run the same `scimult-hf encode` command again and it "
                                  "resumes.")
        self.record = record

    # -- what it holds ------------------------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self.record["model"]

    @property
    def size(self) -> int:
        return int(self.record["papers"])

    @property
    def tasks(self) -> list[str]:
        return [t for t, info in self.record["tasks"].items() if info.get("complete")]

    @property
    def metadata_columns(self) -> list[str]:
        """The input's columns passed through (``--where`` filters on them, and on ``id`` and ``title``)."""
        return list(self.record.get("metadata", []))

    def task_info(self, task: str) -> dict:
        if task not in self.tasks:
            have = ", ".join(self.tasks) or "none"
            raise CollectionError(
                f"{self.uri} has no {task} embeddings (it has: {have}); add them with `scimult-hf encode "
                f"--task {task}` and the same --input and --output (the other tasks are kept)."
            )
        return self.record["tasks"][task]

    def _column(self, task: str) -> str:
        self.task_info(task)
        return vector_column(task)

    def indexes(self) -> dict[str, str]:
        """``{column: index kind}`` of the dataset's indexes (``Inverted``, ``BTree``, ``Vector``)."""
        return index_kinds(self.dataset)

    def _in_input_order(self, columns: list[str]):
        table = self.dataset.to_table(columns=["shard", *columns], scan_in_order=True)
        order = np.argsort(table.column("shard").to_numpy(), kind="stable")
        return table.take(order)

    def ids(self) -> list[str]:
        """Every paper's id, in input order."""
        return self._in_input_order(["id"]).column("id").to_pylist()

    def embeddings(self, task: str) -> np.ndarray:
        """All embeddings of ``task`` in one array (N x d, float32, in RAM, in input order)."""
        column = self._column(task)
        return _vectors(self._in_input_order([column]).column(column))

    def paper(self, paper_id: str) -> dict:
        """``{"id", "title", <metadata>...}`` of the paper ``paper_id``."""
        return {k: v for k, v in self._row(paper_id, ["id", "title", *self.metadata_columns]).items()}

    def vector(self, task: str, paper_id: str) -> np.ndarray:
        """The ``task`` embedding of the paper ``paper_id``."""
        column = self._column(task)
        return np.asarray(self._row(paper_id, [column])[column], dtype=np.float32)

    def _row(self, paper_id: str, columns: list[str]) -> dict:
        rows = self.dataset.to_table(columns=columns, filter=f"id = {quote(paper_id)}", limit=1).to_pylist()
        if not rows:
            raise CollectionError(f"no paper with id {paper_id!r} in {self.uri}; give its text with --text instead.")
        return rows[0]

    def encoder(self, task: str, *, device: str | None = None, batch_size: int = 32):
        """An :class:`~scimult_hf.corpus.encoders.Encoder` for queries, with the collection's model and backend."""
        from .encoders import load_encoder

        info = self.task_info(task)
        return load_encoder(self.model, task, backend=info.get("backend", "torch"), device=device,
                            batch_size=batch_size)

    # -- search -------------------------------------------------------------------------------------------------

    def _filter(self, where: str | None, exclude: Sequence[str] = ()) -> str | None:
        parts = [f"({where})"] if where and where.strip() else []
        parts += [f"id != {quote(pid)}" for pid in exclude]
        return " AND ".join(parts) or None

    def _scan(self, **kwargs):
        try:
            return self.dataset.to_table(**kwargs)
        except ValueError as err:
            if kwargs.get("filter") and ("Invalid user input" in str(err) or "parsing" in str(err)):
                reason = str(err).split(", /")[0].replace("Invalid user input: ", "").rstrip(".")
                names = ", ".join(["id", "title", *self.metadata_columns])
                raise InputError(f"--where could not be applied: {reason}. The columns to filter on: {names}; "
                                 "strings in single quotes, e.g. \"year >= 2020 AND venue = 'Nature'\".") from None
            raise

    def dense(self, task: str, query: np.ndarray, k: int, *, where: str | None = None, exclude: Sequence[str] = (),
              exact: bool = False, nprobes: int | None = None, refine_factor: int | None = None,
              columns: Sequence[str] = ("id", "title")) -> list[dict]:
        """The ``k`` papers nearest to one query embedding, best first, ``score`` = dot product."""
        info = self.task_info(task)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != info["dimension"]:
            raise InputError(f"the query embedding has {query.shape[0]} dimensions, the collection "
                             f"{info['dimension']}: encode it with the collection's model.")
        nearest = nearest_query(vector_column(task), query, k, exact=exact, nprobes=nprobes, refine_factor=refine_factor)
        table = self._scan(nearest=nearest, filter=self._filter(where, exclude), prefilter=True,
                           columns=[*columns, "_distance"])
        hits = table.to_pylist()
        for h in hits:
            h["score"] = 1.0 - h.pop("_distance")
        return hits

    def lexical(self, text: str, k: int, *, where: str | None = None, exclude: Sequence[str] = (),
                columns: Sequence[str] = ("id", "title")) -> list[dict]:
        """The ``k`` best papers for ``text`` by BM25 over title and abstract, best first, ``score`` = BM25."""
        if "text" not in self.indexes():
            raise CollectionError(f"{self.uri} has no full-text index; build it with "
                                  "`Collection(...).build_indexes()` (encode builds it when it finishes).")
        table = self._scan(full_text_query=text, filter=self._filter(where, exclude), prefilter=True, limit=k,
                           columns=[*columns, "_score"])
        hits = table.to_pylist()
        for h in hits:
            h["score"] = h.pop("_score")
        return hits

    def search(self, task: str, query: str | None = None, *, vector: np.ndarray | None = None, k: int = 10,
               mode: str = "dense", where: str | None = None, exclude: Sequence[str] = (), exact: bool = False,
               depth: int = HYBRID_DEPTH, encoder=None) -> list[dict]:
        """The ``k`` best papers for one query, best first: ``[{"rank", "score", "id", "title", ...}]``.

        ``query``: its text (encoded with ``encoder``, by default the collection's model, for ``dense`` and
        ``hybrid``); ``vector``: its embedding instead (``dense`` only, or with ``query`` for ``hybrid``).
        """
        if mode not in MODES:
            raise InputError(f"--mode {mode!r}: use one of {', '.join(MODES)}.")
        if k < 1:
            raise InputError(f"--top-k must be at least 1, not {k}.")
        if mode != "dense" and not (query and query.strip()):
            raise InputError(f"{mode} search needs the query's text.")
        if mode != "lexical" and vector is None:
            if not (query and query.strip()):
                raise InputError("give a query text or a query embedding.")
            vector = (encoder or self.encoder(task))([query], role="query")[0]
        columns = ["id", "title", *self.metadata_columns]
        if mode == "dense":
            hits = self.dense(task, vector, k, where=where, exclude=exclude, exact=exact, columns=columns)
        elif mode == "lexical":
            hits = self.lexical(query, k, where=where, exclude=exclude, columns=columns)
        else:
            deep = max(depth, k)
            dense = self.dense(task, vector, deep, where=where, exclude=exclude, exact=exact, columns=columns)
            lexical = self.lexical(query, deep, where=where, exclude=exclude, columns=columns)
            rows = {h["id"]: h for h in lexical} | {h["id"]: h for h in dense}
            fused = reciprocal_rank_fusion([[h["id"] for h in dense], [h["id"] for h in lexical]])[:k]
            hits = [{**rows[pid], "score": score} for pid, score in fused]
        return [{"rank": rank, **hit} for rank, hit in enumerate(hits, 1)]

    def scan(self, task: str, *, where: str | None = None, ids: Sequence[str] | None = None,
             batch_size: int = 1024) -> Iterator[tuple[list[dict], np.ndarray]]:
        """``(papers, embeddings)`` batches of every paper (passing ``where``; or of ``ids``, in that order)."""
        column = self._column(task)
        columns = ["id", "title", *self.metadata_columns, column]
        if ids is not None:
            for start in range(0, len(ids), batch_size):
                chunk = list(ids[start : start + batch_size])
                rows = [self._row(pid, columns) for pid in chunk]
                yield [{k: r[k] for k in columns[:-1]} for r in rows], np.asarray([r[column] for r in rows],
                                                                                   dtype=np.float32)
            return
        try:
            scanner = self.dataset.scanner(columns=columns, filter=self._filter(where), batch_size=batch_size,
                                           scan_in_order=True)
        except ValueError:
            self._scan(columns=["id"], filter=self._filter(where), limit=1)  # the filter's own message
            raise
        for batch in scanner.to_batches():
            if batch.num_rows == 0:
                continue
            vectors = _vectors(batch.column(column))
            yield batch.select(columns[:-1]).to_pylist(), vectors

    # -- indexes ------------------------------------------------------------------------------------------------

    def build_indexes(self, *, ann_from: int = ANN_FROM, replace: bool = False) -> dict[str, str]:
        """The full-text index on ``text``, a B-tree on ``id`` and, from ``ann_from`` papers, an :data:`ANN_INDEX`
        index per task (what :meth:`search` then uses). Returns :meth:`indexes`."""
        build_indexes(self.dataset, self.tasks, ann_from=ann_from, replace=replace)
        self.dataset = open_dataset(self.uri, self.storage_options)
        return self.indexes()


def _vectors(column) -> np.ndarray:
    """A fixed-size-list column as an N x d float32 array."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = array.type.list_size
    return np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, width)


def nearest_query(column: str, query: np.ndarray, k: int, *, exact: bool = False, nprobes: int | None = None,
                  refine_factor: int | None = None) -> dict:
    """Lance's ``nearest`` for the top ``k`` by dot product: through the column's index unless ``exact``, probing at
    least ``nprobes`` lists (default :data:`NPROBES`; more only when a filter leaves fewer than ``k``: a search effort
    of 0 starts at the minimum, where Lance's automatic start probed far more lists, 25 ms instead of 8 at 1M
    papers), re-ranked over the exact vectors when a ``refine_factor`` is given (only a quantized index needs it)."""
    nearest = {"column": column, "q": query, "k": k, "metric": "dot", "use_index": not exact,
               "minimum_nprobes": NPROBES if nprobes is None else nprobes, "search_effort": 0.0}
    if refine_factor is not None:
        nearest["refine_factor"] = refine_factor
    return nearest


def build_indexes(dataset, tasks: Sequence[str], *, ann_from: int = ANN_FROM, replace: bool = False) -> None:
    """What :meth:`Collection.build_indexes` builds, on an open dataset."""
    have = index_kinds(dataset)
    if replace or "text" not in have:
        dataset.create_scalar_index("text", index_type="INVERTED", replace=True, base_tokenizer="simple",
                                    language="English", lower_case=True, stem=True, remove_stop_words=True,
                                    with_position=False)
    if replace or "id" not in have:
        dataset.create_scalar_index("id", index_type="BTREE", replace=True)
    rows = dataset.count_rows()
    if rows < ann_from:
        return
    for task in tasks:
        column = vector_column(task)
        if column in have and not replace:
            continue
        dataset.create_index(column, index_type=ANN_INDEX, metric="dot", replace=True,
                             num_partitions=max(1, int(rows ** 0.5)))


def index_kinds(dataset) -> dict[str, str]:
    """``{column: index kind}`` from the dataset's index descriptions (``/lance.index.pb.InvertedIndexDetails``:
    ``Inverted``)."""
    kinds = {}
    for idx in dataset.describe_indices():
        kind = idx.type_url.rsplit(".", 1)[-1].removesuffix("IndexDetails").removesuffix("Details")
        kinds[idx.field_names[0]] = kind or idx.name
    return kinds
