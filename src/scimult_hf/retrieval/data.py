"""Loaders for the two evaluation data layouts: BEIR retrieval folders and classification JSONL folders.

Every JSON line is parsed and checked once, in a pre-pass that names the file, the line number and the
missing or wrong field of the first bad row (:class:`DataFormatError`). The checked rows become in-memory
``datasets.Dataset`` objects (``Dataset.from_dict``): nothing is written to the ``datasets`` cache and
nothing needs the network. ``load_dataset("json", ...)`` was considered and works offline too, but it
writes Arrow files to ``HF_DATASETS_CACHE`` unless given a throw-away ``cache_dir``, parses every line a
second time after the validation pass, and reports a bad row as an ``ArrowInvalid`` without a line number.

Documents and papers become model input through :func:`scimult_hf.text.paper_text`
(``title [SEP] abstract``, the title alone when the abstract is empty).

Retrieval layout (BEIR)::

    corpus.jsonl        {"_id", "title", "text"}          (title may be empty or missing)
    queries.jsonl       {"_id", "text", ...}               (a paper as query: "title" + "abstract" instead)
    qrels/<split>.tsv   header "query-id  corpus-id  score", then one tab-separated row per judgement

Classification layout::

    <split>.jsonl       {"id", "title", "abstract", "labels": [label ids]}
    labels.jsonl        {"id", "name"[, "description"]}    (label text: "name [SEP] description")

A classification folder without splits (one ``papers.jsonl``, as ``s2orc-fos``) is read as a whole for
any split. Example (the folder comes from a test fixture)::

    >>> data = load_beir(folder, split="test")                      # doctest: +SKIP
    >>> data.corpus[0]                                              # doctest: +SKIP
    {'id': '4983', 'text': 'Microstructural development ... [SEP] Alterations of ...'}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, json_error_text
from ..io import json_lines, text_lines
from ..text import label_text, paper_text

__all__ = [
    "ClassificationData",
    "DataFormatError",
    "RetrievalData",
    "load_beir",
    "load_candidates",
    "load_classification",
    "load_labels",
    "detect_layout",
    "load_qrels",
]


#: Split names under which a classification set without splits (one ``papers.jsonl``) is read whole:
#: ``"test"`` (the default, so such sets evaluate like the others) and ``"all"``.
WHOLE_SET_SPLITS = ("test", "all")


class DataFormatError(InputError):
    """A data file does not follow the expected layout; the message names the file, line and field."""


@dataclass
class RetrievalData:
    """A BEIR-layout retrieval set for one split.

    ``corpus`` and ``queries`` are ``datasets.Dataset`` objects with columns ``id`` and ``text`` (the model
    input); ``queries`` holds only the queries judged in ``qrels`` for the split, in file order.
    ``qrels`` maps query id -> {document id: graded relevance}.
    """

    corpus: object
    queries: object
    qrels: dict[str, dict[str, int]]
    name: str = ""
    split: str = "test"
    path: str = ""


@dataclass
class ClassificationData:
    """A classification set for one split.

    ``papers``: ``datasets.Dataset`` with ``id``, ``text`` (``title [SEP] abstract``) and ``labels``
    (list of label ids). ``labels``: ``datasets.Dataset`` with ``id`` and ``text`` (the label text).
    ``multi_label`` is True when some paper carries more or fewer than one label.
    """

    papers: object
    labels: object
    multi_label: bool
    name: str = ""
    split: str = "test"
    path: str = ""
    label_ids: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- helpers


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a UTF-8 tab-separated file."""
    for lineno, line in text_lines(path, DataFormatError):
        yield lineno, line.rstrip("\r\n").split("\t")


