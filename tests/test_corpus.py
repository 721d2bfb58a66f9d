"""The main job end to end on real papers: encode -> search / classify / recommend, resume, two processes, errors."""

from __future__ import annotations

import json
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
from scimult_hf.errors import InputError
from scimult_hf.sample import sample_labels, sample_papers

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_rows(n: int) -> list[dict]:
    """The first ``n`` shipped papers, each with a ``year`` (2000 + its number modulo 25) to filter on."""
    with open(sample_papers(), encoding="utf-8") as f:
        return [{**json.loads(line), "year": 2000 + i % 25} for i, line in zip(range(n), f)]


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
    assert c.size == 80 and [f.count_rows() for f in c.dataset.get_fragments()] == [32, 32, 16]  # a commit per shard
    assert c.tasks == ["search", "link_prediction", "classification"]
    rows = sample_rows(80)
    assert c.ids() == [r["id"] for r in rows]
    # the input's other columns pass through (filterable), and the indexes are there
    assert c.metadata_columns == ["labels", "year"] and c.paper(rows[5]["id"])["year"] == rows[5]["year"]
    assert c.indexes() == {"text": "Inverted", "id": "BTree"}
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


def test_dense_search_is_the_exact_dot_product_ranking(sample_index):
    c = Collection(sample_index)
    emb, ids = c.embeddings("search"), c.ids()
    for row in (0, 7, 41):
        hits = c.search("search", vector=emb[row], k=5)
        expected = np.argsort(-(emb @ emb[row]), kind="stable")[:5]
        assert [h["id"] for h in hits] == [ids[i] for i in expected]
        np.testing.assert_allclose([h["score"] for h in hits], (emb @ emb[row])[expected], atol=1e-5)
        assert hits[0]["id"] == ids[row] and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]


