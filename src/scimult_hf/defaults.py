"""The package's constants and leaf helpers: the default models' names, the cache folder, Hub-id syntax, model
stamps. It imports nothing of the package (the choice of the default model, which fetches and upcycles, lives
in :mod:`scimult_hf.resolve`: :func:`~scimult_hf.resolve.resolve_default_model`)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_NAME = "scimult-all-MiniLM-L6-v2-upcycled"


def looks_like_hub_id(path: str) -> bool:
    """True for ``name`` or ``org/name`` (a Hub repository id), False for anything that can only be a path."""
    return not os.path.isabs(path) and not path.startswith((".", "~")) and path.count("/") <= 1 and "\\" not in path


def cache_dir() -> Path:
    """Where scimult-hf keeps models it builds (``$SCIMULT_HF_CACHE``, else ``~/.cache/scimult_hf``)."""
    return Path(os.environ.get("SCIMULT_HF_CACHE", Path.home() / ".cache" / "scimult_hf"))


#: The released SciMult model the commands use when no --model is given (``$SCIMULT_HF_DEFAULT_MODEL`` changes
#: it): used when its converted folder is cached or the Hub answers for its file.
DEFAULT_RELEASED_MODEL = "scimult-moe"


def model_stamp(model: str, *extra: str) -> str:
    """A short key for things built from ``model`` (a folder or Hub id): changes when its weights change."""
    import hashlib

    stamp = ":".join([os.fspath(Path(model).resolve()) if Path(model).exists() else model, *extra])
    weights = Path(model) / "model.safetensors"
    if weights.is_file():
        stat = weights.stat()
        stamp += f":{stat.st_mtime_ns}:{stat.st_size}"
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]
