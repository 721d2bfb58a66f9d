"""Convert the released SciMult training checkpoints (``scimult_vanilla.ckpt``, ``scimult_moe.ckpt``, the
PMC-Patients fine-tunes) into SciMult folders that load with ``transformers`` and ``sentence-transformers``.

The original files are ``torch.save`` pickles of the training state of github.com/yuzhimanhua/SciMult
(``model_dict``, ``optimizer_dict``, ``scheduler_dict``, ``offset``, ``epoch``, ``encoder_params``).
A pickle can run arbitrary code when loaded, so this module never unpickles one in full:

1. Before anything is unpickled, the pickle program (``data.pkl`` inside the torch zip archive) is
   scanned with :mod:`pickletools`, which only parses it, and every global it names must be one of
   the 14 that the original format uses (:data:`ALLOWED_GLOBALS`); anything else stops the
   conversion with the names found.
2. The file is then read with ``torch.load(weights_only=True, mmap=True)``, torch's restricted
   unpickler, with a temporary allow-list (``torch.serialization.safe_globals``, a context manager,
   so nothing leaks into the rest of the process). The omegaconf classes that the format pickles
   (``DictConfig``, ``ListConfig``, ``AnyNode``, ``Metadata``, ``ContainerMetadata``) are mapped by name to
   inert stand-ins defined here, so omegaconf need not be installed and none of its code runs on
   the file's data. There is no fallback to a full unpickle.
3. ``mmap=True`` maps the file instead of reading it: the optimizer's ``exp_avg`` / ``exp_avg_sq``
   (two thirds of the file) are never touched and so never enter memory.

The model is then checked (one shared query/context encoder, every key mapped, every weight
filled) and written as a complete folder (the layout of :func:`scimult_hf.save_sentence_transformer`,
the weights streamed from the mapped file to ``model.safetensors``, a model card), into a temporary
folder that replaces the output only when everything succeeded. The full model is never held in
memory: peak memory is the imported libraries plus a few tens of MB.

Python::

    from scimult_hf.convert import convert_checkpoint
    convert_checkpoint("scimult_moe.ckpt", "scimult-moe")          # tokenizer from the Hub
    convert_checkpoint("scimult_moe.ckpt", "scimult-moe", tokenizer="path/to/BiomedBERT")

Command line::

    scimult-hf convert --checkpoint scimult_moe.ckpt --output scimult-moe [--tokenizer DIR_OR_ID]
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import pickletools
import re
import typing
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

#: The base model the released checkpoints name in ``encoder_params.pretrained_model_cfg`` ...
ORIGINAL_BASE_MODEL = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract"
#: ... and its current name on the Hub (the original eval code rewrites the first to this one).
RENAMED_BASE_MODEL = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
_BASE_MODEL_RENAMES = {ORIGINAL_BASE_MODEL: RENAMED_BASE_MODEL}

#: Maximum input length of the original inference code (``embed_text_psg(..., max_len=512)``).
MAX_LENGTH = 512

#: Expert ids of the original 3-expert models (``EXPERT_CONFIG_TO_MAP["3-expert"]``), in order.
ORIGINAL_TASKS = ("search", "link_prediction", "classification")

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

_ENCODER_PREFIXES = ("question_model.encoder.", "ctx_model.encoder.")
#: BERT keys that have no place in SciMult: the position-ids buffers (rebuilt at load time) and
#: BERT's tanh pooler, which the original never uses for embeddings.
_DROPPED_BERT_KEYS = {
    "embeddings.position_ids": "buffer 0..max_len-1, rebuilt by the model at load time",
    "embeddings.token_type_ids": "all-zero buffer, rebuilt by the model at load time",
    "pooler.dense.weight": "BERT pooler, never used by SciMult embeddings ([CLS] / mean of the last hidden state)",
    "pooler.dense.bias": "BERT pooler, never used by SciMult embeddings ([CLS] / mean of the last hidden state)",
}
#: Original expert sub-module names -> SciMult names (``X.experts.K``).
_EXPERT_RENAMES = (
    (re.compile(r"^(encoder\.layer\.\d+)\.attention\.self\.moe_(query|key|value)\.(\d+)\.(weight|bias)$"),
     r"\1.attention.self.\2.experts.\3.\4"),
    (re.compile(r"^(encoder\.layer\.\d+)\.attention\.output\.moe_dense\.(\d+)\.(weight|bias)$"),
     r"\1.attention.output.dense.experts.\2.\3"),
    (re.compile(r"^(encoder\.layer\.\d+)\.moe_layer\.interm_layers\.(\d+)\.dense\.(weight|bias)$"),
     r"\1.intermediate.dense.experts.\2.\3"),
    (re.compile(r"^(encoder\.layer\.\d+)\.moe_layer\.output_layers\.(\d+)\.(dense|LayerNorm)\.(weight|bias)$"),
     r"\1.output.\3.experts.\2.\4"),
)
_MOE_TYPE = re.compile(r"^mod(\d+):(attn|fwd)$")


class CheckpointError(ValueError):
    """The file is not a SciMult checkpoint this converter can convert safely; the message says why."""


class BaseModelError(ValueError):
    """The tokenizer / base-model config could not be found or does not fit the checkpoint."""


# ------------------------------------------------------------------------------------------ safe loading
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


def _pickle_globals(data: bytes) -> set[str]:
    """Globals a pickle program references, found by parsing it with :mod:`pickletools` (nothing is executed).

    ``GLOBAL`` / ``INST`` carry the name; ``STACK_GLOBAL`` (protocol 4+) takes it from the two objects pushed
    just before, which are tracked here (through the memo); a name that cannot be read that way is reported
    as unreadable, which rejects the file.
    """
    found: set[str] = set()
    recent: list = [None, None]  # the last two objects pushed: a str, or None for anything else
    memo: dict = {}
    not_pushes = {"PROTO", "FRAME", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "STOP"}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        pushed = None
        if name in ("GLOBAL", "INST"):
            module, _, qualname = str(arg).partition(" ")
            found.add(f"{module}.{qualname}")
        elif name == "STACK_GLOBAL":
            module, qualname = recent
            if isinstance(module, str) and isinstance(qualname, str):
                found.add(f"{module}.{qualname}")
            else:
                found.add("<a STACK_GLOBAL whose name could not be read>")
        elif name in ("EXT1", "EXT2", "EXT4"):
            found.add(f"<extension-registry code {arg}>")
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = recent[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed = memo.get(arg)
        elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
            pushed = arg
        if name not in not_pushes:
            recent = [recent[-1], pushed]
    out = set()
    for full in found:
        full = _PY2_NAMES.get(full, full)
        if full.startswith("__builtin__."):
            full = "builtins." + full[len("__builtin__.") :]
        out.add(full)
    return out


def _check_archive(path: Path) -> None:
    """Parse the torch zip archive and its pickle without unpickling; stop on anything unexpected."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            data = archive.read(pickles[0]) if len(pickles) == 1 else None
    except zipfile.BadZipFile as err:
        raise CheckpointError(
            f"{path} ({size:,} bytes) is not a complete PyTorch zip archive ({err}): the file is truncated or "
            "corrupt (an interrupted download? compare its size and sha256 with the Hub file page and download "
            "it again), or it was written in torch's legacy pre-1.6 format, which this converter does not read."
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError) as err:  # e.g. a CRC error in data.pkl
        raise CheckpointError(f"{path}: the zip archive cannot be read ({err}); the file is corrupt.") from None
    if data is None:
        raise CheckpointError(
            f"{path}: expected a PyTorch zip checkpoint with one data.pkl record, found {len(pickles)} "
            f"({pickles[:3]}); this is not a torch.save file of a SciMult checkpoint."
        )
    try:
        found = _pickle_globals(data)
    except Exception as err:  # pickletools raises ValueError and friends on malformed programs
        raise CheckpointError(f"{path}: data.pkl is not a valid pickle ({err}); the file is corrupt.") from None
    unexpected = sorted(found - ALLOWED_GLOBALS)
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


