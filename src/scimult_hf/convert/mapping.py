"""From an original checkpoint's ``model_dict`` and ``encoder_params`` to SciMult names and a SciMultConfig.

The query and context encoders must be one shared encoder; original key names are renamed to SciMult's
(``moe_query.K`` -> ``query.experts.K`` and so on); the configuration comes from ``encoder_params`` (expert
layout, pooling), the weights (dimensions) and the base model's ``config.json`` (heads, activation).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..configuration_scimult import DEFAULT_TASKS
from .checkpoint import BaseModelError, CheckpointError, plain

logger = logging.getLogger(__name__)

#: Expert ids of the original 3-expert models (``EXPERT_CONFIG_TO_MAP["3-expert"]``), in order: the
#: package's default task order is the original's.
ORIGINAL_TASKS = DEFAULT_TASKS
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

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


def shared_encoder_state(model_dict: Mapping[str, torch.Tensor], report: ConversionReport) -> dict[str, torch.Tensor]:
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


def rename_keys(bert_state: Mapping[str, torch.Tensor], report: ConversionReport) -> dict[str, torch.Tensor]:
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
    from ..configuration_scimult import SciMultConfig

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

    Every parameter must be filled and every tensor used, with matching shapes, one floating-point dtype
    and finite values. Returns the parameter names
    in the model's order.
    """
    from ..modeling_scimult import SciMultModel

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
    if len(dtypes) != 1 or state[next(iter(expected))].dtype not in _FLOAT_DTYPES:
        raise CheckpointError(f"expected one floating-point dtype for all weights, found {dtypes}.")
    non_finite = [k for k in expected if not bool(torch.isfinite(state[k]).all())]
    if non_finite:
        raise CheckpointError(
            f"{len(non_finite)} weights hold infinite or NaN values (e.g. {non_finite[:4]}): the checkpoint is "
            "corrupt or was saved from a diverged run. Nothing was converted."
        )
    return list(expected)


__all__ = [
    "ORIGINAL_TASKS",
    "ConversionReport",
    "check_state",
    "config_from_checkpoint",
    "expert_layers_for",
    "rename_keys",
    "shared_encoder_state",
]
