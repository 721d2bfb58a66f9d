"""The checkpoint converter against the original SciMult code (golden fixtures in ../shared/fixtures).

Each fixture holds a checkpoint in the original training format and the token ids and embeddings that
the unmodified original inference code computed from it. A converted folder must reproduce both, through
transformers remote code (in a process that never imports scimult_hf), through sentence-transformers, and
through the per-task plain-BERT exports. Every way a file can be unsafe or unconvertible must stop the
conversion with a message and leave nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from helpers import hub_cache, run_python
from safetensors.torch import load_file

from scimult_hf.cli import main
from scimult_hf.convert import (
    ALLOWED_GLOBALS,
    BaseModelError,
    CheckpointError,
    config_from_checkpoint,
    convert_checkpoint,
    expert_layers_for,
    load_original_checkpoint,
    plain,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = (ROOT / ".." / "shared" / "fixtures").resolve()
NAMES = ["scimult_moe_attn_s1", "scimult_vanilla_s3", "scimult_moe_fwd_s4"]
TASKS = ["search", "link_prediction", "classification"]  # expert ids 0, 1, 2
TOL = 1e-5

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"golden fixtures not found at {FIXTURES} (../shared/fixtures next to the project)"
)


def fixture_dir(name: str) -> Path:
    path = FIXTURES / name
    if not (path / "checkpoint.ckpt").is_file():
        pytest.skip(f"fixture {name} not found at {path}")
    return path


def texts_of(name: str) -> list[str]:
    return [p["text"] for p in json.loads((FIXTURES / name / "texts.json").read_text())["papers"]]


def reference(name: str) -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / name / "embeddings.safetensors")


def expert_keys(name: str) -> list[tuple[str | None, str]]:
    """(task, reference key) pairs: the three experts, or no task for the vanilla model."""
    keys = sorted(reference(name))
    if keys == ["no_expert"]:
        return [(None, "no_expert")]
    return [(TASKS[int(k.split("_")[1])], k) for k in keys]


def cases() -> list[tuple[str, str | None, str]]:
    return [(name, task, key) for name in NAMES if (FIXTURES / name).is_dir() for task, key in expert_keys(name)]


def max_diff(a, b) -> float:
    return float((torch.as_tensor(a, dtype=torch.float32) - b).abs().max())


# --------------------------------------------------------------------------------------------- conversions
@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Each fixture converted once for the module."""
    root = tmp_path_factory.mktemp("converted")
    out = {}
    for name in NAMES:
        if not (FIXTURES / name).is_dir():
            continue
        fx = FIXTURES / name
        out[name] = convert_checkpoint(fx / "checkpoint.ckpt", root / name, tokenizer=fx / "bert_config")
    return out


def folder(converted, name) -> Path:
    if name not in converted:
        pytest.skip(f"fixture {name} not available")
    return converted[name]


@pytest.mark.parametrize("name", NAMES)
def test_folder_is_complete(converted, name):
    out = folder(converted, name)
    for file in ("config.json", "model.safetensors", "configuration_scimult.py", "modeling_scimult.py",
                 "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                 "tokenizer_config.json", "README.md", "conversion.json"):
        assert (out / file).is_file(), file
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_scimult.SciMultConfig",
                                  "AutoModel": "modeling_scimult.SciMultModel"}
    modules = json.loads((out / "modules.json").read_text())
    assert modules[0]["kwargs"] == ["task"]
    assert [p for p in out.parent.iterdir() if p.name.startswith(f".{name}")] == []  # no staging leftovers


@pytest.mark.parametrize(
    "name, expert_type, layers",
    [
        ("scimult_moe_attn_s1", "attention", [1, 3]),
        ("scimult_vanilla_s3", None, []),
        ("scimult_moe_fwd_s4", "ffn", [1, 3]),
    ],
)
def test_config_derived_from_checkpoint(converted, name, expert_type, layers):
    out = folder(converted, name)
    config = json.loads((out / "config.json").read_text())
    bert = json.loads((FIXTURES / name / "bert_config" / "config.json").read_text())
    assert config["expert_type"] == expert_type
    if expert_type:
        assert config["expert_layers"] == layers
    assert config["tasks"] == TASKS
    assert config["pooling"] == "cls" and config["normalize"] is False  # mean_pool false: [CLS], not normalised
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                "max_position_embeddings", "type_vocab_size"):
        assert config[key] == bert[key], key
    weights = load_file(out / "model.safetensors")
    assert not any("pooler" in k or "position_ids" in k for k in weights)


