"""BERT <-> SciMult: upcycle a ``BertModel`` into SciMult, or fold one task's experts back into a ``BertModel``.

Expert parameters are named after the BERT module they replace (``X.experts.{k}.w`` for BERT's ``X.w``), so
the mapping is one to one (:func:`~scimult_hf.modeling_scimult.bert_parameter_name`). These helpers are the
package's, not the remote-code files': a Hub repository needs only the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import BertConfig, BertModel

from ..configuration_scimult import SciMultConfig
from ..errors import InputError
from ..modeling_scimult import BERT_FIELDS, SciMultModel, bert_parameter_name

__all__ = ["from_bert", "to_bert"]


def from_bert(
    bert_or_path,
    expert_type: str | None = "attention",
    expert_layers: Sequence[int] | None = None,
    tasks: Sequence[str] | None = None,
    task_aliases: dict[str, str] | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    **config_kwargs,
) -> SciMultModel:
    """Upcycle a ``BertModel`` (instance, folder or Hub id) into SciMult.

    Each expert starts as a copy of the BERT sub-layer it replaces, so until training moves them apart
    every task's embedding equals the source model's. ``pooling`` defaults to ``"cls"`` and ``normalize``
    to False; :func:`scimult_hf.upcycle` reads both from a sentence-transformers folder.
    """
    if isinstance(bert_or_path, (str, os.PathLike)):
        bert, info = BertModel.from_pretrained(os.fspath(bert_or_path), output_loading_info=True, use_kernels=False)
        missing = [k for k in info.get("missing_keys") or () if not str(k).startswith("pooler.")]
        if missing or info.get("mismatched_keys"):
            raise InputError(
                f"from_bert: {os.fspath(bert_or_path)} is not a complete BERT: weights missing or of the wrong "
                f"shape: {sorted(map(str, missing or info['mismatched_keys']))[:4]} ... Upcycle a BertModel folder."
            )
    elif isinstance(bert_or_path, BertModel):
        bert = bert_or_path
    else:
        raise TypeError(
            f"from_bert needs a transformers BertModel or a path to one, got {type(bert_or_path).__name__}."
        )
    bert_config = bert.config
    if getattr(bert_config, "position_embedding_type", "absolute") not in (None, "absolute"):
        raise InputError("from_bert supports BERT models with absolute position embeddings only.")
    fields = {name: getattr(bert_config, name) for name in BERT_FIELDS if hasattr(bert_config, name)}
    fields["position_embedding_type"] = "absolute"
    try:  # the config checks its values (tasks, expert type and layers, pooling)
        config = SciMultConfig(
            **fields,
            tasks=list(tasks) if tasks is not None else None,
            task_aliases=task_aliases,
            expert_type=expert_type,
            expert_layers=list(expert_layers) if expert_layers is not None else None,
            pooling=pooling or "cls",
            normalize=bool(normalize),
            **config_kwargs,
        )
    except ValueError as err:
        raise InputError(str(err)) from None
    model = SciMultModel(config)
    source = {k: v for k, v in bert.state_dict().items() if not k.startswith("pooler.")}
    target = model.state_dict()
    new_state, used = {}, set()
    for name in target:
        bert_name, _ = bert_parameter_name(name)
        if bert_name not in source:
            raise InputError(f"from_bert: the source BERT has no weight {bert_name!r} (needed for {name!r}).")
        new_state[name] = source[bert_name].detach().clone()
        used.add(bert_name)
    leftover = sorted(set(source) - used - {"embeddings.position_ids", "embeddings.token_type_ids"})
    if leftover:
        raise InputError(f"from_bert: source weights with no place in SciMult: {leftover}.")
    model.load_state_dict(new_state, strict=True)
    model.to(bert.dtype)
    model.config._name_or_path = getattr(bert_config, "_name_or_path", "") or ""
    return model.eval()


def to_bert(model: SciMultModel, task: str | None = None) -> BertModel:
    """A plain ``BertModel`` that computes ``model``'s representation for ``task``.

    Its last hidden state equals SciMult's for that task; pool it per ``config.pooling`` (and normalise
    per ``config.normalize``) to get the SciMult embedding. SciMult never uses BERT's tanh pooler; the
    returned model has one set to identity weights and zero bias, so that loaders expecting a pooler
    find deterministic weights instead of random ones.
    """
    config = model.config
    if config.has_experts:
        if task is None:
            raise InputError(f"to_bert needs a task for a model with experts. Valid tasks: {config.tasks}.")
        expert = config.task_id(task)
    else:
        if task is not None:
            config.task_id(task)
        expert = None
    bert_config = BertConfig(**{name: getattr(config, name) for name in BERT_FIELDS})
    bert = BertModel(bert_config, add_pooling_layer=True)
    state = {
        "pooler.dense.weight": torch.eye(config.hidden_size, dtype=model.dtype),
        "pooler.dense.bias": torch.zeros(config.hidden_size, dtype=model.dtype),
    }
    for name, tensor in model.state_dict().items():
        bert_name, k = bert_parameter_name(name)
        if k is None or k == expert:
            state[bert_name] = tensor.detach().clone()
    bert.load_state_dict(state, strict=True)
    return bert.to(model.dtype).eval()
