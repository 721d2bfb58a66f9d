"""`scimult-hf evaluate`: table and JSON output, the embedding cache across runs, input errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import write_beir
from sentence_transformers import SentenceTransformer

from scimult_hf.cli import build_parser, main
from scimult_hf.evaluation.cli import run_evaluate

DOCS = [
    ("d1", "CRISPR-Cas9 genome editing", "Targeted genome editing in human cells with engineered nucleases."),
    ("d2", "Attention is all you need", "A network architecture based solely on attention mechanisms."),
    ("d3", "Infection in total joint replacement", "Most infections are derived at operation."),
    ("d4", "Zeros of random polynomials", "Derivatives of random polynomials with independent roots."),
    ("d5", "BERT", "Pre-training of deep bidirectional transformers for language understanding."),
    ("d6", "Malaria vaccines", "A randomized trial of a malaria vaccine in African children."),
]


@pytest.fixture()
def beir_folder(tmp_path) -> Path:
    queries = [{"_id": "q1", "text": "gene editing with Cas9"}, {"_id": "q2", "text": "transformer language model pre-training"}]
    return write_beir(tmp_path / "tiny-beir", "q1\td1\t1\nq2\td5\t1\nq2\td2\t1\n", queries=queries,
                      corpus=[{"_id": i, "title": t, "text": a} for i, t, a in DOCS])


@pytest.fixture()
def encode_calls(monkeypatch):
    """Every SentenceTransformer.encode call as (task, number of texts)."""
    calls: list[tuple[str | None, int]] = []
    original = SentenceTransformer.encode

    def counting(self, inputs, *args, **kwargs):
        calls.append((kwargs.get("task"), len(inputs)))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", counting)
    return calls


def test_root_parser_wires_evaluate():
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--model", "m", "--task", "search", "--data", "d", "--faiss"])
    assert args.func is run_evaluate and args.faiss and args.split == "test" and args.batch_size == 32


def test_tasks_are_the_models_own(minilm_path, beir_folder, tmp_path, capsys):
    """evaluate (like encode, the handler and MTEB) takes the tasks the model has, and only those."""
    from scimult_hf import upcycle

    custom = upcycle(minilm_path, tmp_path / "custom", tasks=["patients", "citations"])
    assert main(["evaluate", "--model", str(custom), "--task", "search", "--data", str(beir_folder), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'search' for" in err and "use one of patients, citations" in err
    assert main(["evaluate", "--model", str(custom), "--task", "patients", "--data", str(beir_folder), "--no-cache",
                 "--quiet", "--output", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["task"] == result["expert"] == "patients" and result["form"] == "retrieval"


def test_second_run_skips_encoding(minilm_scimult, beir_folder, tmp_path, encode_calls, capsys):
    cache = tmp_path / "cache"
    argv = ["evaluate", "--model", str(minilm_scimult), "--task", "search", "--data", str(beir_folder),
            "--cache-dir", str(cache), "--quiet"]
    assert main(argv + ["--output", str(tmp_path / "r1.json")]) == 0
    assert encode_calls == [("search", 2), ("search", 6)]  # queries, corpus
    first = capsys.readouterr().out
    assert "| tiny-beir | test | search (search) | nDCG@10 = " in first
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 2 and all(e.endswith(".safetensors") for e in entries)  # atomic: no temp files left

    encode_calls.clear()
    assert main(argv + ["--output", str(tmp_path / "r2.json")]) == 0
    assert encode_calls == []  # everything came from the cache
    r1 = json.loads((tmp_path / "r1.json").read_text())
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert r1["metrics"] == r2["metrics"] and r1["num_documents"] == 6
    assert r1["metrics"]["ndcg@10"] > 0.9  # the tiny set is easy

    # A different task is a different expert: new cache entries, new encoding.
    assert main(["evaluate", "--model", str(minilm_scimult), "--task", "link_prediction", "--data", str(beir_folder),
                 "--cache-dir", str(cache), "--quiet"]) == 0
    assert encode_calls == [("link_prediction", 2), ("link_prediction", 6)]
    out = capsys.readouterr().out
    assert '"expert": "link_prediction"' in out  # JSON printed when there is no --output

    encode_calls.clear()
    assert main(argv + ["--no-cache"]) == 0
    assert len(encode_calls) == 2


def test_classification_cli(minilm_scimult, tmp_path, capsys):
    folder = tmp_path / "tiny-cls"
    folder.mkdir()
    (folder / "labels.jsonl").write_text(
        json.dumps({"id": "bio", "name": "Biology", "description": "genes, cells and organisms"}) + "\n"
        + json.dumps({"id": "cs", "name": "Computer Science"}) + "\n"
    )
    papers = [{"id": i, "title": t, "abstract": a, "labels": ["bio" if i in ("d1", "d6") else "cs"]}
              for i, t, a in DOCS if i in ("d1", "d2", "d5", "d6")]
    (folder / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in papers))
    assert main(["evaluate", "--model", str(minilm_scimult), "--task", "classification", "--data", str(folder),
                 "--no-cache", "--quiet", "--output", str(tmp_path / "c.json")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["form"] == "single_label" and result["expert"] == "classification"
    assert set(result["metrics"]) == {"micro_f1", "macro_f1"}
    assert "| tiny-cls | test | classification (classification) | Micro-F1 = " in capsys.readouterr().out


def test_malformed_data_exits_2_with_location(minilm_scimult, beir_folder, capsys):
    with (beir_folder / "corpus.jsonl").open("a") as f:
        f.write('{"_id": "d7", "title": 3}\n')
    code = main(["evaluate", "--model", str(minilm_scimult), "--task", "search", "--data", str(beir_folder),
                 "--no-cache", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "corpus.jsonl, line 7: field 'title' must be a string" in err


def test_option_errors(beir_folder, capsys):
    assert main(["evaluate", "--model", "m", "--task", "search", "--data", str(beir_folder), "--k", "5"]) == 2
    assert "--k applies to classification only" in capsys.readouterr().err
    assert main(["evaluate", "--model", "m", "--task", "search", "--data", str(beir_folder / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_faiss_option_without_faiss(minilm_scimult, beir_folder, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss were not installed
    code = main(["evaluate", "--model", str(minilm_scimult), "--task", "search", "--data", str(beir_folder),
                 "--no-cache", "--quiet", "--faiss"])
    assert code == 2
    assert "pip install faiss-cpu" in capsys.readouterr().err