def load_original_checkpoint(path: str | os.PathLike) -> dict:
    """Safely read an original SciMult training checkpoint.

    Returns the top-level dict with ``encoder_params`` turned into a plain dict and the tensors
    memory-mapped (nothing is read from disk until a tensor is used). Raises :class:`CheckpointError`
    for a truncated or corrupt file, one whose pickle needs a global outside :data:`ALLOWED_GLOBALS`,
    and one that is not a SciMult training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (download e.g. scimult_moe.ckpt first).")
    _check_archive(path)
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


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 24) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ the model
@dataclass
class ConversionReport:
    """What the conversion found, kept and dropped (also written into the model card)."""

    checkpoint: Path
    sha256: str = ""
    size: int = 0
    encoder_params: dict = field(default_factory=dict)
    tokenizer_source: str = ""
    config: dict = field(default_factory=dict)
    num_parameters: int = 0
    weights_bytes: int = 0
    dropped_keys: dict[str, str] = field(default_factory=dict)
    dropped_entries: dict[str, str] = field(default_factory=dict)
    shared_storage: bool = True


def _param(params: Mapping, key: str, kinds, default=None, required: bool = False):
    if key not in params or params[key] is None:
        if required:
            raise CheckpointError(f"encoder_params lacks {key!r}, which the converter needs.")
        return default
    value = params[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise CheckpointError(
            f"encoder_params[{key!r}] is {value!r} ({type(value).__name__}); expected {kinds}. "
            "Interpolated or missing omegaconf values are not supported."
        )
    return value


def _as_tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def expert_layers_for(moe_type: str, num_hidden_layers: int) -> tuple[str, list[int]]:
    """``"modN:attn"`` / ``"modN:fwd"`` -> (``"attention"`` / ``"ffn"``, layers ``i`` with ``(i + 1) % N == 0``)."""
    match = _MOE_TYPE.match(moe_type.strip()) if isinstance(moe_type, str) else None
    if not match or int(match.group(1)) < 1:
        raise CheckpointError(
            f"unknown moe_type {moe_type!r}: the converter supports 'modN:attn' (per-task attention experts) and "
            "'modN:fwd' (per-task feed-forward experts), N >= 1, with experts in the 0-based layers i where "
            "(i + 1) % N == 0, as the original code places them."
        )
    n = int(match.group(1))
    kind = "attention" if match.group(2) == "attn" else "ffn"
    return kind, [i for i in range(num_hidden_layers) if (i + 1) % n == 0]


def _encoder_state(model_dict: Mapping[str, torch.Tensor], report: ConversionReport) -> dict[str, torch.Tensor]:
    """One BERT-relative state dict from the query and context encoders, which must be the same encoder."""
    halves: dict[str, dict[str, torch.Tensor]] = {p: {} for p in _ENCODER_PREFIXES}
    stray = []
    for key, tensor in model_dict.items():
        prefix = next((p for p in _ENCODER_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            stray.append(key)
        else:
            halves[prefix][key[len(prefix) :]] = tensor
    if stray:
        raise CheckpointError(
            f"model_dict keys that map nowhere: {stray[:10]}{' ...' if len(stray) > 10 else ''}. Only the BERT "
            f"encoder under {list(_ENCODER_PREFIXES)} has a place in SciMult; these keys would be a projection "
            "(projection_dim), span / start_end_concat heads (q_rep_method) or gating networks, which no "
            "released SciMult checkpoint has and this converter does not support."
        )
    question, context = (halves[p] for p in _ENCODER_PREFIXES)
    if not question:
        raise CheckpointError(f"model_dict has no keys under {_ENCODER_PREFIXES[0]!r}; not a SciMult bi-encoder.")
    only_q, only_c = sorted(set(question) - set(context)), sorted(set(context) - set(question))
    if only_q or only_c:
        raise CheckpointError(
            "the query and context encoders are not shared: keys only under question_model.encoder: "
            f"{only_q[:5]}, only under ctx_model.encoder: {only_c[:5]}. SciMult embeds queries and "
            "documents with one encoder (shared_encoder true); a checkpoint with two encoders is not supported."
        )
    differing = []
    for name, q in question.items():
        c = context[name]
        same_view = (
            q.untyped_storage().data_ptr() == c.untyped_storage().data_ptr()
            and q.storage_offset() == c.storage_offset()
            and q.shape == c.shape
            and q.stride() == c.stride()
            and q.dtype == c.dtype
        )
        if not same_view:
            report.shared_storage = False
            if q.shape != c.shape or q.dtype != c.dtype or not torch.equal(q, c):
                differing.append(name)
    if differing:
        raise CheckpointError(
            f"the query and context encoders are not shared: {len(differing)} tensors differ between "
            f"question_model.encoder and ctx_model.encoder (e.g. {differing[:5]}). SciMult embeds queries and "
            "documents with one encoder (shared_encoder true); a checkpoint with two different encoders is not "
            "supported."
        )
    if not report.shared_storage:
        logger.warning("question_model and ctx_model hold equal but separately stored tensors; using one copy.")
    return question


def _rename(bert_state: Mapping[str, torch.Tensor], report: ConversionReport) -> dict[str, torch.Tensor]:
    """Original BERT-relative names -> SciMult parameter names (drops what has no place, see the report)."""
    out, unmapped = {}, []
    for key, tensor in bert_state.items():
        if key in _DROPPED_BERT_KEYS:
            report.dropped_keys[key] = _DROPPED_BERT_KEYS[key]
            continue
        new = key
        for pattern, replacement in _EXPERT_RENAMES:
            if pattern.match(key):
                new = pattern.sub(replacement, key)
                break
        else:
            if ".moe_" in key or key.startswith("pooler.") or not key.startswith(("embeddings.", "encoder.layer.")):
                unmapped.append(key)
                continue
        out[new] = tensor
    if unmapped:
        raise CheckpointError(
            f"model_dict keys that map nowhere in SciMult: "
            f"{[_ENCODER_PREFIXES[0] + k for k in unmapped[:10]]}{' ...' if len(unmapped) > 10 else ''}. "
            "Expected BERT embeddings / encoder.layer.N weights and the original expert modules (moe_query, "
            "moe_key, moe_value, moe_dense, moe_layer.interm_layers, moe_layer.output_layers)."
        )
    return out


def _dims_from_weights(state: Mapping[str, torch.Tensor]) -> dict:
    def need(key):
        if key not in state:
            raise CheckpointError(f"model_dict lacks {_ENCODER_PREFIXES[0] + key}; the weight is left unfilled.")
        return state[key]

    words = need("embeddings.word_embeddings.weight")
    layers = {int(m.group(1)) for k in state if (m := re.match(r"^encoder\.layer\.(\d+)\.", k))}
    if not layers:
        raise CheckpointError("model_dict has no encoder.layer.N weights; not a BERT encoder.")
    pattern = re.compile(r"^encoder\.layer\.\d+\.intermediate\.dense\.(experts\.\d+\.)?weight$")
    intermediate = next((v for k, v in state.items() if pattern.match(k)), None)
    if intermediate is None:
        raise CheckpointError("model_dict has no intermediate.dense weights; the weight is left unfilled.")
    return {
        "vocab_size": words.shape[0],
        "hidden_size": words.shape[1],
        "num_hidden_layers": max(layers) + 1,
        "intermediate_size": intermediate.shape[0],
        "max_position_embeddings": need("embeddings.position_embeddings.weight").shape[0],
        "type_vocab_size": need("embeddings.token_type_embeddings.weight").shape[0],
    }


def config_from_checkpoint(
    encoder_params: Mapping,
    state: Mapping[str, torch.Tensor],
    base_config: Mapping | None = None,
    num_attention_heads: int | None = None,
):
    """The :class:`~scimult_hf.SciMultConfig` of a checkpoint.

    ``encoder_params`` (a plain dict, an omegaconf ``DictConfig`` or its stand-in) gives the expert layout
    and pooling, ``state`` (SciMult parameter names -> tensors) the dimensions, and the base model's
    ``config.json`` (``base_config``) the number of attention heads, activation and LayerNorm epsilon,
    which the weights do not reveal. ``num_attention_heads`` overrides the base config.
    """
    from .configuration_scimult import SciMultConfig

    params = plain(encoder_params)
    if not isinstance(params, Mapping):
        raise CheckpointError(f"encoder_params must be a mapping, got {type(params).__name__}.")
    base = dict(base_config or {})

    shared = _param(params, "shared_encoder", bool)
    if shared is False:
        raise CheckpointError(
            "encoder_params.shared_encoder is false: this checkpoint has separate query and context encoders, "
            "which SciMult (one encoder per task expert) does not support."
        )
    projection = _param(params, "projection_dim", int, default=0)
    if projection:
        raise CheckpointError(
            f"encoder_params.projection_dim is {projection}: a projection layer on top of BERT is not supported "
            "(no released SciMult checkpoint has one; they use projection_dim 0)."
        )
    for flag in ("factor_rep", "mean_pool_ctx_only", "use_infer_expert", "per_layer_gating"):
        if _param(params, flag, bool, default=False):
            raise CheckpointError(
                f"encoder_params.{flag} is true: not supported (the released SciMult checkpoints have it false; "
                "SciMult routes by task name, with the same pooling for queries and documents)."
            )

    dims = _dims_from_weights(state)
    heads = num_attention_heads or base.get("num_attention_heads")
    if not heads:
        raise BaseModelError(
            "the number of attention heads is not stored in the checkpoint: pass a tokenizer / base model folder "
            "whose config.json has num_attention_heads (e.g. --tokenizer path/to/BiomedBERT), or "
            "num_attention_heads=... (12 for the released BERT-base models)."
        )
    for name in ("hidden_size", "num_hidden_layers", "vocab_size"):
        if name in base and base[name] != dims[name]:
            raise BaseModelError(
                f"the base model config says {name}={base[name]}, but the checkpoint's weights have "
                f"{dims[name]}: the tokenizer / base folder belongs to a different model."
            )

    use_moe = _param(params, "use_moe", bool, default=False)
    expert_type, expert_layers, tasks = None, [], list(ORIGINAL_TASKS)
    if use_moe:
        num_expert = _param(params, "num_expert", int, required=True)
        moe_type = _param(params, "moe_type", str, required=True)
        expert_type, expert_layers = expert_layers_for(moe_type, dims["num_hidden_layers"])
        if num_expert != len(ORIGINAL_TASKS):
            tasks = [f"expert_{k}" for k in range(num_expert)]
            logger.warning(
                "num_expert is %d, not 3: the experts get the neutral names %s (the original task ids are "
                "only known for 3-expert models).", num_expert, tasks,
            )
        found_layers = sorted({int(k.split(".")[2]) for k in state if ".experts." in k})
        found_experts = sorted({int(k.split(".experts.")[1].split(".")[0]) for k in state if ".experts." in k})
        if found_layers != expert_layers or found_experts != list(range(num_expert)):
            raise CheckpointError(
                f"encoder_params (moe_type {moe_type!r}, num_expert {num_expert}) expect experts 0..{num_expert - 1} "
                f"in layers {expert_layers}, but the weights have experts {found_experts} in layers {found_layers}."
            )
    elif any(".experts." in k for k in state):
        raise CheckpointError("encoder_params.use_moe is false, but model_dict holds expert (moe_*) weights.")

    mean_pool = _param(params, "mean_pool", bool, default=False)
    return SciMultConfig(
        **dims,
        num_attention_heads=int(heads),
        hidden_act=base.get("hidden_act", "gelu"),
        layer_norm_eps=base.get("layer_norm_eps", 1e-12),
        pad_token_id=base.get("pad_token_id", 0),
        hidden_dropout_prob=base.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=base.get("attention_probs_dropout_prob", 0.1),
        initializer_range=base.get("initializer_range", 0.02),
        tasks=tasks,
        expert_type=expert_type,
        expert_layers=expert_layers if expert_type else None,
        # The original sets norm_rep = mean_pool: mean-pooled embeddings are L2-normalised, [CLS] ones are not.
        pooling="mean" if mean_pool else "cls",
        normalize=bool(mean_pool),
    )


def check_state(config, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Check ``state`` against a SciMult model of ``config`` (built on the meta device: no memory).

    Every parameter must be filled and every tensor used, with matching shapes. Returns the parameter names
    in the model's order.
    """
    from .modeling_scimult import SciMultModel

    with torch.device("meta"):
        expected = SciMultModel(config).state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(
            f"{len(missing)} SciMult weights are left unfilled: the checkpoint has no tensor for "
            f"{missing[:8]}{' ...' if len(missing) > 8 else ''}. The checkpoint is incomplete or its "
            "encoder_params do not describe its weights."
        )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(
            f"checkpoint weights that map nowhere in a SciMult model of this configuration: {extra[:8]}"
            f"{' ...' if len(extra) > 8 else ''} (check moe_type / num_expert in encoder_params)."
        )
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if state[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"weights with unexpected shapes (name, found, expected): {bad[:5]}.")
    dtypes = sorted({str(t.dtype) for t in state.values()})
    if len(dtypes) != 1 or state[next(iter(expected))].dtype not in _SAFETENSORS_DTYPES:
        raise CheckpointError(f"expected one floating-point dtype for all weights, found {dtypes}.")
    return list(expected)


