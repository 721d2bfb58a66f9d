"""Released models by name against a local Hub endpoint serving the golden fixtures under the released file names.

The fixtures (../shared/fixtures) are checkpoints in the original format with the embeddings the original code
computes; here they stand in for ``yuz9yuz/SciMult``'s four files, and their ``bert_config`` for BiomedBERT.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest
import torch
from helpers import run_python
from hub_server import (
    FIXTURES,
    STAND_INS,
    TOKENIZER_REPO,
    LocalHub,
    base_model_files,
    online_env,
    pinned_to_fixtures,
    pinning_preamble,
    released_files,
    sha256_of,
)
from huggingface_hub import constants
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

TASKS = ["search", "link_prediction", "classification"]

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"golden fixtures not found at {FIXTURES}")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The local endpoint, with huggingface_hub pointed at it (online) and empty caches."""
    from scimult_hf import released
    from scimult_hf.convert import fetch

    with LocalHub(released_files()) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setenv("SCIMULT_HF_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(released, "RELEASED", pinned_to_fixtures())
        monkeypatch.setattr(fetch, "_METADATA", {})
        yield server


def texts_of(fx: str) -> list[str]:
    return [p["text"] for p in json.loads((FIXTURES / fx / "texts.json").read_text())["papers"]]


def reference_cases(fx: str) -> list[tuple[str | None, torch.Tensor]]:
    ref = load_file(FIXTURES / fx / "embeddings.safetensors")
    if list(ref) == ["no_expert"]:
        return [(None, ref["no_expert"])]
    return [(TASKS[int(k.split("_")[1])], v) for k, v in sorted(ref.items())]


@pytest.mark.parametrize("name", list(STAND_INS))
def test_name_fetches_converts_and_embeds_like_the_original(hub, name, capsys):
    from transformers import AutoModel, AutoTokenizer

    from scimult_hf import load_model, resolve_model_path

    fx = STAND_INS[name]
    hub.serve(base_model_files(fx))
    model = load_model(name)
    folder = Path(resolve_model_path(name))
    line = capsys.readouterr().err
    assert f"{name}: converted yuz9yuz/SciMult/" in line and str(folder) in line and "revision cb49f68" in line
    auto = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    batch = tok(texts_of(fx), padding=True, truncation=True, max_length=512, return_tensors="pt")
    for task, expected in reference_cases(fx):
        kwargs = {"task": task} if task else {}
        got = model.encode(texts_of(fx), convert_to_tensor=True, **kwargs)
        assert float((got - expected).abs().max()) <= 1e-5
        with torch.no_grad():
            pooled = auto(**batch, **kwargs).pooler_output
        assert float((pooled - expected).abs().max()) <= 1e-5
    assert not list((folder.parent.parent / "downloads").iterdir())  # the partial checkpoint is gone


def test_second_call_uses_the_folder_without_network(hub, monkeypatch):
    from scimult_hf import resolve
    from scimult_hf.convert import fetch

    first = resolve.resolve_model_path("scimult-moe")
    seen = len(hub.requests)
    monkeypatch.setattr(fetch, "fetch_released", None)  # any attempt to fetch again would fail
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve.resolve_model_path("scimult-moe") == first
    assert len(hub.requests) == seen


def with_full_optimizer_state(tmp_path: Path) -> Path:
    """The moe fixture re-saved with AdamW state for every parameter, as in the released files (the fixture's
    optimizer state covers two parameters only)."""
    pytest.importorskip("omegaconf")
    checkpoint = torch.load(FIXTURES / "scimult_moe_attn_s1" / "checkpoint.ckpt", weights_only=False)
    params = [t for k, t in checkpoint["model_dict"].items() if k.startswith("question_model.") and t.is_floating_point()]
    checkpoint["optimizer_dict"]["state"] = {
        i: {"step": 1, "exp_avg": torch.randn_like(t), "exp_avg_sq": torch.rand_like(t)} for i, t in enumerate(params)}
    path = tmp_path / "full_state.ckpt"
    torch.save(checkpoint, path)
    return path


def test_only_the_model_tensors_are_downloaded(hub, tmp_path):
    """The optimizer's records stay holes: fewer bytes than the file, and the conversion still checks out."""
    from scimult_hf.convert import load_original_checkpoint
    from scimult_hf.convert.checkpoint import read_partial
    from scimult_hf.convert.partial import RangeFile, fetch_model_records

    path = with_full_optimizer_state(tmp_path)
    hub.serve({("yuz9yuz/SciMult", "full.ckpt"): path})
    remote = RangeFile(f"{hub.url}/yuz9yuz/SciMult/resolve/main/full.ckpt", path.stat().st_size)
    stats = fetch_model_records(remote, tmp_path / "part.ckpt", sha256_of(path), gap=0)
    # model_dict holds the shared encoder twice (question_model., ctx_model.), the optimizer two tensors per
    # parameter: about half of this file is optimizer state (two thirds of the released ones).
    assert stats["received"] < 0.55 * path.stat().st_size
    original = torch.load(path, weights_only=False, map_location="cpu")
    partial = load_original_checkpoint(tmp_path / "part.ckpt")
    for key, tensor in original["model_dict"].items():
        assert torch.equal(partial["model_dict"][key], tensor)
    assert not partial["optimizer_dict"]["state"][0]["exp_avg"].any()  # never downloaded: zeros of a hole
    assert read_partial(tmp_path / "part.ckpt")["sha256"] == sha256_of(path)


def test_interrupted_partial_download_resumes(hub, tmp_path, monkeypatch):
    from scimult_hf.convert import partial

    path = FIXTURES / "scimult_moe_attn_s1" / "checkpoint.ckpt"
    url = f"{hub.url}/yuz9yuz/SciMult/resolve/main/scimult_moe.ckpt"
    monkeypatch.setattr(partial, "_CHUNK", 64 * 1024)
    calls = {"n": 0}
    real_fetch = partial.RangeFile.fetch

    def flaky(self, start, stop):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError("connection reset")
        return real_fetch(self, start, stop)

    monkeypatch.setattr(partial.RangeFile, "fetch", flaky)
    with pytest.raises(OSError, match="connection reset"):
        partial.fetch_model_records(partial.RangeFile(url, path.stat().st_size), tmp_path / "p.ckpt",
                                    sha256_of(path))
    monkeypatch.setattr(partial.RangeFile, "fetch", real_fetch)
    again = partial.RangeFile(url, path.stat().st_size)
    stats = partial.fetch_model_records(again, tmp_path / "p.ckpt", sha256_of(path))
    whole = partial.RangeFile(url, path.stat().st_size)
    full_stats = partial.fetch_model_records(whole, tmp_path / "q.ckpt", sha256_of(path))
    assert stats["received"] <= full_stats["received"] - 10 * 64 * 1024  # the finished ranges were not fetched again
    assert (tmp_path / "p.ckpt").read_bytes() == (tmp_path / "q.ckpt").read_bytes()


def test_wrong_sha256_is_refused_before_downloading(hub, tmp_path, monkeypatch):
    from scimult_hf import released
    from scimult_hf.convert import fetch

    wrong = dataclasses.replace(released.RELEASED["scimult-moe"], sha256="0" * 64)
    monkeypatch.setitem(released.RELEASED, "scimult-moe", wrong)
    with pytest.raises(fetch.ReleasedModelError) as err:
        fetch.fetch_released("scimult-moe")
    served = sha256_of(FIXTURES / "scimult_moe_attn_s1" / "checkpoint.ckpt")
    assert "0" * 64 in str(err.value) and served in str(err.value) and "Nothing was downloaded" in str(err.value)
    assert [r for r in hub.requests if r[0] == "GET"] == []  # only the metadata was asked for
    assert not (tmp_path / "cache" / "released" / "scimult-moe").exists()


def test_full_download_checks_the_whole_file(hub, tmp_path):
    from scimult_hf.convert.fetch import fetch_released

    hub.serve(base_model_files("scimult_vanilla_s3"))
    folder = fetch_released("scimult-vanilla", full=True)
    conversion = json.loads((folder / "conversion.json").read_text())
    assert conversion["source_sha256"] == sha256_of(FIXTURES / "scimult_vanilla_s3" / "checkpoint.ckpt")
    assert hub.sent >= (FIXTURES / "scimult_vanilla_s3" / "checkpoint.ckpt").stat().st_size


def test_a_server_that_ignores_ranges_sends_the_file_once(hub, monkeypatch, caplog):
    """Asked for a range, this server sends the whole file (200): the fetch notices at its first request and
    downloads the file once (checked against its sha256), not once per 64 KiB chunk."""
    from scimult_hf.convert import partial
    from scimult_hf.convert.fetch import fetch_released

    monkeypatch.setattr(partial, "_CHUNK", 64 * 1024)
    hub.ignore_range = True
    size = (FIXTURES / "scimult_moe_attn_s1" / "checkpoint.ckpt").stat().st_size
    with caplog.at_level("WARNING", logger="scimult_hf.convert.fetch"):
        folder = fetch_released("scimult-moe")
    assert json.loads((folder / "conversion.json").read_text())["source_sha256"] == pinned_to_fixtures()["scimult-moe"].sha256
    assert "ignores HTTP Range requests" in caplog.text
    gets = [r for r in hub.requests if r[0] == "GET" and r[1].endswith("scimult_moe.ckpt")]
    assert len(gets) == 2, gets  # the probe (its body left unread) and the one download
    assert hub.sent < 2 * size + 1_000_000


def test_dropped_connections_are_retried_and_the_fetch_completes(hub, monkeypatch):
    from scimult_hf.convert import partial
    from scimult_hf.convert.fetch import fetch_released

    monkeypatch.setattr(partial, "_CHUNK", 64 * 1024)
    hub.drops["scimult_moe.ckpt"] = 3  # three bodies cut off half way, then the server behaves
    folder = fetch_released("scimult-moe")
    assert hub.drops["scimult_moe.ckpt"] == 0
    model = SentenceTransformer(str(folder), trust_remote_code=True)
    for task, expected in reference_cases("scimult_moe_attn_s1"):
        got = model.encode(texts_of("scimult_moe_attn_s1"), task=task, convert_to_tensor=True)
        assert (got - expected).abs().max() < 1e-5


def test_a_connection_that_keeps_dropping_ends_in_one_line_and_the_rerun_resumes(hub, monkeypatch, capsys):
    import time

    from scimult_hf.cli import main
    from scimult_hf.convert import partial

    monkeypatch.setattr(partial, "_CHUNK", 64 * 1024)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the retries' waits (ours and huggingface_hub's)
    hub.drops["scimult_moe.ckpt"] = 10_000
    assert main(["fetch", "scimult-moe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and "run the command again" in err[-1], err[-3:]
    hub.drops["scimult_moe.ckpt"] = 0
    assert main(["fetch", "scimult-moe"]) == 0


def test_a_bad_record_is_fetched_again_alone(hub, tmp_path, monkeypatch):
    """A record that fails its CRC-32 forgets only its own chunks: the next call fetches those, not the file."""
    from scimult_hf.convert import partial
    from scimult_hf.convert.checkpoint import CheckpointError

    path = FIXTURES / "scimult_moe_attn_s1" / "checkpoint.ckpt"
    url = f"{hub.url}/yuz9yuz/SciMult/resolve/main/scimult_moe.ckpt"
    monkeypatch.setattr(partial, "_CHUNK", 64 * 1024)
    real_fetch = partial.RangeFile.fetch
    bad = 3_075_000  # a byte of a small record near the end (the fixture's weights are one 2.9 MB record before it)

    def corrupt_one(self, start, stop):
        data = real_fetch(self, start, stop)
        if start <= bad < stop:  # one flipped byte
            data = data[: bad - start] + bytes([data[bad - start] ^ 0xFF]) + data[bad - start + 1:]
        return data

    monkeypatch.setattr(partial.RangeFile, "fetch", corrupt_one)
    first = partial.RangeFile(url, path.stat().st_size)
    with pytest.raises(CheckpointError, match="CRC-32"):
        partial.fetch_model_records(first, tmp_path / "p.ckpt", sha256_of(path))
    monkeypatch.setattr(partial.RangeFile, "fetch", real_fetch)
    again = partial.RangeFile(url, path.stat().st_size)
    partial.fetch_model_records(again, tmp_path / "p.ckpt", sha256_of(path))
    assert 0 < again.received < first.received / 4  # the bad record's chunks, not everything anew


def test_a_cached_folder_from_another_file_is_not_used(hub):
    from scimult_hf import resolve
    from scimult_hf.convert import fetch

    folder = fetch.fetch_released("scimult-moe")
    record = json.loads((folder / "conversion.json").read_text())
    (folder / "conversion.json").write_text(json.dumps({**record, "source_sha256": "f" * 64}))
    with pytest.raises(fetch.ReleasedModelError, match="scimult-hf fetch scimult-moe --overwrite") as err:
        resolve.resolve_model_path("scimult-moe")
    assert "f" * 64 in str(err.value)
    seen = len(hub.requests)
    assert fetch.fetch_released("scimult-moe", overwrite=True) == folder  # the way out it names works
    assert json.loads((folder / "conversion.json").read_text())["source_sha256"] == record["source_sha256"]
    assert len(hub.requests) > seen


TWO_AT_ONCE = """
import scimult_hf.convert.fetch as r
print("folder:", r.fetch_released("scimult-moe"))
"""


def test_processes_that_start_at_once_download_once(hub, tmp_path):
    """Under torchrun every process resolves the name before distributed setup: one downloads and converts,
    the others wait on the lock and read its folder."""
    import subprocess
    import sys

    env = online_env(hub, tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", pinning_preamble() + TWO_AT_ONCE], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert len({out for out, _ in outs}) == 1  # the same folder for all
    probes = [r for r in hub.requests if r[0] == "GET" and r[1].endswith("scimult_moe.ckpt") and r[2] == "bytes=0-0"]
    assert len(probes) == 1 and sum("converted yuz9yuz/SciMult" in err for _, err in outs) == 1
    assert (tmp_path / "cache" / "released" / "scimult-moe" / "modules.json").is_file()


def test_full_download_refuses_bytes_that_are_not_the_release(hub, tmp_path):
    """The Hub's metadata matches the pin but the bytes it sends do not (a corrupted mirror): the whole file's
    sha256, computed after the download, refuses it and nothing is converted."""
    from scimult_hf.convert.fetch import ReleasedModelError, fetch_released
    from scimult_hf.released import released_folder

    hub.serve(base_model_files("scimult_vanilla_s3"))
    key = ("yuz9yuz/SciMult", "scimult_vanilla.ckpt")
    path, size, sha = hub.files[key]
    bad = tmp_path / "bad.ckpt"
    data = bytearray(path.read_bytes())
    data[size // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    hub.files[key] = (bad, size, sha)  # the pinned size and sha256 announced, other bytes sent
    with pytest.raises(ReleasedModelError, match="does not match the released scimult_vanilla.ckpt") as err:
        fetch_released("scimult-vanilla", full=True)
    assert sha in str(err.value) and not released_folder("scimult-vanilla").exists()


def test_offline_without_a_folder_says_what_to_run(tmp_path, monkeypatch):
    from scimult_hf.convert.fetch import ReleasedModelError, fetch_released

    monkeypatch.setenv("SCIMULT_HF_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ReleasedModelError, match="scimult-hf fetch scimult-moe") as err:
        fetch_released("scimult-moe")
    # the offline route and the way out are named too, not only the online command
    assert "hf download yuz9yuz/SciMult scimult_moe.ckpt" in str(err.value)
    assert "scimult-hf convert --checkpoint scimult_moe.ckpt" in str(err.value)
    assert "leave out --model" in str(err.value)


def test_missing_tokenizer_names_what_to_fetch(hub, monkeypatch):
    from scimult_hf.convert.fetch import ReleasedModelError, fetch_released

    del hub.files[(TOKENIZER_REPO, "vocab.txt")]
    with pytest.raises(ReleasedModelError, match=f"hf download {TOKENIZER_REPO} config.json vocab.txt"):
        fetch_released("scimult-moe")


KILL_DURING_CONVERSION = """
import os, signal
import scimult_hf.convert.fetch as r
from scimult_hf.convert import writer
real = writer._write_folder
def write_then_die(folder, *args, **kwargs):
    real(folder, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)   # the folder is staged, not yet in place
writer._write_folder = write_then_die
r.fetch_released("scimult-moe")
"""


def test_kill_during_conversion_leaves_nothing_and_the_next_call_completes(hub, tmp_path):
    from scimult_hf.convert.fetch import fetch_released
    from scimult_hf.released import released_folder

    code = pinning_preamble() + KILL_DURING_CONVERSION
    proc = run_python(code, env=online_env(hub, tmp_path), timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    folder = released_folder("scimult-moe")
    assert not folder.exists()
    fetch_released("scimult-moe")
    assert (folder / "modules.json").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["scimult-moe"]  # the dead writer's staging is gone


# ---------------------------------------------------------------------------------------------- default model
def test_default_is_scimult_moe_when_the_hub_answers(hub):
    from scimult_hf.resolve import resolve_default_model

    model, line = resolve_default_model()
    assert model == "scimult-moe"
    assert "yuz9yuz/SciMult" in line and "first use downloads about" in line and "scimult_moe.ckpt" in line
    assert [r[0] for r in hub.requests] == ["HEAD"]


def test_default_asks_the_hub_once_and_the_fetch_reuses_the_answer(hub):
    from scimult_hf.convert.fetch import fetch_released
    from scimult_hf.resolve import resolve_default_model

    model, _ = resolve_default_model()
    fetch_released(model)
    heads = [path for method, path, _ in hub.requests if method == "HEAD" and path.endswith("scimult_moe.ckpt")]
    assert len(heads) == 1, heads


def test_default_is_not_a_release_whose_file_is_not_the_pinned_one(hub, monkeypatch, tmp_path):
    """The Hub answers, but with another file (here: another size): the default stays offline and says why,
    instead of promising a download that the pin check will refuse."""
    import dataclasses

    from scimult_hf import released, resolve

    other = dataclasses.replace(released.RELEASED["scimult-moe"], size=released.RELEASED["scimult-moe"].size + 1)
    monkeypatch.setitem(released.RELEASED, "scimult-moe", other)
    monkeypatch.setattr(resolve, "default_model_path", lambda: tmp_path / "minilm")
    model, line = resolve.resolve_default_model()
    assert model == str(tmp_path / "minilm")
    assert "is not the pinned release" in line and "first use downloads" not in line
    assert [r[0] for r in hub.requests] == ["HEAD"]


def test_default_uses_the_cached_folder_without_network(hub, monkeypatch):
    from scimult_hf.convert.fetch import fetch_released
    from scimult_hf.resolve import resolve_default_model

    folder = fetch_released("scimult-moe")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    seen = len(hub.requests)
    model, line = resolve_default_model()
    assert model == "scimult-moe" and str(folder) in line and len(hub.requests) == seen


@pytest.mark.parametrize("how", ["offline", "unreachable"])
def test_default_falls_back_with_the_reason_and_the_command(tmp_path, monkeypatch, how):
    from scimult_hf import resolve

    monkeypatch.setenv("SCIMULT_HF_CACHE", str(tmp_path))
    monkeypatch.setattr(resolve, "default_model_path", lambda: tmp_path / "minilm")
    if how == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:  # nothing listens on the endpoint
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    model, line = resolve.resolve_default_model(timeout=2)
    assert model == str(tmp_path / "minilm")
    assert ("HF_HUB_OFFLINE is set" if how == "offline" else "the Hub did not answer for yuz9yuz/SciMult") in line
    assert "scimult-hf fetch scimult-moe" in line and "scimult-hf/" not in line


# ------------------------------------------------------------------------------------------ fresh processes
CLI = """
import sys
from scimult_hf.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # fresh processes (the in-process tests cover fetch, convert and the offline second use)
def test_encode_by_name_in_a_fresh_process_then_again_without_network(hub, tmp_path):
    papers = tmp_path / "papers.jsonl"
    papers.write_text("".join(json.dumps({"id": str(i), "title": t.split(" [SEP] ")[0], "abstract": t})
                              + "\n" for i, t in enumerate(texts_of("scimult_moe_attn_s1"))))
    env, code = online_env(hub, tmp_path), pinning_preamble() + CLI

    def encode(out: str):
        return run_python(code, "encode", "--model", "scimult-moe", "--input", str(papers), "--output",
                          str(tmp_path / out), "--task", "search,classification", env=env)

    first = encode("one")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "scimult-moe: converted yuz9yuz/SciMult/scimult_moe.ckpt" in first.stderr
    seen = len(hub.requests)
    second = encode("two")
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(hub.requests) == seen and "converted" not in second.stderr
    import numpy as np

    from scimult_hf.corpus import Collection

    one, two = Collection(tmp_path / "one"), Collection(tmp_path / "two")
    for task in ("search", "classification"):
        assert np.array_equal(one.embeddings(task), two.embeddings(task))
    assert not np.allclose(one.embeddings("search"), one.embeddings("classification"))  # the experts differ
    export = run_python(code, "export", "--model", "scimult-moe", "--task", "search", "--output",
                        str(tmp_path / "search-export"), env=env)
    assert export.returncode == 0, export.stderr[-3000:]
    assert len(hub.requests) == seen and (tmp_path / "search-export" / "model.safetensors").is_file()
