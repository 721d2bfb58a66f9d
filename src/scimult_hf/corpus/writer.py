"""Writing a collection: ``scimult-hf encode`` into a Lance dataset, shard by shard, resumable.

Shard ``i`` holds input rows ``[i * shard_size, (i + 1) * shard_size)``, whoever wrote it, so the output
does not depend on the number of processes. Each shard is one Lance commit (one fragment): it is in the
collection whole or not at all. A run that stops (Ctrl-C, SIGKILL, a lost machine) is resumed by running
the same command: the shards already committed are skipped. Under ``accelerate launch`` (or ``torchrun``)
process ``r`` of ``n`` encodes shards ``r, r + n, r + 2n, ...`` and commits them itself (Lance merges
concurrent appends); the main process marks the collection finished and builds its indexes.

While a shard is encoded the next one is read and the previous one committed (read ahead, write behind).

A task added later (``--task link_prediction`` on a finished collection) becomes a new column
(``add_columns``, checkpointed: a stopped run resumes); the other tasks' columns are not touched.

``--overwrite`` builds the new collection beside the old one (``.NAME.next``, or ``URI.next`` in object
storage, resumed by the same command if it stops) and replaces the old one only once it is complete.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..defaults import model_stamp
from ..errors import InputError
from ..io import check_output, make_parent, replace_directory
from .collection import build_indexes, old_format_error
from .reader import Columns, PaperFile
from .store import (
    FORMAT,
    OWN_COLUMNS,
    CollectionError,
    create_dataset,
    delete_dataset,
    is_remote,
    open_dataset,
    read_record,
    require_lance,
    uri_of,
    vector_column,
    write_record,
)

__all__ = ["embed_papers", "encode_corpus", "load_encoders", "paper_schema", "run_record", "shard_table"]

_RUN_KEYS = (("input", "input file (or its columns)"), ("model", "model"),
             ("weights", "version of the model's weights"), ("shard_size", "shard size"),
             ("engine", "engine (--engine)"))


def _model_ref(model: str) -> str:
    """A local folder as an absolute path (the collection is usable from any directory), else the Hub id."""
    return os.fspath(Path(model).resolve()) if Path(model).is_dir() else model


def run_record(model: str, papers: PaperFile, shard_size: int, engine: str) -> dict:
    """What identifies one encoding run (a resumed run must match it)."""
    return {"model": _model_ref(model), "weights": model_stamp(model), "input": papers.fingerprint(),
            "shard_size": shard_size, "engine": engine}


def load_encoders(model: str, tasks: Sequence[str], *, backend: str, device: str, dtype: str | None,
                  batch_size: int, prompt_name: str | None) -> tuple[dict, dict[str, str]]:
    """The model's :class:`~.encoders.Encoder` per task (the model loaded once for all), and for each task the task
    whose embeddings it can reuse (an untrained model's experts are copies: the same embeddings)."""
    from ..models.tasks import has_experts, identical_experts, prompt_for
    from .encoders import load_encoder, load_sentence_model

    st = load_sentence_model(model, device, dtype) if backend == "torch" else None
    encoders = {task: load_encoder(model, task, backend=backend, device=device, batch_size=batch_size,
                                   prompt_name=prompt_name, st=st) for task in tasks}
    same_as: dict[str, str] = {}
    if st is not None and has_experts(st):
        canonical = identical_experts(st[0].model)
        key = {t: (canonical[t], prompt_for(st, t, prompt_name)) for t in tasks}
        same_as = {t: next(u for u in tasks if key[u] == key[t]) for t in tasks}
    return encoders, same_as


def embed_papers(papers: list[dict], tasks: Sequence[str], encoders: dict, same_as: dict[str, str],
                 batch_size: int, progress=None) -> dict[str, np.ndarray]:
    """Each task's embeddings of ``papers`` (longest first in batches of ``batch_size``; copies for tasks whose
    experts are identical)."""
    order = sorted(range(len(papers)), key=lambda i: -len(papers[i]["text"]))
    vectors: dict[str, np.ndarray] = {}
    for task in tasks:
        source = same_as.get(task, task)
        if source in vectors:  # identical experts: identical embeddings
            vectors[task] = vectors[source]
            continue
        emb = np.empty((len(papers), encoders[task].dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):  # the bar moves with every batch
            rows = order[start : start + batch_size]
            emb[rows] = encoders[task]([papers[i]["text"] for i in rows])
            if progress is not None:
                progress.update(len(rows))
        vectors[task] = emb
    return vectors


def _next_uri(uri: str) -> str:
    """Where ``--overwrite`` builds the new collection before it replaces ``uri``."""
    if is_remote(uri):
        return uri.rstrip("/") + ".next"
    path = Path(uri)
    return os.fspath(path.parent / f".{path.name}.next")


def _metadata_name(name: str) -> str | None:
    """The collection's name for an input column passed through (None: it clashes with one of ours)."""
    return None if name in OWN_COLUMNS or name.startswith("vector_") else name


def paper_schema(first: list[dict], tasks: dict[str, int]):
    """The collection's Arrow schema: our columns, the input's other columns (types read off the first shard;
    a column empty there is text), a float32 vector column per task of ``tasks`` (name -> dimension)."""
    import pyarrow as pa

    fields = [pa.field("id", pa.string(), nullable=False), pa.field("title", pa.string()),
              pa.field("text", pa.string()), pa.field("shard", pa.int64())]
    names = [n for n in (first[0].get("extra") or {}) if _metadata_name(n)]
    if names:
        sample = pa.Table.from_pylist([{n: p["extra"].get(n) for n in names} for p in first])
        for name in names:
            kind = sample.schema.field(name).type
            fields.append(pa.field(name, pa.string() if pa.types.is_null(kind) else kind))
    fields += [pa.field(vector_column(t), pa.list_(pa.float32(), d)) for t, d in tasks.items()]
    return pa.schema(fields)


def shard_table(schema, index: int, papers: list[dict], vectors: dict[str, np.ndarray]):
    """One shard as an Arrow table of ``schema``."""
    import pyarrow as pa

    data = {"id": [p["id"] for p in papers], "title": [p["title"] for p in papers],
            "text": [p["text"] for p in papers], "shard": [index] * len(papers)}
    for field in schema:
        if field.name in data or field.name.startswith("vector_"):
            continue
        data[field.name] = [(p.get("extra") or {}).get(field.name) for p in papers]
    for task, emb in vectors.items():
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        data[vector_column(task)] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])
    arrays = []
    for field in schema:
        try:
            arrays.append(pa.array(data[field.name], type=field.type) if not isinstance(data[field.name], pa.Array)
                          else data[field.name])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise InputError(f"column {field.name!r} of shard {index} does not fit its type in the collection "
                             f"({field.type}, read off the first shard): {err}. Write the column with one type "
                             "throughout the input.") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _done_shards(dataset) -> set[int]:
    if dataset.count_rows() == 0:
        return set()
    return set(np.unique(dataset.to_table(columns=["shard"]).column("shard").to_numpy()).tolist())