# ------------------------------------------------------------------------------------------ writing
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}
_MADV_PAGEOUT = 21  # Linux >= 5.4: reclaim these pages; never changes their contents
_CHUNK = 1 << 24


class _PageReleaser:
    """Hands pages of memory-mapped checkpoint tensors back to the kernel once they are written out.

    Reading a memory-mapped tensor makes its pages resident (counted in RSS) for as long as the file stays
    mapped. ``madvise(MADV_PAGEOUT)`` reclaims them; it is a hint that never alters memory contents (a later
    read faults the page in again), so it is safe on any address. Where it is unavailable (not Linux, kernel
    older than 5.4) this does nothing and the conversion just uses more memory.
    """

    def __init__(self):
        self._madvise = None
        if os.name == "posix" and hasattr(os, "uname") and os.uname().sysname == "Linux":
            import ctypes
            import ctypes.util
            import mmap

            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                libc.madvise.restype = ctypes.c_int
                self._madvise, self._page = libc.madvise, mmap.PAGESIZE
            except (OSError, AttributeError):
                self._madvise = None

    def __call__(self, address: int, length: int) -> None:
        if self._madvise is None or length <= 0:
            return
        start = address & ~(self._page - 1)
        end = (address + length + self._page - 1) & ~(self._page - 1)
        if self._madvise(start, end - start, _MADV_PAGEOUT) != 0:
            logger.debug("madvise(MADV_PAGEOUT) is not available; pages stay resident")
            self._madvise = None


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike) -> int:
    """Write ``tensors`` as a safetensors file, streaming: each tensor is copied to the file in chunks and
    (for memory-mapped tensors) its pages are released right after, so memory stays flat however large
    the file is. Returns the number of data bytes written."""
    import struct

    names = sorted(tensors)
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in names:
        tensor = tensors[name]
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    release = _PageReleaser()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in names:
            tensor = tensors[name]
            if not tensor.is_contiguous():
                tensor = tensor.contiguous()
            flat = tensor.reshape(-1).view(torch.uint8)
            for start in range(0, flat.numel(), _CHUNK):
                chunk = flat[start : start + _CHUNK]
                f.write(memoryview(chunk.numpy()))
                release(chunk.data_ptr(), chunk.numel())
    return offset


