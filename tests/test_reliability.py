"""Nothing silently wrong, nothing lost: each case reproduces a failure seen by trying the package as a user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PAPERS, tiny_model, write_beir

from scimult_hf import SciMultModel, export_task, load_sentence_transformer
from scimult_hf.cli import main
from scimult_hf.errors import DiskFullError
from scimult_hf.io import atomic_directory, remove_leftovers, staging_name
from scimult_hf.retrieval import EmbeddingCache, encode_by_task, load_beir, load_classification, load_qrels
from scimult_hf.retrieval.data import DataFormatError

TASKS = ["search", "link_prediction", "classification"]
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def dead_pid() -> int:
    """The PID of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- 1. per-row tasks in sentence-transformers
def test_per_row_task_list_is_refused_by_sentence_transformers(tiny_scimult):
    st = load_sentence_transformer(tiny_scimult)
    tasks = ["search", "classification", "link_prediction", "search", "classification"]
    for batch_size in (32, 2):
        with pytest.raises(ValueError, match="sorts the texts by length") as err:
            st.encode(PAPERS, task=tasks, batch_size=batch_size)
        assert "encode_by_task" in str(err.value)
    # One task for every row, given as a list, is not ambiguous and still works.
    same = st.encode(PAPERS, task=["search"] * len(PAPERS))
    np.testing.assert_allclose(same, st.encode(PAPERS, task="search"), atol=1e-6)


def test_encode_by_task_routes_every_row_to_its_expert(tiny_scimult):
    st = load_sentence_transformer(tiny_scimult)
    tasks = ["search", "classification", "link_prediction", "search", "classification"]
    mixed = encode_by_task(st, PAPERS, tasks, batch_size=2)
    per_task = {t: st.encode(PAPERS, task=t) for t in TASKS}
    assert not np.allclose(per_task["search"], per_task["classification"], atol=1e-3)  # experts differ
    for i, task in enumerate(tasks):
        np.testing.assert_allclose(mixed[i], per_task[task][i], atol=1e-5)


