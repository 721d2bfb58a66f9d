"""Saved folders: remote code, Hub-cache offline loading, sentence-transformers, upcycling and export."""

import filecmp
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PAPERS, hub_cache, run_python, tiny_model
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

import scimult_hf
from scimult_hf import (
    INSTRUCTION_PROMPTS,
    SciMultModel,
    export_task,
    load_sentence_transformer,
    save_sentence_transformer,
)

TASKS = ["search", "link_prediction", "classification"]
PACKAGE_DIR = Path(scimult_hf.__file__).parent


def run_fresh_python(code: str, **env) -> dict:
    """Run code in a fresh interpreter (never importing scimult_hf) and return the JSON it prints last."""
    guard = textwrap.dedent(
        """
        import sys as _sys
        assert "scimult_hf" not in _sys.modules, "scimult_hf was imported"
        """
    )
    proc = run_python(textwrap.dedent(code) + guard, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", **env},
                      cwd="/", timeout=300)
    assert "[y/N]" not in proc.stdout + proc.stderr, "an interactive remote-code prompt was shown"
    assert proc.returncode == 0, proc.stderr[-3000:]
    marker = "RESULT-JSON:"
    line = next((out for out in proc.stdout.splitlines() if marker in out), None)
    assert line is not None, proc.stdout[-2000:]
    return json.loads(line.split(marker, 1)[1])


@pytest.fixture(scope="module")
def tiny_folder(tiny_scimult):
    """The shared tiny folder and the model it holds."""
    return tiny_scimult, tiny_model("attention", seed=7)


def reference_embeddings(model, tokenizer, texts=PAPERS):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return {t: model(**batch, task=t).pooler_output.numpy() for t in TASKS}


def test_saved_folder_is_complete(tiny_folder):
    path, _ = tiny_folder
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "scimult"
    assert config["auto_map"] == {"AutoConfig": "configuration_scimult.SciMultConfig",
                                  "AutoModel": "modeling_scimult.SciMultModel"}
    for name in ("configuration_scimult.py", "modeling_scimult.py"):
        assert filecmp.cmp(path / name, PACKAGE_DIR / name, shallow=False), f"{name} differs from the package file"
    assert (path / "model.safetensors").is_file() and not list(path.glob("*.bin"))
    modules = json.loads((path / "modules.json").read_text())
    assert modules[0]["type"].endswith("Transformer") and modules[0]["kwargs"] == ["task"]
    assert modules[1]["type"].endswith("Pooling") and len(modules) == 2  # cls, not normalised
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_cls_token"] and not pooling["pooling_mode_mean_tokens"]
    st_config = json.loads((path / "config_sentence_transformers.json").read_text())
    assert st_config["similarity_fn_name"] == "dot"
    assert not list(path.parent.glob(".*tmp*")), "temporary folder left behind"


@pytest.mark.smoke
def test_remote_code_round_trip_without_scimult_hf(tiny_folder, tokenizer):
    path, model = tiny_folder
    expected = reference_embeddings(model, tokenizer)
    got = run_fresh_python(f"""
        import json, torch
        from transformers import AutoModel, AutoTokenizer
        path = {str(path)!r}
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        batch = tok({PAPERS!r}, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            out = {{t: model(**batch, task=t).pooler_output.tolist() for t in {TASKS!r}}}
        out["class"] = type(model).__module__ + "." + type(model).__name__
        print("RESULT-JSON:" + json.dumps(out), flush=True)
    """)
    assert got["class"].startswith("transformers_modules.") and got["class"].endswith("SciMultModel")
    for t in TASKS:
        np.testing.assert_allclose(np.array(got[t]), expected[t], atol=1e-6, rtol=0)


