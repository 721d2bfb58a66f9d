"""Papers from a JSONL, CSV/TSV or parquet file, streamed through ``datasets`` (memory does not grow with the file).

Each paper becomes ``{"id", "title", "text"}`` where ``text`` is SciMult's model input,
``title [SEP] abstract`` (or a whole-text column). Column names are configurable; a missing column, a
paper without an id or text, an unreadable file and an empty file each stop with one message that names
the file, the row and the fix.

Examples:
    >>> from scimult_hf.sample import sample_papers
    >>> papers = read_papers(sample_papers())
    >>> first = next(iter(papers))
    >>> first["id"], first["text"].split(" [SEP] ")[0][:34]
    ('77491955', '[Conservative surgery of renal car')
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..text import paper_text

__all__ = ["Columns", "PaperFile", "count_papers", "read_papers"]

_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Columns:
    """Which input columns hold a paper's id, title and abstract (or, with ``text``, its whole text)."""

    id: str = "id"
    title: str = "title"
    abstract: str = "abstract"
    text: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "abstract": self.abstract, "text": self.text}


def _format(path: Path) -> tuple[str, dict]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    kind = _FORMATS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise InputError(
            f"{path}: unknown input format {''.join(path.suffixes) or '(no extension)'}; give a .jsonl, .csv, .tsv "
            "or .parquet file (optionally .gz)."
        )
    return kind, ({"sep": "\t"} if suffixes[-1] == ".tsv" else {})


