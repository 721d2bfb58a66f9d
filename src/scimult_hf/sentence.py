"""sentence-transformers folders for SciMult: read their setup, save, load, upcycle, and per-task export to
plain BERT."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .io import atomic_directory, check_output
from .modeling_scimult import SciMultModel

logger = logging.getLogger(__name__)

# Our own instruction texts for the instruction-tuned (dense) variant: the paper's were not released.
# "query" / "document" make sentence-transformers' encode_query / encode_document use the search one.
INSTRUCTION_PROMPTS: dict[str, str] = {
    "search": "Instruction: find scientific papers relevant to this search query or paper. Text: ",
    "link_prediction": "Instruction: find scientific papers that this paper cites or is cited by. Text: ",
    "classification": "Instruction: find the research topic or category that describes this paper. Text: ",
    "query": "Instruction: find scientific papers relevant to this search query or paper. Text: ",
    "document": "Instruction: find scientific papers relevant to this search query or paper. Text: ",
}


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
                raise ValueError(f"{module_path}: pooling {pooling} is not supported by SciMult (use cls or mean).")
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
    """``path`` as given when it is a Hub id (``name`` or ``org/name``) or an existing local path; a released
    model's name (``scimult-moe``, ...) becomes its converted folder, fetched on first use
    (:mod:`scimult_hf.released`); a local path that does not exist raises ``FileNotFoundError`` (rather than a
    Hub error about repo-id syntax)."""
    from .released import resolve_model_path

    path = os.path.expanduser(resolve_model_path(path))
    hub_like = not os.path.isabs(path) and not path.startswith(".") and path.count("/") <= 1 and "\\" not in path
    if not os.path.exists(path) and not hub_like:
        raise FileNotFoundError(f"no model folder at {path}: the path does not exist (a Hub id looks like org/name).")
    return path


def _model_type(path: str) -> str | None:
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
        raise ValueError(
            f"The weights file of {path} cannot be read ({err}): it is truncated or corrupt. Download or save the "
            "model again."
        ) from None


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
    model_type = _model_type(transformer_path)
    if model_type == SciMultModel.config_class.model_type:
        raise ValueError(
            f"{source} is already a SciMult model: upcycle takes a BERT model. Load it with "
            "SciMultModel.from_pretrained, or upcycle the BERT it came from to change its experts."
        )
    if model_type not in (None, "bert"):
        raise ValueError(f"{source} is a {model_type!r} model: upcycle supports BERT models (model_type 'bert').")
    model = SciMultModel.from_bert(
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
        model, tokenizer, output, prompts=prompts, max_seq_length=setup.get("max_seq_length")
    )


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
        if _model_type(path) not in (None, SciMultModel.config_class.model_type):
            raise ValueError(
                f"{path} is a {_model_type(path)!r} model, not a SciMult folder: export takes a SciMult model "
                "(a plain BERT folder already is what export writes; `scimult-hf upcycle` makes a SciMult one)."
            )
        setup = read_sentence_transformers_setup(path) if os.path.isdir(path) else {}
        model = SciMultModel.from_pretrained(path)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer is None:
        raise ValueError("export_task needs the tokenizer when given a model object (tokenizer=...).")
    if prompts is None:
        prompts = setup.get("prompts") or None
    if max_seq_length is None:  # sentence-transformers 6 keeps it as the tokenizer's model_max_length
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**6 else None
        max_seq_length = setup.get("max_seq_length") or limit or model.config.max_position_embeddings
    bert = model.to_bert(task)
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
    return Path(output)


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
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
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


def identical_experts(model: SciMultModel) -> dict[str, str]:
    """Each task (aliases included) mapped to the first task whose experts hold exactly the same weights.

    An upcycled, untrained model maps every task to the first one: its experts are copies, so ``task=``
    changes nothing yet. A dense model (no experts) does the same.

    >>> from scimult_hf import SciMultConfig, SciMultModel
    >>> config = SciMultConfig(num_hidden_layers=2, hidden_size=8, num_attention_heads=2, intermediate_size=16,
    ...                        vocab_size=30, expert_layers=[1])
    >>> identical_experts(SciMultModel(config))   # random experts differ
    {'search': 'search', 'link_prediction': 'link_prediction', 'classification': 'classification', 'query': 'search', 'document': 'search'}
    """
    import torch

    config = model.config
    groups: dict[str, dict[int, list[torch.Tensor]]] = {}
    for name, param in model.named_parameters():
        if ".experts." in name:
            prefix, rest = name.split(".experts.", 1)
            index, suffix = rest.split(".", 1)
            groups.setdefault(f"{prefix}.{suffix}", {}).setdefault(int(index), []).append(param)

    def same(a: int, b: int) -> bool:
        return all(torch.equal(p[a][0], p[b][0]) for p in groups.values())

    canonical: dict[str, str] = {}
    for task in config.tasks:
        tid = config.task_id(task)
        canonical[task] = next((t for t in config.tasks if t in canonical and same(config.task_id(t), tid)), task)
    for alias in getattr(config, "task_aliases", {}) or {}:
        canonical[alias] = canonical[config.tasks[config.task_id(alias)]]
    return canonical
