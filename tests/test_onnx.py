"""The ONNX Runtime backend: export, fp32 equal to PyTorch, int8 close, the corpus command on it, errors."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is part of the dev install")

from scimult_hf.cli import main  # noqa: E402
from scimult_hf.corpus import Collection  # noqa: E402
from scimult_hf.models.onnx import FP32, INT8, OnnxEncoder, export_onnx  # noqa: E402
from scimult_hf.sample import sample_papers  # noqa: E402
from scimult_hf.text import paper_text  # noqa: E402


@pytest.fixture(scope="module")
def texts():
    with open(sample_papers(), encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(48), f)]
    return [paper_text(r["title"], r["abstract"]) for r in rows]


@pytest.fixture(scope="module")
def onnx_folder(minilm_scimult, tmp_path_factory):
    return export_onnx(str(minilm_scimult), "search", tmp_path_factory.mktemp("onnx") / "search")


def test_export_writes_a_fused_graph_and_int8(onnx_folder):
    import onnx

    assert (onnx_folder / "onnx" / FP32).is_file() and (onnx_folder / "onnx" / INT8).is_file()
    ops = {n.op_type for n in onnx.load(onnx_folder / "onnx" / FP32).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops  # onnxruntime fused BERT
    assert (onnx_folder / "onnx" / INT8).stat().st_size < (onnx_folder / "onnx" / FP32).stat().st_size / 3
    for file in (FP32, INT8):  # the output name sentence-transformers' ONNX backend reads
        assert [o.name for o in onnx.load(onnx_folder / "onnx" / file).graph.output] == ["last_hidden_state"]


def test_fp32_matches_pytorch_and_int8_is_close(onnx_folder, minilm_scimult, texts):
    from scimult_hf import load_sentence_transformer

    ref = load_sentence_transformer(minilm_scimult).encode(texts, task="search")
    fp32 = OnnxEncoder(onnx_folder, FP32).encode(texts, batch_size=8)
    np.testing.assert_allclose(fp32, ref, atol=2e-5)
    int8 = OnnxEncoder(onnx_folder, INT8).encode(texts, batch_size=8)
    cosine = (int8 * ref).sum(1)
    assert cosine.mean() > 0.99 and cosine.min() > 0.97


@pytest.mark.slow  # the int8 export's closeness is checked in the default run; this runs it through encode/search
def test_encode_and_search_with_the_int8_backend(minilm_scimult, tmp_path, capsys, texts):
    papers = tmp_path / "papers.jsonl"
    with open(sample_papers(), encoding="utf-8") as f:
        papers.write_text("".join(line for _, line in zip(range(30), f)))
    out = tmp_path / "index"
    argv = ["encode", "--model", str(minilm_scimult), "--input", str(papers), "--output", str(out),
            "--backend", "onnx-int8", "--quiet"]
    assert main(argv) == 0
    c = Collection(out)
    assert c.record["tasks"]["search"]["backend"] == "onnx-int8" and c.size == 30
    title = c.paper(7)["title"]
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--query", title, "--top-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["results"][0]["id"] == c.paper(7)["id"]


def test_missing_onnxruntime_says_how_to_install(monkeypatch, minilm_scimult, tmp_path, capsys):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert main(["export", "--model", str(minilm_scimult), "--task", "search", "--output", str(tmp_path / "x"),
                 "--onnx"]) == 2
    assert 'pip install "scimult-hf[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