def test_where_filters_search_classify_and_recommend(sample_index, capsys):
    """``--where`` on the input's own columns, applied before ranking: k hits that all pass the filter."""
    rows = sample_rows(80)
    years = {r["id"]: r["year"] for r in rows}
    assert main(["search", "--index", str(sample_index), "--query", "kidney cancer surgery", "--where",
                 "year >= 2020", "--top-k", "8", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["results"]
    assert len(hits) == 8 and all(h["year"] >= 2020 for h in hits)
    assert sum(y >= 2020 for y in years.values()) < 80 / 4  # the filter removes most papers
    assert main(["classify", "--index", str(sample_index), "--labels", str(sample_labels()), "--where",
                 "year = 2003", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in records) == sorted(p for p, y in years.items() if y == 2003)
    pid = rows[10]["id"]
    assert main(["recommend", "--index", str(sample_index), "--id", pid, "--where", "year < 2005", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert len(hits) == 10 and all(h["year"] < 2005 and h["id"] != pid for h in hits)
    # a filter that cannot apply: one line naming the columns
    assert main(["search", "--index", str(sample_index), "--query", "x", "--where", "yeer > 1"]) == 2
    err = capsys.readouterr().err
    assert "--where could not be applied" in err and "year" in err and "Traceback" not in err


def test_lexical_and_hybrid_search(sample_index):
    """BM25 over title and abstract through the full-text index, and the two lists fused by reciprocal rank."""
    from scimult_hf.corpus.collection import RRF_K, reciprocal_rank_fusion

    c = Collection(sample_index)
    target = sample_rows(80)[33]
    words = target["title"].split()[:6]
    lexical = c.search("search", " ".join(words), mode="lexical", k=5)
    assert lexical[0]["id"] == target["id"] and lexical[0]["score"] > lexical[-1]["score"] > 0
    query = " ".join(words)
    dense = c.search("search", query, mode="dense", k=100)
    hybrid = c.search("search", query, mode="hybrid", k=5)
    fused = reciprocal_rank_fusion([[h["id"] for h in dense], [h["id"] for h in c.search("search", query,
                                                                                           mode="lexical", k=100)]])
    assert [h["id"] for h in hybrid] == [pid for pid, _ in fused[:5]]
    assert hybrid[0]["score"] <= 2 / (RRF_K + 1)
    assert reciprocal_rank_fusion([["a", "b"], ["b", "c"]]) == [("b", 1 / 62 + 1 / 61), ("a", 1 / 61), ("c", 1 / 62)]


def test_an_ann_index_keeps_the_exact_answers(minilm_scimult, tmp_path):
    """From ``ann_from`` papers the collection gets an IVF index per task; probing 16 of its lists, the top 10 are
    the exact top 10 for nearly every query (here on 600 real papers, 24 lists)."""
    from scimult_hf.sample import sample_papers as shipped

    with open(shipped(), encoding="utf-8") as f:
        count = sum(1 for _ in f)
    c = Collection(encode_corpus(str(minilm_scimult), shipped(), tmp_path / "c", shard_size=500,
                                 show_progress_bar=False))
    assert c.size == count
    assert c.build_indexes(ann_from=100)["vector_search"] == "Vector"
    emb, ids = c.embeddings("search"), c.ids()
    recall = []
    for row in range(0, c.size, 25):
        exact = [h["id"] for h in c.search("search", vector=emb[row], k=10, exact=True)]
        approx = [h["id"] for h in c.search("search", vector=emb[row], k=10)]
        assert exact == [ids[i] for i in np.argsort(-(emb @ emb[row]), kind="stable")[:10]]
        recall.append(len(set(exact) & set(approx)) / 10)
    assert np.mean(recall) >= 0.9, recall
    # a filter that keeps 30 papers: one list probed at first, and Lance probes on until 10 pass it (a fixed
    # nprobes stopped after the one list and returned what that list held); every list probed is the exact answer
    keep = [ids[i] for i in range(0, c.size, max(1, c.size // 30))]
    where = "id IN (" + ", ".join(f"'{i}'" for i in keep) + ")"
    exact = [h["id"] for h in c.dense("search", emb[1], 10, where=where, exact=True)]
    one_list = [h["id"] for h in c.dense("search", emb[1], 10, where=where, nprobes=1)]
    assert len(exact) == len(one_list) == 10 and set(exact) | set(one_list) <= set(keep)
    lists = int(c.size ** 0.5)
    assert [h["id"] for h in c.dense("search", emb[1], 10, where=where, nprobes=lists)] == exact


def test_an_old_folder_collection_is_refused_with_the_command_that_encodes_it_again(tmp_path, capsys):
    old = tmp_path / "old"
    (old / "search").mkdir(parents=True)
    (old / "collection.json").write_text(json.dumps({"format": 1, "model": "/models/m", "tasks": {"search": {}},
                                                     "input": {"path": "/data/papers.jsonl"}}))
    assert main(["search", "--index", str(old), "--query", "x"]) == 2
    err = capsys.readouterr().err
    assert "old folder format" in err
    assert f"scimult-hf encode --model /models/m --input /data/papers.jsonl --output {old} --task search --overwrite" in err


def _encode_argv(model, papers, out):
    return [sys.executable, "-m", "scimult_hf.cli", "encode", "--model", str(model), "--input", str(papers),
            "--output", str(out), "--shard-size", "8", "--batch-size", "4", "--quiet"]


def _commits(out: Path) -> int:
    return len(list((out / "_versions").glob("*.manifest"))) if (out / "_versions").is_dir() else 0


def test_sigkill_then_resume_gives_the_same_collection(minilm_scimult, tmp_path):
    papers = write_jsonl(tmp_path / "papers.jsonl", sample_rows(64))
    ref = Collection(encode_corpus(str(minilm_scimult), papers, tmp_path / "ref", shard_size=8, batch_size=4,
                                   show_progress_bar=False))
    out = tmp_path / "killed"
    proc = subprocess.Popen(_encode_argv(minilm_scimult, papers, out), cwd=ROOT)
    deadline = time.time() + 120
    while _commits(out) < 4 and time.time() < deadline and proc.poll() is None:  # created, recorded, 2 shards
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    import lance

    written = lance.dataset(out).count_rows()
    assert 16 <= written < 64 and written % 8 == 0, f"the kill came too late (or split a shard): {written} rows"
    with pytest.raises(Exception, match="not finished"):
        Collection(out)
    resumed = subprocess.run(_encode_argv(minilm_scimult, papers, out)[:-1], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # the resume says what it found, and its bar counts only what is left, from the start
    done = written // 8
    assert f"{done} of 8 shards already done; encoding the other {8 - done}" in resumed.stderr
    left = 64 - written
    assert f"({left} papers)" in resumed.stderr and f"0/{left}" in resumed.stderr and "/64" not in resumed.stderr
    c = Collection(out)
    assert c.ids() == ref.ids() and np.array_equal(c.embeddings("search"), ref.embeddings("search"))
    assert [f.count_rows() for f in c.dataset.get_fragments()] == [8] * 8


def test_two_processes_write_what_one_writes(minilm_scimult, tmp_path):
    papers = write_jsonl(tmp_path / "papers.jsonl", sample_rows(40))
    one, two = tmp_path / "one", tmp_path / "two"
    encode_corpus(str(minilm_scimult), papers, one, shard_size=8, batch_size=4, show_progress_bar=False)
    argv = _encode_argv(minilm_scimult, papers, two)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    proc = subprocess.run(torchrun + argv[1:], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # only the main process reports
    c1, c2 = Collection(one), Collection(two)
    assert sorted(f.count_rows() for f in c2.dataset.get_fragments()) == [8] * 5  # each process commits its shards
    assert c1.ids() == c2.ids() and np.array_equal(c1.embeddings("search"), c2.embeddings("search"))


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
    assert not (tmp_path / "out").exists()


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
    before = Collection(out)
    files = {f.path: (out / "data" / f.path).stat().st_mtime_ns for frag in before.dataset.get_fragments()
             for f in frag.data_files()}
    encode_corpus(str(minilm_scimult), papers, out, tasks=["link_prediction"], show_progress_bar=False)
    after = Collection(out)
    assert after.tasks == ["search", "link_prediction"]
    # a new column in new files: the files that hold the search embeddings are not rewritten
    assert {p: (out / "data" / p).stat().st_mtime_ns for p in files} == files
    assert np.array_equal(after.embeddings("search"), before.embeddings("search"))
    assert np.array_equal(after.embeddings("link_prediction"), before.embeddings("search"))  # identical experts
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


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_repeated_id_is_named_with_both_places_and_unique_ids_pass(suffix, tmp_path):
    """The id check keeps 8-byte hashes, not the ids: 5,000 unique ids pass; a repeat is named with the line (JSON
    lines) or paper number (other formats) of both copies, the first repeat in file order."""
    from scimult_hf.corpus.reader import PaperFile

    def write(ids):
        path = tmp_path / f"papers{suffix}"
        if suffix == ".csv":
            path.write_text("id,title,abstract\n" + "".join(f"{i},Paper {i},text\n" for i in ids))
        else:
            path.write_text("".join(json.dumps({"id": i, "title": f"Paper {i}", "abstract": "text"}) + "\n"
                                    for i in ids))
        return PaperFile(path)

    ids = [f"p{i}" for i in range(5000)]
    assert write(ids).check() == 5000
    ids[4000], ids[4500] = "p17", "p3000"
    unit = "line" if suffix == ".jsonl" else "paper"
    with pytest.raises(InputError, match=f"papers{suffix}, {unit} 4001: id 'p17' repeats {unit} 18;"):
        write(ids).check()


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
