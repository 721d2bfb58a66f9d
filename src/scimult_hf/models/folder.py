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

from transformers import PreTrainedTokenizerBase

from ..defaults import looks_like_hub_id
from ..errors import InputError
from ..io import atomic_directory
from ..modeling_scimult import SciMultModel

#: The long-standing class paths of the stock modules, which sentence-transformers 2.x to 6.x, TEI and infinity all
#: read (sentence-transformers 6 writes ``sentence_transformers.base.modules.*`` paths that only it knows).
CLASSIC_MODULES = {name: f"sentence_transformers.models.{name}" for name in ("Transformer", "Pooling", "Normalize")}

__all__ = ["CLASSIC_MODULES", "load_sentence_transformer", "local_or_hub_id", "model_type", "quiet_transformers",
           "read_sentence_transformers_setup", "save_sentence_transformer"]


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
    released model's name (``scimult-moe``) is resolved before, by :func:`scimult_hf.released.resolve_model_path`
    (the commands and :func:`scimult_hf.load_model` do it)."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path) and not looks_like_hub_id(path):
        raise FileNotFoundError(f"no model folder at {path}: the path does not exist (a Hub id looks like org/name).")
    return path


def model_type(path: str) -> str | None:
    """``model_type`` in a local folder's ``config.json`` (None for a Hub id or a folder without one)."""
    config = os.path.join(path, "config.json")
    return _read_json(config).get("model_type") if os.path.isfile(config) else None


def _build_and_save(folder: Path, model, pooling: str, normalize: bool, prompts, default_prompt_name,
                    max_seq_length, task_kwarg: bool, trust_remote_code: bool) -> None:
    """Write the sentence-transformers files around ``model`` (already saved in ``folder`` with its tokenizer).

    sentence-transformers writes its module files through a pipeline of modules; its Transformer module is
    built on the meta device (it reads only the config and the weights' header) and then given ``model``
    itself, so the model is never held twice, whatever its size.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    remote = {"trust_remote_code": True} if trust_remote_code else {}
    transformer = Transformer(
        str(folder), model_kwargs={"device_map": "meta", **remote}, config_kwargs=dict(remote),
        max_seq_length=max_seq_length,
    )
    transformer.model = model
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)]
    if normalize:
        modules.append(Normalize())
    prompts = dict(prompts or {})
    st = SentenceTransformer(
        modules=modules,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        similarity_fn_name="cosine" if normalize else "dot",
        device=str(model.device),
    )
    if task_kwarg:
        st.module_kwargs = {"0": ["task"]}
    st.save(str(folder), create_model_card=False)
    modules_file = folder / "modules.json"
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    for module in modules:
        module["type"] = CLASSIC_MODULES.get(module["type"].rsplit(".", 1)[-1], module["type"])
    modules_file.write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    limit_tokenizer(folder, st.max_seq_length)


def limit_tokenizer(folder: Path, max_seq_length: int | None) -> None:
    """The saved tokenizer's ``model_max_length`` set to the model's maximum sequence length, so that runtimes
    which read only the tokenizer (TEI, plain transformers) truncate where the model does."""
    config_file = folder / "tokenizer_config.json"
    if max_seq_length and config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["model_max_length"] = int(max_seq_length)
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


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
    when ``config.normalize``. Similarity is the dot product, or cosine for a normalised model.
    ``prompts`` (e.g. :data:`INSTRUCTION_PROMPTS` for the instruction variant) are selected with
    ``encode(..., prompt_name=...)``.
    """
    if not isinstance(model, SciMultModel):
        raise TypeError(f"save_sentence_transformer needs a SciMultModel, got {type(model).__name__}.")
    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _build_and_save(
            tmp,
            model,
            pooling=model.config.pooling,
            normalize=model.config.normalize,
            prompts=prompts,
            default_prompt_name=default_prompt_name,
            max_seq_length=max_seq_length,
            task_kwarg=True,
            trust_remote_code=True,
        )
    return Path(path)


@quiet_transformers()
def load_sentence_transformer(path: str | os.PathLike, **kwargs):
    """``SentenceTransformer(path, trust_remote_code=True)`` for a SciMult folder."""
    from sentence_transformers import SentenceTransformer

    kwargs.setdefault("trust_remote_code", True)
    kwargs.setdefault("device", "cpu")
    path = local_or_hub_id(path)
    try:
        return SentenceTransformer(path, **kwargs)
    except Exception as err:
        if type(err).__name__ != "SafetensorError":
            raise
        raise InputError(
            f"The weights file of {path} cannot be read ({err}): it is truncated or corrupt. Download or save the "
            "model again."
        ) from None