def _layout_config(config):
    """``config`` shrunk to one small layer and a 4-word vocabulary: a model of it writes the same folder
    layout (code files, auto_map, tokenizer, sentence-transformers modules) as the real one, in a few MB."""
    from .configuration_scimult import SciMultConfig

    data = config.to_dict()
    for key in ("auto_map", "architectures", "transformers_version", "model_type", "_name_or_path"):
        data.pop(key, None)
    data.update(
        vocab_size=4,
        num_hidden_layers=1,
        intermediate_size=4,
        expert_layers=[0] if config.expert_type else None,
    )
    return SciMultConfig(**{k: v for k, v in data.items() if k in SciMultConfig.__dataclass_fields__})


# ------------------------------------------------------------------------------------------ tokenizer
def _tokenizer_from(location: str, **kwargs):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    try:
        base = AutoConfig.from_pretrained(location, **kwargs).to_dict()
    except (OSError, ValueError) as err:
        logger.warning("no usable config.json at %s (%s); the base config is unknown.", location, err)
        base = {}
    return tokenizer, base


def resolve_tokenizer(tokenizer: str | os.PathLike | None, pretrained_model_cfg: str | None):
    """The tokenizer and base-model config: from ``tokenizer`` (folder or Hub id) if given, else from the
    Hub (the base model named in the checkpoint, under its current name first; the local Hub cache is
    tried first and ``HF_HUB_OFFLINE`` is honoured). Returns ``(tokenizer, base_config_dict, source)``."""
    if tokenizer is not None:
        location = os.fspath(tokenizer)
        kind = "local folder" if os.path.isdir(location) else "Hub id"
        try:
            tok, base = _tokenizer_from(location)
        except (OSError, ValueError) as err:
            raise BaseModelError(f"cannot load a tokenizer from {location!r} ({kind}): {err}") from None
        return tok, base, f"{kind} {location} (given with --tokenizer)"

    from huggingface_hub import HfApi, constants

    name = pretrained_model_cfg or ORIGINAL_BASE_MODEL
    candidates = list(dict.fromkeys([_BASE_MODEL_RENAMES.get(name, name), name]))
    for repo in candidates:  # the local Hub cache first: works offline and costs nothing
        try:
            tok, base = _tokenizer_from(repo, local_files_only=True)
            return tok, base, f"Hub model {repo} (from the local Hub cache)"
        except (OSError, ValueError):
            continue
    if constants.HF_HUB_OFFLINE:
        reason = "HF_HUB_OFFLINE is set and the base model is not in the local Hub cache"
    else:
        reasons = []
        for repo in candidates:
            try:
                info = HfApi().model_info(repo, timeout=10)
            except Exception as err:  # no network, DNS failure, 404, ...: fail fast, don't retry for minutes
                reasons.append(f"{repo}: {type(err).__name__}: {err}")
                if not getattr(err, "response", None):  # no answer at all: the Hub is unreachable
                    break
                continue
            try:
                tok, base = _tokenizer_from(repo, revision=info.sha)
            except (OSError, ValueError) as err:
                reasons.append(f"{repo}: download failed: {err}")
                continue
            return tok, base, f"Hub model {repo} (revision {info.sha})"
        reason = "the Hub could not be reached or does not serve it (" + "; ".join(reasons) + ")"
    raise BaseModelError(
        f"the tokenizer of the base model {name!r} is needed and not available: {reason}. Pass a local copy "
        f"with --tokenizer DIR (tokenizer=...): a folder with vocab.txt and config.json of {RENAMED_BASE_MODEL}, "
        "e.g. downloaded with `hf download " + RENAMED_BASE_MODEL + " vocab.txt config.json --local-dir DIR`."
    )


