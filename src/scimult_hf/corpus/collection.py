"""An encoded collection: ``scimult-hf encode``'s output folder, written shard by shard, read shard by shard.

Layout of ``DIR``::

    collection.json          model, input, columns, shard size; per task: dimension, similarity, backend,
                             and - once every shard is there - the number of papers (written last)
    papers/00000.jsonl       ids and titles of the shard's papers, in input order
    <task>/00000.npy         float32 embeddings of those papers through the task's expert
                             (unit length when the model compares by cosine)

Shard ``i`` holds input rows ``[i * shard_size, (i + 1) * shard_size)``, whoever wrote it, so the output
does not depend on the number of processes. Every file is written atomically; a shard that exists is
complete. A run that stops (Ctrl-C, SIGKILL, a lost machine) is resumed by running the same command: the
shards already written are checked against the input's ids and skipped. Under ``accelerate launch`` (or
``torchrun``) process ``r`` of ``n`` encodes shards ``r, r + n, r + 2n, ...``; the main process writes
``collection.json`` when all have finished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import atomic_file, atomic_write_text, check_output
from .reader import Columns, PaperFile, count_papers

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "collection.json"
#: From this many papers ``--faiss`` builds an approximate inverted-file index instead of a flat one.
FAISS_IVF_FROM = 200_000
#: Share of the inverted lists an approximate FAISS search visits (16 of 1,000 at a million papers).
FAISS_NPROBE_SHARE = 0.016

__all__ = ["Collection", "CollectionError", "encode_corpus"]


class CollectionError(InputError):
    """The folder is not (or not yet) a usable collection, or belongs to another input or model."""


def _shard_name(i: int) -> str:
    return f"{i:05d}"


def _model_ref(model: str) -> str:
    """A local folder as an absolute path (the collection is usable from any directory), else the Hub id."""
    return os.fspath(Path(model).resolve()) if Path(model).is_dir() else model


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CollectionError(f"{path} is damaged ({err}); encode again with --overwrite.") from None


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _write_papers(path: Path, papers: list[dict]) -> None:
    lines = [json.dumps({"id": p["id"], "title": p["title"]}, ensure_ascii=False) for p in papers]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _read_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line]


def _prepare_folder(output: Path, run: dict, tasks: Sequence[str], overwrite: bool) -> dict:
    """The manifest to continue from: a new one, or the existing one when it is this same run."""
    existing = _read_manifest(output) if output.is_dir() else None
    if output.exists() and overwrite:
        shutil.rmtree(output) if output.is_dir() else output.unlink()
        existing = None
    elif existing is None and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(
            f"{output} exists and is not a collection folder; choose another --output or pass --overwrite."
        )
    if existing is not None:
        for key, what in (("input", "input file (or its columns)"), ("model", "model"), ("shard_size", "shard size")):
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


def encode_corpus(
    model: str,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    tasks: Sequence[str] = ("search",),
    columns: Columns = Columns(),
    backend: str = "torch",
    batch_size: int = 32,
    shard_size: int = 10_000,
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
    from .encoders import load_encoder, load_sentence_model

    if shard_size < 1 or batch_size < 1:
        raise InputError("--shard-size and --batch-size must be at least 1.")
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise InputError("name at least one task (--task).")
    output = Path(output)
    papers = PaperFile(input, columns)
    papers.check()
    check_output(output, [papers.path, model if Path(model).exists() else None], overwrite=True)
    import torch

    # accelerate treats CPU processes under torchrun as distributed only when asked to (cpu=True).
    on_cpu = (device or "cpu").startswith("cpu") if device else not torch.cuda.is_available()
    state = PartialState(cpu=on_cpu)
    device = device or ("cpu" if on_cpu else str(state.device))
    run = {"model": _model_ref(model), "input": papers.fingerprint(), "shard_size": shard_size}

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

    if state.is_main_process:
        manifest = _prepare_folder(output, run, tasks, overwrite)
        for task, enc in encoders.items():
            manifest["tasks"][task].update({"dimension": enc.dimension, "similarity": enc.similarity,
                                            "backend": backend})
        _write_manifest(output, manifest)
    state.wait_for_everyone()
    manifest = _read_manifest(output)
    todo = [t for t in tasks if not manifest["tasks"][t].get("complete")]

    total = count_papers(papers.path)
    label = f"encoding corpus for {', '.join(todo) or 'no task'}" + (f" ({total:,} papers)" if total else "")
    share = None if total is None else sum(
        min(shard_size, total - s) for i, s in enumerate(range(0, total, shard_size))
        if i % state.num_processes == state.process_index
    )
    # One bar for this process's share; with several tasks it counts papers x tasks.
    bar = tqdm(total=None if share is None else share * len(todo), desc=label, unit="paper", dynamic_ncols=True,
               disable=not show_progress_bar or not state.is_main_process or not todo)
    rows = 0
    shard: list[dict] = []

    def finish_shard(index: int, items: list[dict]) -> None:
        if index % state.num_processes != state.process_index or not todo:
            return
        name = _shard_name(index)
        ids_path = output / "papers" / f"{name}.jsonl"
        if ids_path.is_file():
            if _read_ids(ids_path) != [p["id"] for p in items]:
                raise CollectionError(
                    f"the input changed since shard {name} was written (its ids differ); pass --overwrite to "
                    "encode it again from the start."
                )
        else:
            _write_papers(ids_path, items)
        missing = [t for t in todo if not (output / t / f"{name}.npy").is_file()]
        bar.update(len(items) * (len(todo) - len(missing)))
        if not missing:
            return
        order = sorted(range(len(items)), key=lambda i: -len(items[i]["text"]))
        chunk = batch_size * 16
        computed: dict[str, np.ndarray] = {}
        for task in missing:
            source = same_as.get(task, task)
            if source not in computed and source != task and (output / source / f"{name}.npy").is_file():
                computed[source] = np.load(output / source / f"{name}.npy")
            if source in computed:  # identical experts: identical embeddings
                emb = computed[source]
                bar.update(len(items))
            else:
                emb = np.empty((len(items), encoders[task].dimension), dtype=np.float32)
                for start in range(0, len(order), chunk):
                    rows_ = order[start : start + chunk]
                    emb[rows_] = encoders[task]([items[i]["text"] for i in rows_])
                    bar.update(len(rows_))
                computed[task] = emb
            _save_npy(output / task / f"{name}.npy", emb)

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
        manifest = _read_manifest(output)
        sizes = [min(shard_size, rows - i * shard_size) for i in range(index)]
        for task in tasks:
            absent = [_shard_name(i) for i in range(index) if not (output / task / f"{_shard_name(i)}.npy").is_file()]
            if absent:
                raise CollectionError(
                    f"{len(absent)} {task} shard(s) are missing ({', '.join(absent[:5])}...): a process stopped "
                    "early. Run the same command again to finish them."
                )
            manifest["tasks"][task]["complete"] = True
        manifest.update(papers=rows, shards=sizes)
        _write_manifest(output, manifest)
    state.wait_for_everyone()
    return output


class Collection:
    """A finished collection folder: shard-by-shard embeddings per task, paper ids and titles.

    >>> c = Collection("my-index")                                            # doctest: +SKIP
    >>> scores, rows = c.top_k("search", c.encoder("search")(["graph neural networks"], "query"), k=5)  # doctest: +SKIP
    >>> [c.paper(r)["title"] for r in rows[0]]                                # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = _read_manifest(self.path) if self.path.is_dir() else None
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
            emb = np.load(self.path / task / f"{_shard_name(i)}.npy", mmap_mode="r")
            if emb.shape[0] != rows:
                raise CollectionError(f"{self.path / task / _shard_name(i)}.npy has {emb.shape[0]} rows, not {rows}: "
                                      "the collection is damaged; encode again with --overwrite.")
            yield offset, emb
            offset += rows

    def embeddings(self, task: str) -> np.ndarray:
        """All embeddings of ``task`` in one array (N x d, float32, in RAM)."""
        return np.concatenate([emb for _, emb in self.shards(task)], axis=0)

    def embedding(self, task: str, row: int) -> np.ndarray:
        shard, at = divmod(row, self.manifest["shard_size"])
        self.task_info(task)
        return np.array(np.load(self.path / task / f"{_shard_name(shard)}.npy", mmap_mode="r")[at])

    def paper(self, row: int) -> dict:
        """``{"id", "title"}`` of the paper in ``row``."""
        if not 0 <= row < self.size:
            raise IndexError(f"row {row} is outside the collection (0..{self.size - 1}).")
        shard, at = divmod(row, self.manifest["shard_size"])
        if shard not in self._titles:
            path = self.path / "papers" / f"{_shard_name(shard)}.jsonl"
            self._titles[shard] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        return self._titles[shard][at]

    def find(self, paper_id: str) -> int:
        """The row of the paper with id ``paper_id`` (the first, if ids repeat)."""
        offset = 0
        for i, rows in enumerate(self._shard_sizes()):
            ids = _read_ids(self.path / "papers" / f"{_shard_name(i)}.jsonl")
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

        from ..retrieval import exact_topk

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
            scores = torch.full((len(queries), 0), float("-inf"))
            rows = torch.zeros((len(queries), 0), dtype=torch.long)
            for offset, emb in self.shards(task):
                s, r = exact_topk(queries, emb, k=want)
                scores, order = torch.topk(torch.cat([scores, s], 1), min(want, scores.shape[1] + s.shape[1]), dim=1)
                rows = torch.gather(torch.cat([rows, r + offset], 1), 1, order)
        out_s, out_r = [], []
        for i in range(len(queries)):
            banned = set(exclude[i]) if exclude else set()
            keep = [j for j, r in enumerate(rows[i].tolist()) if r not in banned][:k]
            out_s.append(scores[i, keep].numpy())
            out_r.append(rows[i, keep].numpy())
        return np.stack(out_s), np.stack(out_r)

    def _faiss(self, task: str):
        """The FAISS index of ``task``, built once and kept as ``<task>/faiss.index``.

        Below :data:`FAISS_IVF_FROM` papers a flat inner-product index (exact); from there an inverted-file
        index (``IndexIVFFlat``, about sqrt(N) lists trained on an even sample, :data:`FAISS_NPROBE_SHARE` of
        the lists probed): approximate, and an order of magnitude faster than exact search at a million papers.
        """
        from ..retrieval import require_faiss

        if task in self._faiss_indexes:
            return self._faiss_indexes[task]
        faiss = require_faiss()
        path = self.path / task / "faiss.index"
        index = faiss.read_index(os.fspath(path)) if path.is_file() else None
        if index is None or index.ntotal != self.size:
            dim = self.task_info(task)["dimension"]
            if self.size < FAISS_IVF_FROM:
                index = faiss.IndexFlatIP(dim)
            else:
                lists = int(self.size ** 0.5)
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
                sample = np.linspace(0, self.size - 1, min(self.size, 50 * lists)).astype(np.int64)
                parts = [np.asarray(emb[sample[(sample >= o) & (sample < o + len(emb))] - o], dtype=np.float32)
                         for o, emb in self.shards(task)]
                index.train(np.concatenate(parts))
            for _, emb in self.shards(task):
                index.add(np.ascontiguousarray(emb, dtype=np.float32))
            with atomic_file(path) as tmp:
                faiss.write_index(index, os.fspath(tmp))
        if hasattr(index, "nprobe"):
            index.nprobe = max(1, round(index.nlist * FAISS_NPROBE_SHARE))
        self._faiss_indexes[task] = index
        return index
