"""Publishing to the Hub, offline: a recording fake of the huggingface_hub calls, the card's metadata parsed
back, and the dry-run folder loaded by repo id from a Hub cache layout in a fresh process."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import PAPERS, hub_cache, run_python, tiny_bert, write_beir
from huggingface_hub import ModelCard

from scimult_hf.cli import main
from scimult_hf.hub.cards import converted_model_card
from scimult_hf.hub.publish import HANDLER_FILE, card_with_results, push_model

CARD = """---
license: apache-2.0
library_name: sentence-transformers
tags:
- scimult
- mixture-of-experts
base_model: sentence-transformers/all-MiniLM-L6-v2
---

# A tiny SciMult
"""


class RecordingApi:
    """The HfApi methods push_model uses, recording each call and the folder's files at upload time."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.files: list[str] = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        self.files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {k: v for k, v in kwargs.items() if k != "folder_path"}))
        return "https://hub.example/commit/abc"


@pytest.fixture(scope="module")
def model_folder(tiny_scimult) -> Path:
    return tiny_scimult


EXPORT_FILES = ["1_Pooling/config.json", "config.json", "config_sentence_transformers.json", "model.safetensors",
                "modules.json", "scimult_export.json", "sentence_bert_config.json", "tokenizer.json",
                "tokenizer_config.json"]


def expected_files(model_folder: Path) -> list[str]:
    own = [str(p.relative_to(model_folder)) for p in model_folder.rglob("*") if p.is_file()]
    exports = [f"exports/{t}/{f}" for t in ("search", "link_prediction", "classification") for f in EXPORT_FILES]
    return sorted(own + exports + ["README.md", "handler.py", "requirements.txt"])


def test_push_is_one_commit_with_the_exact_files(model_folder):
    api = RecordingApi()
    push_model(model_folder, "scimult-org/tiny", CARD, api=api, private=True, revision="v1", commit_message="first")
    assert [name for name, _ in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1] == {"repo_id": "scimult-org/tiny", "repo_type": "model", "private": True, "exist_ok": True}
    assert api.calls[1][1] == {"repo_id": "scimult-org/tiny", "branch": "v1", "repo_type": "model", "exist_ok": True}
    assert api.calls[2][1] == {"repo_id": "scimult-org/tiny", "repo_type": "model", "revision": "v1",
                               "commit_message": "first"}
    assert api.files == expected_files(model_folder)


def test_card_results_parse_back_as_model_index(model_folder, tmp_path):
    result = {"dataset": "scifact", "split": "test", "task": "search", "expert": "search",
              "metrics": {"ndcg@10": 0.648, "recall@100": 0.925}}
    card = card_with_results(CARD, [result], model_name="scimult-org/tiny")
    out = push_model(model_folder, "scimult-org/tiny", card, dry_run=tmp_path / "dry")
    data = ModelCard.load(out / "README.md").data
    assert data.license == "apache-2.0" and data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.model_name == "scimult-org/tiny"
    got = {(e.dataset_type, e.metric_type): e.metric_value for e in data.eval_results}
    assert got == {("scifact", "ndcg_at_10"): 0.648, ("scifact", "recall_at_100"): 0.925}
    assert (out / "handler.py").read_bytes() == HANDLER_FILE.read_bytes()
    assert "scimult" not in (out / "requirements.txt").read_text()  # nothing a package index lacks


def test_converted_card_stub_parses(tmp_path):
    from scimult_hf.convert import ConversionReport

    base = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
    moe = ConversionReport(checkpoint=Path("scimult_moe.ckpt"), sha256="ab" * 32, size=1,
                           config={"expert_type": "attention", "expert_layers": [1, 3], "tasks": ["search", "classification"],
                                   "pooling": "cls"})
    card = ModelCard(converted_model_card(moe, base))
    assert card.data.license == "mit" and card.data.base_model == base and "mixture-of-experts" in card.data.tags
    assert "ab" * 32 in card.text and "| `classification` | 1 |" in card.text and "[CLS] token" in card.text
    dense = ConversionReport(checkpoint=Path("scimult_vanilla.ckpt"), sha256="cd" * 32, size=1,
                             config={"expert_type": None, "tasks": ["search"], "pooling": "cls"})
    card = ModelCard(converted_model_card(dense, base))
    assert "mixture-of-experts" not in card.data.tags and "none (dense BERT)" in card.text and "| task |" not in card.text