def _field(row: dict, name: str, path: Path, lineno: int, *, required: bool = True, kind: str = "str"):
    """One checked field: ids may be str or int (returned as str); texts must be str (or null if optional)."""
    if name not in row:
        if required:
            present = ", ".join(sorted(row)) or "none"
            raise DataFormatError(f"{path}, line {lineno}: missing field {name!r} (fields present: {present}).")
        return None
    value = row[name]
    if kind == "id":
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise DataFormatError(
                f"{path}, line {lineno}: field {name!r} must be a non-empty string or integer id, got {value!r:.80}."
            )
        return str(value)
    if kind == "str":
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise DataFormatError(
                f"{path}, line {lineno}: field {name!r} must be a string, got {type(value).__name__} ({value!r:.80})."
            )
        return value
    if kind == "ids":
        if not isinstance(value, list) or not all(
            isinstance(v, (str, int)) and not isinstance(v, bool) for v in value
        ):
            raise DataFormatError(
                f"{path}, line {lineno}: field {name!r} must be a list of label ids (strings or integers), "
                f"got {value!r:.80}."
            )
        return [str(v) for v in value]
    raise AssertionError(kind)


def _check_unique(seen: dict[str, int], key: str, path: Path, lineno: int, what: str) -> None:
    if key in seen:
        raise DataFormatError(f"{path}, line {lineno}: duplicate {what} {key!r} (first seen on line {seen[key]}).")
    seen[key] = lineno


def _dataset(columns: dict[str, list]):
    from datasets import Dataset

    return Dataset.from_dict(columns)


# ---------------------------------------------------------------------------------------------- retrieval


