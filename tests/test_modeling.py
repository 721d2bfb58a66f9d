import pytest
import torch
from helpers import PAPERS, tiny_model
from transformers import BertModel

from scimult_hf.modeling_scimult import bert_parameter_name
from scimult_hf.models.bert import from_bert, to_bert

TASKS = ["search", "link_prediction", "classification"]


@pytest.fixture(scope="module")
def batch(tokenizer):
    return tokenizer(PAPERS, padding=True, truncation=True, max_length=64, return_tensors="pt")


def embed(model, batch, **kw):
    with torch.no_grad():
        return model(**batch, **kw).pooler_output


@pytest.mark.parametrize("expert_type", ["attention", "ffn"])
def test_experts_differ_and_shared_layers_match_bert_names(expert_type, batch):
    model = tiny_model(expert_type)
    outs = [embed(model, batch, task=t) for t in TASKS]
    for a in range(3):
        for b in range(a + 1, 3):
            assert (outs[a] - outs[b]).abs().max() > 1e-3, "different experts must give different embeddings"
    names = [n for n, _ in model.named_parameters()]
    expert_names = [n for n in names if ".experts." in n]
    if expert_type == "attention":
        assert "encoder.layer.1.attention.self.query.experts.2.weight" in expert_names
        assert "encoder.layer.1.intermediate.dense.weight" in names
        assert "encoder.layer.1.attention.output.LayerNorm.weight" in names
    else:
        assert "encoder.layer.3.output.LayerNorm.experts.0.bias" in expert_names
        assert "encoder.layer.3.attention.self.query.weight" in names
    assert not any(".experts." in n for n in names if n.startswith("encoder.layer.0.") or n.startswith("encoder.layer.2."))
    # Every path maps one to one onto a BERT parameter name.
    bert_names = {n for n, _ in BertModel(to_bert(model, "search").config, add_pooling_layer=False).named_parameters()}
    assert {bert_parameter_name(n)[0] for n in names} == bert_names


@pytest.mark.parametrize("expert_type", ["attention", "ffn"])
def test_mixed_batch_equals_rows_run_per_task(expert_type, batch):
    model = tiny_model(expert_type, seed=1)
    tasks = ["classification", "search", "link_prediction", "search", "classification"]
    mixed = model(**batch, task=tasks)
    for i, t in enumerate(tasks):
        row = {k: v[i : i + 1] for k, v in batch.items()}
        single = model(**row, task=t)
        n = int(batch["attention_mask"][i].sum())
        torch.testing.assert_close(mixed.pooler_output[i], single.pooler_output[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(mixed.last_hidden_state[i, :n], single.last_hidden_state[0, :n], atol=1e-5, rtol=0)
    # task ids and aliases route identically to names
    ids = torch.tensor([2, 0, 1, 0, 2])
    torch.testing.assert_close(embed(model, batch, task_ids=ids), mixed.pooler_output.detach(), atol=1e-6, rtol=0)
    aliased = ["classification", "query", "link_prediction", "document", "classification"]
    torch.testing.assert_close(embed(model, batch, task=aliased), mixed.pooler_output.detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("expert_type", ["attention", "ffn"])
def test_mixed_batch_runs_each_expert_once_on_its_rows(expert_type, batch):
    model = tiny_model(expert_type)
    seen = []
    block = model.encoder.layer[1]
    layer = block.attention.self.query if expert_type == "attention" else block.intermediate.dense
    hooks = [e.register_forward_hook(lambda m, i, o, k=k: seen.append((k, i[0].shape[0])))
             for k, e in enumerate(layer.experts)]
    embed(model, batch, task=["classification", "search", "classification", "search", "search"])
    for h in hooks:
        h.remove()
    assert sorted(seen) == [(0, 3), (2, 2)]


def test_sdpa_and_eager_agree(batch):
    model = tiny_model("attention")
    assert model.config._attn_implementation == "sdpa"
    sdpa = embed(model, batch, task="classification")
    model.set_attn_implementation("eager")
    eager = embed(model, batch, task="classification")
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=0)


def test_gradient_checkpointing_gives_same_gradients(batch):
    grads = []
    for checkpointing in (False, True):
        model = tiny_model("ffn", seed=3).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.encoder.layer)
        out = model(**batch, task=["search", "classification", "search", "link_prediction", "search"])
        out.pooler_output.pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("expert_type", ["attention", "ffn"])
def test_experts_unused_by_the_batch_get_no_gradient(expert_type, batch):
    model = tiny_model(expert_type, seed=3).train()
    out = model(**batch, task=["search", "classification", "search", "classification", "search"])
    out.pooler_output.pow(2).sum().backward()
    expert_grads = {n: p.grad for n, p in model.named_parameters() if ".experts." in n}
    used = {n for n, g in expert_grads.items() if g is not None and bool(g.abs().sum() > 0)}
    assert used and all(".experts.0." in n or ".experts.2." in n for n in used)  # search 0, classification 2
    assert all(expert_grads[n] is None for n in expert_grads if ".experts.1." in n)  # link_prediction unused
    assert {n.replace(".experts.2.", ".experts.0.") for n in used if ".experts.2." in n} == {
        n for n in used if ".experts.0." in n
    }


def test_pooling_and_normalisation(batch):
    cls_model = tiny_model("attention", seed=4)
    mean_model = tiny_model("attention", seed=4, pooling="mean", normalize=True)
    with torch.no_grad():
        out = cls_model(**batch, task="search")
        mean = mean_model(**batch, task="search").pooler_output
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[:, 0])
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((out.last_hidden_state * mask).sum(1) / mask.sum(1), dim=-1)
    torch.testing.assert_close(mean, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), r"needs a task.*Valid tasks: \['search', 'link_prediction', 'classification'\]"),
        (dict(task="retrieval"), r"Unknown task 'retrieval'. Valid tasks: \['search'"),
        (dict(task=["search", "search"]), r"2 task names for a batch of 5 rows.*Valid tasks"),
        (dict(task=["search", "nope", "search", "search", "search"]), r"Unknown task 'nope'"),
        (dict(task_ids=torch.tensor([0, 1, 3, 0, 0])), r"task_ids.*0\.\.2.*Valid tasks"),
        (dict(task_ids=torch.tensor([0, 1])), r"2 entries for a batch of 5.*Valid tasks"),
        (dict(task="search", task_ids=0), r"either `task` or `task_ids`"),
        (dict(task=3), r"task name or a list of names.*Valid tasks"),
    ],
)
def test_bad_routing_raises_value_error_listing_tasks(kwargs, message, batch):
    model = tiny_model("attention")
    with pytest.raises(ValueError, match=message):
        model(**batch, **kwargs)


