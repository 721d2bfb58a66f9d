"""The main job end to end on real papers: encode -> search / classify / recommend, resume, two processes, errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port

from scimult_hf.cli import main
from scimult_hf.corpus import Collection, encode_corpus
from scimult_hf.sample import sample_labels, sample_papers

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_rows(n: int) -> list[dict]:
    with open(sample_papers(), encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


@pytest.fixture(scope="module")
def scifact_subset(shared_dir, tmp_path_factory):
    """Eight SciFact test claims with their relevant abstracts, among 120 other abstracts (real data)."""
    data = shared_dir / "data" / "scifact"
    qrels = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    claims = {r["_id"]: r["text"] for r in map(json.loads, (data / "queries.jsonl").read_text().splitlines())}
    qids = sorted(qrels)[:8]
    relevant = set().union(*(qrels[q] for q in qids))
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines()]
    rows = [r for r in corpus if r["_id"] in relevant] + [r for r in corpus if r["_id"] not in relevant][:120]
    rows = [{"doc_id": r["_id"], "title": r["title"], "summary": r["text"]} for r in rows]
    path = write_jsonl(tmp_path_factory.mktemp("scifact") / "papers.jsonl", rows)
    return path, [(claims[q], qrels[q]) for q in qids]


@pytest.fixture(scope="module")
def sample_index(minilm_scimult, tmp_path_factory):
    """80 shipped papers encoded for all three tasks, in shards of 32."""
    folder = tmp_path_factory.mktemp("index") / "sample"
    papers = write_jsonl(folder.parent / "papers.jsonl", sample_rows(80))
    assert main(["encode", "--model", str(minilm_scimult), "--input", str(papers), "--output", str(folder),
                 "--task", "search,link_prediction,classification", "--shard-size", "32", "--quiet"]) == 0
    return folder


@pytest.mark.smoke
def test_encode_writes_shards_that_match_sentence_transformers(sample_index, minilm_scimult):
    from scimult_hf import load_sentence_transformer
    from scimult_hf.text import paper_text

    c = Collection(sample_index)
    assert c.size == 80 and c.manifest["shards"] == [32, 32, 16]
    assert c.tasks == ["search", "link_prediction", "classification"]
    rows = sample_rows(80)
    assert [c.paper(i)["id"] for i in range(80)] == [r["id"] for r in rows]
    st = load_sentence_transformer(minilm_scimult)
    expected = st.encode([paper_text(r["title"], r["abstract"]) for r in rows], task="search")
    np.testing.assert_allclose(c.embeddings("search"), expected, atol=1e-5)
    # untrained (equal) experts: the other tasks reuse the search embeddings exactly
    assert np.array_equal(c.embeddings("classification"), c.embeddings("search"))


@pytest.mark.smoke
def test_search_finds_the_relevant_scifact_abstracts(scifact_subset, minilm_scimult, tmp_path, capsys):
    papers, claims = scifact_subset
    out = tmp_path / "scifact-index"
    assert main(["encode", "--model", str(minilm_scimult), "--input", str(papers), "--output", str(out),
                 "--id-column", "doc_id", "--abstract-column", "summary", "--quiet"]) == 0
    capsys.readouterr()
    argv = ["search", "--index", str(out), "--top-k", "3", "--json"]
    for claim, _ in claims:
        argv += ["--query", claim]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)
    hits = sum(bool({h["id"] for h in r["results"]} & relevant) for r, (_, relevant) in zip(results, claims))
    assert hits >= 7, f"a relevant abstract in the top 3 for only {hits} of 8 claims"
    # the table form names every hit by title
    assert main(["search", "--index", str(out), "--query", claims[0][0], "--top-k", "2"]) == 0
    table = capsys.readouterr().out
    assert "| rank | score | id" in table and table.count("\n|") >= 4


@pytest.mark.smoke
def test_classify_and_recommend(sample_index, tmp_path, capsys):
    assert main(["classify", "--index", str(sample_index), "--labels", str(sample_labels()), "--limit", "5"]) == 0
    printed = capsys.readouterr()
    out = printed.out
    assert "| label 1" in out and "| label 3" in out and len(out.strip().splitlines()) == 7
    assert "the first 5 of 80 papers" in printed.err
    jsonl = tmp_path / "labels-out.jsonl"
    assert main(["classify", "--index", str(sample_index), "--labels", str(sample_labels()), "--output", str(jsonl),
                 "--top-k", "19", "--quiet"]) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 80 and all(len(r["labels"]) == 19 for r in records)
    gold = {r["id"]: set(r["labels"]) for r in sample_rows(80)}
    # zero-shot, the gold field ranks in the top 5 of 19 for most papers (chance: 26 %)
    top5 = sum(bool(gold[r["id"]] & {lab["id"] for lab in r["labels"][:5]}) for r in records)
    assert top5 / len(records) > 0.5

    pid = sample_rows(80)[10]["id"]
    capsys.readouterr()
    assert main(["recommend", "--index", str(sample_index), "--id", pid, "--top-k", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    ids = [h["id"] for h in result["results"]]
    assert result["paper"]["id"] == pid and pid not in ids and len(ids) == 5
    scores = [h["score"] for h in result["results"]]
    assert scores == sorted(scores, reverse=True)


def test_faiss_and_exact_search_agree(sample_index):
    c = Collection(sample_index)
    queries = c.embeddings("search")[:4]
    s1, r1 = c.top_k("search", queries, 5)
    s2, r2 = c.top_k("search", queries, 5, use_faiss=True)
    assert np.array_equal(r1, r2) and np.allclose(s1, s2, atol=1e-5)
    assert (sample_index / "search" / "faiss.index").is_file()
    assert r1[:, 0].tolist() == [0, 1, 2, 3]  # each paper is its own best match


def _encode_argv(model, papers, out):
    return [sys.executable, "-m", "scimult_hf.cli", "encode", "--model", str(model), "--input", str(papers),
            "--output", str(out), "--shard-size", "8", "--batch-size", "4", "--quiet"]


def test_sigkill_then_resume_gives_the_same_shards(minilm_scimult, tmp_path):
    papers = write_jsonl(tmp_path / "papers.jsonl", sample_rows(64))
    ref = tmp_path / "ref"
    encode_corpus(str(minilm_scimult), papers, ref, shard_size=8, batch_size=4, show_progress_bar=False)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_encode_argv(minilm_scimult, papers, out), cwd=ROOT)
    deadline = time.time() + 120
    while not (out / "search" / "00001.npy").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = sorted(p.name for p in (out / "search").glob("*.npy"))
    assert 2 <= len(written) < 8, f"the kill came too late to test resuming: {written}"
    with pytest.raises(Exception, match="not finished"):
        Collection(out)
    resumed = subprocess.run(_encode_argv(minilm_scimult, papers, out)[:-1], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # the resume says what it found, and its bar counts only what is left, from the start
    assert f"{len(written)} of 8 shards already done; encoding the other {8 - len(written)}" in resumed.stderr
    left = 64 - 8 * len(written)
    assert f"({left} papers)" in resumed.stderr and f"0/{left}" in resumed.stderr and "/64" not in resumed.stderr
    for name in [f"{i:05d}" for i in range(8)]:
        assert np.array_equal(np.load(out / "search" / f"{name}.npy"), np.load(ref / "search" / f"{name}.npy")), name
        assert (out / "papers" / f"{name}.jsonl").read_text() == (ref / "papers" / f"{name}.jsonl").read_text()
    # what io.staging_name makes: hidden siblings ".NAME.tmp-PID-HEX" (being written) and ".NAME.old-PID-HEX"
    leftovers = [p.name for p in out.rglob("*") if re.fullmatch(r"\..+\.(tmp|old)-\d+-[0-9a-f]{8}", p.name)]
    assert not leftovers and Collection(out).size == 64


def test_two_processes_write_what_one_writes(minilm_scimult, tmp_path):
    papers = write_jsonl(tmp_path / "papers.jsonl", sample_rows(40))
    one, two = tmp_path / "one", tmp_path / "two"
    encode_corpus(str(minilm_scimult), papers, one, shard_size=8, batch_size=4, show_progress_bar=False)
    argv = _encode_argv(minilm_scimult, papers, two)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    proc = subprocess.run(torchrun + argv[1:], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # only the main process reports
    m1, m2 = (json.loads((d / "collection.json").read_text()) for d in (one, two))
    assert m1["shards"] == m2["shards"] == [8] * 5
    for name in [f"{i:05d}" for i in range(5)]:
        assert np.array_equal(np.load(one / "search" / f"{name}.npy"), np.load(two / "search" / f"{name}.npy"))


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"id": "1", "name": "x", "abstract": "y"}], [], "has no column 'title' (its columns: id, name, abstract); name the right one with --title-column"),
        ([{"id": "1", "title": "x", "abstract": ""}], ["--task", "search,summarise"], "unknown task 'summarise'"),
        (None, [], "is empty: it holds no papers"),
        ([{"id": "1", "title": "x", "abstract": ""}], ["--model", "/nowhere/model"], "/nowhere/model"),
        ([{"id": "1", "title": ""}, {"id": "2", "title": "x", "abstract": ""}], [],
         "line 1 (id 1): no text in 'title' or 'abstract'"),
        ([{"id": "1", "title": "x", "summary": "y"}], [], "no paper has the column 'abstract'"),
    ],
    ids=["missing-column", "unknown-task", "empty-file", "missing-model", "empty-text", "missing-abstract-column"],
)
def test_bad_input_is_one_clear_line(rows, extra, message, minilm_scimult, tmp_path, capsys):
    papers = tmp_path / "papers.jsonl"
    if rows is None:
        papers.write_text("")
    else:
        write_jsonl(papers, rows)
    argv = ["encode", "--model", str(minilm_scimult), "--input", str(papers), "--output", str(tmp_path / "out")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("scimult-hf encode: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "search").exists()


def test_search_errors_name_the_fix(sample_index, tmp_path, capsys):
    assert main(["search", "--index", str(tmp_path), "--query", "x"]) == 2
    assert "is not an encoded collection" in capsys.readouterr().err
    assert main(["recommend", "--index", str(sample_index), "--id", "no-such-paper"]) == 2
    assert "no paper with id 'no-such-paper'" in capsys.readouterr().err
    assert main(["search", "--index", str(sample_index), "--query", " "]) == 2
    assert "non-empty query" in capsys.readouterr().err


def test_adding_a_task_keeps_the_others(minilm_scimult, tmp_path):
    papers = write_jsonl(tmp_path / "papers.jsonl", sample_rows(12))
    out = tmp_path / "c"
    encode_corpus(str(minilm_scimult), papers, out, show_progress_bar=False)
    with pytest.raises(ValueError, match="no link_prediction embeddings"):
        Collection(out).task_info("link_prediction")
    first = (out / "search" / "00000.npy").stat().st_mtime_ns
    encode_corpus(str(minilm_scimult), papers, out, tasks=["link_prediction"], show_progress_bar=False)
    assert Collection(out).tasks == ["search", "link_prediction"]
    assert (out / "search" / "00000.npy").stat().st_mtime_ns == first
    other = write_jsonl(tmp_path / "other.jsonl", sample_rows(5))
    with pytest.raises(ValueError, match="another input file"):
        encode_corpus(str(minilm_scimult), other, out, show_progress_bar=False)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_experts_that_differ_give_each_task_its_own_embeddings(tiny_scimult, tmp_path, backend):
    """A model whose experts differ (the tiny random one, unlike the untrained default): each task's shards hold
    that task's embeddings, as ``encode(task=...)`` computes them, and the tasks differ."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime", reason="the onnx extra is part of the dev install")
    from helpers import PAPERS

    from scimult_hf.models.folder import load_sentence_transformer

    rows = [{"id": f"p{i}", "title": t.split(" [SEP] ")[0], "abstract": t.partition(" [SEP] ")[2]}
            for i, t in enumerate(PAPERS)]
    papers = write_jsonl(tmp_path / "papers.jsonl", rows)
    out = encode_corpus(str(tiny_scimult), papers, tmp_path / "c", tasks=["search", "classification"],
                        shard_size=2, backend=backend, show_progress_bar=False)
    collection = Collection(out)
    st = load_sentence_transformer(tiny_scimult)
    texts = [r["title"] + (" [SEP] " + r["abstract"] if r["abstract"] else "") for r in rows]
    for task in ("search", "classification"):
        expected = st.encode(texts, task=task, convert_to_numpy=True)
        np.testing.assert_allclose(collection.embeddings(task), expected, atol=2e-5)
    assert not np.allclose(collection.embeddings("search"), collection.embeddings("classification"), atol=1e-3)


