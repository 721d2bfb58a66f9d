"""``scimult-hf encode --engine ray``: the same collection, encoded on Ray Data across workers and machines.

Ray reads the input (a file, a folder of files or object storage: ``read_json`` / ``read_csv`` /
``read_parquet``), cuts it into batches of ``shard_size`` papers and hands them to a pool of actors that
each hold the model (one per GPU with ``gpus_per_worker=1``, else one per CPU slot). Every actor embeds its
batch and commits it to the Lance dataset itself (one fragment, atomic; Lance merges concurrent appends).
A stopped run resumes: the papers already committed are filtered out before they reach the model.

The collection is the one ``encode`` writes: the same columns, the same record (with ``engine: ray``),
the same indexes; rows are in the order the workers committed them, not the input's.

>>> encode_with_ray("scimult-moe", "papers.parquet", "s3://bucket/papers", workers=8)   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError, MissingDependencyError
from ..text import paper_text
from .reader import Columns, PaperFile
from .store import is_remote, open_dataset, read_record, require_lance
from .writer import (
    _finish,
    _next_uri,
    _prepare,
    check_destination,
    embed_papers,
    load_encoders,
    run_record,
    shard_table,
)

__all__ = ["encode_with_ray"]


def _require_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("--engine ray needs Ray Data: `pip install 'scimult-hf[ray]'`.") from None
    return ray


class _Embedder:
    """A Ray actor: the model, loaded once; each call embeds one batch of papers and commits it."""

    def __init__(self, model, tasks, backend, batch_size, prompt_name, device, work, storage_options, columns,
                 done_ref, same_as):
        import ray

        lance = require_lance()
        self.encoders, _ = load_encoders(model, tasks, backend=backend, device=device, dtype=None,
                                         batch_size=batch_size, prompt_name=prompt_name)
        self.tasks, self.same_as, self.batch_size = list(tasks), same_as, batch_size
        self.work, self.storage_options, self.columns = work, storage_options, columns
        self.schema = lance.dataset(work, storage_options=storage_options).schema
        self.done = ray.get(done_ref) if done_ref is not None else None
        self.lance = lance

    def _papers(self, table) -> list[dict]:
        c = self.columns
        names = table.column_names
        used = {c.id, c.title, c.abstract, c.text}
        rows = table.to_pylist()
        papers = []
        for row in rows:
            text = row.get(c.text) if c.text else paper_text(row.get(c.title), row.get(c.abstract))
            papers.append({"id": str(row[c.id]), "title": str(row.get(c.title) or "")[:300], "text": str(text),
                           "extra": {n: row[n] for n in names if n not in used}})
        return papers

    def __call__(self, table):
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.done is not None and len(self.done):
            table = table.filter(pc.invert(pc.is_in(pc.cast(table.column(self.columns.id), pa.string()),
                                                    value_set=self.done)))
        if table.num_rows:
            papers = self._papers(table)
            vectors = embed_papers(papers, self.tasks, self.encoders, self.same_as, self.batch_size)
            self.lance.write_dataset(shard_table(self.schema, -1, papers, vectors), self.work, mode="append",
                                     max_rows_per_file=1 << 20, storage_options=self.storage_options)
        return pa.table({"written": [table.num_rows]})


def _read(ray, source: str):
    suffixes = [s.lower() for s in Path(source).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind in (".jsonl", ".json"):
        return ray.data.read_json(source, lines=kind == ".jsonl")
    if kind in (".csv", ".tsv"):
        import pyarrow.csv as pacsv

        options = {"parse_options": pacsv.ParseOptions(delimiter="\t")} if kind == ".tsv" else {}
        return ray.data.read_csv(source, **options)
    if kind == ".parquet":
        return ray.data.read_parquet(source)
    raise InputError(f"{source}: unknown input format for --engine ray; give .jsonl, .csv, .tsv or .parquet.")


def encode_with_ray(
    model: str,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    tasks: Sequence[str] = ("search",),
    columns: Columns = Columns(),
    workers: int = 2,
    gpus_per_worker: float = 0,
    backend: str = "torch",
    batch_size: int = 32,
    shard_size: int = 1_000,
    prompt_name: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
    show_progress_bar: bool = True,
    storage_options: dict | None = None,
) -> str:
    """:func:`~.writer.encode_corpus` on Ray Data: ``workers`` actors, each with the model, on the cluster at
    ``address`` (default: a local one with ``workers`` CPU slots). Returns the collection's URI."""
    from tqdm.auto import tqdm

    from ..resolve import resolve_model_path

    ray = _require_ray()
    model = resolve_model_path(model)
    if workers < 1 or shard_size < 1 or batch_size < 1:
        raise InputError("--workers, --shard-size and --batch-size must be at least 1.")
    tasks = list(dict.fromkeys(tasks))
    papers = PaperFile(input, columns)
    total = papers.check()  # the whole input, before any model loads
    uri = check_destination(output, papers, model, overwrite)
    device = "cuda" if gpus_per_worker else "cpu"
    encoders, same_as = load_encoders(model, tasks, backend=backend, device="cpu", dtype=None,
                                      batch_size=batch_size, prompt_name=prompt_name)
    run = run_record(model, papers, shard_size, "ray")
    existing = open_dataset(uri, storage_options)
    staged = overwrite and (existing is not None or (not is_remote(uri) and Path(uri).exists()))
    work = _next_uri(uri) if staged else uri
    _prepare(output, uri, work, staged, existing, papers, shard_size, run, encoders, backend, storage_options)
    dataset = open_dataset(work, storage_options)
    record = read_record(dataset)
    if [t for t in tasks if t not in record["tasks"]] or [t for t in record["tasks"] if t not in tasks]:
        raise InputError(f"{output} holds --task {','.join(record['tasks'])}: --engine ray encodes a collection's "
                         "first tasks; add a task later without --engine ray.")
    if record["papers"] is None:
        if not ray.is_initialized():
            # A local cluster: a CPU slot per worker and one for reading the input.
            ray.init(address=address, num_cpus=None if address else workers + 1, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True, logging_level="warning")
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # our bar counts papers; Ray's would count blocks
        context.print_on_execution_start = False
        done = dataset.to_table(columns=["id"]).column("id").combine_chunks() if dataset.count_rows() else None
        left = total - (len(done) if done is not None else 0)
        if done is not None and show_progress_bar:
            print(f"resuming {work}: {len(done):,} of {total:,} papers already done; encoding the other {left:,}",
                  file=__import__("sys").stderr)
        done_ref = ray.put(done) if done is not None else None
        kwargs = dict(model=model, tasks=tasks, backend=backend, batch_size=batch_size, prompt_name=prompt_name,
                      device=device, work=work, storage_options=storage_options, columns=columns, done_ref=done_ref,
                      same_as=same_as)
        resources = {"num_gpus": gpus_per_worker} if gpus_per_worker else {"num_cpus": 1}
        stream = _read(ray, os.fspath(papers.path)).map_batches(
            _Embedder, fn_constructor_kwargs=kwargs, batch_size=shard_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers), **resources)
        with tqdm(total=left, desc=f"encoding corpus on Ray ({workers} workers)", unit="paper",
                  disable=not show_progress_bar) as bar:
            for batch in stream.iter_batches(batch_format="pyarrow", batch_size=None):
                bar.update(int(sum(batch.column("written").to_pylist())))
    _finish(uri, work, staged, total, shard_size, False, storage_options, by_shard=False)
    return uri
