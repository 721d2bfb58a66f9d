import pytest

from scimult_hf import SciMultConfig


def test_defaults_follow_released_model():
    config = SciMultConfig()
    assert config.model_type == "scimult"
    assert config.tasks == ["search", "link_prediction", "classification"]
    assert config.expert_layers == [1, 3, 5, 7, 9, 11]
    assert config.expert_type == "attention" and config.pooling == "cls" and config.normalize is False
    assert [config.task_id(t) for t in ("search", "link_prediction", "classification", "query", "document")] == [
        0, 1, 2, 0, 0]


def test_round_trip_through_dict(tmp_path):
    config = SciMultConfig(num_hidden_layers=4, expert_type="ffn", expert_layers=[0, 2], pooling="mean",
                           normalize=True, tasks=["a", "b"], task_aliases={"q": "a"})
    config.save_pretrained(tmp_path)
    loaded = SciMultConfig.from_pretrained(tmp_path)
    for field in ("expert_type", "expert_layers", "pooling", "normalize", "tasks", "task_aliases", "num_hidden_layers"):
        assert getattr(loaded, field) == getattr(config, field)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(expert_type="mlp"), "expert_type"),
        (dict(num_hidden_layers=4, expert_layers=[1, 4]), "expert_layers"),
        (dict(expert_layers=[-1]), "expert_layers"),
        (dict(tasks=["search", "search"]), "tasks"),
        (dict(tasks=[]), "tasks"),
        (dict(task_aliases={"query": "retrieval"}), "task_aliases"),
        (dict(pooling="max"), "pooling"),
        (dict(hidden_size=30, num_attention_heads=4), "hidden_size"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SciMultConfig(**kwargs)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown task 'retrieval'.*search.*link_prediction.*classification"):
        SciMultConfig().task_id("retrieval")


def test_dense_config_has_no_experts():
    config = SciMultConfig(expert_type=None)
    assert config.num_experts == 0 and not config.has_experts