@pytest.mark.parametrize("name", NAMES)
def test_card_and_report(converted, name):
    import hashlib

    out = folder(converted, name)
    ckpt = FIXTURES / name / "checkpoint.ckpt"
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n")
    assert "library_name: sentence-transformers" in card and "pipeline_tag: sentence-similarity" in card
    assert sha in card and "checkpoint.ckpt" in card and f"{ckpt.stat().st_size:,}" in card
    assert str(FIXTURES / name / "bert_config") in card  # which tokenizer was used
    report = json.loads((out / "conversion.json").read_text())
    assert report["source_sha256"] == sha
    for dropped in ("optimizer_dict", "scheduler_dict", "embeddings.position_ids", "pooler.dense.weight"):
        assert dropped in report["dropped"]
    assert report["encoder_params"]["pretrained_model_cfg"] == "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract"


# --------------------------------------------------------------------------------------------- equality
@pytest.mark.parametrize("name", NAMES)
def test_tokenization_matches_original(converted, name):
    from transformers import AutoTokenizer

    out = folder(converted, name)
    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    assert tokenizer.model_max_length == 512
    assert tokenizer.tokenize("Protein FOLDING") == tokenizer.tokenize("protein folding")
    expected = json.loads((FIXTURES / name / "tokenization.json").read_text())
    batch = tokenizer(texts_of(name), padding="max_length", max_length=512, truncation=True)
    assert batch["input_ids"] == expected["input_ids"]
    assert batch["attention_mask"] == expected["attention_mask"]
    assert all(t == 0 for row in batch["token_type_ids"] for t in row)


AUTOMODEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModel, AutoTokenizer

    jobs = json.loads(sys.argv[1])
    results = {}
    for job in jobs:
        model = AutoModel.from_pretrained(job["path"], trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(job["path"], trust_remote_code=True)
        batch = tokenizer(job["texts"], padding="max_length", max_length=512, truncation=True, return_tensors="pt")
        with torch.no_grad():
            for task in job["tasks"]:
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], task=task)
                results[job["name"] + "/" + str(task)] = out.pooler_output.tolist()
    assert "scimult_hf" not in sys.modules, "remote code must not need the scimult_hf package"
    print("RESULT " + json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def automodel_embeddings(converted) -> dict[str, list]:
    """Embeddings through AutoModel + remote code, in a fresh interpreter that never imports scimult_hf."""
    jobs = [
        {"name": name, "path": str(path), "texts": texts_of(name), "tasks": [t for t, _ in expert_keys(name)]}
        for name, path in converted.items()
    ]
    proc = run_python(AUTOMODEL_SCRIPT, json.dumps(jobs), env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
                      cwd=Path(jobs[0]["path"]).parent if jobs else None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("name, task, key", cases())
@pytest.mark.smoke
def test_automodel_remote_code_matches_original(automodel_embeddings, name, task, key):
    got = automodel_embeddings[f"{name}/{task}"]
    assert max_diff(got, reference(name)[key]) <= TOL


@pytest.fixture(scope="module")
def sentence_models(converted):
    from sentence_transformers import SentenceTransformer

    models = {name: SentenceTransformer(str(path), trust_remote_code=True, device="cpu")
              for name, path in converted.items()}
    return models


@pytest.mark.parametrize("name, task, key", cases())
@pytest.mark.smoke
def test_sentence_transformer_matches_original(sentence_models, name, task, key):
    if name not in sentence_models:
        pytest.skip(f"fixture {name} not available")
    model = sentence_models[name]
    assert model.max_seq_length == 512
    kwargs = {"task": task} if task else {}
    got = model.encode(texts_of(name), convert_to_tensor=True, **kwargs)
    assert max_diff(got, reference(name)[key]) <= TOL
    if task == "search":  # encode_query / encode_document reach the search expert through the aliases
        assert max_diff(model.encode_query(texts_of(name), convert_to_tensor=True), reference(name)[key]) <= TOL
        assert max_diff(model.encode_document(texts_of(name), convert_to_tensor=True), reference(name)[key]) <= TOL


@pytest.mark.parametrize("name, task, key", cases())
@pytest.mark.smoke
def test_per_task_export_matches_original(converted, tmp_path, name, task, key):
    from sentence_transformers import SentenceTransformer

    from scimult_hf import export_task

    out = export_task(folder(converted, name), task, tmp_path / "export")
    model = SentenceTransformer(str(out), device="cpu")  # plain BERT: no remote code
    got = model.encode(texts_of(name), convert_to_tensor=True)
    assert max_diff(got, reference(name)[key]) <= TOL


# --------------------------------------------------------------------------------------------- config logic
def test_expert_layers_for_modn():
    assert expert_layers_for("mod2:attn", 12) == ("attention", [1, 3, 5, 7, 9, 11])
    assert expert_layers_for("mod3:fwd", 12) == ("ffn", [2, 5, 8, 11])
    assert expert_layers_for("mod1:attn", 4) == ("attention", [0, 1, 2, 3])
    for bad in ("top2:attn", "mod0:attn", "mod2:ffn", "mod2", ""):
        with pytest.raises(CheckpointError, match="unknown moe_type"):
            expert_layers_for(bad, 12)


def _state(name: str) -> dict:
    from scimult_hf.convert.mapping import ConversionReport, rename_keys, shared_encoder_state

    checkpoint = load_original_checkpoint(FIXTURES / name / "checkpoint.ckpt")
    report = ConversionReport(checkpoint=Path(name))
    return checkpoint["encoder_params"], rename_keys(shared_encoder_state(checkpoint["model_dict"], report), report)


def test_config_accepts_dictconfig_and_plain_dict():
    omegaconf = pytest.importorskip("omegaconf")
    params, state = _state(fixture_dir("scimult_moe_attn_s1").name)
    base = {"num_attention_heads": 4}
    from_dict = config_from_checkpoint(dict(params), state, base)
    from_dictconfig = config_from_checkpoint(omegaconf.OmegaConf.create(dict(params)), state, base)
    assert from_dict.to_dict() == from_dictconfig.to_dict()
    assert from_dict.expert_type == "attention" and from_dict.expert_layers == [1, 3]


def test_mean_pool_means_mean_pooling_and_normalisation():
    params, state = _state(fixture_dir("scimult_vanilla_s3").name)
    config = config_from_checkpoint({**params, "mean_pool": True}, state, {"num_attention_heads": 2})
    assert config.pooling == "mean" and config.normalize is True


@pytest.mark.parametrize(
    "change, message",
    [
        ({"shared_encoder": False}, "shared_encoder is false"),
        ({"projection_dim": 768}, "projection_dim is 768"),
        ({"moe_type": "top2:attn"}, "unknown moe_type 'top2:attn'"),
        ({"moe_type": "mod3:attn"}, "expect experts 0..2 in layers [2]"),
        ({"num_expert": 2}, "expect experts 0..1"),
        ({"use_infer_expert": True}, "use_infer_expert is true"),
    ],
)
def test_unsupported_encoder_params_stop(change, message):
    params, state = _state(fixture_dir("scimult_moe_attn_s1").name)
    with pytest.raises(CheckpointError) as err:
        config_from_checkpoint({**params, **change}, state, {"num_attention_heads": 4})
    assert message in str(err.value)


def test_heads_must_come_from_somewhere():
    params, state = _state(fixture_dir("scimult_vanilla_s3").name)
    with pytest.raises(BaseModelError, match="num_attention_heads"):
        config_from_checkpoint(params, state, {})
    with pytest.raises(BaseModelError, match="hidden_size=768"):
        config_from_checkpoint(params, state, {"num_attention_heads": 12, "hidden_size": 768})


# --------------------------------------------------------------------------------------------- CLI, options
def test_cli_convert(tmp_path, converted):
    fx = fixture_dir("scimult_vanilla_s3")
    out = tmp_path / "cli-out"
    assert main(["convert", "--checkpoint", str(fx / "checkpoint.ckpt"), "--output", str(out),
                 "--tokenizer", str(fx / "bert_config")]) == 0
    reference_folder = converted["scimult_vanilla_s3"]
    assert (out / "model.safetensors").read_bytes() == (reference_folder / "model.safetensors").read_bytes()


def test_existing_output_needs_overwrite(tmp_path):
    fx = fixture_dir("scimult_vanilla_s3")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_checkpoint(fx / "checkpoint.ckpt", out, tokenizer=fx / "bert_config")
    assert (out / "keep.txt").read_text() == "mine"
    convert_checkpoint(fx / "checkpoint.ckpt", out, tokenizer=fx / "bert_config", overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_tokenizer_from_local_hub_cache_when_offline(tmp_path):
    """Without --tokenizer the base model comes from the Hub (here: a Hub cache, offline) and the card says so."""
    fx = fixture_dir("scimult_vanilla_s3")
    hub_cache(tmp_path / "hub", "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract", fx / "bert_config")
    out = tmp_path / "out"
    script = (
        "import sys\n"
        "from scimult_hf.convert import convert_checkpoint\n"
        f"convert_checkpoint({str(fx / 'checkpoint.ckpt')!r}, {str(out)!r})\n"
        "assert 'omegaconf' not in sys.modules, 'the converter must not need omegaconf'\n"
    )
    proc = run_python(script, env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
                                   "HF_HOME": str(tmp_path / "hf-home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    source = json.loads((out / "conversion.json").read_text())["tokenizer_source"]
    assert "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract" in source and "local Hub cache" in source
    assert "local Hub cache" in (out / "README.md").read_text()


def test_missing_tokenizer_fails_fast_and_clearly(tmp_path, monkeypatch):
    from huggingface_hub import constants

    fx = fixture_dir("scimult_vanilla_s3")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    with pytest.raises(BaseModelError) as err:
        convert_checkpoint(fx / "checkpoint.ckpt", out)
    assert "--tokenizer" in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)
    assert not out.exists()


# --------------------------------------------------------------------------------------------- failures
def plain_checkpoint(name: str) -> dict:
    """A fixture checkpoint read with the safe loader, every omegaconf object turned into plain data."""
    checkpoint = load_original_checkpoint(fixture_dir(name) / "checkpoint.ckpt")
    return {key: plain(value) for key, value in checkpoint.items()}


def convert_fails(tmp_path: Path, checkpoint: Path, name: str = "scimult_moe_attn_s1") -> str:
    """Convert, expect CheckpointError, check that nothing was written; returns the message."""
    out = tmp_path / "out"
    with pytest.raises(CheckpointError) as err:
        convert_checkpoint(checkpoint, out, tokenizer=FIXTURES / name / "bert_config")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    return str(err.value)


class RunsCode:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_every_load_is_restricted_and_memory_mapped(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    before = set(map(str, torch.serialization.get_safe_globals()))
    fx = fixture_dir("scimult_vanilla_s3")
    convert_checkpoint(fx / "checkpoint.ckpt", tmp_path / "out", tokenizer=fx / "bert_config")
    assert calls and all(c.get("weights_only") is True and c.get("mmap") is True for c in calls)
    assert set(map(str, torch.serialization.get_safe_globals())) == before  # the allow-list did not leak


def test_plain_dict_encoder_params_convert_exactly(tmp_path):
    name = "scimult_vanilla_s3"
    path = tmp_path / "plain.ckpt"
    torch.save(plain_checkpoint(name), path)
    out = convert_checkpoint(path, tmp_path / "out", tokenizer=FIXTURES / name / "bert_config")
    from scimult_hf import SciMultModel

    model = SciMultModel.from_pretrained(out).eval()
    batch = json.loads((FIXTURES / name / "tokenization.json").read_text())
    with torch.no_grad():
        got = model(input_ids=torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"]))
    assert max_diff(got.pooler_output, reference(name)["no_expert"]) <= TOL


def test_pickle_that_runs_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = plain_checkpoint("scimult_moe_attn_s1")
    checkpoint["epoch"] = RunsCode(marker)
    path = tmp_path / "evil.ckpt"
    torch.save(checkpoint, path)

    message = convert_fails(tmp_path, path)
    assert "posix.system" in message or "os.system" in message or "nt.system" in message
    assert "was not unpickled" in message
    assert not marker.exists()

    # Even without the pre-scan, torch's restricted unpickler refuses it: defence in depth.
    from scimult_hf.convert import checkpoint as checkpoint_module

    original = checkpoint_module._check_archive
    checkpoint_module._check_archive = lambda path, records=None: None
    try:
        with pytest.raises(CheckpointError, match="refused or failed"):
            load_original_checkpoint(path)
    finally:
        checkpoint_module._check_archive = original
    assert not marker.exists()

    # Control: the payload is live, a full unpickle runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_other_global_is_refused(tmp_path):
    checkpoint = plain_checkpoint("scimult_moe_attn_s1")
    checkpoint["epoch"] = argparse.Namespace(epoch=9)
    path = tmp_path / "namespace.ckpt"
    torch.save(checkpoint, path, pickle_protocol=2)
    message = convert_fails(tmp_path, path)
    assert "['argparse.Namespace']" in message and "expected only" in message
    assert all(name in message for name in ALLOWED_GLOBALS)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_unsupported_pickle_opcodes_stop_with_torchs_reason(tmp_path):
    """torch's pickle scanner reads protocol 2 (torch.save's default, the released files); protocol 4
    framing it refuses before anything is unpickled, and the message passes on why."""
    path = tmp_path / "p4.ckpt"
    torch.save(plain_checkpoint("scimult_vanilla_s3"), path, pickle_protocol=4)
    message = convert_fails(tmp_path, path, "scimult_vanilla_s3")
    assert "could not be scanned" in message and "Unsupported operand" in message and "not unpickled" in message


@pytest.mark.parametrize("cut", ["half", "tail", "empty", "garbage"])
def test_truncated_or_corrupt_file(tmp_path, cut):
    data = (fixture_dir("scimult_moe_attn_s1") / "checkpoint.ckpt").read_bytes()
    data = {"half": data[: len(data) // 2], "tail": data[:-100], "empty": b"", "garbage": os.urandom(4096)}[cut]
    path = tmp_path / "broken.ckpt"
    path.write_bytes(data)
    message = convert_fails(tmp_path, path)
    assert "truncated or corrupt" in message and f"{len(data):,} bytes" in message


def test_plain_state_dict_is_not_a_scimult_checkpoint(tmp_path):
    checkpoint = plain_checkpoint("scimult_vanilla_s3")
    path = tmp_path / "state_dict.ckpt"
    torch.save(OrderedDict((k, v) for k, v in checkpoint["model_dict"].items()), path)
    message = convert_fails(tmp_path, path, "scimult_vanilla_s3")
    assert "plain state dict" in message and "model_dict" in message and "encoder_params" in message


def test_dict_without_encoder_params_is_not_a_scimult_checkpoint(tmp_path):
    checkpoint = plain_checkpoint("scimult_vanilla_s3")
    del checkpoint["encoder_params"]
    path = tmp_path / "no_params.ckpt"
    torch.save(checkpoint, path)
    message = convert_fails(tmp_path, path, "scimult_vanilla_s3")
    assert "lacks ['encoder_params']" in message and "'optimizer_dict'" in message


PREFIXES = ("question_model", "ctx_model")


def _add_gate(model_dict):
    for prefix in PREFIXES:
        model_dict[f"{prefix}.encoder.encoder.layer.1.attention.self.moe_gate.weight"] = torch.zeros(3, 24)


def _add_projection_head(model_dict):
    model_dict["question_model.linear.weight"] = torch.zeros(8, 24)


def _drop_layer_norm_bias(model_dict):
    for prefix in PREFIXES:
        del model_dict[f"{prefix}.encoder.encoder.layer.2.output.LayerNorm.bias"]


def _drop_an_expert(model_dict):
    for prefix in PREFIXES:
        for part in ("weight", "bias"):
            del model_dict[f"{prefix}.encoder.encoder.layer.3.attention.self.moe_key.2.{part}"]


def _unshare_one_weight(model_dict):
    key = "ctx_model.encoder.encoder.layer.0.attention.self.query.weight"
    model_dict[key] = model_dict[key].clone() + 1e-3


def _drop_from_one_half(model_dict):
    del model_dict["ctx_model.encoder.embeddings.LayerNorm.bias"]


@pytest.mark.parametrize("edit, expected", [
    (_add_gate, ["map nowhere", "question_model.encoder.encoder.layer.1.attention.self.moe_gate.weight"]),
    (_add_projection_head, ["map nowhere", "question_model.linear.weight"]),
    (_drop_layer_norm_bias, ["left unfilled", "encoder.layer.2.output.LayerNorm.bias"]),
    (_drop_an_expert, ["left unfilled", "encoder.layer.3.attention.self.key.experts.2.bias"]),
    (_unshare_one_weight, ["not shared", "encoder.layer.0.attention.self.query.weight"]),
    (_drop_from_one_half, ["not shared", "embeddings.LayerNorm.bias"]),
], ids=lambda v: v.__name__.strip("_") if callable(v) else "")
def test_model_dict_that_does_not_fit_is_refused(tmp_path, edit, expected):
    checkpoint = plain_checkpoint("scimult_moe_attn_s1")
    edit(checkpoint["model_dict"])
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    message = convert_fails(tmp_path, path)
    assert all(text in message for text in expected), message


def test_equal_but_separately_stored_encoders_are_accepted(tmp_path):
    name = "scimult_vanilla_s3"
    checkpoint = plain_checkpoint(name)
    model_dict = checkpoint["model_dict"]
    for key in list(model_dict):
        if key.startswith("ctx_model."):
            model_dict[key] = model_dict[key].clone()
    path = tmp_path / "copies.ckpt"
    torch.save(checkpoint, path)
    out = convert_checkpoint(path, tmp_path / "out", tokenizer=FIXTURES / name / "bert_config")
    shared = convert_checkpoint(FIXTURES / name / "checkpoint.ckpt", tmp_path / "shared",
                                tokenizer=FIXTURES / name / "bert_config")
    got, expected = load_file(out / "model.safetensors"), load_file(shared / "model.safetensors")
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
