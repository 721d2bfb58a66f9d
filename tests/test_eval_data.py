"""Loaders: the real ../shared sets, and malformed files failing with file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_beir, write_jsonl

from scimult_hf import label_text, paper_text
from scimult_hf.retrieval.data import (
    DataFormatError,
    detect_layout,
    load_beir,
    load_candidates,
    load_classification,
    load_qrels,
)


def _beir(tmp_path: Path, corpus=None, queries=None, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n") -> Path:
    return write_beir(tmp_path / "beir", qrels, header=False,
                      corpus=corpus or [{"_id": "d1", "title": "T", "text": "A"}, {"_id": "d2", "title": "", "text": "B"}],
                      queries=queries or [{"_id": "q1", "text": "what?"}, {"_id": "q2", "text": "unjudged"}])


# ---------------------------------------------------------------------------------------------- real data


def test_scifact(shared_dir):
    data = load_beir(shared_dir / "data" / "scifact", split="test")
    assert len(data.corpus) == 5183
    assert len(data.queries) == 300 and len(data.qrels) == 300  # judged test claims only
    assert sum(len(v) for v in data.qrels.values()) == 339
    raw = json.loads((shared_dir / "data" / "scifact" / "corpus.jsonl").open().readline())
    assert data.corpus[0] == {"id": raw["_id"], "text": paper_text(raw["title"], raw["text"])}
    assert " [SEP] " in data.corpus[0]["text"]


def test_unarxive_queries_are_papers(shared_dir):
    data = load_beir(shared_dir / "data" / "unarxive-cites", split="test")
    assert len(data.queries) == 15
    assert sum(len(v) for v in data.qrels.values()) == 637
    raw = {r["_id"]: r for r in map(json.loads, (shared_dir / "data" / "unarxive-cites" / "queries.jsonl").open())}
    q = data.queries[0]
    assert q["text"] == paper_text(raw[q["id"]]["title"], raw[q["id"]]["abstract"])
    # References have an empty title: the document text is the reference string alone (no dangling [SEP]).
    assert not data.corpus[0]["text"].startswith("[SEP]")


def test_ohsumed_single_label(shared_dir):
    data = load_classification(shared_dir / "data" / "ohsumed23", split="test")
    assert not data.multi_label
    assert len(data.papers) == 4043 and len(data.labels) == 23
    assert data.labels[1] == {"id": "C02", "text": "Virus Diseases"}


def test_s2orc_fos_without_splits_is_multi_label(shared_dir):
    data = load_classification(shared_dir / "data" / "s2orc-fos", split="test")
    assert data.multi_label and data.split == "all"
    assert len(data.papers) == 953 and len(data.labels) == 19
    # A paper without an abstract is its title alone.
    no_abstract = [t for t in data.papers["text"] if "[SEP]" not in t]
    assert len(no_abstract) == 953 - 468


# ---------------------------------------------------------------------------------------------- layouts


def test_beir_minimal_and_query_filtering(tmp_path):
    data = load_beir(_beir(tmp_path))
    assert data.queries["id"] == ["q1"]
    assert data.corpus["text"] == ["T [SEP] A", "B"]
    assert data.qrels == {"q1": {"d1": 1}}
    assert detect_layout(tmp_path / "beir") == "beir"


def test_integer_ids_become_strings(tmp_path):
    folder = _beir(tmp_path, corpus=[{"_id": 1, "title": "T", "text": "A"}], queries=[{"_id": 7, "text": "x"}],
                   qrels="query-id\tcorpus-id\tscore\n7\t1\t1\n")
    data = load_beir(folder)
    assert data.corpus["id"] == ["1"] and data.queries["id"] == ["7"]


def test_label_description_joins_name(tmp_path):
    folder = tmp_path / "cls"
    write_jsonl(folder / "labels.jsonl", [{"id": "a", "name": "Alpha", "description": "first letter"}, {"id": "b", "name": "Beta"}])
    write_jsonl(folder / "test.jsonl", [{"id": "p1", "title": "T", "abstract": "", "labels": ["a"]}])
    data = load_classification(folder)
    assert data.labels["text"] == ["Alpha [SEP] first letter", "Beta"]
    assert data.papers["text"] == ["T"] and not data.multi_label
    assert label_text("X", None) == "X"
    assert detect_layout(folder) == "classification"


# ---------------------------------------------------------------------------------------------- malformed input


def test_missing_field_names_file_line_and_field(tmp_path):
    folder = _beir(tmp_path, corpus=[{"_id": "d1", "title": "T", "text": "A"}, {"title": "no id", "text": "B"}])
    with pytest.raises(DataFormatError, match=r"corpus\.jsonl, line 2: missing field '_id'"):
        load_beir(folder)


def test_wrong_type_names_field(tmp_path):
    folder = _beir(tmp_path, corpus=[{"_id": "d1", "title": "T", "text": ["not", "a", "string"]}])
    with pytest.raises(DataFormatError, match=r"line 1: field 'text' must be a string, got list"):
        load_beir(folder)


def test_bad_json_line(tmp_path):
    folder = _beir(tmp_path, queries=[{"_id": "q1", "text": "ok"}, '{"_id": "q2", "text": '])
    with pytest.raises(DataFormatError, match=r"queries\.jsonl, line 2: not valid JSON"):
        load_beir(folder)


def test_duplicate_ids(tmp_path):
    folder = _beir(tmp_path, corpus=[{"_id": "d1", "text": "A"}, {"_id": "d1", "text": "B"}])
    with pytest.raises(DataFormatError, match=r"line 2: duplicate document _id 'd1' \(first seen on line 1\)"):
        load_beir(folder)


def test_qrels_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"line 1: expected the header"):
        load_beir(_beir(tmp_path / "a", qrels="q1\td1\t1\n"))
    with pytest.raises(DataFormatError, match=r"line 3: score 'x' is not a number"):
        load_beir(_beir(tmp_path / "b", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tx\n"))
    with pytest.raises(DataFormatError, match=r"judges document 'd9', which is not in corpus"):
        load_beir(_beir(tmp_path / "c", qrels="query-id\tcorpus-id\tscore\nq1\td9\t1\n"))
    with pytest.raises(DataFormatError, match=r"query id\(s\) not in queries\.jsonl"):
        load_beir(_beir(tmp_path / "d", qrels="query-id\tcorpus-id\tscore\nq7\td1\t1\n"))
    with pytest.raises(DataFormatError, match=r"no qrels for split 'dev'. Available splits: \['test'\]"):
        load_beir(_beir(tmp_path / "e"), split="dev")


def test_classification_errors(tmp_path):
    folder = tmp_path / "cls"
    write_jsonl(folder / "labels.jsonl", [{"id": "a", "name": "Alpha"}])
    write_jsonl(folder / "test.jsonl", [{"id": "p1", "title": "T", "abstract": "x", "labels": ["a"]},
                                         {"id": "p2", "title": "T", "abstract": "x", "labels": "a"}])
    with pytest.raises(DataFormatError, match=r"test\.jsonl, line 2: field 'labels' must be a list of label ids"):
        load_classification(folder)
    write_jsonl(folder / "test.jsonl", [{"id": "p1", "title": "T", "abstract": "x", "labels": ["zzz"]}])
    with pytest.raises(DataFormatError, match=r"line 1: label id\(s\) \['zzz'\] are not in labels\.jsonl"):
        load_classification(folder)
    write_jsonl(folder / "test.jsonl", [{"id": "p1", "abstract": "x", "labels": ["a"]}])
    with pytest.raises(DataFormatError, match=r"line 1: missing field 'title'"):
        load_classification(folder)
    with pytest.raises(DataFormatError, match=r"no file for split 'dev'"):
        load_classification(folder, split="dev")


def test_forced_single_label_on_multi_label_data(tmp_path):
    folder = tmp_path / "cls"
    write_jsonl(folder / "labels.jsonl", [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}])
    write_jsonl(folder / "test.jsonl", [{"id": "p1", "title": "T", "abstract": "", "labels": ["a", "b"]}])
    assert load_classification(folder).multi_label
    with pytest.raises(DataFormatError, match="multi_label=False but some papers carry several labels"):
        load_classification(folder, multi_label=False)


def test_candidates_tsv_and_json(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("query-id\tcorpus-id\nq1\td1\nq1\td2\nq2\td3\n")
    assert load_candidates(tsv) == {"q1": ["d1", "d2"], "q2": ["d3"]}
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"q1": ["d1"]}))
    assert load_candidates(js) == {"q1": ["d1"]}
    tsv.write_text("qid\tdid\n")
    with pytest.raises(DataFormatError, match="line 1: expected the header 'query-id<TAB>corpus-id'"):
        load_candidates(tsv)


def test_load_qrels_graded(tmp_path):
    p = tmp_path / "q.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq\ta\t2\nq\tb\t0\n")
    assert load_qrels(p) == {"q": {"a": 2, "b": 0}}
