"""sentence-transformers folders of SciMult models: read their setup, save them, load them.

A SciMult folder loads with ``AutoModel.from_pretrained(path, trust_remote_code=True)`` and with
``SentenceTransformer(path, trust_remote_code=True)``; :func:`save_sentence_transformer` writes one,
atomically, and :func:`load_sentence_transformer` loads one.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError
from transformers import PreTrainedTokenizerBase

from ..defaults import looks_like_hub_id
from ..errors import InputError
from ..io import atomic_directory
from ..modeling_scimult import SciMultModel, unreadable_weights

#: The long-standing class paths of the stock modules, which sentence-transformers 2.x to 6.x, TEI and infinity all
#: read (sentence-transformers 6 writes ``sentence_transformers.base.modules.*`` paths that only it knows).
CLASSIC_MODULES = {name: f"sentence_transformers.models.{name}" for name in ("Transformer", "Pooling", "Normalize")}

__all__ = ["CLASSIC_MODULES", "default_max_seq_length", "limit_tokenizer", "load_sentence_transformer", "local_or_hub_id", "model_type", "quiet_transformers",
           "read_sentence_transformers_setup", "save_sentence_transformer",
           "write_classic_sentence_transformers_files"]


@contextmanager
def quiet_transformers():
    """No "Loading weights" / "Writing model shards" bars from transformers inside this block (a decorator too).

    Loading and saving a model are seconds, not a stage a person follows; the package's own long stages
    (encoding a corpus, evaluating) keep one labelled bar each. The previous setting is restored after.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_sentence_transformers_setup(path: str) -> dict:
    """Pooling, normalisation, max length and prompts of a sentence-transformers folder (empty dict if none).

    Returns ``{"transformer_path", "pooling", "normalize", "max_seq_length", "prompts",
    "default_prompt_name"}`` (keys present when known).
    """
    modules_file = os.path.join(path, "modules.json")
    if not os.path.isfile(modules_file):
        return {}
    setup: dict = {"normalize": False, "transformer_path": path}
    for module in _read_json(modules_file):
        kind = module.get("type", "").rsplit(".", 1)[-1]
        module_path = os.path.join(path, module.get("path", ""))
        if kind == "Transformer":
            setup["transformer_path"] = module_path
            st_config = os.path.join(module_path, "sentence_bert_config.json")
            if os.path.isfile(st_config):
                setup["max_seq_length"] = _read_json(st_config).get("max_seq_length")
        elif kind == "Pooling":
            pooling = _read_json(os.path.join(module_path, "config.json"))
            mode = pooling.get("pooling_mode")
            if mode is None:
                mode = "cls" if pooling.get("pooling_mode_cls_token") else None
                mode = "mean" if pooling.get("pooling_mode_mean_tokens") else mode
            if mode not in ("cls", "mean"):
                raise InputError(f"{module_path}: pooling {pooling} is not supported by SciMult (use cls or mean).")
            setup["pooling"] = mode
        elif kind == "Normalize":
            setup["normalize"] = True
    st_config = os.path.join(path, "config_sentence_transformers.json")
    if os.path.isfile(st_config):
        data = _read_json(st_config)
        setup["prompts"] = data.get("prompts") or {}
        setup["default_prompt_name"] = data.get("default_prompt_name")
    return setup


def local_or_hub_id(path: str | os.PathLike) -> str:
    """``path`` as given when it is a Hub id (``name`` or ``org/name``) or an existing local path; a local
    path that does not exist raises ``FileNotFoundError`` (rather than a Hub error about repo-id syntax). A
    released model's name (``scimult-moe``) is resolved before, by :func:`scimult_hf.resolve.resolve_model_path`
    (the commands and :func:`scimult_hf.load_model` do it)."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path) and not looks_like_hub_id(path):
        raise FileNotFoundError(f"no model folder at {path}: the path does not exist (a Hub id looks like org/name).")
    return path


def model_type(path: str) -> str | None:
    """``model_type`` in a local folder's ``config.json`` (None for a Hub id or a folder without one)."""
    config = os.path.join(path, "config.json")
    return _read_json(config).get("model_type") if os.path.isfile(config) else None


def is_scimult_model(model) -> bool:
    """Whether ``model`` is a SciMult model: ours, or the same class loaded as remote code from a folder's
    ``modeling_scimult.py`` (what ``AutoModel.from_pretrained(..., trust_remote_code=True)`` gives on
    transformers releases that prefer a folder's own code to a registered class, 5.4 for one)."""
    if isinstance(model, SciMultModel):
        return True
    config = getattr(model, "config", None)
    return type(model).__name__ == SciMultModel.__name__ and getattr(config, "model_type", None) == "scimult"


def default_max_seq_length(tokenizer: PreTrainedTokenizerBase, config, setup: dict | None = None) -> int:
    """The maximum sequence length a folder records when none is given: the source folder's, else the
    tokenizer's ``model_max_length`` (when set), capped at the model's position embeddings."""
    if setup and setup.get("max_seq_length"):
        return int(setup["max_seq_length"])
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**6 else config.max_position_embeddings
    return int(min(limit, config.max_position_embeddings))