def test_the_remote_code_class_saves_and_exports_like_ours(tiny_folder, tokenizer, tmp_path):
    """transformers 5.4 gives a folder's own modeling_scimult.py class for trust_remote_code loads, even with
    ours registered: saving and exporting that model must work, and write what ours writes."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    path, model = tiny_folder
    remote_class = get_class_from_dynamic_module("modeling_scimult.SciMultModel", str(path))
    assert remote_class is not SciMultModel and remote_class.__module__.startswith("transformers_modules.")
    remote = remote_class.from_pretrained(path).eval()
    save_sentence_transformer(remote, tokenizer, tmp_path / "saved")
    export_task(remote, "search", tmp_path / "export", tokenizer=tokenizer)
    expected = reference_embeddings(model, tokenizer)
    saved = load_sentence_transformer(tmp_path / "saved")
    np.testing.assert_allclose(saved.encode(PAPERS, task="classification"), expected["classification"], atol=1e-5)
    export = SentenceTransformer(str(tmp_path / "export"))
    np.testing.assert_allclose(export.encode(PAPERS), expected["search"], atol=1e-5)


def test_hub_cache_layout_loads_offline_by_repo_id(tiny_folder, tokenizer, tmp_path):
    path, model = tiny_folder
    hub_cache(tmp_path / "hub", "scimult-org/scimult-tiny", path)
    expected = reference_embeddings(model, tokenizer)
    got = run_fresh_python(f"""
        import json, torch
        from transformers import AutoModel, AutoTokenizer
        from sentence_transformers import SentenceTransformer
        model = AutoModel.from_pretrained("scimult-org/scimult-tiny", trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained("scimult-org/scimult-tiny", trust_remote_code=True)
        batch = tok({PAPERS!r}, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            out = {{t: model(**batch, task=t).pooler_output.tolist() for t in {TASKS!r}}}
        st = SentenceTransformer("scimult-org/scimult-tiny", trust_remote_code=True, device="cpu")
        out["st_classification"] = st.encode({PAPERS!r}, task="classification").tolist()
        print("RESULT-JSON:" + json.dumps(out), flush=True)
    """, HF_HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "hub"))
    for t in TASKS:
        np.testing.assert_allclose(np.array(got[t]), expected[t], atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.array(got["st_classification"]), expected["classification"], atol=1e-5, rtol=0)


@pytest.mark.smoke
def test_sentence_transformer_encode_routes_by_task(tiny_folder, tokenizer):
    path, model = tiny_folder
    expected = reference_embeddings(model, tokenizer)
    st = load_sentence_transformer(path)
    got = {t: st.encode(PAPERS, task=t) for t in TASKS}
    for t in TASKS:
        np.testing.assert_allclose(got[t], expected[t], atol=1e-5, rtol=0)
    assert np.abs(got["search"] - got["classification"]).max() > 1e-3
    np.testing.assert_allclose(st.encode_query(PAPERS), expected["search"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(st.encode_document(PAPERS), expected["search"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs a task.*Valid tasks"):
        st.encode(PAPERS)
    with pytest.raises(ValueError, match="Unknown task 'retrieval'"):
        st.encode(PAPERS, task="retrieval")


def test_instruction_variant_uses_prompts(tmp_path, tokenizer):
    dense = tiny_model(None, seed=8)
    path = save_sentence_transformer(dense, tokenizer, tmp_path / "dense", prompts=INSTRUCTION_PROMPTS)
    st = load_sentence_transformer(path)
    assert st.prompts["classification"] == INSTRUCTION_PROMPTS["classification"]
    got = st.encode(PAPERS, prompt_name="classification")
    texts = [INSTRUCTION_PROMPTS["classification"] + p for p in PAPERS]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        expected = dense(**batch).pooler_output.numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.abs(got - st.encode(PAPERS, prompt_name="search")).max() > 1e-3
    # encode_query picks the "query" prompt (the search instruction)
    np.testing.assert_allclose(st.encode_query(PAPERS), st.encode(PAPERS, prompt_name="search"), atol=1e-6, rtol=0)
    # the plain-BERT export keeps the prompts
    exported = SentenceTransformer(str(export_task(path, None, tmp_path / "dense-bert")), device="cpu")
    assert {k: exported.prompts[k] for k in INSTRUCTION_PROMPTS} == INSTRUCTION_PROMPTS
    np.testing.assert_allclose(exported.encode(PAPERS, prompt_name="classification"), got, atol=1e-5, rtol=0)


@pytest.mark.smoke
def test_upcycled_minilm_equals_source_for_every_task(minilm_scimult, minilm_path):
    texts = PAPERS + ["Infection in total joint replacement. [SEP] " + "Although a small number of infections " * 40]
    source = SentenceTransformer(minilm_path, device="cpu")
    expected = source.encode(texts)
    st = load_sentence_transformer(minilm_scimult)
    assert st.max_seq_length == 256 and st.similarity_fn_name == "cosine"
    config = SciMultModel.config_class.from_pretrained(minilm_scimult)
    assert (config.pooling, config.normalize, config.expert_layers) == ("mean", True, [1, 3, 5])
    for task in TASKS:
        np.testing.assert_allclose(st.encode(texts, task=task), expected, atol=1e-5, rtol=0)


def test_exported_task_loads_as_plain_bert_without_scimult_hf(tiny_folder, tokenizer, tmp_path):
    path, model = tiny_folder
    expected = reference_embeddings(model, tokenizer)
    out = export_task(path, "link_prediction", tmp_path / "lp")
    assert not (out / "modeling_scimult.py").exists()
    assert json.loads((out / "config.json").read_text())["model_type"] == "bert"
    modules = json.loads((out / "modules.json").read_text())
    assert all(m["type"].startswith("sentence_transformers.") and "kwargs" not in m for m in modules)
    got = run_fresh_python(f"""
        import json
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer({str(out)!r}, device="cpu")
        print("RESULT-JSON:" + json.dumps({{"emb": st.encode({PAPERS!r}).tolist(), "arch": type(st[0].auto_model).__name__}}), flush=True)
    """)
    assert got["arch"] == "BertModel"
    np.testing.assert_allclose(np.array(got["emb"]), expected["link_prediction"], atol=1e-5, rtol=0)


def test_export_keeps_prompts_and_normalisation(tmp_path, minilm_scimult, minilm_path):
    out = export_task(minilm_scimult, "classification", tmp_path / "cls")
    st = SentenceTransformer(str(out), device="cpu")
    assert st.max_seq_length == 256 and st.similarity_fn_name == "cosine"
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Normalize"]
    np.testing.assert_allclose(st.encode(PAPERS), SentenceTransformer(minilm_path, device="cpu").encode(PAPERS),
                               atol=1e-5, rtol=0)


def test_failed_save_leaves_nothing(tmp_path, tokenizer, monkeypatch):
    """A save that fails half way (weights and tokenizer written, the sentence-transformers files not) leaves no
    output and no staging folder."""
    from scimult_hf.models import folder

    written = []

    def fail_after_the_weights(staging, *args, **kwargs):
        written.extend(p.name for p in staging.iterdir())
        raise OSError("disk full")

    monkeypatch.setattr(folder, "write_classic_sentence_transformers_files", fail_after_the_weights)
    with pytest.raises(OSError, match="disk full"):
        save_sentence_transformer(tiny_model("attention"), tokenizer, tmp_path / "x")
    assert "model.safetensors" in written  # the failure came after staging had started
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="SciMultModel"):
        save_sentence_transformer(torch.nn.Linear(2, 2), tokenizer, tmp_path / "x")


def test_cli_upcycle_and_export(tmp_path, minilm_path, capsys):
    from scimult_hf.cli import main

    assert main(["upcycle", "--source", minilm_path, "--output", str(tmp_path / "up"), "--expert-type", "ffn",
                 "--expert-layers", "4", "5"]) == 0
    config = json.loads((tmp_path / "up" / "config.json").read_text())
    assert config["expert_type"] == "ffn" and config["expert_layers"] == [4, 5]
    weights = load_file(tmp_path / "up" / "model.safetensors")
    assert "encoder.layer.4.output.LayerNorm.experts.2.weight" in weights
    assert main(["export", "--model", str(tmp_path / "up"), "--task", "nope", "--output", str(tmp_path / "ex")]) == 2
    assert "Unknown task 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "ex").exists()
    assert main(["export", "--model", str(tmp_path / "up"), "--task", "search", "--output", str(tmp_path / "ex")]) == 0
    assert (tmp_path / "ex" / "modules.json").is_file()


def test_upcycle_keeps_the_sources_prompts_and_default_prompt(minilm_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    from scimult_hf import upcycle

    source = SentenceTransformer(minilm_path, device="cpu")
    source.prompts, source.default_prompt_name = {"query": "query: ", "passage": "passage: "}, "passage"
    source.save(str(tmp_path / "source"))
    upcycle(tmp_path / "source", tmp_path / "up")
    saved = json.loads((tmp_path / "up" / "config_sentence_transformers.json").read_text())
    assert {"query": "query: ", "passage": "passage: "}.items() <= saved["prompts"].items()
    assert saved["default_prompt_name"] == "passage"


@pytest.mark.parametrize("command", ["export", pytest.param("encode-onnx", marks=pytest.mark.slow)])
def test_no_remote_code_prompt_in_a_terminal(tiny_scimult, tmp_path, command):
    """At a terminal transformers asks "Do you wish to run the custom code? [y/N]" (and waits) whenever a folder
    that names remote code is loaded without ``trust_remote_code``: the package's own loads never do that."""
    from helpers import PAPERS, run_in_terminal, write_jsonl

    if command == "export":
        argv = ["export", "--model", str(tiny_scimult), "--task", "search", "--output", str(tmp_path / "out")]
    else:
        pytest.importorskip("onnxruntime", reason="the onnx extra is part of the dev install")
        papers = write_jsonl(tmp_path / "papers.jsonl", [{"id": str(i), "title": t, "abstract": ""} for i, t in enumerate(PAPERS)])
        argv = ["encode", "--model", str(tiny_scimult), "--input", str(papers), "--output", str(tmp_path / "c"),
                "--backend", "onnx", "--quiet"]
    code, printed = run_in_terminal([sys.executable, "-m", "scimult_hf.cli", *argv],
                                    env={"SCIMULT_HF_CACHE": str(tmp_path / "cache")})
    assert "custom code" not in printed and "[y/N]" not in printed, printed[-2000:]
    assert code == 0, printed[-2000:]


@pytest.mark.smoke
def test_folders_use_the_long_standing_module_paths_readable_files_and_one_max_length(tiny_scimult, tmp_path):
    """A SciMult folder and an export: ``sentence_transformers.models.*`` class paths (read by sentence-transformers
    2.x-6.x, TEI, infinity), files any user can read (safetensors writes 0600), the tokenizer limited to the
    model's maximum sequence length."""
    import os
    import stat

    from scimult_hf import export_task

    export = export_task(tiny_scimult, "search", tmp_path / "export")
    for folder in (tiny_scimult, export):
        types = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        assert types[:2] == ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"]
        for path in folder.rglob("*"):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode & 0o044 == 0o044, f"{path.name} is {oct(mode)}: others cannot read it"
        limit = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu").max_seq_length
        assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == limit
        # the keys sentence-transformers 3-5, TEI and infinity read; none that only sentence-transformers 6 knows
        assert json.loads((folder / "sentence_bert_config.json").read_text()) == {"max_seq_length": limit,
                                                                                  "do_lower_case": False}
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        assert pooling["pooling_mode_cls_token"] and pooling["word_embedding_dimension"] == 32
        assert "pooling_mode" not in pooling and "embedding_dimension" not in pooling
        # raw `tokenizers` users truncate where the model does and get no fixed padding
        from tokenizers import Tokenizer

        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert len(raw.encode("protein folding").ids) == 4  # [CLS] protein folding [SEP], not 128 padded ids
        assert len(raw.encode("protein " * 1000).ids) == limit
    st = SentenceTransformer(str(tiny_scimult), trust_remote_code=True, device="cpu")  # task routing intact
    assert not np.allclose(st.encode(PAPERS[:2], task="search"), st.encode(PAPERS[:2], task="classification"))
