"""Adding a task to a trained SciMult model: one new expert per expert sub-layer, copied from an existing task's.

This is how the authors made their PMC-Patients models from ``scimult_moe``, and what a lab with a task of its
own needs without retraining everything: ``scimult-hf train --model TRAINED --add-task NAME --data NAME=DATA
[--init-from TASK]`` trains the new experts alone, so every old task embeds exactly as before.

>>> from scimult_hf import SciMultConfig, SciMultModel
>>> model = SciMultModel(SciMultConfig(num_hidden_layers=2, hidden_size=8, num_attention_heads=2,
...                                    intermediate_size=16, vocab_size=30, expert_layers=[1]))
>>> bigger = add_task(model, "patients", init_from="link_prediction")
>>> bigger.config.tasks
['search', 'link_prediction', 'classification', 'patients']
>>> new_expert_parameters(bigger, "patients")[:1]
['encoder.layer.1.attention.self.query.experts.3.weight']
"""

from __future__ import annotations

from ..configuration_scimult import SciMultConfig
from ..errors import InputError
from ..modeling_scimult import SciMultModel, bert_parameter_name

__all__ = ["add_task", "new_expert_parameters"]


def add_task(model: SciMultModel, name: str, init_from: str | None = None) -> SciMultModel:
    """A copy of ``model`` with the task ``name`` added: its expert in every expert sub-layer starts as a copy of
    ``init_from``'s (default: the first task's); every other weight is the source's, unchanged."""
    config = model.config
    if not config.has_experts:
        raise InputError("a dense model has no experts to add a task to; a new task needs a model with experts "
                         "(variant moe), or train the dense model on the task with a prompt of its own.")
    if name in config.valid_task_names():
        raise InputError(f"the model already has a task {name!r} (its tasks: {', '.join(config.valid_task_names())}).")
    source = config.task_id(init_from) if init_from else 0
    new = SciMultModel(SciMultConfig.from_dict({**config.to_dict(), "tasks": [*config.tasks, name]}))
    old_state = model.state_dict()
    state = {}
    for key in new.state_dict():
        _, expert = bert_parameter_name(key)
        if expert == len(config.tasks):  # the new task's expert: a copy of the source task's
            state[key] = old_state[key.replace(f".experts.{expert}.", f".experts.{source}.")].detach().clone()
        else:
            state[key] = old_state[key]
    new.load_state_dict(state, strict=True)
    return new.to(model.dtype).eval()


def new_expert_parameters(model: SciMultModel, task: str) -> list[str]:
    """The names of ``task``'s expert parameters: what trains when a task is added."""
    expert = model.config.task_id(task)
    return [name for name, _ in model.named_parameters() if bert_parameter_name(name)[1] == expert]
