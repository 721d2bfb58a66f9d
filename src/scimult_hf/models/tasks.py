"""What a model offers per task: one answer, used by every command, the handler, the MTEB bridge and training.

* :func:`task_names` - the tasks a model routes (``config.tasks`` and aliases), None for a plain model;
* :func:`check_task` - an :class:`~scimult_hf.errors.InputError` naming the valid tasks;
* :func:`has_experts` - whether ``task`` changes the embedding at all (a dense SciMult takes ``task``, but
  every task embeds alike);
* :func:`prompt_for` - the prompt a task uses: the one named explicitly, else the model's prompt named after
  the task (the instruction variant), else none;
* :func:`identical_experts` - tasks whose experts hold the same weights (an upcycled, untrained model).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InputError

__all__ = ["INSTRUCTION_PROMPTS", "check_task", "has_experts", "identical_experts", "prompt_for", "routes_tasks",
           "scimult_config", "task_names"]

# Our own instruction texts for the instruction-tuned (dense) variant: the paper's were not released.
# "query" / "document" make sentence-transformers' encode_query / encode_document use the search one.
INSTRUCTION_PROMPTS: dict[str, str] = {
    "search": "Instruction: find scientific papers relevant to this search query or paper. Text: ",
    "link_prediction": "Instruction: find scientific papers that this paper cites or is cited by. Text: ",
    "classification": "Instruction: find the research topic or category that describes this paper. Text: ",
    "query": "Instruction: find scientific papers relevant to this search query or paper. Text: ",
    "document": "Instruction: find scientific papers relevant to this search query or paper. Text: ",
}


def routes_tasks(st) -> bool:
    """True when some module of ``st`` receives ``task=`` from ``encode`` (a SciMult folder: ``modules.json``
    lists ``"kwargs": ["task"]``)."""
    return any("task" in list(kwargs or []) for kwargs in (getattr(st, "module_kwargs", None) or {}).values())


def scimult_config(st):
    """The SciMult config of a SentenceTransformer (or of a model), or None for any other model."""
    model = st
    if hasattr(st, "module_kwargs"):  # a SentenceTransformer: its first module holds the transformers model
        model = getattr(st[0], "model", None) if len(st) else None
    config = getattr(model, "config", None)
    return config if getattr(config, "model_type", None) == "scimult" else None


def task_names(st) -> list[str] | None:
    """The task names a model routes, aliases included (``config.valid_task_names()``); None for a model that
    takes no task (a plain sentence-transformers model)."""
    config = scimult_config(st)
    if config is None or (hasattr(st, "module_kwargs") and not routes_tasks(st)):
        return None
    return list(config.valid_task_names())


def has_experts(st) -> bool:
    """True when the model has per-task experts (its embedding depends on the task)."""
    config = scimult_config(st)
    return bool(config is not None and config.has_experts)


def check_task(st, task: str | None, model_name: str = "the model") -> str | None:
    """``task`` when the model has it (or takes no task at all: a plain model embeds every task alike);
    otherwise an :class:`InputError` naming the valid ones. A model with experts needs a task."""
    known = task_names(st)
    if known is None:
        return task
    if task is None:
        if has_experts(st):
            raise InputError(f"{model_name} has one expert per task: name the task, one of {', '.join(known)}.")
        return None
    if not isinstance(task, str) or task not in known:
        raise InputError(f"unknown task {task!r} for {model_name}: use one of {', '.join(known)}.")
    return task


def prompt_for(st, task: str | None, prompt_name: str | None = None) -> str | None:
    """The prompt name ``encode`` gets for ``task``: ``prompt_name`` when given (it must exist), else the
    model's prompt named after the task (the instruction variant's), else None (the model's
    ``default_prompt_name``, if any, then applies as sentence-transformers does). ``st`` is a
    SentenceTransformer or its ``prompts`` mapping.

    >>> prompt_for({"search": "Find: "}, "search"), prompt_for({"search": "Find: "}, "classification")
    ('search', None)
    """
    prompts = (st if isinstance(st, Mapping) else getattr(st, "prompts", None)) or {}
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise InputError(
                f"the model has no prompt named {prompt_name!r}; its prompts: {sorted(prompts) or 'none'}. Add it "
                "to config_sentence_transformers.json 'prompts' or drop the prompt name."
            )
        return prompt_name
    return task if task is not None and prompts.get(task) else None


def identical_experts(model) -> dict[str, str]:
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
