"""Safe reading of the original SciMult training checkpoints (``torch.save`` pickles).

A pickle can run arbitrary code when loaded, so a checkpoint is never unpickled in full:

1. Before anything is unpickled, the globals the pickle names are listed statically
   (``torch.serialization.get_unsafe_globals_in_checkpoint``); any outside the 14 that the original format
   uses (:data:`ALLOWED_GLOBALS`) stop the conversion with the names found.
2. The file is then read with ``torch.load(weights_only=True, mmap=True)``, torch's restricted
   unpickler, with a temporary allow-list (``torch.serialization.safe_globals``, a context manager,
   so nothing leaks into the rest of the process). The omegaconf classes that the format pickles
   (``DictConfig``, ``ListConfig``, ``AnyNode``, ``Metadata``, ``ContainerMetadata``) are mapped by name to
   inert stand-ins defined here, so omegaconf need not be installed and none of its code runs on
   the file's data. There is no fallback to a full unpickle.
3. ``mmap=True`` maps the file instead of reading it: the optimizer's ``exp_avg`` / ``exp_avg_sq``
   (two thirds of the file) are never touched and so never enter memory.
"""

from __future__ import annotations

import json
import os
import typing
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import InputError

#: Every global the pickle of a released SciMult checkpoint references (pickle protocol 2 spells the
#: builtins ``__builtin__.*`` and ``int`` as ``long``; both spellings are accepted).
ALLOWED_GLOBALS = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.int",
        "collections.OrderedDict",
        "collections.defaultdict",
        "omegaconf.base.ContainerMetadata",
        "omegaconf.base.Metadata",
        "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig",
        "omegaconf.nodes.AnyNode",
        "torch.FloatStorage",
        "torch.LongStorage",
        "torch._utils._rebuild_tensor_v2",
        "typing.Any",
    }
)
_PY2_NAMES = {"__builtin__.long": "builtins.int"}


def _canonical(name: str) -> str:
    """A global's Python 3 name (protocol 2 spells builtins ``__builtin__.*`` and ``int`` as ``long``)."""
    name = _PY2_NAMES.get(name, name)
    return "builtins." + name[len("__builtin__.") :] if name.startswith("__builtin__.") else name


class CheckpointError(InputError):
    """The file is not a SciMult checkpoint this converter can convert safely; the message says why."""


class BaseModelError(InputError):
    """The tokenizer / base-model config could not be found or does not fit the checkpoint."""


class _OmegaConfStandIn:
    """Inert stand-in for a pickled omegaconf object: the unpickler only fills its ``__dict__``.

    ``DictConfig`` / ``ListConfig`` keep their children in ``_content``, value nodes their value in
    ``_val``; :func:`plain` turns a tree of stand-ins into dicts, lists and scalars.
    """

    _omegaconf_class = "?"

    def __repr__(self) -> str:
        return f"<{self._omegaconf_class} stand-in>"


def _stand_in(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (_OmegaConfStandIn,), {"_omegaconf_class": name, "__module__": __name__})


_STAND_INS = {
    name: _stand_in(name)
    for name in (
        "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig",
        "omegaconf.nodes.AnyNode",
        "omegaconf.base.Metadata",
        "omegaconf.base.ContainerMetadata",
    )
}


def _safe_globals() -> list:
    """The temporary allow-list for ``torch.load(weights_only=True)``: builtins that torch does not allow by
    default, and the omegaconf names mapped to stand-ins (torch's own tensor-rebuild functions and
    storage types are allowed by torch itself)."""
    return [dict, list, int, defaultdict, typing.Any, *((cls, name) for name, cls in _STAND_INS.items())]


def plain(value):
    """Turn omegaconf containers (stand-ins or real ``DictConfig`` / ``ListConfig``) into plain Python data."""
    if isinstance(value, _OmegaConfStandIn):
        state = value.__dict__
        if "_content" in state:
            content = state["_content"]
            if isinstance(content, Mapping):
                return {plain(k): plain(v) for k, v in content.items()}
            if isinstance(content, (list, tuple)):
                return [plain(v) for v in content]
            return content  # None, "???" (missing) or an interpolation string
        return plain(state.get("_val"))
    if type(value).__module__.startswith("omegaconf"):  # a real DictConfig / ListConfig (omegaconf installed)
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=False)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _first_damaged(archive: zipfile.ZipFile, records: set[str] | None) -> str | None:
    """The first record (of ``records``, default all) whose CRC-32 does not match, or None."""
    for name in archive.namelist():
        if records is not None and name not in records:
            continue
        try:
            with archive.open(name) as f:
                while f.read(1 << 24):
                    pass
        except zipfile.BadZipFile:
            return name
    return None


