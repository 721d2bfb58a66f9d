"""The MTEB bridge on mteb's offline mock tasks: every task runs, and each is routed to the right expert.

The model is a tiny SciMult whose experts differ, so the routing is visible in the embeddings too, not only
in the wrapper's own log: a spy on ``st.encode`` records the ``task`` that reached the model.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_model

mteb = pytest.importorskip("mteb", reason="the mteb extra is part of the dev install")
from mteb.mocks import MOCK_TASK_TEST_GRID_MONOLINGUAL  # noqa: E402
from mteb.models.models_protocols import EncoderProtocol  # noqa: E402
from mteb.results.task_result import TaskError, TaskResult  # noqa: E402

from scimult_hf import load_sentence_transformer, save_sentence_transformer  # noqa: E402
from scimult_hf.evaluation.mteb_bridge import NAME_TO_EXPERT, SciMultMTEBEncoder, expert_for_task  # noqa: E402

# mteb's own deprecation / ill-defined-metric warnings on the tiny mock data are not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:mteb"),
    pytest.mark.filterwarnings("ignore:.*ill-defined.*"),
]

EXPECTED_BY_TYPE = {
    "Retrieval": "search",
    "InstructionRetrieval": "search",
    "Reranking": "search",
    "InstructionReranking": "search",
    "Classification": "classification",
    "MultilabelClassification": "classification",
    "ZeroShotClassification": "classification",
    "Clustering": "classification",
    "Regression": "classification",
    "STS": "search",
    "PairClassification": "search",
    "BitextMining": "search",
    "Summarization": "search",
}


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory, tokenizer):
    model = tiny_model("attention", seed=3, max_position_embeddings=512)
    folder = save_sentence_transformer(model, tokenizer, tmp_path_factory.mktemp("mteb") / "tiny-scimult",
                                       max_seq_length=64)
    return load_sentence_transformer(folder)


class TaskSpy:
    def __init__(self, st):
        self.tasks: list[str | None] = []
        self._orig = st.encode
        st.encode = self

    def __call__(self, inputs, *args, **kwargs):
        self.tasks.append(kwargs.get("task"))
        return self._orig(inputs, *args, **kwargs)


def test_encoder_protocol_and_expert_embeddings(tiny_st):
    enc = SciMultMTEBEncoder(tiny_st, model_name="local/tiny-scimult")
    assert isinstance(enc, EncoderProtocol)
    assert enc.mteb_model_meta.name == "local/tiny-scimult"
    texts = ["BERT [SEP] We introduce a new language representation model.", "Virus Diseases"]
    batches = [{"text": texts}]
    meta = {t.metadata.type: t.metadata for t in MOCK_TASK_TEST_GRID_MONOLINGUAL}
    search = enc.encode(batches, task_metadata=meta["Retrieval"], hf_split="test", hf_subset="default",
                        prompt_type=None)
    classification = enc.encode(batches, task_metadata=meta["Clustering"], hf_split="test", hf_subset="default")
    # The experts differ, and each call's output is exactly its expert's embedding.
    assert np.allclose(search, tiny_st.encode(texts, task="search"), atol=1e-6)
    assert np.allclose(classification, tiny_st.encode(texts, task="classification"), atol=1e-6)
    assert not np.allclose(search, classification, atol=1e-3)


@pytest.mark.slow  # a whole mteb run (mock tasks); the routing rules themselves are checked above
def test_mock_run_routes_every_task_by_type(tiny_st):
    enc = SciMultMTEBEncoder(tiny_st, model_name="local/tiny-scimult")
    spy = TaskSpy(tiny_st)
    try:
        results = mteb.mock_run(enc)
    finally:
        del tiny_st.encode
    ran = {name: status for name, status in results.items() if status is not None}
    failures = {name: s.exception[:300] for name, s in ran.items() if isinstance(s, TaskError)}
    assert not failures, failures
    assert len(ran) >= 20 and all(isinstance(s, TaskResult) for s in ran.values())

    # What reached the model (the spy) is what the wrapper routed (its log), call by call.
    assert spy.tasks == [expert for _, _, expert, _ in enc.routing]
    by_task: dict[str, set[str]] = enc.routing_by_task()
    types = {name: ttype for name, ttype, _, _ in enc.routing}
    assert set(by_task) == set(ran)  # every task that ran went through the wrapper
    for name, experts in by_task.items():
        assert experts == {EXPECTED_BY_TYPE[types[name]]}, (name, types[name], experts)
    # The three families are all exercised.
    assert {e for experts in by_task.values() for e in experts} == {"search", "classification"}
    assert by_task["MockRetrievalTask"] == {"search"}
    assert by_task["MockClassificationTask"] == {"classification"}
    assert by_task["MockClusteringTask"] == {"classification"}


def test_mapping_override_sends_reranking_to_link_prediction(tiny_st):
    from mteb.mocks.mock_tasks import MockRerankingTask, MockRetrievalTask

    enc = SciMultMTEBEncoder(tiny_st, task_to_expert={"MockRerankingTask": "link_prediction"})
    spy = TaskSpy(tiny_st)
    try:
        results = mteb.evaluate(enc, [MockRerankingTask(), MockRetrievalTask()], cache=None,
                                show_progress_bar=False)
    finally:
        del tiny_st.encode
    assert {r.task_name for r in results.task_results} == {"MockRerankingTask", "MockRetrievalTask"}
    assert enc.routing_by_task() == {"MockRerankingTask": {"link_prediction"}, "MockRetrievalTask": {"search"}}
    assert set(spy.tasks) == {"link_prediction", "search"}


def test_citation_tasks_route_to_link_prediction_offline():
    # Task metadata resolves offline (the data would need the Hub).
    scidocs_rr = mteb.get_task("SciDocsRR").metadata
    assert scidocs_rr.type == "Reranking"
    assert expert_for_task(scidocs_rr) == "link_prediction"
    assert expert_for_task(mteb.get_task("SCIDOCS").metadata) == "link_prediction"
    assert expert_for_task(mteb.get_task("SciFact").metadata) == "search"
    assert set(NAME_TO_EXPERT.values()) == {"link_prediction"}
    # Overrides by name win over the built-in table, overrides by type over the type table.
    assert expert_for_task(scidocs_rr, {"SciDocsRR": "search"}) == "search"
    assert expert_for_task(mteb.get_task("SciFact").metadata, {"Retrieval": "link_prediction"}) == "link_prediction"


def test_unknown_expert_is_rejected(tiny_st):
    with pytest.raises(ValueError, match="Unknown expert 'citation'"):
        SciMultMTEBEncoder(tiny_st, task_to_expert={"SciDocsRR": "citation"})


def test_documents_are_title_sep_abstract_and_results_named_without_paths(tiny_st, tmp_path):
    from mteb.types import PromptType

    enc = SciMultMTEBEncoder(tiny_st, model_name="local/tiny-scimult")
    batch = {"id": ["d1"], "text": ["BERT We introduce a model."], "title": ["BERT"], "body": ["We introduce a model."]}
    meta = type("M", (), {"name": "SciFact", "type": "Retrieval"})()
    got = enc.encode([batch], task_metadata=meta, hf_split="test", hf_subset="default",
                     prompt_type=PromptType.document)
    expected = tiny_st.encode(["BERT [SEP] We introduce a model."], task="search")
    assert np.allclose(got, expected, atol=1e-6)

    from scimult_hf.evaluation.mteb_bridge import _result_name

    folder = tmp_path / "my-scimult"
    folder.mkdir()
    assert _result_name(str(folder), tiny_st) == "my-scimult"
    assert _result_name("org/scimult-moe", tiny_st) == "org/scimult-moe"


def test_a_per_task_export_routes_every_task_to_its_own_task(tiny_scimult, tmp_path):
    """A per-task export is plain BERT: it embeds for its task whatever mteb asks, so the routing log names
    that task (not experts the export does not have), and an override to another task is refused."""
    from scimult_hf import export_task
    from scimult_hf.errors import InputError

    export = export_task(tiny_scimult, "link_prediction", tmp_path / "export")
    enc = SciMultMTEBEncoder(str(export), model_name="local/tiny-export")
    for name in ("MockRetrievalTask", "MockClassificationTask"):
        task = next(t for t in MOCK_TASK_TEST_GRID_MONOLINGUAL if t.metadata.name == name)
        assert enc.expert_for(task.metadata) == "link_prediction"
    with pytest.raises(InputError, match="per-task export of 'link_prediction'"):
        SciMultMTEBEncoder(str(export), task_to_expert={"Retrieval": "search"})
