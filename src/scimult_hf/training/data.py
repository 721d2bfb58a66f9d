"""Training data per task: (anchor, positive) pairs as ``datasets.Dataset``, with what mining needs.

* search and link prediction come from a BEIR folder's ``qrels/<split>.tsv``: one pair per judged
  (query, document) with a score above 0; the query's text is the anchor, the paper's
  ``title [SEP] abstract`` the positive;
* classification comes from a classification folder: one pair per (paper, label) with the paper's text
  as anchor and the label text (``name [SEP] description`` when described) as positive;
* any task can come from a pair or triplet file (JSONL or parquet) with the columns ``anchor``,
  ``positive`` and optionally ``negative``.

Every row is checked before any training step; a bad one raises :class:`DataFormatError` naming the
file, the line (or row) and the field. :func:`load_task_data` picks the reader by what the path holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..io import json_lines
from ..retrieval.data import DataFormatError, detect_layout, load_beir, load_classification

__all__ = ["TaskData", "load_task_data", "pairs_from_beir", "pairs_from_classification", "pairs_from_file"]


@dataclass
class TaskData:
    """One task's training pairs and what hard-negative mining needs.

    ``pairs``: a ``datasets.Dataset`` with ``anchor`` and ``positive`` (and ``negative`` columns once mined
    or when the file has them). ``anchor_ids`` / ``positive_ids`` give each row's ids; ``candidates`` maps
    every candidate id (corpus paper or label) to its text; ``positives`` maps an anchor id to all of its
    known positive ids (never mined as negatives). ``source`` records where the data came from.
    """

    task: str
    pairs: object
    anchor_ids: list[str] = field(default_factory=list)
    positive_ids: list[str] = field(default_factory=list)
    candidates: dict[str, str] = field(default_factory=dict)
    positives: dict[str, set[str]] = field(default_factory=dict)
    source: dict = field(default_factory=dict)


def _dataset(columns: dict[str, list]):
    from datasets import Dataset

    return Dataset.from_dict(columns)


def _non_empty(task: str, rows: int, where: str) -> None:
    if rows == 0:
        raise DataFormatError(f"{where}: no training pairs for task {task!r}; the task would be empty.")


def pairs_from_beir(folder: str | os.PathLike, task: str, split: str = "train") -> TaskData:
    """Search or link-prediction pairs from a BEIR folder; every judged query needs a positive (score > 0)."""
    data = load_beir(folder, split=split)
    qrels_path = Path(folder) / "qrels" / f"{split}.tsv"
    queries = dict(zip(data.queries["id"], data.queries["text"]))
    corpus = dict(zip(data.corpus["id"], data.corpus["text"]))
    positives = {q: {d for d, s in docs.items() if s > 0} for q, docs in data.qrels.items()}
    empty = sorted(q for q, docs in positives.items() if not docs)
    if empty:
        raise DataFormatError(
            f"{qrels_path}: query {empty[0]!r} has no positive (every 'score' is 0){f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}; "
            "a training query needs at least one relevant document. Remove it or give it one."
        )
    anchor_ids, positive_ids = [], []
    for qid in queries:
        for did in sorted(positives[qid]):
            anchor_ids.append(qid)
            positive_ids.append(did)
    _non_empty(task, len(anchor_ids), str(qrels_path))
    pairs = _dataset({"anchor": [queries[q] for q in anchor_ids], "positive": [corpus[d] for d in positive_ids]})
    return TaskData(task, pairs, anchor_ids, positive_ids, corpus, positives,
                    {"format": "beir", "path": str(folder), "split": split, "qrels": str(qrels_path), "rows": len(pairs)})


def pairs_from_classification(folder: str | os.PathLike, task: str = "classification", split: str = "train") -> TaskData:
    """(paper, label text) pairs from a classification folder, one per label of each paper."""
    data = load_classification(folder, split=split)
    labels = dict(zip(data.labels["id"], data.labels["text"]))
    anchor_ids, positive_ids, anchors = [], [], []
    positives: dict[str, set[str]] = {}
    for pid, text, gold in zip(data.papers["id"], data.papers["text"], data.papers["labels"]):
        positives[pid] = set(gold)
        for label in gold:
            anchor_ids.append(pid)
            positive_ids.append(label)
            anchors.append(text)
    _non_empty(task, len(anchor_ids), str(folder))
    pairs = _dataset({"anchor": anchors, "positive": [labels[i] for i in positive_ids]})
    return TaskData(task, pairs, anchor_ids, positive_ids, labels, positives,
                    {"format": "classification", "path": str(folder), "split": data.split, "rows": len(pairs)})


def _file_rows(path: Path):
    """(line or row number, dict) of a JSONL or parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield f"row {i}", row
        return
    for lineno, row in json_lines(path, DataFormatError):
        yield f"line {lineno}", row


def pairs_from_file(path: str | os.PathLike, task: str) -> TaskData:
    """Pairs or n-tuples from JSONL / parquet: ``anchor``, ``positive`` and optionally ``negative`` or
    ``negative_1`` ... ``negative_n`` (texts; the columns of the first row hold for every row)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found.")
    columns: dict[str, list] | None = None
    for where, row in _file_rows(path):
        if columns is None:
            negatives = sorted((k for k in row if k == "negative" or k.startswith("negative_")),
                               key=lambda k: int(k.rsplit("_", 1)[1]) if "_" in k else 0)
            columns = {name: [] for name in ("anchor", "positive", *negatives)}
        for name in columns:
            value = row.get(name)
            if name not in row:
                present = ", ".join(sorted(row)) or "none"
                raise DataFormatError(f"{path}, {where}: missing field {name!r} (fields present: {present}).")
            if not isinstance(value, str) or not value.strip():
                raise DataFormatError(f"{path}, {where}: field {name!r} must be a non-empty string, got {value!r:.80}.")
            columns[name].append(value)
    columns = columns or {"anchor": []}
    _non_empty(task, len(columns["anchor"]), str(path))
    return TaskData(task, _dataset(columns), source={"format": path.suffix.lstrip("."), "path": str(path),
                                                      "rows": len(columns["anchor"])})


def load_task_data(path: str | os.PathLike, task: str, split: str = "train") -> TaskData:
    """A task's training data from a BEIR folder, a classification folder or a pair / triplet file."""
    path = Path(path)
    if path.is_file():
        return pairs_from_file(path, task)
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such file or folder (training data for task {task!r}).")
    if detect_layout(path) == "beir":
        return pairs_from_beir(path, task, split)
    return pairs_from_classification(path, task, split)


def provenance(data: TaskData) -> str:
    """The source record as JSON (written next to the prepared parquet)."""
    return json.dumps({"task": data.task, **data.source}, indent=2)