def _prefetch(iterator: Iterator, depth: int = 1) -> Iterator:
    """``iterator``'s items, read ``depth`` ahead in a thread (input I/O overlaps the model's work)."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    end = object()

    def fill():
        try:
            for item in iterator:
                items.put(item)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            items.put(err)
        items.put(end)

    threading.Thread(target=fill, daemon=True).start()
    while (item := items.get()) is not end:
        if isinstance(item, BaseException):
            raise item
        yield item


def _shards(papers: PaperFile, shard_size: int) -> Iterator[tuple[int, list[dict]]]:
    shard, index = [], 0
    for batch in papers.batches(extra=True):
        for paper in batch:
            shard.append(paper)
            if len(shard) == shard_size:
                yield index, shard
                index, shard = index + 1, []
    if shard:
        yield index, shard


def _check_run(location: str, record: dict, run: dict) -> None:
    for key, what in _RUN_KEYS:
        if record.get(key) == run[key]:
            continue
        if key == "weights":
            raise CollectionError(
                f"{location} was started with other weights of this model ({run['model']} changed since): "
                "resuming would mix embeddings of two models. Pass --overwrite to encode everything again, or "
                "choose another --output."
            )
        raise CollectionError(
            f"{location} holds a collection of another {what} ({record.get(key)!r}); pass --overwrite to "
            "start again there, or choose another --output."
        )


def _clear_stale_next(work: str, run: dict, storage_options) -> None:
    """Remove the staged collection unless it holds this same run (then a stopped overwrite resumes there)."""
    if not is_remote(work) and not Path(work).exists():
        return
    try:
        dataset = open_dataset(work, storage_options)
        record = read_record(dataset) if dataset is not None else None
    except (ValueError, OSError):
        record = None
    if record is None or any(record.get(k) != run[k] for k, _ in _RUN_KEYS):
        delete_dataset(work, storage_options)


def _replace(work: str, uri: str, storage_options) -> None:
    """Put the finished collection ``work`` at ``uri``: a folder moves; in object storage the data is copied into
    one overwriting commit (readers see the old collection until then), then the staged copy goes."""
    if not is_remote(uri):
        replace_directory(work, uri)
        return
    lance = require_lance()
    staged = lance.dataset(work, storage_options=storage_options)
    dataset = lance.write_dataset(staged.scanner(), uri, schema=staged.schema, mode="overwrite",
                                  storage_options=storage_options)
    write_record(dataset, read_record(staged))
    build_indexes(lance.dataset(uri, storage_options=storage_options), list(read_record(staged)["tasks"]))
    delete_dataset(work, storage_options)


def encode_corpus(
    model: str,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    tasks: Sequence[str] = ("search",),
    columns: Columns = Columns(),
    backend: str = "torch",
    batch_size: int = 32,
    shard_size: int = 1_000,
    device: str | None = None,
    dtype: str | None = None,
    prompt_name: str | None = None,
    overwrite: bool = False,
    show_progress_bar: bool = True,
    storage_options: dict | None = None,
) -> str:
    """Encode every paper of ``input`` for each of ``tasks`` into the collection at ``output`` (a folder or an
    ``s3://`` / ``gs://`` URI).

    Resumes a stopped run of the same command; under ``accelerate launch`` / ``torchrun`` each process
    encodes its share of the shards. Returns the collection's URI (a local folder as an absolute path).
    """
    from accelerate import PartialState

    from ..resolve import resolve_model_path

    model = resolve_model_path(model)
    if shard_size < 1 or batch_size < 1:
        raise InputError("--shard-size and --batch-size must be at least 1.")
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise InputError("name at least one task (--task).")
    papers = PaperFile(input, columns)
    total = papers.check()  # the whole input, before the model loads: a bad line stops now, not after hours
    uri = check_destination(output, papers, model, overwrite)
    import torch

    # accelerate treats CPU processes under torchrun as distributed only when asked to (cpu=True).
    on_cpu = (device or "cpu").startswith("cpu") if device else not torch.cuda.is_available()
    state = PartialState(cpu=on_cpu)
    device = device or ("cpu" if on_cpu else str(state.device))
    run = run_record(model, papers, shard_size, "local")

    encoders, same_as = load_encoders(model, tasks, backend=backend, device=device, dtype=dtype,
                                      batch_size=batch_size, prompt_name=prompt_name)
    existing = open_dataset(uri, storage_options)
    staged = overwrite and (existing is not None or (not is_remote(uri) and Path(uri).exists()))
    work = _next_uri(uri) if staged else uri
    if state.is_main_process:
        _prepare(output, uri, work, staged, existing, papers, shard_size, run, encoders, backend, storage_options)
    state.wait_for_everyone()
    dataset = open_dataset(work, storage_options)
    record = read_record(dataset)
    started = [t for t in record["tasks"] if not record["tasks"][t]["complete"]]
    added = [t for t in tasks if t not in record["tasks"]]
    if added and record["papers"] is None:
        raise CollectionError(
            f"{output} is not finished: finish it first with its own tasks (--task {','.join(record['tasks'])}), "
            f"then add {', '.join(added)}."
        )
    if [t for t in started if t not in encoders]:
        raise CollectionError(f"{output} was started with --task {','.join(record['tasks'])}: run that command again "
                              "to finish it (then add other tasks).")
    if started:
        _encode_shards(dataset, work, papers, total, shard_size, batch_size, encoders, same_as, started, state,
                       show_progress_bar, storage_options)
    if added and state.is_main_process:
        _add_tasks(work, storage_options, added, encoders, same_as, record, run, batch_size, show_progress_bar)
    state.wait_for_everyone()
    if state.is_main_process:
        _finish(uri, work, staged, total, shard_size, bool(added), storage_options)
    state.wait_for_everyone()
    return uri


def check_destination(output, papers: PaperFile, model, overwrite: bool) -> str:
    """The output's URI, after refusing (before any model loads) a local output that would destroy an input, that
    sits under a file, or that an older scimult-hf wrote (without ``overwrite``)."""
    uri = uri_of(output)
    if not is_remote(uri):
        check_output(uri, [papers.path, model if Path(model).exists() else None], overwrite=True)
        make_parent(Path(uri))  # a file where a folder should be: one line now, not Lance's error later
        if not overwrite and (old := old_format_error(Path(uri))) is not None:
            raise old
    return uri


def _prepare(output, uri, work, staged, existing, papers, shard_size, run, encoders, backend, storage_options) -> None:
    """Create the collection at ``work`` (or check that the one there is this same run)."""
    if staged:
        _clear_stale_next(work, run, storage_options)
    elif existing is None and not is_remote(uri) and Path(uri).exists() and any(Path(uri).iterdir()):
        raise FileExistsError(f"{uri} exists and is not a collection; choose another --output or pass --overwrite.")
    dataset = open_dataset(work, storage_options)
    if dataset is None:
        first = next(iter(_shards(papers, min(shard_size, 1000))))[1]
        record = {"format": FORMAT, **run, "papers": None, "tasks": {}, "metadata": []}
        for task, enc in encoders.items():
            record["tasks"][task] = {"dimension": enc.dimension, "similarity": enc.similarity, "backend": backend,
                                     "complete": False}
        schema = paper_schema(first, {t: e.dimension for t, e in encoders.items()})
        record["metadata"] = [f.name for f in schema if f.name not in OWN_COLUMNS and not f.name.startswith("vector_")]
        create_dataset(work, schema, record, storage_options)
        return
    record = read_record(dataset)
    if record is None:
        raise CollectionError(f"{output} is a Lance dataset but not a scimult-hf collection; choose another --output.")
    _check_run(os.fspath(output), record, run)


def _finish(uri, work, staged, total, shard_size, reindex, storage_options, *, by_shard: bool = True) -> None:
    """Check that every paper is there, mark the collection finished, build its indexes, put it in place."""
    dataset = open_dataset(work, storage_options)
    record = read_record(dataset)
    if record["papers"] is None:
        rows = dataset.count_rows()
        missing = sorted(set(range(-(-total // shard_size))) - _done_shards(dataset)) if by_shard else []
        if missing or rows != total:
            shown = f" ({', '.join(map(str, missing[:5]))}...)" if missing else ""
            raise CollectionError(
                f"{total - rows:,} paper(s) in {len(missing) or 'some'} shard(s) are missing{shown}: a process "
                "stopped early. Run the same command again to finish them."
            )
        for task in record["tasks"]:
            record["tasks"][task]["complete"] = True
        record["papers"] = rows
        write_record(dataset, record)
    build_indexes(open_dataset(work, storage_options), list(record["tasks"]), replace=reindex)
    if staged:  # the new collection is complete: only now does it replace the old one
        _replace(work, uri, storage_options)


def _encode_shards(dataset, work, papers, total, shard_size, batch_size, encoders, same_as, tasks, state,
                   show_progress_bar, storage_options) -> None:
    """This process's shards of the tasks the collection was started with, one commit each."""
    lance = require_lance()
    schema = dataset.schema
    done = _done_shards(dataset)
    shards = -(-total // shard_size)
    mine = [i for i in range(shards) if i % state.num_processes == state.process_index]
    left = [i for i in mine if i not in done]
    computed_tasks = [t for t in tasks if same_as.get(t, t) == t]
    papers_left = sum(min(shard_size, total - i * shard_size) for i in left)
    if len(left) < len(mine) and show_progress_bar and state.is_main_process:
        print(f"resuming {work}: {len(mine) - len(left):,} of {len(mine):,} shards already done; encoding the other "
              f"{len(left):,}", file=sys.stderr)
    label = f"encoding corpus for {', '.join(tasks)} ({papers_left:,} papers)"
    bar = tqdm(total=papers_left * len(computed_tasks), desc=label, unit="paper", dynamic_ncols=True,
               disable=not show_progress_bar or not state.is_main_process)
    todo = set(left)

    def commit(table) -> None:
        lance.write_dataset(table, work, mode="append", max_rows_per_file=max(shard_size, 1 << 20),
                            storage_options=storage_options)

    pending = None
    with ThreadPoolExecutor(max_workers=1) as writer:  # write behind: shard i commits while i + 1 encodes
        for index, items in _prefetch(_shards(papers, shard_size)):
            if index not in todo:
                continue
            vectors = embed_papers(items, tasks, encoders, same_as, batch_size, bar)
            table = shard_table(schema, index, items, vectors)
            if pending is not None:
                pending.result()
            pending = writer.submit(commit, table)
        if pending is not None:
            pending.result()
    bar.close()


def _add_tasks(work, storage_options, added, encoders, same_as, record, run, batch_size, show_progress_bar) -> None:
    """New task columns on a finished collection: Lance's ``add_columns`` over ``text``, checkpointed."""
    import pyarrow as pa

    lance = require_lance()
    from ..defaults import cache_dir

    for task in added:
        dataset = lance.dataset(work, storage_options=storage_options)
        enc = encoders[task]
        column = vector_column(task)
        source = same_as.get(task, task)
        copy_of = source if source != task and vector_column(source) in dataset.schema.names else None
        key = hashlib.sha256(f"{work}\n{task}\n{run['weights']}\n{dataset.version}".encode()).hexdigest()[:16]
        checkpoint = cache_dir() / "checkpoints" / f"add-{task}-{key}.sqlite"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        out_schema = pa.schema([pa.field(column, pa.list_(pa.float32(), enc.dimension))])
        bar = tqdm(total=record["papers"], desc=f"adding {task} to the collection", unit="paper",
                   disable=not show_progress_bar)

        @lance.batch_udf(output_schema=out_schema, checkpoint_file=os.fspath(checkpoint))
        def embed(batch):
            if copy_of:
                emb = batch.column(vector_column(copy_of))
            else:
                texts = batch.column("text").to_pylist()
                order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
                out = np.empty((len(texts), enc.dimension), dtype=np.float32)
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    out[rows] = enc([texts[i] for i in rows])
                emb = pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), enc.dimension)
            bar.update(batch.num_rows)
            return pa.RecordBatch.from_arrays([emb], schema=out_schema)

        dataset.add_columns(embed, read_columns=[vector_column(copy_of)] if copy_of else ["text"])
        bar.close()
        checkpoint.unlink(missing_ok=True)
        dataset = lance.dataset(work, storage_options=storage_options)
        record = read_record(dataset)
        record["tasks"][task] = {"dimension": enc.dimension, "similarity": enc.similarity,
                                 "backend": encoders[task].backend, "complete": True}
        write_record(dataset, record)