def load_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header ``query-id  corpus-id  score``) into {query id: {doc id: score}}.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "test.tsv"
    >>> _ = p.write_text("query-id\\tcorpus-id\\tscore\\nq1\\td1\\t1\\nq1\\td2\\t2\\n")
    >>> load_qrels(p)
    {'q1': {'d1': 1, 'd2': 2}}
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: qrels file not found.")
    qrels: dict[str, dict[str, int]] = {}
    rows = _tsv_rows(path)
    _, header = next(rows, (1, None))
    if header is None or [h.strip().lower() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
        raise DataFormatError(f"{path}, line 1: expected the header 'query-id<TAB>corpus-id<TAB>score', got {header!r}.")
    for lineno, row in rows:
        if not "".join(row).strip():
            continue
        if len(row) < 3:
            raise DataFormatError(
                f"{path}, line {lineno}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                f"got {len(row)}: {row!r}."
            )
        qid, did, score = row[0].strip(), row[1].strip(), row[2].strip()
        if not qid or not did:
            raise DataFormatError(f"{path}, line {lineno}: empty query-id or corpus-id.")
        qrels.setdefault(qid, {})[did] = _relevance(score, path, lineno)
    if not qrels:
        raise DataFormatError(f"{path}: no judgements after the header.")
    if not any(score > 0 for docs in qrels.values() for score in docs.values()):
        raise DataFormatError(
            f"{path}: every score is 0 or below, so no document is relevant and every metric would be 0. "
            "Relevant documents need a score of 1 or more."
        )
    return qrels


def _relevance(score: str, path: Path, lineno: int) -> int:
    """A qrels score as trec_eval reads it: a whole number (graded relevance 0, 1, 2, ...)."""
    try:
        value = float(score)
    except ValueError:
        raise DataFormatError(f"{path}, line {lineno}: score {score!r} is not a number.") from None
    if not math.isfinite(value) or value != int(value):
        raise DataFormatError(
            f"{path}, line {lineno}: score {score!r} is not a whole number. Relevance grades are integers "
            "(0 = not relevant, 1, 2, ... = more relevant, as trec_eval reads them): map fractional scores to "
            "integer grades, e.g. round(4 * score)."
        )
    if abs(value) >= 2**31:  # trec_eval keeps grades in a C int
        raise DataFormatError(f"{path}, line {lineno}: score {score!r} is out of range; relevance grades are small "
                              "integers (0, 1, 2, ...).")
    return int(value)


def _read_corpus(path: Path) -> dict[str, list]:
    ids, texts, seen = [], [], {}
    for lineno, row in json_lines(path, DataFormatError):
        doc_id = _field(row, "_id", path, lineno, kind="id")
        title = _field(row, "title", path, lineno, required=False)
        text = _field(row, "text", path, lineno, required=title is None)
        if not (title or "").strip() and not (text or "").strip():
            raise DataFormatError(f"{path}, line {lineno}: document {doc_id!r} has an empty 'title' and 'text'.")
        _check_unique(seen, doc_id, path, lineno, "document _id")
        ids.append(doc_id)
        texts.append(paper_text(title, text))
    if not ids:
        raise DataFormatError(f"{path}: the corpus is empty.")
    return {"id": ids, "text": texts}


def _query_text(row: dict, path: Path, lineno: int) -> str:
    # A paper used as a query (link prediction) carries title + abstract: build the text the same way as
    # for documents. Otherwise the BEIR "text" field is the query.
    if "abstract" in row:
        title = _field(row, "title", path, lineno, required=False)
        abstract = _field(row, "abstract", path, lineno, required=False)
        text = paper_text(title, abstract)
    else:
        text = _field(row, "text", path, lineno)
    if not text.strip():
        raise DataFormatError(f"{path}, line {lineno}: the query text is empty.")
    return text


def load_beir(folder: str | os.PathLike, split: str = "test") -> RetrievalData:
    """Load a BEIR-layout folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Only the queries judged in the split's qrels are kept. Every qrels query and document id must exist
    in ``queries.jsonl`` / ``corpus.jsonl``; a dangling id is an error naming the qrels line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: not a folder. Expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/.")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise DataFormatError(f"{qrels_path}: no qrels for split {split!r}. Available splits: {available or 'none'}.")
    qrels = load_qrels(qrels_path)
    corpus = _read_corpus(folder / "corpus.jsonl")

    queries_path = folder / "queries.jsonl"
    q_ids, q_texts, seen = [], [], {}
    for lineno, row in json_lines(queries_path, DataFormatError):
        qid = _field(row, "_id", queries_path, lineno, kind="id")
        _check_unique(seen, qid, queries_path, lineno, "query _id")
        if qid in qrels:
            q_ids.append(qid)
            q_texts.append(_query_text(row, queries_path, lineno))

    missing_q = [q for q in qrels if q not in seen]
    if missing_q:
        raise DataFormatError(
            f"{qrels_path}: {len(missing_q)} query id(s) not in {queries_path.name}, e.g. {missing_q[:3]}."
        )
    doc_ids = set(corpus["id"])
    for qid, docs in qrels.items():
        for did in docs:
            if did not in doc_ids:
                raise DataFormatError(
                    f"{qrels_path}: query {qid!r} judges document {did!r}, which is not in corpus.jsonl."
                )
    return RetrievalData(
        corpus=_dataset(corpus),
        queries=_dataset({"id": q_ids, "text": q_texts}),
        qrels=qrels,
        name=folder.name,
        split=split,
        path=str(folder),
    )


def load_candidates(path: str | os.PathLike) -> dict[str, list[str]]:
    """Candidate documents per query for the reranking form of link prediction.

    A TSV with the header ``query-id  corpus-id`` (extra columns are ignored), one candidate per row, or a
    JSON object ``{query id: [doc ids]}``. Returns {query id: [doc ids]} in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: candidates file not found.")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{path}: not UTF-8 (at byte {e.start}). Save the file as UTF-8.") from None
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}: not valid JSON ({json_error_text(e)} of line {e.lineno}).") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise DataFormatError(f"{path}: expected a JSON object {{query id: [document ids]}}.")
        return {str(k): [str(d) for d in v] for k, v in data.items()}
    out: dict[str, list[str]] = {}
    rows = _tsv_rows(path)
    _, header = next(rows, (1, None))
    if header is None or [h.strip().lower() for h in header[:2]] != ["query-id", "corpus-id"]:
        raise DataFormatError(f"{path}, line 1: expected the header 'query-id<TAB>corpus-id', got {header!r}.")
    for lineno, row in rows:
        if not "".join(row).strip():
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DataFormatError(f"{path}, line {lineno}: expected 'query-id<TAB>corpus-id', got {row!r}.")
        out.setdefault(row[0].strip(), []).append(row[1].strip())
    return out


# ---------------------------------------------------------------------------------------------- classification


def _classification_file(folder: Path, split: str) -> Path:
    candidate = folder / f"{split}.jsonl"
    if candidate.is_file():
        return candidate
    whole = folder / "papers.jsonl"
    if whole.is_file() and split in WHOLE_SET_SPLITS:
        return whole
    available = sorted(p.stem for p in folder.glob("*.jsonl") if p.name != "labels.jsonl")
    if whole.is_file():
        raise DataFormatError(
            f"{folder}: a set without splits (papers.jsonl only) has no split {split!r}; it is read whole with "
            f"split {' or '.join(map(repr, WHOLE_SET_SPLITS))}."
        )
    raise DataFormatError(
        f"{candidate}: no file for split {split!r} (and no papers.jsonl for a set without splits). "
        f"Available: {available or 'none'}."
    )


