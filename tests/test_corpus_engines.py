"""The collection beyond one machine: in object storage (a local S3 stand-in, moto in server mode) and encoded
on Ray Data (a local cluster with 2 workers), each equal to the single-process collection in a folder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port

from scimult_hf.cli import main
from scimult_hf.corpus import Collection, encode_corpus
from scimult_hf.sample import sample_papers


def write_papers(path: Path, n: int) -> Path:
    with open(sample_papers(), encoding="utf-8") as f:
        rows = [{**json.loads(line), "year": 2000 + i % 25, "venue": ["Nature", "Cell", "PLOS ONE"][i % 3]}
                for i, line in zip(range(n), f)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free port with the bucket ``papers``; yields the environment that points at it."""
    pytest.importorskip("moto", reason="the S3 stand-in (moto) is part of the dev install")
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    deadline = time.time() + 60
    while True:
        try:
            client.create_bucket(Bucket="papers")
            break
        except Exception:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.2)
    yield env, client
    server.terminate()
    server.wait(timeout=30)


def test_the_same_collection_in_object_storage(s3, minilm_scimult, tmp_path, monkeypatch, capsys):
    """encode -> hybrid search with a filter on s3://, equal to the folder; --overwrite swaps only when complete."""
    env, client = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    papers = write_papers(tmp_path / "papers.jsonl", 40)
    local = Collection(encode_corpus(str(minilm_scimult), papers, tmp_path / "local", shard_size=16,
                                     show_progress_bar=False))
    assert main(["encode", "--model", str(minilm_scimult), "--input", str(papers), "--output", "s3://papers/c",
                 "--shard-size", "16", "--quiet"]) == 0
    remote = Collection("s3://papers/c")
    assert remote.uri == "s3://papers/c" and remote.ids() == local.ids()
    assert np.array_equal(remote.embeddings("search"), local.embeddings("search"))
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="papers")["Contents"]]
    assert any(k.startswith("c/data/") for k in keys) and any(k.startswith("c/_versions/") for k in keys)
    capsys.readouterr()
    argv = ["search", "--query", "renal carcinoma surgery", "--mode", "hybrid", "--where",
            "year >= 2005 AND venue = 'Nature'", "--top-k", "5", "--json"]
    assert main(argv + ["--index", "s3://papers/c"]) == 0
    from_s3 = json.loads(capsys.readouterr().out)[0]["results"]
    assert main(argv + ["--index", str(tmp_path / "local")]) == 0
    from_folder = json.loads(capsys.readouterr().out)[0]["results"]
    assert [h["id"] for h in from_s3] == [h["id"] for h in from_folder] and len(from_s3) == 5
    assert all(h["venue"] == "Nature" and h["year"] >= 2005 for h in from_s3)
    # --overwrite with another input: built under c.next, then one overwriting commit, then c.next goes
    more = write_papers(tmp_path / "more.jsonl", 50)
    assert main(["encode", "--model", str(minilm_scimult), "--input", str(more), "--output", "s3://papers/c",
                 "--shard-size", "16", "--overwrite", "--quiet"]) == 0
    replaced = Collection("s3://papers/c")
    assert replaced.size == 50 and replaced.indexes()["text"] == "Inverted"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="papers")["Contents"]]
    assert not [k for k in keys if k.startswith("c.next/")]


def test_ray_embedder_skips_what_is_committed(minilm_scimult, tmp_path):
    """The actor's work in-process: papers whose ids are already in the collection are not embedded again (the
    resume of a stopped Ray run), the rest are committed as one fragment."""
    import pyarrow as pa
    import pyarrow.json as pajson

    from scimult_hf.corpus import Columns
    from scimult_hf.corpus.ray_engine import _Embedder
    from scimult_hf.corpus.reader import PaperFile
    from scimult_hf.corpus.writer import _prepare, _shards, load_encoders, run_record

    papers = write_papers(tmp_path / "papers.jsonl", 12)
    file = PaperFile(papers)
    file.check()
    work = str(tmp_path / "c")
    encoders, same_as = load_encoders(str(minilm_scimult), ["search"], backend="torch", device="cpu", dtype=None,
                                      batch_size=4, prompt_name=None)
    _prepare(work, work, work, False, None, file, 6, run_record(str(minilm_scimult), file, 6, "ray"), encoders,
             "torch", None)
    actor = _Embedder(str(minilm_scimult), ["search"], "torch", 4, None, "cpu", work, None, Columns(), None,
                      same_as)
    table = pajson.read_json(papers)
    actor.done = pa.array([str(i) for i in table.column("id").to_pylist()[:5]])
    assert actor(table).column("written").to_pylist() == [7]
    import lance

    written = lance.dataset(work).to_table(columns=["id", "year", "venue", "vector_search"])
    assert written.column("id").to_pylist() == [str(i) for i in table.column("id").to_pylist()[5:]]
    expected = next(iter(_shards(file, 12)))[1][5:]
    emb = encoders["search"]([p["text"] for p in expected])
    np.testing.assert_allclose(np.stack(written.column("vector_search").to_numpy(zero_copy_only=False)), emb,
                               atol=1e-6)
    assert written.column("venue").to_pylist() == [p["extra"]["venue"] for p in expected]


@pytest.mark.slow
def test_ray_on_two_local_workers_equals_the_single_process_encode(minilm_scimult, tmp_path, capsys):
    pytest.importorskip("ray", reason="--engine ray needs `pip install 'scimult-hf[ray]'`")
    papers = write_papers(tmp_path / "papers.jsonl", 60)
    one = Collection(encode_corpus(str(minilm_scimult), papers, tmp_path / "one", shard_size=20,
                                   show_progress_bar=False))
    assert main(["encode", "--engine", "ray", "--workers", "2", "--model", str(minilm_scimult), "--input",
                 str(papers), "--output", str(tmp_path / "ray"), "--shard-size", "20", "--quiet"]) == 0
    assert "papers on Ray (2 workers)" in capsys.readouterr().out
    ray_c = Collection(tmp_path / "ray")
    assert ray_c.record["engine"] == "ray" and sorted(ray_c.ids()) == sorted(one.ids())
    at = {pid: i for i, pid in enumerate(ray_c.ids())}
    emb = ray_c.embeddings("search")[[at[pid] for pid in one.ids()]]
    np.testing.assert_allclose(emb, one.embeddings("search"), atol=1e-6)
    assert ray_c.indexes()["text"] == "Inverted"
    # the local engine will not resume a Ray collection (its shards are not the input's)
    with pytest.raises(ValueError, match="another engine"):
        encode_corpus(str(minilm_scimult), papers, tmp_path / "ray", shard_size=20, show_progress_bar=False)