def _prepare_tokenizer(tokenizer, max_length: int):
    """The original tokenization: uncased BERT WordPiece, at most ``max_length`` tokens."""
    probe = "Protein FOLDING"
    if tokenizer.tokenize(probe) != tokenizer.tokenize(probe.lower()):
        raise BaseModelError(
            "the tokenizer does not lower-case, but SciMult's base model (BiomedBERT, uncased) does: pass the "
            "uncased tokenizer (do_lower_case true)."
        )
    tokenizer.model_max_length = max_length
    return tokenizer


# ------------------------------------------------------------------------------------------ card
_TASK_USE = {
    "search": "search / retrieval (queries and papers; also encode_query / encode_document)",
    "link_prediction": "link prediction (citation / co-citation recommendation)",
    "classification": "classification (papers and label names)",
}


def model_card(report: ConversionReport) -> str:
    """A model-card stub for a converted checkpoint (the Hub publishing work completes it)."""
    cfg = report.config
    experts = cfg.get("expert_type")
    name = report.checkpoint.name
    lines = [
        "---",
        "license: mit",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags:",
        "- sentence-transformers",
        "- feature-extraction",
        "- scientific-literature",
        "- scimult",
        *(["- mixture-of-experts"] if experts else []),
        f"base_model: {RENAMED_BASE_MODEL}",
        "---",
        "",
        f"# SciMult, converted from `{name}`",
        "",
        "SciMult (Zhang et al., Findings of EMNLP 2023), converted from the original training checkpoint by "
        "`scimult-hf convert`. The conversion is exact: the original code and this folder give the same "
        "embeddings (checked to 1e-5 on reference fixtures).",
        "",
        "## Source",
        "",
        f"- file: `{name}`, {report.size:,} bytes",
        f"- sha256: `{report.sha256}`",
        f"- tokenizer and base config: {report.tokenizer_source}",
        f"- base model named in the checkpoint: `{report.encoder_params.get('pretrained_model_cfg')}`",
        f"- parameters: {report.num_parameters:,} ({report.weights_bytes:,} bytes of weights)",
        "",
        "## Model",
        "",
        f"- experts: {experts or 'none (dense BERT)'}"
        + (f", in layers {cfg.get('expert_layers')}, one per task" if experts else ""),
        f"- embedding: {'[CLS] token' if cfg.get('pooling') == 'cls' else 'mean of the tokens'} of the last "
        f"layer, {'L2-normalised (cosine)' if cfg.get('normalize') else 'not normalised (dot product)'}",
        "- input: `title [SEP] abstract`, uncased, at most 512 tokens",
        "",
    ]
    if experts:
        lines += ["| task | expert id | use for |", "|---|---|---|"]
        lines += [f"| `{t}` | {i} | {_TASK_USE.get(t, '')} |" for i, t in enumerate(cfg.get("tasks", []))]
        lines += ["", "`encode(..., task=...)` picks the expert; the task is required.", ""]
        if "pmcpatients" in name.lower():
            lines += [
                "The authors' PMC-Patients evaluation (`src/eval_pmc_patients.py`) embeds queries and candidates "
                "with the link-prediction expert: use `task=\"link_prediction\"` to reproduce it.",
                "",
            ]
    lines += [
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("PATH_OR_REPO", trust_remote_code=True)',
        'papers = ["BERT [SEP] We introduce a new language representation model ..."]',
        "embeddings = model.encode(papers"
        + ((', task="link_prediction")' if "pmcpatients" in name.lower() else ', task="search")') if experts else ")"),
        "```",
        "",
        "## What the conversion dropped",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in {**report.dropped_entries, **report.dropped_keys}.items()]
    lines += [
        "- the `ctx_model.` copy of every tensor: the query and context encoders are one shared module",
        "",
        "## Results",
        "",
        "To be completed by the Hub publishing work.",
        "",
        "## Citation",
        "",
        "```bibtex",
        "@inproceedings{zhang2023pre,",
        "  title={Pre-training Multi-task Contrastive Learning Models for Scientific Literature Understanding},",
        "  author={Zhang, Yu and Cheng, Hao and Shen, Zhihong and Liu, Xiaodong and Wang, Ye-Yi and Gao, Jianfeng},",
        "  booktitle={Findings of the Association for Computational Linguistics: EMNLP 2023},",
        "  pages={12259--12275},",
        "  year={2023}",
        "}",
        "```",
        "",
    ]
    return "\n".join(lines)