@pytest.mark.parametrize(("bad", "message"), [
    (b'{"id": "x", "title": ', "papers.jsonl, line 150: not valid JSON"),
    (b'{"id": "u", "title": "caf\xe9"}', "papers.jsonl, line 150: not UTF-8"),
    (b'{"id": "", "title": "no id"}', "papers.jsonl, line 150: no id in column 'id'"),
    (b'{"id": "p3", "title": "a second p3"}', "papers.jsonl, line 150: id 'p3' repeats line 3"),
    (b'{"id": "n", "title": 42}', "papers.jsonl, line 150 (id n): 'title' is an int (42), not text"),
], ids=["malformed-json", "not-utf8", "empty-id", "duplicate-id", "int-title"])
def test_a_bad_line_deep_in_the_input_stops_before_the_model_loads(bad, message, minilm_scimult, tmp_path, monkeypatch,
                                                                  capsys):
    """The whole input is checked before the model loads (a streamed pass: I/O only), and the error names the file
    and the line; a repeated id is refused (search would list two papers under one id)."""
    from scimult_hf.corpus import encoders

    lines = [json.dumps({"id": f"p{i}", "title": f"Paper {i}", "abstract": ""}).encode() for i in range(1, 200)]
    lines[149] = bad
    papers = tmp_path / "papers.jsonl"
    papers.write_bytes(b"\n".join(lines) + b"\n")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(encoders, "load_sentence_model", no_model)
    assert main(["encode", "--model", str(minilm_scimult), "--input", str(papers), "--output", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_resuming_with_changed_weights_is_refused(tiny_scimult, tmp_path):
    """Same model path, new weights: resuming would mix two models' embeddings in one collection."""
    import shutil

    from helpers import PAPERS

    model = tmp_path / "model"
    shutil.copytree(tiny_scimult, model)
    papers = write_jsonl(tmp_path / "papers.jsonl", [{"id": str(i), "title": t, "abstract": ""} for i, t in enumerate(PAPERS)])
    encode_corpus(str(model), papers, tmp_path / "c", shard_size=2, show_progress_bar=False)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # rewritten (as a further training run would): a new file
    with pytest.raises(ValueError, match="started with other weights"):
        encode_corpus(str(model), papers, tmp_path / "c", shard_size=2, show_progress_bar=False)


def test_shards_are_small_enough_to_resume_and_the_bar_counts_only_model_work(minilm_scimult, tmp_path, capsys):
    """Default shards of 1,000 papers (a stop loses at most one shard); with identical experts the second task's
    embeddings are copies, not work, so the bar's total is the papers once."""
    import inspect

    assert inspect.signature(encode_corpus).parameters["shard_size"].default == 1_000
    papers = write_jsonl(tmp_path / "papers.jsonl", sample_rows(20))
    encode_corpus(str(minilm_scimult), papers, tmp_path / "c", tasks=["search", "classification"], batch_size=4)
    err = capsys.readouterr().err
    assert "20/20" in err and "/40" not in err, err[-500:]


def test_overwrite_replaces_the_collection_only_when_the_new_one_is_complete(minilm_scimult, tmp_path, monkeypatch):
    """``--overwrite`` builds beside the old collection (``.NAME.next``): a run that stops leaves the old one
    whole, and the same command finishes the new one and only then puts it in place."""
    from scimult_hf.corpus import encoders

    out = tmp_path / "c"
    first = write_jsonl(tmp_path / "first.jsonl", sample_rows(6))
    encode_corpus(str(minilm_scimult), first, out, shard_size=2, show_progress_bar=False)
    second = write_jsonl(tmp_path / "second.jsonl", sample_rows(10))
    real = encoders.Encoder.__call__
    calls = {"n": 0}

    def stop_after_two_shards(self, texts, role="document"):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt  # the run stops
        return real(self, texts, role)

    monkeypatch.setattr(encoders.Encoder, "__call__", stop_after_two_shards)
    with pytest.raises(KeyboardInterrupt):
        encode_corpus(str(minilm_scimult), second, out, shard_size=2, overwrite=True, show_progress_bar=False)
    assert Collection(out).size == 6 and (tmp_path / ".c.next").is_dir()  # the old one, whole
    monkeypatch.setattr(encoders.Encoder, "__call__", real)
    encode_corpus(str(minilm_scimult), second, out, shard_size=2, overwrite=True, show_progress_bar=False)
    assert Collection(out).size == 10 and not (tmp_path / ".c.next").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "first.jsonl", "second.jsonl"]


def test_reading_papers_leaves_no_files_in_the_datasets_cache(tmp_path):
    import datasets

    from scimult_hf.corpus.reader import read_papers

    papers = write_jsonl(tmp_path / "my-papers.jsonl", sample_rows(5))
    cache = Path(datasets.config.HF_DATASETS_CACHE)
    before = set(cache.rglob("*")) if cache.exists() else set()
    assert len(list(read_papers(papers))) == 5
    after = set(cache.rglob("*")) if cache.exists() else set()
    assert not [p for p in after - before if "my-papers" in p.name or p.suffix == ".lock"], sorted(after - before)
