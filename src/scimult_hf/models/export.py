"""Per-task export: one task's experts folded into a plain-BERT sentence-transformers folder.

The folder loads with ``SentenceTransformer(path)`` without remote code and without scimult_hf, so TEI,
ONNX and every BERT runtime can serve it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..errors import InputError
from ..io import atomic_directory, check_output
from ..modeling_scimult import SciMultModel
from .bert import to_bert
from .folder import (
    default_max_seq_length,
    is_scimult_model,
    local_or_hub_id,
    model_type,
    quiet_transformers,
    read_sentence_transformers_setup,
    write_classic_sentence_transformers_files,
)
from .tasks import prompt_for

#: Written beside a per-task export: which task's experts it holds. The folder itself is plain BERT and cannot
#: refuse ``task=`` for another task; the package's own paths (``serve``, the handler) read this and do.
EXPORT_RECORD = "scimult_export.json"

__all__ = ["EXPORT_RECORD", "export_task", "exported_task"]


@quiet_transformers()
def export_task(
    model: SciMultModel | str | os.PathLike,
    task: str | None,
    output: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    prompts: dict[str, str] | None = None,
    max_seq_length: int | None = None,
    overwrite: bool = False,
    default_prompt_name: str | None = None,
) -> Path:
    """Write a plain-BERT sentence-transformers folder that embeds exactly like ``model`` for ``task``.

    Transformer (a stock ``BertModel``) + Pooling [+ Normalize]; prompts are kept (from the model's folder, or
    ``prompts``), and when ``task`` has a prompt of its own (the instruction variant) it becomes the export's
    ``default_prompt_name``, so that plain sentence-transformers, TEI and infinity apply it without being told
    (the export embeds for that task only). It loads with
    ``SentenceTransformer(output)`` without remote code and without scimult_hf, so TEI, ONNX and
    every BERT runtime can serve it. An existing ``output`` is replaced only with ``overwrite=True``; an
    output that is or contains the model's folder is refused.
    """
    setup: dict = {}
    check_output(output, [] if is_scimult_model(model) else [model], overwrite)
    if not is_scimult_model(model):
        path = local_or_hub_id(model)
        if model_type(path) not in (None, SciMultModel.config_class.model_type):
            raise InputError(
                f"{path} is a {model_type(path)!r} model, not a SciMult folder: export takes a SciMult model "
                "(a plain BERT folder already is what export writes; `scimult-hf upcycle` makes a SciMult one)."
            )
        setup = read_sentence_transformers_setup(path) if os.path.isdir(path) else {}
        model = SciMultModel.from_pretrained(path)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)  # its config names remote code
    if tokenizer is None:
        raise InputError("export_task needs the tokenizer when given a model object (tokenizer=...).")
    if prompts is None:
        prompts = setup.get("prompts") or None
    task_prompt = prompt_for(prompts or {}, task)
    if task_prompt is not None:
        default_prompt_name = task_prompt
    elif default_prompt_name is None:
        default_prompt_name = setup.get("default_prompt_name")
    if max_seq_length is None:
        max_seq_length = default_max_seq_length(tokenizer, model.config, setup)
    bert = to_bert(model, task)
    with atomic_directory(output) as tmp:
        bert.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_classic_sentence_transformers_files(
            tmp,
            dimension=bert.config.hidden_size,
            pooling=model.config.pooling,
            normalize=model.config.normalize,
            max_seq_length=max_seq_length,
            prompts=prompts,
            default_prompt_name=default_prompt_name,
        )
        (tmp / EXPORT_RECORD).write_text(json.dumps({"task": task, "source_model_type": "scimult"}, indent=2) + "\n",
                                         encoding="utf-8")
    return Path(output)


def exported_task(folder: str | os.PathLike) -> str | None:
    """The task a per-task export embeds for (recorded in its :data:`EXPORT_RECORD`), or None for any other folder."""
    record = Path(folder) / EXPORT_RECORD
    return json.loads(record.read_text(encoding="utf-8")).get("task") if record.is_file() else None