def _write_folder(folder: Path, config, state: Mapping[str, torch.Tensor], tokenizer, max_length: int) -> None:
    """Write the complete SciMult folder into ``folder`` (an empty staging folder).

    The layout comes from :func:`~scimult_hf.save_sentence_transformer`, run on a small model (tens of MB)
    of the same configuration but one small layer (:func:`_layout_config`): code files, ``auto_map``,
    tokenizer and the sentence-transformers modules do not depend on the weights. Then ``config.json`` and
    ``model.safetensors`` are written for the real model, the weights streamed straight from the
    memory-mapped checkpoint. So the full model never sits in memory, not even once; saving a real
    ``SciMultModel`` with ``save_sentence_transformer`` would hold it twice (the model, then the copy that
    sentence-transformers re-loads from the folder to save its modules).
    """
    from .modeling_scimult import SciMultModel
    from .sentence import save_sentence_transformer

    layout = SciMultModel(_layout_config(config)).eval()
    save_sentence_transformer(layout, tokenizer, folder, max_seq_length=max_length)  # replaces ``folder``
    written = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del layout

    config._name_or_path = ""
    config.auto_map = written.get("auto_map")
    config.architectures = written.get("architectures")
    config.save_pretrained(folder)
    logger.info("writing %s (%d tensors, streamed from the checkpoint)", folder / "model.safetensors", len(state))
    write_safetensors(state, folder / "model.safetensors")

    # Cheap self-check of what was written: names, shapes and dtypes from the safetensors header.
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", framework="pt") as f:
        names = set(f.keys())
        if names != set(state) or any(list(f.get_slice(k).get_shape()) != list(state[k].shape) for k in names):
            raise RuntimeError("model.safetensors does not hold the converted weights; conversion aborted.")
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if saved.get("num_hidden_layers") != config.num_hidden_layers or "AutoModel" not in (saved.get("auto_map") or {}):
        raise RuntimeError(f"config.json was not written for the converted model: {saved}")


