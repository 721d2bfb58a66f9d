"""Writing a collection: ``scimult-hf encode``, shard by shard, resumable, one share of the shards per process.

Shard ``i`` holds input rows ``[i * shard_size, (i + 1) * shard_size)``, whoever wrote it, so the output
does not depend on the number of processes. Every file is written atomically; a shard that exists is
complete. A run that stops (Ctrl-C, SIGKILL, a lost machine) is resumed by running the same command: the
shards already written are checked against the input's ids and skipped. Under ``accelerate launch`` (or
``torchrun``) process ``r`` of ``n`` encodes shards ``r, r + n, r + 2n, ...``; the main process writes
``collection.json`` when all have finished.

``--overwrite`` builds the new collection beside the old one (``.NAME.next``, resumed by the same command
if it stops) and replaces the old one only once the new one is complete, like every other writer.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..defaults import model_stamp
from ..errors import InputError
from ..io import atomic_file, atomic_write_text, check_output, replace_directory
from .collection import FORMAT, MANIFEST, CollectionError, read_ids, read_manifest, shard_name
from .reader import Columns, PaperFile

__all__ = ["encode_corpus"]


def _model_ref(model: str) -> str:
    """A local folder as an absolute path (the collection is usable from any directory), else the Hub id."""
    return os.fspath(Path(model).resolve()) if Path(model).is_dir() else model


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _write_papers(path: Path, papers: list[dict]) -> None:
    lines = [json.dumps({"id": p["id"], "title": p["title"]}, ensure_ascii=False) for p in papers]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _next_name(output: Path) -> Path:
    """Where ``--overwrite`` builds the new collection before it replaces ``output``."""
    return output.parent / f".{output.name}.next"


def _prepare_folder(output: Path, run: dict, tasks: Sequence[str]) -> dict:
    """The manifest to continue from in ``output``: a new one, or the existing one when it is this same run."""
    existing = read_manifest(output) if output.is_dir() else None
    if existing is None and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(
            f"{output} exists and is not a collection folder; choose another --output or pass --overwrite."
        )
    if existing is not None:
        for key, what in (("input", "input file (or its columns)"), ("model", "model"),
                          ("weights", "version of the model's weights"), ("shard_size", "shard size")):
            if existing.get(key) != run[key] and key == "weights":
                raise CollectionError(
                    f"{output} was started with other weights of this model ({run['model']} changed since): "
                    "resuming would mix embeddings of two models. Pass --overwrite to encode everything again, or "
                    "choose another --output."
                )
            if existing.get(key) != run[key]:
                raise CollectionError(
                    f"{output} holds a collection of another {what} ({existing.get(key)!r}); pass --overwrite to "
                    "start again there, or choose another --output."
                )
        manifest = existing
    else:
        manifest = {"format": FORMAT, **run, "papers": None, "tasks": {}}
    for task in tasks:
        manifest["tasks"].setdefault(task, {"complete": False})
    return manifest


def _clear_stale_next(output: Path, run: dict) -> None:
    """Remove ``output``'s ``.NAME.next`` unless it holds this same run (then a stopped overwrite resumes there)."""
    work = _next_name(output)
    if not work.exists():
        return
    try:
        manifest = read_manifest(work)
    except CollectionError:
        manifest = None
    if manifest is None or any(manifest.get(k) != run[k] for k in ("input", "model", "weights", "shard_size")):
        shutil.rmtree(work)


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
) -> Path:
    """Encode every paper of ``input`` for each of ``tasks`` into the collection folder ``output``.

    Resumes a stopped run of the same command; under ``accelerate launch`` / ``torchrun`` each process
    encodes its share of the shards. Returns ``output``.
    """
    from accelerate import PartialState

    from ..models.tasks import has_experts, identical_experts, prompt_for
    from ..resolve import resolve_model_path
    from .encoders import load_encoder, load_sentence_model

    model = resolve_model_path(model)
    if shard_size < 1 or batch_size < 1:
        raise InputError("--shard-size and --batch-size must be at least 1.")
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise InputError("name at least one task (--task).")
    output = Path(output)
    papers = PaperFile(input, columns)
    total = papers.check()  # the whole input, before the model loads: a bad line stops now, not after hours
    check_output(output, [papers.path, model if Path(model).exists() else None], overwrite=True)
    import torch

    # accelerate treats CPU processes under torchrun as distributed only when asked to (cpu=True).
    on_cpu = (device or "cpu").startswith("cpu") if device else not torch.cuda.is_available()
    state = PartialState(cpu=on_cpu)
    device = device or ("cpu" if on_cpu else str(state.device))
    run = {"model": _model_ref(model), "weights": model_stamp(model), "input": papers.fingerprint(),
           "shard_size": shard_size}

    # Load the model (once for every task) and check the tasks before anything is written.
    st = load_sentence_model(model, device, dtype) if backend == "torch" else None
    encoders = {task: load_encoder(model, task, backend=backend, device=device, batch_size=batch_size,
                                   prompt_name=prompt_name, st=st) for task in tasks}
    # Tasks whose experts are copies of an earlier task's (an untrained model) reuse its embeddings.
    same_as: dict[str, str] = {}
    # (Same experts and the same prompt: the embeddings are the same.)
    if st is not None and has_experts(st):
        canonical = identical_experts(st[0].model)
        key = {t: (canonical[t], prompt_for(st, t, prompt_name)) for t in tasks}
        same_as = {t: next(u for u in tasks if key[u] == key[t]) for t in tasks}

    staged = overwrite and output.exists()  # the same answer in every process: nothing has moved yet
    work = _next_name(output) if staged else output
    if state.is_main_process:
        if staged:
            _clear_stale_next(output, run)
        manifest = _prepare_folder(work, run, tasks)
        for task, enc in encoders.items():
            manifest["tasks"][task].update({"dimension": enc.dimension, "similarity": enc.similarity,
                                            "backend": backend})
        _write_manifest(work, manifest)
    state.wait_for_everyone()
    manifest = read_manifest(work)
    todo = [t for t in tasks if not manifest["tasks"][t].get("complete")]

    # One bar for this process's share of the work that runs the model: papers x tasks whose embeddings are
    # computed (copies of identical experts' are not work); shards a stopped run finished are not in it.
    computed_tasks = [t for t in todo if same_as.get(t, t) == t]
    mine = [(i, min(shard_size, total - s)) for i, s in enumerate(range(0, total, shard_size))
            if i % state.num_processes == state.process_index]
    done = {i: [t for t in computed_tasks if (work / t / f"{shard_name(i)}.npy").is_file()] for i, _ in mine}
    work_left = sum(size * (len(computed_tasks) - len(done[i])) for i, size in mine)
    finished = [i for i, _ in mine if computed_tasks and len(done[i]) == len(computed_tasks)]
    if finished and show_progress_bar and state.is_main_process:
        print(f"resuming {work}: {len(finished):,} of {len(mine):,} shards already done; encoding the other "
              f"{len(mine) - len(finished):,}", file=sys.stderr)
    papers_left = sum(size for i, size in mine if i not in finished)
    label = f"encoding corpus for {', '.join(todo) or 'no task'} ({papers_left:,} papers)"
    bar = tqdm(total=work_left, desc=label, unit="paper", dynamic_ncols=True,
               disable=not show_progress_bar or not state.is_main_process or not todo)
    rows = 0
    shard: list[dict] = []

    def finish_shard(index: int, items: list[dict]) -> None:
        if index % state.num_processes != state.process_index or not todo:
            return
        name = shard_name(index)
        ids_path = work / "papers" / f"{name}.jsonl"
        if ids_path.is_file():
            if read_ids(ids_path) != [p["id"] for p in items]:
                raise CollectionError(
                    f"the input changed since shard {name} was written (its ids differ); pass --overwrite to "
                    "encode it again from the start."
                )
        else:
            _write_papers(ids_path, items)
        missing = [t for t in todo if not (work / t / f"{name}.npy").is_file()]
        if not missing:
            return
        order = sorted(range(len(items)), key=lambda i: -len(items[i]["text"]))
        computed: dict[str, np.ndarray] = {}
        for task in missing:
            source = same_as.get(task, task)
            if source not in computed and source != task and (work / source / f"{name}.npy").is_file():
                computed[source] = np.load(work / source / f"{name}.npy")
            if source in computed:  # identical experts: identical embeddings
                emb = computed[source]
            else:
                emb = np.empty((len(items), encoders[task].dimension), dtype=np.float32)
                for start in range(0, len(order), batch_size):  # the bar moves with every batch
                    rows_ = order[start : start + batch_size]
                    emb[rows_] = encoders[task]([items[i]["text"] for i in rows_])
                    bar.update(len(rows_))
                computed[task] = emb
            _save_npy(work / task / f"{name}.npy", emb)

    index = 0
    for batch in papers.batches():
        for paper in batch:
            shard.append(paper)
            if len(shard) == shard_size:
                finish_shard(index, shard)
                index, shard = index + 1, []
        rows += len(batch)
    if shard:
        finish_shard(index, shard)
        index += 1
    bar.close()
    state.wait_for_everyone()
    if state.is_main_process:
        manifest = read_manifest(work)
        sizes = [min(shard_size, rows - i * shard_size) for i in range(index)]
        for task in tasks:
            absent = [shard_name(i) for i in range(index) if not (work / task / f"{shard_name(i)}.npy").is_file()]
            if absent:
                raise CollectionError(
                    f"{len(absent)} {task} shard(s) are missing ({', '.join(absent[:5])}...): a process stopped "
                    "early. Run the same command again to finish them."
                )
            manifest["tasks"][task]["complete"] = True
        manifest.update(papers=rows, shards=sizes)
        _write_manifest(work, manifest)
        if staged:  # the new collection is complete: only now does it replace the old one
            replace_directory(work, output)
    state.wait_for_everyone()
    return output