def load_labels(path: str | os.PathLike) -> list[dict]:
    """A ``labels.jsonl`` file: rows ``{"id", "name"[, "description"]}`` as ``{"id", "name", "text"}``, where
    ``text`` is the label's model input (:func:`~scimult_hf.text.label_text`). Ids must be unique."""
    path = Path(path)
    labels, seen = [], {}
    for lineno, row in json_lines(path, DataFormatError):
        lid = _field(row, "id", path, lineno, kind="id")
        name = _field(row, "name", path, lineno)
        if not name.strip():
            raise DataFormatError(f"{path}, line {lineno}: field 'name' is empty.")
        description = _field(row, "description", path, lineno, required=False)
        _check_unique(seen, lid, path, lineno, "label id")
        labels.append({"id": lid, "name": name, "text": label_text(name, description)})
    if not labels:
        raise DataFormatError(f"{path}: no labels.")
    return labels


def load_classification(
    folder: str | os.PathLike, split: str = "test", multi_label: bool | None = None
) -> ClassificationData:
    """Load a classification folder: ``<split>.jsonl`` (or ``papers.jsonl``) and ``labels.jsonl``.

    ``multi_label=None`` decides from the data: single-label when every paper has exactly one label.
    Every paper needs at least one label, and every label id must be listed in ``labels.jsonl``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: not a folder. Expected <split>.jsonl and labels.jsonl inside.")
    labels = load_labels(folder / "labels.jsonl")
    label_ids = [label["id"] for label in labels]
    label_texts = [label["text"] for label in labels]
    seen_labels = set(label_ids)

    papers_path = _classification_file(folder, split)
    ids, texts, labels, seen = [], [], [], {}
    for lineno, row in json_lines(papers_path, DataFormatError):
        pid = _field(row, "id", papers_path, lineno, kind="id")
        title = _field(row, "title", papers_path, lineno)
        abstract = _field(row, "abstract", papers_path, lineno, required=False)
        gold = _field(row, "labels", papers_path, lineno, kind="ids")
        if not gold:
            raise DataFormatError(f"{papers_path}, line {lineno}: paper {pid!r} has an empty 'labels' list.")
        unknown = [g for g in gold if g not in seen_labels]
        if unknown:
            raise DataFormatError(
                f"{papers_path}, line {lineno}: label id(s) {unknown} are not in labels.jsonl."
            )
        text = paper_text(title, abstract)
        if not text.strip():
            raise DataFormatError(f"{papers_path}, line {lineno}: paper {pid!r} has an empty title and abstract.")
        _check_unique(seen, pid, papers_path, lineno, "paper id")
        ids.append(pid)
        texts.append(text)
        labels.append(gold)
    if not ids:
        raise DataFormatError(f"{papers_path}: no papers.")
    detected = any(len(g) != 1 for g in labels)
    if multi_label is None:
        multi_label = detected
    elif not multi_label and detected:
        raise DataFormatError(
            f"{papers_path}: multi_label=False but some papers carry several labels; pass multi_label=True "
            "(or None to detect)."
        )
    return ClassificationData(
        papers=_dataset({"id": ids, "text": texts, "labels": labels}),
        labels=_dataset({"id": label_ids, "text": label_texts}),
        multi_label=bool(multi_label),
        name=folder.name,
        split=split if papers_path.stem == split else "all",  # a set without splits is used whole
        path=str(folder),
        label_ids=label_ids,
    )


def detect_layout(folder: str | os.PathLike) -> str:
    """``"beir"`` or ``"classification"`` for a data folder (by its files); DataFormatError otherwise."""
    folder = Path(folder)
    if (folder / "corpus.jsonl").is_file() and (folder / "qrels").is_dir():
        return "beir"
    if (folder / "labels.jsonl").is_file():
        return "classification"
    raise DataFormatError(
        f"{folder}: neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a classification folder "
        "(<split>.jsonl, labels.jsonl)."
    )