def _check_archive(path: Path, records: set[str] | None = None) -> None:
    """Check the torch zip archive and list its pickle's globals without unpickling; stop on anything unexpected.

    ``records``: the records a partial download holds (:mod:`.partial`); only those are CRC-checked.

    The globals come from ``torch.serialization.get_unsafe_globals_in_checkpoint``, which disassembles the
    pickle statically; with :data:`ALLOWED_GLOBALS` allowed for the call, whatever it still reports is
    foreign to the SciMult format. Its scanner reads the opcodes of pickle protocol 2 (what ``torch.save``
    writes, and the released files use); a file it cannot read is refused too.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            damaged = _first_damaged(archive, records)  # reads each record and checks its CRC-32
    except zipfile.BadZipFile as err:
        raise CheckpointError(
            f"{path} ({size:,} bytes) is not a complete PyTorch zip archive ({err}): the file is truncated or "
            "corrupt (an interrupted download? compare its size and sha256 with the Hub file page and download "
            "it again), or it was written in torch's legacy pre-1.6 format, which this converter does not read."
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: the zip archive cannot be read ({err}); the file is corrupt.") from None
    if damaged is not None:
        raise CheckpointError(
            f"{path}: the record {damaged!r} inside the archive fails its CRC-32 check: the file is corrupt "
            "(compare its size and sha256 with the Hub file page and download it again). Nothing was converted."
        )
    if len(pickles) != 1:
        raise CheckpointError(
            f"{path}: expected a PyTorch zip checkpoint with one data.pkl record, found {len(pickles)} "
            f"({pickles[:3]}); this is not a torch.save file of a SciMult checkpoint."
        )
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            unexpected = sorted(
                _canonical(name) for name in torch.serialization.get_unsafe_globals_in_checkpoint(path)
            )
    except Exception as err:  # UnpicklingError for opcodes the scanner does not read, zip/CRC errors, ...
        raise CheckpointError(
            f"{path}: the pickle could not be scanned without running it ({type(err).__name__}: {err}); it was "
            "not unpickled. The file is corrupt, or not pickle protocol 2 as the released SciMult checkpoints are."
        ) from None
    unexpected = sorted(set(unexpected) - ALLOWED_GLOBALS)
    if unexpected:
        raise CheckpointError(
            f"{path}: the pickle references {unexpected}, which the SciMult checkpoint format never uses "
            f"(expected only: {sorted(ALLOWED_GLOBALS)}). Loading it could run code from the file, so it was "
            "not unpickled. If this is a checkpoint you wrote yourself, save a plain state dict of tensors "
            "with safetensors instead."
        )


def _torch_reason(err: Exception) -> str:
    """The informative part of a ``torch.load`` error (its weights_only errors open with generic advice)."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = " ".join(text.split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


#: The sidecar beside a partial checkpoint (``convert.partial`` writes it): which records it holds (the rest are
#: holes that ``torch.load(mmap=True)`` never reads).
PARTIAL_SUFFIX = ".records.json"


def read_partial(path: str | os.PathLike) -> dict | None:
    """The sidecar of a complete partial download (``records``, ``sha256``, ``size``); None for a whole file."""
    sidecar = Path(os.fspath(path) + PARTIAL_SUFFIX)
    if not sidecar.is_file():
        return None
    state = json.loads(sidecar.read_text(encoding="utf-8"))
    if "records" not in state:
        raise CheckpointError(f"{path} is an unfinished partial download: run the same command again to finish it.")
    return state


def present_records(path: str | os.PathLike) -> set[str] | None:
    """The records a partial checkpoint holds; None for a whole file (every record present)."""
    state = read_partial(path)
    return None if state is None else set(state["records"])



def load_original_checkpoint(path: str | os.PathLike) -> dict:
    """Safely read an original SciMult training checkpoint.

    A partial download (:func:`~scimult_hf.convert.partial.fetch_model_records`: the optimizer's records are
    holes) reads the same way: only its records are CRC-checked, and the holes are never touched.

    Returns the top-level dict with ``encoder_params`` turned into a plain dict and the tensors
    memory-mapped (nothing is read from disk until a tensor is used). Raises :class:`CheckpointError`
    for a truncated or corrupt file, one whose pickle needs a global outside :data:`ALLOWED_GLOBALS`,
    and one that is not a SciMult training checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder; give the .ckpt file itself (e.g. "
                                f"{path / 'scimult_moe.ckpt'}).")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (download e.g. scimult_moe.ckpt first).")
    _check_archive(path, present_records(path))
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... ; never retry unsafely
        raise CheckpointError(
            f"{path}: torch's restricted (weights_only) loader refused or failed to read the file: "
            f"{_torch_reason(err)}. The file is corrupt or not a SciMult checkpoint as released (those are "
            "pickle protocol 2); it was not loaded with a full unpickle, which could run code from it."
        ) from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"{path}: the file holds a {type(checkpoint).__name__}, not the dict of an original SciMult training "
            "checkpoint (expected keys model_dict and encoder_params)."
        )
    missing = [k for k in ("model_dict", "encoder_params") if k not in checkpoint]
    if missing:
        keys = list(checkpoint)[:8]
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            what = f"a plain state dict of {len(checkpoint)} tensors (first keys: {keys})"
        else:
            what = f"a dict with keys {keys}"
        raise CheckpointError(
            f"{path}: not an original SciMult training checkpoint: it is {what}, but lacks {missing}. The "
            "converter expects the files released with SciMult (scimult_vanilla.ckpt, scimult_moe.ckpt, "
            "scimult_moe_pmcpatients_*.ckpt): a dict with model_dict, optimizer_dict, scheduler_dict, offset, "
            "epoch and encoder_params. A SciMult folder saved by scimult_hf loads with from_pretrained directly."
        )
    checkpoint = dict(checkpoint)
    checkpoint["encoder_params"] = plain(checkpoint["encoder_params"])
    if not isinstance(checkpoint["encoder_params"], Mapping):
        raise CheckpointError(
            f"{path}: encoder_params is a {type(checkpoint['encoder_params']).__name__}, expected a DictConfig or "
            "dict of encoder settings (use_moe, moe_type, num_expert, mean_pool, shared_encoder, ...)."
        )
    if not isinstance(checkpoint["model_dict"], Mapping) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint["model_dict"].values()
    ):
        raise CheckpointError(f"{path}: model_dict is not a mapping of names to tensors.")
    return checkpoint


__all__ = [
    "ALLOWED_GLOBALS",
    "PARTIAL_SUFFIX",
    "BaseModelError",
    "CheckpointError",
    "load_original_checkpoint",
    "plain",
    "present_records",
    "read_partial",
]
