"""Upcycling: a BERT (plain or sentence-transformers folder) becomes a complete SciMult folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoTokenizer

from ..errors import InputError
from ..io import check_output
from ..modeling_scimult import SciMultModel
from .bert import from_bert
from .folder import (
    local_or_hub_id,
    model_type,
    quiet_transformers,
    read_sentence_transformers_setup,
    save_sentence_transformer,
)

__all__ = ["upcycle"]


@quiet_transformers()
def upcycle(
    source: str | os.PathLike,
    output: str | os.PathLike,
    expert_type: str | None = "attention",
    expert_layers: Sequence[int] | None = None,
    tasks: Sequence[str] | None = None,
    prompts: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Turn a BERT (plain or sentence-transformers folder) into a complete SciMult folder, tokenizer included.

    A sentence-transformers source gives the pooling, normalisation, maximum length and prompts (``prompts``
    wins); a plain BERT gives [CLS] pooling, unnormalised. ``expert_type=None`` builds a dense model (the
    instruction variant, with e.g. ``prompts=INSTRUCTION_PROMPTS``). An existing ``output`` is replaced only
    with ``overwrite=True`` (and only once the new folder is complete); an output that is or contains
    ``source`` is refused.
    """
    source = local_or_hub_id(source)
    check_output(output, [source], overwrite)
    setup = read_sentence_transformers_setup(source) if os.path.isdir(source) else {}
    transformer_path = setup.get("transformer_path", source)
    kind = model_type(transformer_path)
    if kind == SciMultModel.config_class.model_type:
        raise InputError(
            f"{source} is already a SciMult model: upcycle takes a BERT model. Load it with "
            "SciMultModel.from_pretrained, or upcycle the BERT it came from to change its experts."
        )
    if kind not in (None, "bert"):
        raise InputError(f"{source} is a {kind!r} model: upcycle supports BERT models (model_type 'bert').")
    model = from_bert(
        transformer_path,
        expert_type=expert_type,
        expert_layers=expert_layers,
        tasks=tasks,
        pooling=setup.get("pooling"),
        normalize=setup.get("normalize"),
    )
    tokenizer = AutoTokenizer.from_pretrained(transformer_path)
    if prompts is None:
        prompts = setup.get("prompts") or None
    return save_sentence_transformer(
        model, tokenizer, output, prompts=prompts, default_prompt_name=setup.get("default_prompt_name"),
        max_seq_length=setup.get("max_seq_length"),
    )
