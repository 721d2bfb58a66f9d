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
    CLASSIC_MODULES,
    limit_tokenizer,
    local_or_hub_id,
    model_type,
    quiet_transformers,
    read_sentence_transformers_setup,
)

#: Written beside a per-task export: which task's experts it holds. The folder itself is plain BERT and cannot
#: refuse ``task=`` for another task; the package's own paths (``serve``, the handler) read this and do.
EXPORT_RECORD = "scimult_export.json"

__all__ = ["EXPORT_RECORD", "export_task", "exported_task", "write_classic_sentence_transformers_files"]


@quiet_transformers()
def export_task(
    model: SciMultModel | str | os.PathLike,
    task: str | None,
    output: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    prompts: dict[str, str] | None = None,
    max_seq_length: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a plain-BERT sentence-transformers folder that embeds exactly like ``model`` for ``task``.

    Transformer (a stock ``BertModel``) + Pooling [+ Normalize]; prompts are kept. It loads with
    ``SentenceTransformer(output)`` without remote code and without scimult_hf, so TEI, ONNX and
    every BERT runtime can serve it. An existing ``output`` is replaced only with ``overwrite=True``; an
    output that is or contains the model's folder is refused.
    """
    setup: dict = {}
    check_output(output, [] if isinstance(model, SciMultModel) else [model], overwrite)
    if not isinstance(model, SciMultModel):
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
    if max_seq_length is None:  # sentence-transformers 6 keeps it as the tokenizer's model_max_length
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**6 else None
        max_seq_length = setup.get("max_seq_length") or limit or model.config.max_position_embeddings
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
            default_prompt_name=setup.get("default_prompt_name"),
        )
        limit_tokenizer(tmp, max_seq_length)
        (tmp / EXPORT_RECORD).write_text(json.dumps({"task": task, "source_model_type": "scimult"}, indent=2) + "\n",
                                         encoding="utf-8")
    return Path(output)


def exported_task(folder: str | os.PathLike) -> str | None:
    """The task a per-task export embeds for (recorded in its :data:`EXPORT_RECORD`), or None for any other folder."""
    record = Path(folder) / EXPORT_RECORD
    return json.loads(record.read_text(encoding="utf-8")).get("task") if record.is_file() else None


def write_classic_sentence_transformers_files(folder: Path, *, dimension: int, pooling: str, normalize: bool,
                                              max_seq_length: int, prompts: dict[str, str] | None,
                                              default_prompt_name: str | None = None) -> None:
    """The sentence-transformers module files in the long-standing layout, beside a saved ``BertModel``.

    sentence-transformers 6 writes ``sentence_transformers.base.modules.*`` class paths and new config
    keys (``pooling_mode``, ``embedding_dimension``) that only it reads. The per-task export is meant for
    every BERT runtime, so it gets the layout that sentence-transformers 2.x to 6.x, TEI and infinity all
    read: ``sentence_transformers.models.Transformer`` / ``Pooling`` / ``Normalize`` in ``modules.json``,
    ``pooling_mode_cls_token`` / ``pooling_mode_mean_tokens`` and ``word_embedding_dimension`` in
    ``1_Pooling/config.json``, ``max_seq_length`` in ``sentence_bert_config.json``, and the prompts and
    similarity in ``config_sentence_transformers.json``.
    """
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": CLASSIC_MODULES["Transformer"]},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": CLASSIC_MODULES["Pooling"]},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": CLASSIC_MODULES["Normalize"]})
        (folder / "2_Normalize").mkdir()
    (folder / "1_Pooling").mkdir()
    files = {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": max_seq_length, "do_lower_case": False},
        "1_Pooling/config.json": {
            "word_embedding_dimension": dimension,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "prompts": dict(prompts or {}),
            "default_prompt_name": default_prompt_name,
            "similarity_fn_name": "cosine" if normalize else "dot",
        },
    }
    for name, value in files.items():
        (folder / name).write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