def test_too_long_input_explains_truncation():
    model = tiny_model("attention")
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=128.*truncat"):
        model(input_ids=torch.ones(1, 200, dtype=torch.long), task="search")


def test_dense_model_needs_no_task(batch):
    model = tiny_model(None)
    base = embed(model, batch)
    torch.testing.assert_close(embed(model, batch, task="classification"), base)
    with pytest.raises(ValueError, match="Unknown task"):
        model(**batch, task="nope")


@pytest.mark.parametrize("expert_type", ["attention", "ffn", None])
def test_to_bert_equals_task_embedding(expert_type, batch):
    model = tiny_model(expert_type, seed=5)
    for task in TASKS:
        bert = to_bert(model, task)
        assert type(bert) is BertModel
        with torch.no_grad():
            ours = model(**batch, task=task).last_hidden_state
            theirs = bert(**batch).last_hidden_state
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_to_bert_needs_a_task_when_there_are_experts():
    with pytest.raises(ValueError, match="needs a task.*Valid tasks"):
        to_bert(tiny_model("attention"))


def test_from_bert_copies_sub_layers_into_experts(minilm_path, batch):
    bert = BertModel.from_pretrained(minilm_path).eval()
    model = from_bert(bert, expert_type="ffn", expert_layers=[0, 5], tasks=["a", "b"])
    assert model.config.expert_layers == [0, 5] and model.config.tasks == ["a", "b"]
    assert model.config.pooling == "cls" and not model.config.normalize  # a bare BertModel says nothing else
    with torch.no_grad():
        ref = bert(**batch).last_hidden_state
        for task in ("a", "b"):
            torch.testing.assert_close(model(**batch, task=task).last_hidden_state, ref, atol=1e-5, rtol=0)
    w = model.encoder.layer[5].output.LayerNorm.experts
    assert w[0].weight.data_ptr() != w[1].weight.data_ptr(), "experts must be copies, not shared tensors"


def test_from_bert_rejects_other_models():
    with pytest.raises(TypeError, match="BertModel"):
        from_bert(torch.nn.Linear(2, 2))


def test_return_dict_false_gives_a_tuple(batch):
    model = tiny_model("attention", seed=5)
    with torch.no_grad():
        out = model(**batch, task="search")
        as_tuple = model(**batch, task="search", return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)
    torch.testing.assert_close(as_tuple[1], out.pooler_output)