# ------------------------------------------------------------------------------------------ entry point
_TRAINING_ENTRIES = {
    "optimizer_dict": "AdamW state (exp_avg, exp_avg_sq per parameter): training only, never read",
    "scheduler_dict": "learning-rate scheduler state: training only",
    "offset": "data-loader offset: training only",
    "epoch": "training epoch counter",
}


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    num_attention_heads: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an original SciMult checkpoint (``.ckpt``) into a complete SciMult folder at ``output``.

    Args:
        checkpoint: the original file, e.g. ``scimult_moe.ckpt``.
        output: the folder to write (loads with ``SentenceTransformer(output, trust_remote_code=True)``
            and ``AutoModel.from_pretrained(output, trust_remote_code=True)``).
        tokenizer: folder or Hub id of the base model's tokenizer (``vocab.txt``) and ``config.json``.
            Default: the base model the checkpoint names, from the Hub (or the local Hub cache).
        num_attention_heads: overrides the base config's value (not stored in the checkpoint).
        overwrite: replace an existing ``output`` (otherwise an existing folder is an error).

    Nothing is left at ``output`` when the conversion fails. Raises :class:`CheckpointError` for a
    file that is unsafe, corrupt, not a SciMult checkpoint or not convertible, and
    :class:`BaseModelError` when the tokenizer / base config is missing or does not fit.
    """
    from .sentence import atomic_directory

    checkpoint, output = Path(checkpoint), Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists; choose another output or pass overwrite=True (--overwrite).")
    report = ConversionReport(checkpoint=checkpoint.resolve())
    logger.info("reading %s (restricted unpickler, memory-mapped)", checkpoint)
    original = load_original_checkpoint(checkpoint)
    report.size = checkpoint.stat().st_size
    report.encoder_params = dict(original["encoder_params"])
    model_dict = original["model_dict"]
    for key in original:
        if key not in ("model_dict", "encoder_params"):
            report.dropped_entries[key] = _TRAINING_ENTRIES.get(key, "not part of the model")
    # Drop every reference to the optimizer state at once: its tensors were mapped, never read.
    del original
    gc.collect()

    state = _rename(_encoder_state(model_dict, report), report)
    del model_dict
    tok, base, report.tokenizer_source = resolve_tokenizer(tokenizer, report.encoder_params.get("pretrained_model_cfg"))
    logger.info("tokenizer and base config: %s", report.tokenizer_source)
    config = config_from_checkpoint(report.encoder_params, state, base, num_attention_heads)
    max_length = min(MAX_LENGTH, config.max_position_embeddings)
    tok = _prepare_tokenizer(tok, max_length)
    order = check_state(config, state)
    config.dtype = state[order[0]].dtype
    report.config = {k: getattr(config, k) for k in ("tasks", "expert_type", "expert_layers", "pooling", "normalize")}
    report.num_parameters = sum(state[k].numel() for k in order)
    report.weights_bytes = sum(state[k].numel() * state[k].element_size() for k in order)
    logger.info(
        "model: %s experts%s, %s pooling%s, %d parameters; dropped %s and the ctx_model copy",
        config.expert_type or "no",
        f" in layers {config.expert_layers}" if config.has_experts else "",
        config.pooling,
        ", normalised" if config.normalize else "",
        report.num_parameters,
        sorted({**report.dropped_entries, **report.dropped_keys}),
    )
    logger.info("hashing %s", checkpoint)
    report.sha256 = file_sha256(checkpoint)

    with atomic_directory(output) as tmp:
        _write_folder(tmp, config, state, tok, max_length)
        (tmp / "README.md").write_text(model_card(report), encoding="utf-8")
        (tmp / "conversion.json").write_text(
            json.dumps(
                {
                    "source_file": report.checkpoint.name,
                    "source_size": report.size,
                    "source_sha256": report.sha256,
                    "tokenizer_source": report.tokenizer_source,
                    "encoder_params": report.encoder_params,
                    "dropped": {**report.dropped_entries, **report.dropped_keys},
                },
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
    logger.info("wrote %s", output)
    return output


# ------------------------------------------------------------------------------------------ CLI
def _run(args) -> int:
    path = convert_checkpoint(
        args.checkpoint,
        args.output,
        tokenizer=args.tokenizer,
        num_attention_heads=args.num_attention_heads,
        overwrite=args.overwrite,
    )
    summary = json.loads((path / "conversion.json").read_text(encoding="utf-8"))
    print(f"tokenizer and base config: {summary['tokenizer_source']}")
    print(f"dropped: {', '.join(summary['dropped'])} (training state and unused weights; see README.md)")
    print(f"wrote {path} (SciMult folder; load with SentenceTransformer({str(path)!r}, trust_remote_code=True))")
    return 0


def register_cli(subparsers) -> None:
    """Add ``convert`` to an argparse subparsers object (``scimult-hf convert --checkpoint FILE --output DIR``)."""
    p = subparsers.add_parser(
        "convert",
        help="convert an original SciMult checkpoint (.ckpt) into a SciMult folder",
        description="Convert an original SciMult training checkpoint (scimult_vanilla.ckpt, scimult_moe.ckpt, "
        "scimult_moe_pmcpatients_*.ckpt) into a folder for transformers / sentence-transformers. The file is "
        "read with a restricted unpickler; nothing is written if anything is wrong.",
    )
    p.add_argument("--checkpoint", required=True, help="the original .ckpt file")
    p.add_argument("--output", required=True, help="folder to write")
    p.add_argument(
        "--tokenizer",
        help=f"folder or Hub id with the base model's vocab.txt and config.json (default: {RENAMED_BASE_MODEL} "
        "from the Hub or the local Hub cache)",
    )
    p.add_argument("--num-attention-heads", type=int, help="override the base config (12 for the released models)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_run)


__all__ = [
    "ALLOWED_GLOBALS",
    "BaseModelError",
    "CheckpointError",
    "ConversionReport",
    "check_state",
    "config_from_checkpoint",
    "convert_checkpoint",
    "expert_layers_for",
    "load_original_checkpoint",
    "model_card",
    "register_cli",
    "resolve_tokenizer",
    "write_safetensors",
]
