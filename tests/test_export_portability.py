"""The per-task export in the long-standing sentence-transformers layout: what TEI, older
sentence-transformers and plain transformers read, and the same embeddings through each."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PAPERS, tiny_model
from sentence_transformers import SentenceTransformer

from scimult_hf import INSTRUCTION_PROMPTS, export_task, save_sentence_transformer


@pytest.fixture(scope="module", params=[("cls", False), ("mean", True)], ids=["cls", "mean-normalized"])
def exported(request, tmp_path_factory, tokenizer):
    pooling, normalize = request.param
    model = tiny_model("ffn", seed=21, pooling=pooling, normalize=normalize)
    folder = tmp_path_factory.mktemp("export")
    save_sentence_transformer(model, tokenizer, folder / "scimult", prompts=INSTRUCTION_PROMPTS)
    out = export_task(folder / "scimult", "classification", folder / "classification")
    batch = tokenizer(PAPERS, padding=True, return_tensors="pt")
    prompted = tokenizer([INSTRUCTION_PROMPTS["classification"] + p for p in PAPERS], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch, task="classification").pooler_output.numpy()
        expected_prompted = model(**prompted, task="classification").pooler_output.numpy()
    return out, expected, pooling, normalize, expected_prompted


def read(path: Path):
    return json.loads(path.read_text())


def test_files_are_what_tei_and_every_sentence_transformers_read(exported):
    out, _, pooling, normalize, _ = exported
    config = read(out / "config.json")
    assert config["architectures"] == ["BertModel"] and config["model_type"] == "bert"
    assert "auto_map" not in config and not (out / "modeling_scimult.py").exists()
    modules = read(out / "modules.json")
    assert [m["type"] for m in modules] == ["sentence_transformers.models.Transformer",
                                            "sentence_transformers.models.Pooling",
                                            *(["sentence_transformers.models.Normalize"] if normalize else [])]
    pool = read(out / "1_Pooling" / "config.json")
    assert pool["pooling_mode_cls_token"] is (pooling == "cls")
    assert pool["pooling_mode_mean_tokens"] is (pooling == "mean")
    assert pool["word_embedding_dimension"] == 32 and "pooling_mode" not in pool
    assert read(out / "sentence_bert_config.json")["max_seq_length"] == 128  # the tiny model's positions
    st_config = read(out / "config_sentence_transformers.json")
    assert st_config["prompts"] == INSTRUCTION_PROMPTS
    assert st_config["similarity_fn_name"] == ("cosine" if normalize else "dot")


def test_installed_sentence_transformers_gives_the_same_embeddings(exported):
    out, expected, _, _, expected_prompted = exported
    st = SentenceTransformer(str(out), device="cpu")
    # the task's instruction is the export's default prompt, as encode(task="classification") applies it
    assert st.default_prompt_name == "classification"
    assert st.prompts["classification"] == INSTRUCTION_PROMPTS["classification"]
    np.testing.assert_allclose(st.encode(PAPERS), expected_prompted, atol=1e-5, rtol=0)
    np.testing.assert_allclose(st.encode(PAPERS, prompt=""), expected, atol=1e-5, rtol=0)


def test_plain_transformers_with_manual_pooling_gives_the_same_embeddings(exported, tokenizer):
    from transformers import AutoModel

    out, expected, pooling, normalize, _ = exported
    model = AutoModel.from_pretrained(out).eval()
    batch = tokenizer(PAPERS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    if pooling == "cls":
        emb = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        emb = (hidden * mask).sum(1) / mask.sum(1)
    if normalize:
        emb = torch.nn.functional.normalize(emb, dim=-1)
    np.testing.assert_allclose(emb.numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_sentence_transformers_3_in_its_own_virtualenv(exported, tmp_path_factory):
    """sentence-transformers 3.x (what infinity-emb pins) with transformers 4.x, installed from the index."""
    out, _, _, _, expected_prompted = exported
    env_dir = tmp_path_factory.getbasetemp() / "st3-venv"
    python = env_dir / "bin" / "python"
    if not python.exists():
        venv.create(env_dir, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "sentence-transformers==3.4.1",
                        "transformers==4.57.1"], check=True, timeout=1500)
    code = textwrap.dedent(f"""
        import json, sentence_transformers
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer({str(out)!r}, device="cpu")
        print("RESULT", json.dumps({{"v": sentence_transformers.__version__, "emb": st.encode({PAPERS!r}).tolist()}}))
    """)
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert got["v"].startswith("3.")
    # sentence-transformers 3 applies the export's default prompt (the task's instruction) as 6 does
    np.testing.assert_allclose(np.array(got["emb"]), expected_prompted, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_the_scimult_folder_routes_tasks_in_sentence_transformers_5_2(tiny_scimult, tmp_path_factory):
    """The oldest sentence-transformers that can run the remote code: 5.2.0, the first that allows transformers 5
    (the remote code needs 5.4 or newer). It loads the SciMult folder and routes ``task=`` exactly as 6.x does.
    (5.2 imports ``requests``, which it no longer declares: installed beside it.)"""
    st6 = SentenceTransformer(str(tiny_scimult), trust_remote_code=True, device="cpu")
    expected = {task: st6.encode(PAPERS, task=task) for task in ("search", "classification")}
    env_dir = tmp_path_factory.getbasetemp() / "st52-venv"
    python = env_dir / "bin" / "python"
    if not python.exists():
        venv.create(env_dir, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "sentence-transformers==5.2.0",
                        "transformers>=5.4,<6", "requests"], check=True, timeout=1500)
    code = textwrap.dedent(f"""
        import json, sentence_transformers
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer({str(tiny_scimult)!r}, trust_remote_code=True, device="cpu")
        out = {{t: st.encode({PAPERS!r}, task=t).tolist() for t in ("search", "classification")}}
        print("RESULT", json.dumps({{"v": sentence_transformers.__version__, "emb": out}}))
    """)
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert got["v"] == "5.2.0"
    for task, want in expected.items():
        np.testing.assert_allclose(np.array(got["emb"][task]), want, atol=1e-6, rtol=0)
    assert not np.allclose(got["emb"]["search"], got["emb"]["classification"])
