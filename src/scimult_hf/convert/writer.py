"""Convert an original SciMult checkpoint into a complete SciMult folder.

The tokenizer and base config come from ``--tokenizer`` or the Hub (local cache first); the weights are
assigned, without a copy, from the memory-mapped checkpoint to a model built on the meta device, and the
folder is written by :func:`scimult_hf.save_sentence_transformer` into a staging folder that replaces the
output only when everything succeeded.

Python::

    from scimult_hf.convert import convert_checkpoint
    convert_checkpoint("scimult_moe.ckpt", "scimult-moe")          # tokenizer from the Hub
    convert_checkpoint("scimult_moe.ckpt", "scimult-moe", tokenizer="path/to/BiomedBERT")
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..hub.cards import converted_model_card
from ..io import atomic_directory, check_output
from .checkpoint import BaseModelError, load_original_checkpoint, read_partial
from .mapping import ConversionReport, check_state, config_from_checkpoint, rename_keys, shared_encoder_state

logger = logging.getLogger(__name__)

#: The base model the released checkpoints name in ``encoder_params.pretrained_model_cfg`` ...
ORIGINAL_BASE_MODEL = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract"
#: ... and its current name on the Hub (the original eval code rewrites the first to this one).
RENAMED_BASE_MODEL = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
_BASE_MODEL_RENAMES = {ORIGINAL_BASE_MODEL: RENAMED_BASE_MODEL}

#: Maximum input length of the original inference code (``embed_text_psg(..., max_len=512)``).
MAX_LENGTH = 512



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


def _write_folder(folder: Path, config, state: Mapping[str, torch.Tensor], tokenizer, max_length: int) -> None:
    """Write the complete SciMult folder into ``folder`` (an empty staging folder).

    The model is built on the meta device and its parameters are the checkpoint's memory-mapped tensors
    (``assign=True``: no copy), so the weights are read from the file only while being written out.
    """
    from ..modeling_scimult import SciMultModel
    from ..models.folder import save_sentence_transformer

    with torch.device("meta"):
        model = SciMultModel(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.embeddings.position_ids = torch.arange(config.max_position_embeddings).expand((1, -1))
    save_sentence_transformer(model.eval(), tokenizer, folder, max_seq_length=max_length)


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
    checkpoint, output = Path(checkpoint), Path(output)
    check_output(output, [checkpoint, tokenizer], overwrite)
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

    state = rename_keys(shared_encoder_state(model_dict, report), report)
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
    partial = read_partial(checkpoint)
    if partial is not None:  # the bytes are not all here: the download checked the Hub's sha256 and each CRC-32
        report.sha256 = partial["sha256"]
    else:
        logger.info("hashing %s", checkpoint)
        with open(checkpoint, "rb") as f:
            report.sha256 = hashlib.file_digest(f, "sha256").hexdigest()

    with atomic_directory(output) as tmp:
        _write_folder(tmp, config, state, tok, max_length)
        (tmp / "README.md").write_text(converted_model_card(report, RENAMED_BASE_MODEL), encoding="utf-8")
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


__all__ = ["MAX_LENGTH", "RENAMED_BASE_MODEL", "convert_checkpoint", "resolve_tokenizer"]