@dataclass
class PaperFile:
    """One input file of papers, read in order as a stream of batches."""

    path: Path
    columns: Columns = Columns()

    def __post_init__(self):
        self.path = Path(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no input file at {self.path}.")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path} is empty: it holds no papers.")
        self.kind, self.options = _format(self.path)

    def fingerprint(self) -> dict:
        """What identifies this input for a resumed run (path, size, modification time, columns)."""
        stat = self.path.stat()
        return {"path": os.fspath(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "columns": self.columns.as_dict()}

    def _stream(self):
        import tempfile

        import datasets

        datasets.disable_progress_bars()
        # A streamed read caches nothing, yet datasets leaves a lock file per input in its cache folder: give it a
        # folder of its own that goes when the read is done.
        scratch = tempfile.TemporaryDirectory(prefix="scimult-read-")
        try:
            stream = datasets.load_dataset(self.kind, data_files=os.fspath(self.path), split="train", streaming=True,
                                           cache_dir=scratch.name, **self.options)
        except Exception as err:  # datasets wraps parse errors in several types
            scratch.cleanup()
            raise InputError(f"{self.path} cannot be read as {self.kind}: {err}") from None
        scratch.cleanup()
        return stream

    def _check_columns(self, names: list[str], abstract: bool = True) -> None:
        """The id and title (or text) columns, and the abstract column unless ``abstract=False`` (JSON lines:
        checked over the whole file, since a paper without an abstract may leave the key out)."""
        c = self.columns
        needed = {"--id-column": c.id}
        if c.text:
            needed["--text-column"] = c.text
        else:
            needed["--title-column"] = c.title
            if abstract:
                needed["--abstract-column"] = c.abstract
        for option, column in needed.items():
            if column not in names:
                raise InputError(
                    f"{self.path} has no column {column!r} (its columns: {', '.join(names)}); name the right one "
                    f"with {option}" + (", or give the whole text of each paper with --text-column" if not c.text
                                        else "") + "."
                )

    def check(self) -> int:
        """Read the whole file once, before any work, and return the number of papers.

        A wrong column, a paper without id or text, a line that is not UTF-8 or not JSON, and an id that
        repeats an earlier paper's each stop here with the file and the line (JSON lines) or paper number. The
        pass costs reading the file, not the model; the ids are kept as 8-byte hashes (8 MB for a million papers),
        and a repeat is named by a second look at the few ids whose hashes repeat.
        """
        if self.kind == "json" and ".jsonl" in [s.lower() for s in self.path.suffixes]:
            return self._check_json_lines()
        hashes = array("q")
        for batch in self.batches():
            hashes.extend(hash(paper["id"]) for paper in batch)
        self._check_unique(hashes, lambda: ((i + 1, paper["id"]) for i, paper in
                                            enumerate(p for batch in self.batches() for p in batch)), "paper")
        return len(hashes)

    def _check_unique(self, hashes: array, ids: Callable[[], Iterable[tuple[int, str]]], unit: str) -> None:
        """Stop at the first id that repeats an earlier one: ``hashes`` holds every id's hash, ``ids()`` gives
        ``(where, id)`` again when two hashes are equal."""
        import numpy as np

        ordered = np.sort(np.frombuffer(hashes, dtype=np.int64))
        repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
        if not repeated:
            return
        first: dict[str, int] = {}
        for where, pid in ids():
            if hash(pid) in repeated:
                seen = first.setdefault(pid, where)
                if seen != where:
                    raise InputError(f"{self.path}, {unit} {where}: id {pid!r} repeats {unit} {seen}; every paper "
                                     "needs its own id (search would list two papers under one id). Remove or rename "
                                     "the duplicate.")

    def _check_json_lines(self) -> int:
        from ..io import json_lines

        c = self.columns
        hashes = array("q")
        count, has_abstract = 0, bool(c.text)
        for number, row in json_lines(self.path):
            if count == 0:
                self._check_columns(list(row), abstract=False)
            has_abstract = has_abstract or c.abstract in row
            pid = row.get(c.id)
            if pid is None or str(pid).strip() == "":
                raise InputError(f"{self.path}, line {number}: no id in column {c.id!r}.")
            self._check_text_types(row, f"line {number} (id {pid})")
            text = row.get(c.text) if c.text else (row.get(c.title) or row.get(c.abstract))
            if not text or not str(text).strip():
                what = repr(c.text) if c.text else f"{c.title!r} or {c.abstract!r}"
                raise InputError(f"{self.path}, line {number} (id {pid}): no text in {what}.")
            count += 1
            hashes.append(hash(str(pid)))
        if count == 0:
            raise InputError(f"{self.path} holds no papers.")
        if not has_abstract:
            raise InputError(f"{self.path}: no paper has the column {c.abstract!r}, so only titles would be embedded; "
                             "name the abstract column with --abstract-column, or give the whole text of each paper "
                             "with --text-column (a title-only file: --text-column title).")
        self._check_unique(hashes, lambda: ((n, str(row.get(c.id))) for n, row in json_lines(self.path)), "line")
        return count

    def _check_text_types(self, row: dict, where: str) -> None:
        c = self.columns
        for column in ([c.text] if c.text else [c.title, c.abstract]):
            value = row.get(column)
            if value is not None and not isinstance(value, str):
                kind = type(value).__name__
                raise InputError(f"{self.path}, {where}: {column!r} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} "
                                 f"({str(value)[:40]}), not text; write it as a string.")

    def batches(self, batch_size: int = 1000, *, extra: bool = False) -> Iterator[list[dict]]:
        """Lists of ``{"id", "title", "text"}`` in file order; the last one may be shorter.

        ``extra``: each paper also has ``"extra"``, its other columns (not id, title, abstract or text) as read.
        """
        c = self.columns
        used = {c.id, c.title, c.abstract, c.text}
        row = 0
        try:
            for batch in self._stream().iter(batch_size=batch_size):
                if row == 0:
                    self._check_columns(list(batch), abstract=self.kind != "json")
                ids = batch[c.id]
                titles = batch.get(c.title) or [None] * len(ids)
                abstracts = batch.get(c.abstract) or [None] * len(ids)
                for i in range(len(ids)):
                    self._check_text_types({c.title: titles[i], c.abstract: abstracts[i],
                                            **({c.text: batch[c.text][i]} if c.text else {})},
                                           f"paper {row + i + 1} (id {ids[i]})")
                if c.text:
                    texts = batch[c.text]
                else:
                    texts = [paper_text(t or "", a or "") if (t or a) else "" for t, a in zip(titles, abstracts)]
                others = [name for name in batch if name not in used] if extra else []
                out = []
                for i, (pid, title, text) in enumerate(zip(ids, titles, texts)):
                    line = row + i + 1
                    if pid is None or str(pid).strip() == "":
                        raise InputError(f"{self.path}, paper {line}: no id in column {c.id!r}.")
                    if not text or not str(text).strip():
                        what = repr(c.text) if c.text else f"{c.title!r} or {c.abstract!r}"
                        raise InputError(f"{self.path}, paper {line} (id {pid}): no text in {what}.")
                    paper = {"id": str(pid), "title": str(title or "")[:300], "text": str(text)}
                    if extra:
                        paper["extra"] = {name: batch[name][i] for name in others}
                    out.append(paper)
                row += len(out)
                yield out
        except ValueError:
            raise
        except Exception as err:  # pyarrow / json errors from inside the stream
            raise InputError(f"{self.path} cannot be read as {self.kind} after paper {row}: {err}") from None
        if row == 0:
            raise InputError(f"{self.path} holds no papers.")


def read_papers(path: str | os.PathLike, columns: Columns = Columns()) -> Iterator[dict]:
    """Every paper of ``path`` as ``{"id", "title", "text"}``, streamed."""
    for batch in PaperFile(path, columns).batches():
        yield from batch


def count_papers(path: str | os.PathLike) -> int | None:
    """The number of papers, when it is cheap to know (parquet metadata; JSON lines), else None."""
    path = Path(path)
    kind, _ = _format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if kind == "json" and path.suffix.lower() == ".jsonl":
        count, last = 0, b"\n"
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        return count + (last != b"\n")
    return None