def write_classic_sentence_transformers_files(folder: Path, *, dimension: int, pooling: str, normalize: bool,
                                              max_seq_length: int, prompts: dict[str, str] | None,
                                              default_prompt_name: str | None = None,
                                              task_kwarg: bool = False) -> None:
    """The sentence-transformers module files in the long-standing layout, beside a saved model and tokenizer.

    sentence-transformers 6 writes ``sentence_transformers.base.modules.*`` class paths and new config keys
    (``transformer_task``, ``pooling_mode``, ``embedding_dimension``) that only it reads: sentence-transformers
    3-5, TEI and infinity fail on them. Every folder this package writes gets the layout that
    sentence-transformers 2.x to 6.x, TEI and infinity all read: ``sentence_transformers.models.Transformer`` /
    ``Pooling`` / ``Normalize`` in ``modules.json``, ``pooling_mode_cls_token`` / ``pooling_mode_mean_tokens``
    and ``word_embedding_dimension`` in ``1_Pooling/config.json``, ``max_seq_length`` in
    ``sentence_bert_config.json``, and the prompts and similarity in ``config_sentence_transformers.json``.
    ``task_kwarg`` adds ``"kwargs": ["task"]`` to the Transformer module, so that ``encode(..., task=...)``
    reaches a SciMult model's experts. The tokenizer files are limited to ``max_seq_length``
    (:func:`limit_tokenizer`).
    """
    transformer = {"idx": 0, "name": "0", "path": "", "type": CLASSIC_MODULES["Transformer"]}
    if task_kwarg:
        transformer["kwargs"] = ["task"]
    modules = [transformer, {"idx": 1, "name": "1", "path": "1_Pooling", "type": CLASSIC_MODULES["Pooling"]}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": CLASSIC_MODULES["Normalize"]})
        (folder / "2_Normalize").mkdir()
    (folder / "1_Pooling").mkdir()
    prompts = dict(prompts or {})
    if default_prompt_name is not None and default_prompt_name not in prompts:
        raise InputError(
            f"default_prompt_name {default_prompt_name!r} is not one of the prompts ({sorted(prompts)}): add it to "
            "the prompts or leave the default out."
        )
    files = {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": int(max_seq_length), "do_lower_case": False},
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
            "prompts": prompts,
            "default_prompt_name": default_prompt_name,
            "similarity_fn_name": "cosine" if normalize else "dot",
        },
    }
    for name, value in files.items():
        (folder / name).write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    limit_tokenizer(folder, max_seq_length)


def limit_tokenizer(folder: Path, max_seq_length: int | None) -> None:
    """The saved tokenizer limited to the model's maximum sequence length, so that runtimes which read only the
    tokenizer truncate where the model does: ``model_max_length`` in ``tokenizer_config.json`` (TEI, plain
    transformers) and, in ``tokenizer.json`` (raw ``tokenizers`` users), truncation at that length and no fixed
    padding (a source model's ``Fixed(128)`` padding would give every text 128 ids)."""
    if not max_seq_length:
        return
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["model_max_length"] = int(max_seq_length)
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    fast_file = folder / "tokenizer.json"
    if fast_file.is_file():
        fast = json.loads(fast_file.read_text(encoding="utf-8"))
        if fast.get("truncation") is not None:
            fast["truncation"]["max_length"] = int(max_seq_length)
        fast["padding"] = None
        fast_file.write_text(json.dumps(fast, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


@quiet_transformers()
def save_sentence_transformer(
    model: SciMultModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | os.PathLike,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    max_seq_length: int | None = None,
) -> Path:
    """Save a SciMult model and its tokenizer as one complete folder, written atomically.

    The folder loads with ``AutoModel.from_pretrained(path, trust_remote_code=True)`` (weights, config,
    ``auto_map`` and both code files) and with ``SentenceTransformer(path, trust_remote_code=True)``:
    ``modules.json`` lists the stock Transformer module with ``"kwargs": ["task"]`` (so
    ``encode(..., task=...)`` reaches the experts), then Pooling per ``config.pooling``, then Normalize
    when ``config.normalize``, in the classic layout that sentence-transformers 3 to 6 read
    (:func:`write_classic_sentence_transformers_files`); no model is loaded to write them. Similarity is the dot product, or cosine for a normalised model.
    ``prompts`` (e.g. :data:`INSTRUCTION_PROMPTS` for the instruction variant) are selected with
    ``encode(..., prompt_name=...)``.
    """
    if not is_scimult_model(model):
        raise TypeError(f"save_sentence_transformer needs a SciMultModel, got {type(model).__name__}.")
    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_classic_sentence_transformers_files(
            tmp,
            dimension=model.config.hidden_size,
            pooling=model.config.pooling,
            normalize=model.config.normalize,
            max_seq_length=max_seq_length or default_max_seq_length(tokenizer, model.config),
            prompts=prompts,
            default_prompt_name=default_prompt_name,
            task_kwarg=True,
        )
    return Path(path)


@quiet_transformers()
def load_sentence_transformer(path: str | os.PathLike, **kwargs):
    """``SentenceTransformer(path, trust_remote_code=True)`` for a SciMult folder (or a per-task export), with
    Hub kernels off unless ``model_kwargs={"use_kernels": True}`` asks for them."""
    from sentence_transformers import SentenceTransformer

    kwargs.setdefault("trust_remote_code", True)
    kwargs.setdefault("device", "cpu")
    # Hub kernels off unless asked for, for a per-task export (plain BERT) as for SciMult (see SciMultModel)
    kwargs["model_kwargs"] = {"use_kernels": False, **(kwargs.get("model_kwargs") or {})}
    path = local_or_hub_id(path)
    try:
        return SentenceTransformer(path, **kwargs)
    except SafetensorError as err:  # a per-task export is plain BERT: SciMultModel's own check does not run
        raise InputError(unreadable_weights(path, err)) from None