def test_cardless_or_metadata_less_push_is_refused(model_folder, tmp_path, capsys):
    assert main(["push", "--model", str(model_folder), "--repo", "o/n", "--dry-run", str(tmp_path / "d")]) == 2
    assert "no model card" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no metadata block"):
        push_model(model_folder, "o/n", "# just a title\n", dry_run=tmp_path / "d2")
    assert not (tmp_path / "d2").exists()


def test_a_card_for_another_model_is_refused(model_folder, tmp_path):
    """The card of a converted BiomedBERT release, or one that contradicts the model's experts, is not pushed."""
    from scimult_hf.hub.cards import render_card

    released = render_card((Path(__file__).resolve().parents[1] / "model_cards" / "scimult_moe.md").read_text(),
                           "o/n", task="search")
    with pytest.raises(ValueError, match="converted SciMult release"):
        push_model(model_folder, "o/n", released, dry_run=tmp_path / "a")
    no_experts = CARD.replace("- mixture-of-experts\n", "")
    with pytest.raises(ValueError, match="does not say mixture-of-experts"):
        push_model(model_folder, "o/n", no_experts, dry_run=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_dry_run_output_inside_the_model_folder_is_refused_and_overwrite_exists(model_folder, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_folder, model)
    card = tmp_path / "card.md"
    card.write_text(CARD)
    argv = ["push", "--model", str(model), "--repo", "o/n", "--card", str(card), "--dry-run"]
    assert main(argv + [str(model / "dry")]) == 2
    assert "inside the model folder" in capsys.readouterr().err and not (model / "dry").exists()
    assert main(argv + [str(tmp_path / "dry")]) == 0
    assert main(argv + [str(tmp_path / "dry")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + [str(tmp_path / "dry"), "--overwrite"]) == 0


def test_dry_run_folder_loads_by_repo_id_from_a_hub_cache_offline(model_folder, tmp_path, tokenizer):
    card = tmp_path / "card.md"
    card.write_text(CARD)
    dry = tmp_path / "dry"
    assert main(["push", "--model", str(model_folder), "--repo", "scimult-org/tiny", "--card", str(card),
                 "--dry-run", str(dry)]) == 0
    snapshot = hub_cache(tmp_path / "hub", "scimult-org/tiny", dry)
    code = textwrap.dedent(f"""
        import importlib.abc, json, sys, torch

        class NotInstalled(importlib.abc.MetaPathFinder):  # as on a machine without scimult-hf
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "scimult_hf":
                    raise ModuleNotFoundError("No module named 'scimult_hf'")

        sys.meta_path.insert(0, NotInstalled())
        from transformers import AutoModel, AutoTokenizer
        from sentence_transformers import SentenceTransformer
        model = AutoModel.from_pretrained("scimult-org/tiny", trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained("scimult-org/tiny", trust_remote_code=True)
        batch = tok({PAPERS!r}, padding=True, return_tensors="pt")
        with torch.no_grad():
            auto = model(**batch, task="search").pooler_output.tolist()
        st = SentenceTransformer("scimult-org/tiny", trust_remote_code=True, device="cpu").encode({PAPERS!r}, task="search")
        export = SentenceTransformer({str(snapshot / "exports" / "search")!r}, device="cpu")
        sys.path.insert(0, {str(snapshot)!r})  # the repository's handler.py, as Inference Endpoints load it
        from handler import EndpointHandler
        served = EndpointHandler({str(snapshot)!r}, device="cpu")({{"inputs": {PAPERS!r}, "parameters": {{"task": "search"}}}})
        wrong = EndpointHandler({str(snapshot / "exports" / "search")!r}, device="cpu")(
            {{"inputs": "x", "parameters": {{"task": "classification"}}}})
        assert "scimult_hf" not in sys.modules
        print("RESULT", json.dumps({{"auto": auto, "st": st.tolist(), "export": export.encode({PAPERS!r}).tolist(),
                                     "served": served, "wrong": wrong}}))
    """)
    proc = run_python(code, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub")},
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT", 1)[1])
    np.testing.assert_allclose(got["st"], got["auto"], atol=1e-5)
    np.testing.assert_allclose(got["export"], got["auto"], atol=1e-5)
    np.testing.assert_allclose(got["served"], got["auto"], atol=1e-5)  # the repository serves on its own
    assert got["wrong"]["error"]["code"] == "unknown_task"  # a search export refuses another task


def test_train_push_to_hub_hands_over_to_publishing(tmp_path, monkeypatch, tokenizer):
    """`scimult-hf train --push-to-hub` pushes the trained folder with its card draft (recording fake API)."""
    import scimult_hf.hub.publish as publish

    api = RecordingApi()
    real = publish.push_folder
    monkeypatch.setattr(publish, "push_folder", lambda folder, repo_id, **kw: real(folder, repo_id, **{**kw, "api": api}))
    bert = tiny_bert(tmp_path / "bert", tokenizer)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": f"query {i}", "positive": p}) + "\n" for i, p in enumerate(PAPERS)))
    assert main(["train", "--model", str(bert), "--data", f"search={pairs}", "--output", str(tmp_path / "run"),
                 "--max-steps", "2", "--batch-size", "2", "--max-seq-length", "32",
                 "--push-to-hub", "scimult-org/trained", "--private"]) == 0
    assert api.calls[0] == ("create_repo", {"repo_id": "scimult-org/trained", "repo_type": "model", "private": True,
                                            "exist_ok": True})
    assert "README.md" in api.files and "exports/search/model.safetensors" in api.files


def test_dataset_push_one_config_per_task_with_a_card(tmp_path, shared_dir):
    import datasets
    from huggingface_hub import DatasetCard

    from scimult_hf.hub.dataset_repo import push_dataset

    prepared = tmp_path / "prepared"
    assert main(["prepare", "--data", f"link_prediction={shared_dir / 'data' / 'unarxive-cites'}",
                 "--data", f"classification={shared_dir / 'data' / 'ohsumed23'}", "--output", str(prepared)]) == 0
    api = RecordingApi()
    push_dataset(prepared, "scimult-org/pairs", "cc-by-sa-4.0", api=api)
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][1]["repo_type"] == "dataset" and api.calls[1][1]["repo_type"] == "dataset"
    assert api.files == ["README.md", "classification/train.parquet", "link_prediction/train.parquet"]

    dry = push_dataset(prepared, "scimult-org/pairs", "cc-by-sa-4.0", dry_run=tmp_path / "dry")
    card = DatasetCard.load(dry / "README.md")
    assert card.data.license == "cc-by-sa-4.0" and card.data.size_categories == ["1K<n<10K"]
    assert {c["config_name"] for c in card.data.configs} == {"classification", "link_prediction"}
    assert "text-classification" in card.data.task_categories and "@inproceedings{zhang2023pre" in card.text
    cache = str(tmp_path / "datasets-cache")  # nothing written outside the test's folder
    ds = datasets.load_dataset(str(dry), "classification", split="train", cache_dir=cache)
    assert len(ds) == 3357 and ds.column_names == ["anchor", "positive"]
    assert len(datasets.load_dataset(str(dry), "link_prediction", split="train", cache_dir=cache)) == 1146


@pytest.mark.parametrize("name, task", [("scimult_vanilla", None), ("scimult_moe", "search"),
                                        ("scimult_moe_pmcpatients_par", "link_prediction"),
                                        ("scimult_moe_pmcpatients_ppr", "link_prediction")])
def test_released_model_card_templates_render_and_parse(name, task):
    from scimult_hf.hub.cards import render_card

    template = (Path(__file__).resolve().parents[1] / "model_cards" / f"{name}.md").read_text()
    result = {"dataset": "scifact", "split": "test", "task": "search", "expert": task,
              "metrics": {"ndcg@10": 0.7}}
    card = ModelCard(render_card(template, f"scimult-org/{name}", task=task, code_revision="abc123",
                                 results=[result]))
    assert card.data.license == "mit" and card.data.base_model.startswith("microsoft/BiomedNLP")
    assert "REPO_ID" not in card.text and f'"scimult-org/{name}"' in card.text
    assert 'code_revision="abc123"' in card.text and "HuggingFaceEmbeddings" in card.text
    assert "text-embeddings-router" in card.text and "@inproceedings" in card.text
    assert ("task=" in card.text) == (task is not None)
    assert [(e.metric_type, e.metric_value) for e in card.data.eval_results] == [("ndcg_at_10", 0.7)]
    assert "| scifact | test |" in card.text


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")
def test_release_command_converts_evaluates_cards_and_pushes(tmp_path):
    from scimult_hf.hub.release import release_models

    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    shutil.copy(FIXTURES / "scimult_vanilla_s3" / "checkpoint.ckpt", ckpts / "scimult_vanilla.ckpt")
    shutil.copy(FIXTURES / "scimult_moe_attn_s1" / "checkpoint.ckpt", ckpts / "scimult_moe.ckpt")
    tokenizers = {"scimult_vanilla.ckpt": str(FIXTURES / "scimult_vanilla_s3" / "bert_config"),
                  "scimult_moe.ckpt": str(FIXTURES / "scimult_moe_attn_s1" / "bert_config")}
    data = write_beir(tmp_path / "beir", "q1\td4\t1\n")
    cards = Path(__file__).resolve().parents[1] / "model_cards"

    done = release_models(ckpts, "scimult-org", tmp_path / "work", cards, tokenizer=tokenizers,
                          data={"search": str(data)}, code_revision="abc123", dry_run=True)
    assert sorted(done) == ["scimult_moe.ckpt", "scimult_vanilla.ckpt"]
    moe = tmp_path / "work" / "repos" / "scimult_moe"
    card = ModelCard.load(moe / "README.md")
    assert card.data.eval_results[0].dataset_name == "beir" and 'task="search"' in card.text
    assert (moe / "exports" / "link_prediction" / "model.safetensors").is_file()
    vanilla = tmp_path / "work" / "repos" / "scimult_vanilla"
    assert not (vanilla / "exports").exists() and (vanilla / "handler.py").is_file()

    api = RecordingApi()
    release_models(ckpts, "scimult-org", tmp_path / "work2", cards, tokenizer=tokenizers, api=api)
    assert [c[1]["repo_id"] for c in api.calls if c[0] == "create_repo"] == ["scimult-org/scimult_vanilla",
                                                                          "scimult-org/scimult_moe"]


def test_pushed_exports_keep_the_task_prompts_and_apply_them_by_default(model_folder, tmp_path):
    """A model with task prompts (the instruction variant's form): each pushed export carries the prompts and
    makes its task's prompt the default, so plain sentence-transformers embeds exactly like the root model."""
    from sentence_transformers import SentenceTransformer

    model = tmp_path / "model"
    shutil.copytree(model_folder, model)
    st_config = model / "config_sentence_transformers.json"
    config = json.loads(st_config.read_text())
    config["prompts"] = {"search": "Find papers about: ", "classification": "Label: "}
    st_config.write_text(json.dumps(config))
    out = push_model(model, "o/n", CARD, dry_run=tmp_path / "dry")
    root = SentenceTransformer(str(model), trust_remote_code=True, device="cpu")
    for task in ("search", "classification", "link_prediction"):
        export = out / "exports" / task
        saved = json.loads((export / "config_sentence_transformers.json").read_text())
        assert saved["prompts"] == config["prompts"]
        assert saved["default_prompt_name"] == (task if task in config["prompts"] else None)
        plain = SentenceTransformer(str(export), device="cpu")  # no remote code, no task, no prompt named
        want = root.encode(PAPERS, task=task, prompt_name=task if task in config["prompts"] else None)
        np.testing.assert_allclose(plain.encode(PAPERS), want, atol=1e-5)


@pytest.mark.parametrize("edit, message", [
    (("base_model: sentence-transformers/all-MiniLM-L6-v2", "base_model: sentence-transformers/all-MiniLM-L6-v2 (upcycled)"),
     "is not a Hub id"),
    (("license: apache-2.0", "license: mit"), "its base model sentence-transformers/all-MiniLM-L6-v2 is apache-2.0"),
    (("license: apache-2.0\n", ""), "the card has no license"),
])
def test_card_metadata_the_hub_would_refuse_is_refused_first(model_folder, tmp_path, monkeypatch, edit, message):
    """Refused before any export is built (so in well under a second), naming the field and the fix."""
    from scimult_hf.models import export

    monkeypatch.setattr(export, "export_task", lambda *a, **k: pytest.fail("exports were built before the check"))
    with pytest.raises(ValueError, match=message):
        push_model(model_folder, "o/n", CARD.replace(*edit), dry_run=tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_a_trained_card_names_a_hub_id_and_the_base_models_license():
    from scimult_hf import default_model_path
    from scimult_hf.hub.cards import check_card_metadata, model_reference, trained_model_card

    base = model_reference(default_model_path())
    assert base == "sentence-transformers/all-MiniLM-L6-v2"
    card = ModelCard(trained_model_card({"variant": "moe", "expert_type": "attention"}, {}, base))
    assert card.data.base_model == base and card.data.license == "apache-2.0"
    check_card_metadata(card.data.to_dict())
    unknown = ModelCard(trained_model_card({"variant": "vanilla"}, {}, "my-local-folder"))
    assert unknown.data.license == "unknown" and unknown.data.base_model is None