# --------------------------------------------------------------------------- 2. overwrites never destroy data
def test_upcycle_refuses_existing_output_and_keeps_its_files(tmp_path, minilm_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["upcycle", "--source", minilm_path, "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep"
    assert main(["upcycle", "--source", minilm_path, "--output", str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").is_file()


def test_export_into_its_own_model_folder_is_refused(tmp_path, tiny_scimult, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_scimult, model)
    before = (model / "model.safetensors").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["export", "--model", str(model), "--task", "search", "--output", str(model), *extra]) == 2
        assert "is the input" in capsys.readouterr().err
    assert main(["export", "--model", str(model), "--task", "search", "--output", str(tmp_path), "--overwrite"]) == 2
    assert "contains the input" in capsys.readouterr().err
    assert (model / "model.safetensors").read_bytes() == before
    assert json.loads((model / "config.json").read_text())["model_type"] == "scimult"


def test_overwrite_replaces_only_a_complete_folder(tmp_path, tiny_scimult, monkeypatch):
    out = tmp_path / "out"
    export_task(tiny_scimult, "search", out)
    before = sorted(p.name for p in out.iterdir())
    from transformers import BertModel

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(BertModel, "save_pretrained", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_task(tiny_scimult, "classification", out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")
@pytest.mark.parametrize("where", ["the checkpoint", "its folder"])
def test_convert_overwrite_never_deletes_the_checkpoint(tmp_path, where, capsys):
    fx = FIXTURES / "scimult_vanilla_s3"
    folder = tmp_path / "ckpts"
    folder.mkdir()
    ckpt = folder / "scimult.ckpt"
    shutil.copy(fx / "checkpoint.ckpt", ckpt)
    out = ckpt if where == "the checkpoint" else folder
    code = main(["convert", "--checkpoint", str(ckpt), "--output", str(out), "--tokenizer", str(fx / "bert_config"),
                 "--overwrite"])
    assert code == 2 and "would delete that input" in capsys.readouterr().err
    assert ckpt.read_bytes() == (fx / "checkpoint.ckpt").read_bytes()


# --------------------------------------------------------------------------- 3. weights that do not fit the config
@pytest.mark.parametrize("edit", [{"expert_type": "ffn"}, {"expert_layers": [0, 2]}, {"tasks": ["a", "b"]}])
def test_weights_that_do_not_fit_the_config_are_an_error(tmp_path, tiny_scimult, edit, capsys):
    from transformers import AutoModel

    folder = tmp_path / "edited"
    shutil.copytree(tiny_scimult, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(edit)
    config.pop("task_aliases", None) if "tasks" in edit else None
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit its SciMult config"):
        AutoModel.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(ValueError, match="do not fit its SciMult config"):
        load_sentence_transformer(folder)
    assert main(["export", "--model", str(folder), "--task", "a" if "tasks" in edit else "search",
                 "--output", str(tmp_path / "ex")]) == 2
    assert "allow_weight_mismatch=True" in capsys.readouterr().err
    # Asked for explicitly, the fresh initialisation is allowed.
    model = SciMultModel.from_pretrained(folder, allow_weight_mismatch=True)
    assert isinstance(model, SciMultModel)


def test_upcycle_from_scimult_and_export_from_bert_are_refused(tmp_path, tiny_scimult, minilm_path, capsys):
    assert main(["upcycle", "--source", str(tiny_scimult), "--output", str(tmp_path / "up")]) == 2
    assert "already a SciMult model" in capsys.readouterr().err
    assert main(["export", "--model", minilm_path, "--task", "search", "--output", str(tmp_path / "ex")]) == 2
    assert "not a SciMult folder" in capsys.readouterr().err
    assert not (tmp_path / "up").exists() and not (tmp_path / "ex").exists()


# --------------------------------------------------------------------------- 4. leftovers and the cache
def test_dead_writers_leftovers_are_removed_and_a_moved_aside_target_restored(tmp_path):
    target = tmp_path / "model"
    dead = dead_pid()
    stale_tmp = tmp_path / f".model.tmp-{dead}-0123abcd"
    stale_tmp.mkdir()
    (stale_tmp / "model.safetensors").write_bytes(b"x" * 1000)
    stale_old = tmp_path / f".model.old-{dead}-89abcdef"
    stale_old.mkdir()
    (stale_old / "weights").write_text("previous")
    live = staging_name(target)  # this process: still writing, must be left alone
    live.mkdir()
    other = tmp_path / f".other.tmp-{dead}-00000000"
    other.mkdir()

    remove_leftovers(tmp_path, "model")
    assert not stale_tmp.exists() and live.exists() and other.exists()
    assert (target / "weights").read_text() == "previous"  # the kill fell between the two renames: restored

    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "model"])


def test_cache_verifies_what_it_reads(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    key = cache.key(model="m", task="search", prompt=None, role=None, content="c")
    other = cache.key(model="m", task="search", prompt=None, role=None, content="d")
    path = cache.put(key, np.ones((3, 4), dtype=np.float32))
    assert cache.get(key).shape == (3, 4)

    shutil.copy(path, cache.path(other))  # another key's file under this key's name
    assert cache.get(other) is None

    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40  # flip a bit inside the embeddings
    path.write_bytes(bytes(data))
    assert cache.get(key) is None and "checksum" in caplog.text

    (tmp_path / f".{other}.safetensors.tmp-{dead_pid()}-0badc0de").write_bytes(b"partial")
    EmbeddingCache(tmp_path).put(key, np.ones((3, 4), dtype=np.float32))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cache_that_cannot_be_written_says_so(tmp_path, tiny_scimult, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    data = write_beir(tmp_path / "beir", "q1\td1\t1\n")
    code = main(["evaluate", "--model", str(tiny_scimult), "--task", "search", "--data", str(data), "--quiet",
                 "--cache-dir", str(blocker / "cache")])
    assert code == 2 and "cannot write the embedding cache" in capsys.readouterr().err


# --------------------------------------------------------------------------- 5. corrupt checkpoints
@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")
def test_bad_crc_inside_the_checkpoint_stops_before_writing(tmp_path):
    from scimult_hf.convert import CheckpointError, convert_checkpoint

    fx = FIXTURES / "scimult_vanilla_s3"
    data = bytearray((fx / "checkpoint.ckpt").read_bytes())
    with zipfile.ZipFile(fx / "checkpoint.ckpt") as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the largest tensor record
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size // 2] ^= 0xFF
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC-32"):
        convert_checkpoint(bad, tmp_path / "out", tokenizer=fx / "bert_config")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")
def test_non_finite_weights_stop_before_writing(tmp_path):
    from scimult_hf.convert import CheckpointError, convert_checkpoint, load_original_checkpoint, plain

    fx = FIXTURES / "scimult_vanilla_s3"
    checkpoint = {k: plain(v) for k, v in load_original_checkpoint(fx / "checkpoint.ckpt").items()}
    model_dict = {k: v.clone() for k, v in checkpoint["model_dict"].items()}
    for prefix in ("question_model", "ctx_model"):
        model_dict[f"{prefix}.encoder.embeddings.word_embeddings.weight"][5, 3] = float("inf")
    checkpoint["model_dict"] = model_dict
    path = tmp_path / "inf.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="infinite or NaN"):
        convert_checkpoint(path, tmp_path / "out", tokenizer=fx / "bert_config")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 6. one clear line, not a stack trace
def test_truncated_weights_in_evaluate_and_export(tmp_path, tiny_scimult, capsys):
    folder = tmp_path / "m"
    shutil.copytree(tiny_scimult, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    data = write_beir(tmp_path / "beir", "q1\td1\t1\n")
    assert main(["evaluate", "--model", str(folder), "--task", "search", "--data", str(data), "--no-cache"]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert main(["export", "--model", str(folder), "--task", "search", "--output", str(tmp_path / "ex")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "tpu9"], "is not a torch device"),
        (["--device", "cuda:7"], "CUDA"),  # the message depends on the machine: see below
        (["--model", "/no/such/model"], "no model folder at /no/such/model"),
    ],
)
def test_bad_model_or_device_is_one_line(tmp_path, tiny_scimult, argv, message, capsys):
    data = write_beir(tmp_path / "beir", "q1\td1\t1\n")
    base = {"--model": str(tiny_scimult), "--task": "search", "--data": str(data)}
    base.update(dict(zip(argv[::2], argv[1::2])))
    assert main(["evaluate", *[x for kv in base.items() for x in kv], "--no-cache"]) == 2
    err = capsys.readouterr().err
    if message == "CUDA":
        message = ("--device 'cuda:7': this machine has" if torch.cuda.is_available()
                   else "--device 'cuda:7': no cuda device on this machine (available: cpu")
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_empty_batch_is_a_clear_error():
    model = tiny_model("attention")
    for shape in ((0, 5), (2, 0)):
        with pytest.raises(ValueError, match="Empty batch"):
            model(input_ids=torch.zeros(shape, dtype=torch.long), task="search")


def test_non_utf8_line_is_named(tmp_path):
    corpus = [json.dumps({"_id": "d0", "text": "fine"}).encode(), b'{"_id": "d1", "text": "caf\xe9"}']
    data = write_beir(tmp_path / "beir", "q1\td0\t1\n", corpus=corpus)
    with pytest.raises(DataFormatError, match=r"corpus.jsonl, line 2: not UTF-8"):
        load_beir(data)


def test_expert_layers_option_is_named(minilm_path, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["upcycle", "--source", minilm_path, "--output", str(tmp_path / "x"), "--expert-layers", "a,b"])
    assert "argument --expert-layers: invalid int value: 'a,b'" in capsys.readouterr().err


def test_float_task_ids_are_refused():
    model = tiny_model("attention")
    with pytest.raises(ValueError, match="integer expert ids"):
        model(input_ids=torch.tensor([[101, 102], [101, 102]]), task_ids=torch.tensor([0.0, 1.7]))


# --------------------------------------------------------------------------- 7. silently wrong metrics
@pytest.mark.parametrize("score, message", [("inf", "not a whole number"), ("0.6", "not a whole number"),
                                            ("x", "not a number")])
def test_qrels_scores_must_be_whole_numbers(tmp_path, score, message):
    path = tmp_path / "qrels.tsv"
    path.write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t{score}\n")
    with pytest.raises(DataFormatError, match=f"line 2: score '{score}' is {message}"):
        load_qrels(path)


def test_graded_relevance_is_kept_and_all_zero_qrels_refused(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1.0\nq2\td3\t0\n")
    assert load_qrels(path) == {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 0}}
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\nq2\td3\t0\n")
    with pytest.raises(DataFormatError, match="no document is relevant"):
        load_qrels(path)


def test_unknown_split_of_a_set_without_splits_is_refused(tmp_path):
    folder = tmp_path / "fos"
    folder.mkdir()
    (folder / "labels.jsonl").write_text(json.dumps({"id": "a", "name": "Biology"}) + "\n")
    (folder / "papers.jsonl").write_text(json.dumps({"id": "p", "title": "Cells", "labels": ["a"]}) + "\n")
    assert len(load_classification(folder, split="test").papers) == 1
    assert load_classification(folder, split="all").split == "all"
    with pytest.raises(DataFormatError, match="has no split 'validation'"):
        load_classification(folder, split="validation")


def test_output_is_checked_before_any_work(tmp_path, tiny_scimult, capsys, monkeypatch):
    from sentence_transformers import SentenceTransformer

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded before checking --output")

    monkeypatch.setattr(SentenceTransformer, "encode", no_encoding)
    data = write_beir(tmp_path / "beir", "q1\td1\t1\n")
    (tmp_path / "results").mkdir()
    assert main(["evaluate", "--model", str(tiny_scimult), "--task", "search", "--data", str(data),
                 "--output", str(tmp_path / "results")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_fresh_interpreter_reports_no_traceback_for_a_missing_model(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scimult_hf.cli", "export", "--model", str(tmp_path / "nope"),
                           "--task", "search", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_nested_staging_of_a_dead_writer_is_removed_with_its_target(tmp_path):
    dead = dead_pid()
    nested = tmp_path / f"..model.tmp-{dead}-0123abcd.tmp-{dead}-89abcdef"
    nested.mkdir()
    remove_leftovers(tmp_path, "model")
    assert not nested.exists()


# ------------------------------------------------------------------------------------------ found by outside trials
def test_a_model_that_exists_nowhere_fails_at_once_naming_it(tmp_path, capsys):
    """Offline, an unknown Hub id is named in one line before any library loads (not after minutes of retries);
    a missing local folder likewise."""
    import time

    start = time.perf_counter()
    assert main(["export", "--model", "no/such-model", "--task", "search", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'no/such-model'" in err and "HF_HUB_OFFLINE" in err
    assert main(["export", "--model", str(tmp_path / "missing"), "--task", "search", "--output", str(tmp_path / "y")]) == 2
    assert "no model folder at" in capsys.readouterr().err
    assert time.perf_counter() - start < 30  # seconds, not minutes (generous for a loaded CI machine)


def test_qrels_score_out_of_range_is_named(tmp_path):
    data = write_beir(tmp_path / "beir", "q1\td1\t100000000000000000000\n")
    with pytest.raises(DataFormatError, match=r"qrels/test.tsv, line 2: score '100000000000000000000' is out of range"):
        load_beir(data)


def test_a_full_disk_is_one_line_and_replaces_nothing(tmp_path, monkeypatch, capsys):
    import errno

    from scimult_hf import io

    out = tmp_path / "out.json"
    out.write_text("old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="no space left to write"):
        with io.atomic_file(out) as tmp:
            full(tmp)
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with pytest.raises(DiskFullError):
        with io.atomic_directory(tmp_path / "folder"):
            raise OSError("38400 requested and 17376 written")  # numpy's short write
    assert not (tmp_path / "folder").exists()


def test_task_ids_of_the_wrong_type_and_per_row_lists_of_the_wrong_length_are_named(tiny_scimult):
    from scimult_hf.configuration_scimult import SciMultInputError

    st = load_sentence_transformer(tiny_scimult)
    batch = st.tokenize(PAPERS[:2])
    with pytest.raises(SciMultInputError, match="`task_ids` must be an integer expert id"):
        st[0].model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], task_ids="1")
    with pytest.raises(SciMultInputError, match="3 names for a batch of 2 rows"):
        st.encode(PAPERS[:2], task=["search", "classification", "search"])


def test_classify_help_states_its_real_default():
    from scimult_hf.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["classify"]
    top_k = next(a for a in sub._actions if a.dest == "top_k")
    assert top_k.default == 3 and "default: 3" in top_k.help


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path, tiny_scimult, capsys):
    """A file where the output's folder should be, and a read-only file system: one line naming the path, not a
    traceback."""
    import errno

    from scimult_hf.errors import OutputError, is_user_error
    from scimult_hf.io import atomic_write_text

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="a-file is a file, not a folder"):
        atomic_write_text(blocker / "results.json", "{}")
    assert is_user_error(OSError(errno.EROFS, "Read-only file system", str(tmp_path)))
    assert not is_user_error(OSError(errno.EIO, "Input/output error"))
    papers = tmp_path / "papers.jsonl"
    papers.write_text("".join(json.dumps({"id": str(i), "title": t, "abstract": ""}) + "\n" for i, t in enumerate(PAPERS)))
    code = main(["encode", "--model", str(tiny_scimult), "--input", str(papers), "--output", str(blocker / "index"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "a-file is a file, not a folder" in err and "Traceback" not in err, err


def test_weights_with_nan_inside_are_refused_at_load(tmp_path, tiny_scimult, capsys):
    """4 KB of NaN bytes written into the middle of model.safetensors: the header still parses, so only a finite
    check on load stops NaN embeddings."""
    model = tmp_path / "model"
    shutil.copytree(tiny_scimult, model)
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = b"\xff\xff\xc0\x7f" * 1024  # float32 NaN
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="hold NaN or infinite values"):
        SciMultModel.from_pretrained(model)
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"id": "1", "title": "x", "abstract": "y"}) + "\n")
    assert main(["encode", "--model", str(model), "--input", str(papers), "--output", str(tmp_path / "c")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err


def test_export_inside_its_model_folder_and_a_checkpoint_folder_are_refused(tmp_path, tiny_scimult, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_scimult, model)
    assert main(["export", "--model", str(model), "--task", "search", "--output", str(model / "sub")]) == 2
    assert "is inside the input folder" in capsys.readouterr().err
    assert not (model / "sub").exists()
    (tmp_path / "downloads").mkdir()
    assert main(["convert", "--checkpoint", str(tmp_path / "downloads"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is a folder; give the .ckpt file itself" in err and "does not exist" not in err


def test_json_errors_read_as_one_phrase(tmp_path):
    from scimult_hf.retrieval.data import DataFormatError, load_labels

    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"id": "1", "name": "unterminated')  # the last line, without its newline
    with pytest.raises(DataFormatError) as err:
        load_labels(bad)
    assert "at at" not in str(err.value) and "Unterminated string starting at column" in str(err.value)
