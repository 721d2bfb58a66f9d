"""End-to-end evaluations with the offline default model (all-MiniLM-L6-v2 upcycled) on small real subsets.

The subsets keep every judged document of the chosen queries plus filler documents; encoding uses
max_seq_length 128 to stay fast on 2 CPU cores (the full-length check is tests/test_quality_slow.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_beir

from scimult_hf import load_sentence_transformer
from scimult_hf.evaluation import (
    evaluate_classification,
    evaluate_link_prediction,
    evaluate_search,
    format_table,
    retrieval_metrics,
    single_label_metrics,
    to_eval_results,
)
from scimult_hf.retrieval import load_beir, load_classification

FAST_MAX_LEN = 128


def _beir_subset(src: Path, dst: Path, n_queries: int, n_docs: int, split: str = "test") -> Path:
    lines = (src / "qrels" / f"{split}.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    qids = list(dict.fromkeys(r[0] for r in rows))[:n_queries]
    keep = [r for r in rows if r[0] in qids]
    judged = {r[1] for r in keep}
    corpus = [json.loads(x) for x in (src / "corpus.jsonl").open()]
    docs = [c for c in corpus if c["_id"] in judged]
    docs += [c for c in corpus if c["_id"] not in judged][: max(0, n_docs - len(docs))]
    queries = [json.loads(x) for x in (src / "queries.jsonl").open()]
    return write_beir(dst, "".join("\t".join(r) + "\n" for r in keep), corpus=docs, split=split,
                      queries=[q for q in queries if q["_id"] in qids])


def _cls_subset(src: Path, dst: Path, file: str, n: int, prefer_multi: bool = False) -> Path:
    rows = [json.loads(x) for x in (src / file).open()]
    if prefer_multi:
        rows = sorted(rows, key=lambda r: -len(r["labels"]))
    dst.mkdir(parents=True)
    (dst / "labels.jsonl").write_text((src / "labels.jsonl").read_text())
    (dst / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
    return dst


class EncodeSpy:
    """Wraps st.encode and records the task of each call and the number of texts."""

    def __init__(self, st):
        self.calls: list[tuple[str | None, int]] = []
        self._orig = st.encode
        st.encode = self

    def __call__(self, inputs, *args, **kwargs):
        self.calls.append((kwargs.get("task"), len(inputs)))
        return self._orig(inputs, *args, **kwargs)


@pytest.fixture(scope="module")
def st(minilm_scimult):
    model = load_sentence_transformer(minilm_scimult)
    model.max_seq_length = FAST_MAX_LEN
    return model


@pytest.fixture(scope="module")
def scifact_small(shared_dir, tmp_path_factory):
    return _beir_subset(shared_dir / "data" / "scifact", tmp_path_factory.mktemp("scifact") / "scifact", 20, 120)


def _brute_force_run(st, data, task, k):
    q = st.encode(data.queries["text"], task=task, convert_to_numpy=True)
    d = st.encode(data.corpus["text"], task=task, convert_to_numpy=True)
    scores = torch.from_numpy(q @ d.T)
    top_s, top_i = torch.topk(scores, min(k, d.shape[0]), dim=1)
    ids = data.corpus["id"]
    return {qid: {ids[i]: float(s) for s, i in zip(srow, irow)} for qid, srow, irow in
            zip(data.queries["id"], top_s.tolist(), top_i.tolist())}


def test_search_matches_brute_force_and_uses_search_expert(st, scifact_small):
    data = load_beir(scifact_small)
    spy = EncodeSpy(st)
    try:
        result = evaluate_search(st, data, chunk_size=50, show_progress_bar=False)
    finally:
        del st.encode
    assert [task for task, _ in spy.calls] == ["search", "search"]
    assert [n for _, n in spy.calls] == [20, len(data.corpus)]
    assert result["expert"] == "search" and result["form"] == "retrieval"
    assert list(result["metrics"]) == ["ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert result["num_queries"] == 20 and result["top_k"] == 100
    # The chunked top-k pipeline gives exactly the metrics of a full score matrix.
    expected = retrieval_metrics(_brute_force_run(st, data, "search", 100), data.qrels)
    assert result["metrics"] == pytest.approx(expected, abs=1e-6)
    assert 0.5 < result["metrics"]["ndcg@10"] <= 1.0
    # one headline value per judged query, whose mean is the headline figure (for paired comparisons)
    per_query = result["per_query"]["ndcg@10"]
    assert set(per_query) == set(data.qrels) and np.mean(list(per_query.values())) == pytest.approx(
        result["metrics"]["ndcg@10"], abs=1e-12)
    assert "| scifact | test | search (search) | nDCG@10 = " in format_table(result)


def test_plain_sentence_transformer_is_evaluated_without_task(minilm_path, st, scifact_small):
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(minilm_path, device="cpu")
    plain.max_seq_length = FAST_MAX_LEN
    calls = []
    orig_q, orig_d = plain.encode_query, plain.encode_document
    plain.encode_query = lambda texts, **kw: calls.append(("query", kw.get("task"))) or orig_q(texts, **kw)
    plain.encode_document = lambda texts, **kw: calls.append(("document", kw.get("task"))) or orig_d(texts, **kw)
    result = evaluate_search(plain, scifact_small, show_progress_bar=False)
    assert calls == [("query", None), ("document", None)]
    assert result["expert"] is None
    # The upcycled model's experts are copies of MiniLM: same figures as the plain model.
    scimult = evaluate_search(st, scifact_small, show_progress_bar=False)
    assert result["metrics"] == pytest.approx(scimult["metrics"], abs=1e-5)


def test_link_prediction_retrieval_and_reranking(st, shared_dir, tmp_path):
    folder = _beir_subset(shared_dir / "data" / "unarxive-cites", tmp_path / "unarxive", 3, 150)
    data = load_beir(folder)
    spy = EncodeSpy(st)
    try:
        result = evaluate_link_prediction(st, data, show_progress_bar=False)
    finally:
        del st.encode
    assert {task for task, _ in spy.calls} == {"link_prediction"}
    assert list(result["metrics"]) == ["recall@20", "recall@50", "recall@100", "ndcg@10", "mrr"]
    assert result["top_k"] == len(data.corpus)  # mrr needs the whole ranking: min(1000, corpus size)
    expected = retrieval_metrics(_brute_force_run(st, data, "link_prediction", 1000), data.qrels,
                                 result["metrics"].keys())
    assert result["metrics"] == pytest.approx(expected, abs=1e-6)

    # Reranking form: each query's judged documents plus 10 unjudged ones.
    unjudged = [d for d in data.corpus["id"] if all(d not in v for v in data.qrels.values())][:10]
    candidates = {q: list(rel) + unjudged for q, rel in data.qrels.items()}
    rr = evaluate_link_prediction(st, data, candidates=candidates, show_progress_bar=False)
    assert rr["form"] == "reranking" and list(rr["metrics"]) == ["ndcg@5", "ndcg@10"]
    q = st.encode(data.queries["text"], task="link_prediction")
    ids = list(data.corpus["id"])
    d = st.encode(data.corpus["text"], task="link_prediction")
    run = {qid: {c: float(d[ids.index(c)] @ q[i]) for c in candidates[qid]} for i, qid in enumerate(data.queries["id"])}
    assert rr["metrics"] == pytest.approx(retrieval_metrics(run, data.qrels, ["ndcg@5", "ndcg@10"]), abs=1e-6)


def test_single_label_classification(st, shared_dir, tmp_path):
    folder = _cls_subset(shared_dir / "data" / "ohsumed23", tmp_path / "ohsumed", "test.jsonl", 40)
    spy = EncodeSpy(st)
    try:
        result = evaluate_classification(st, folder, show_progress_bar=False)
    finally:
        del st.encode
    assert [task for task, _ in spy.calls] == ["classification", "classification"]
    assert [n for _, n in spy.calls] == [40, 23]
    assert result["form"] == "single_label" and set(result["metrics"]) == {"micro_f1", "macro_f1"}
    data = load_classification(folder)
    p = st.encode(data.papers["text"], task="classification")
    lab = st.encode(data.labels["text"], task="classification")
    predicted = [data.label_ids[i] for i in np.argmax(p @ lab.T, axis=1)]
    expected = single_label_metrics([g[0] for g in data.papers["labels"]], predicted)
    assert result["metrics"] == pytest.approx(expected)
    right = result["per_query"]["micro_f1"]  # per paper: 1 when its top-1 label is its gold label
    assert set(right.values()) <= {0.0, 1.0} and np.mean(list(right.values())) == pytest.approx(expected["micro_f1"])


def test_multi_label_classification_caps_k(st, shared_dir, tmp_path):
    folder = _cls_subset(shared_dir / "data" / "s2orc-fos", tmp_path / "fos", "papers.jsonl", 30, prefer_multi=True)
    result = evaluate_classification(st, folder, show_progress_bar=False)
    assert result["form"] == "multi_label"
    # 19 labels: the default cut-offs 20/50/100 all cap to 19; every label is ranked, so Recall@19 = 1.
    assert set(result["metrics"]) == {"recall@19", "precision@19", "ndcg@19"}
    assert result["metrics"]["recall@19"] == pytest.approx(1.0)
    per_paper = result["per_query"]["ndcg@19"]
    assert len(per_paper) == 30 and np.mean(list(per_paper.values())) == pytest.approx(result["metrics"]["ndcg@19"])
    small_k = evaluate_classification(st, folder, k_values=(1, 3), show_progress_bar=False)
    assert set(small_k["metrics"]) == {"recall@1", "recall@3", "precision@1", "precision@3", "ndcg@1", "ndcg@3"}


def test_prompt_name_is_checked(st, scifact_small):
    with pytest.raises(ValueError, match="has no prompt named 'nope'"):
        evaluate_search(st, scifact_small, prompt_name="nope", show_progress_bar=False)


def test_to_eval_results_builds_model_index(st, scifact_small):
    from huggingface_hub import EvalResult, ModelCardData

    result = evaluate_search(st, scifact_small, show_progress_bar=False)
    entries = to_eval_results(result, "scimult-minilm", "SciFact", "allenai/scifact", "text-retrieval")
    assert all(isinstance(e, EvalResult) for e in entries)
    assert [e.metric_type for e in entries] == ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"]
    assert entries[0].metric_name == "nDCG@10" and entries[0].dataset_split == "test"
    assert entries[0].metric_value == pytest.approx(result["metrics"]["ndcg@10"])
    card = ModelCardData(model_name="scimult-minilm", eval_results=entries).to_dict()
    metrics = card["model-index"][0]["results"][0]["metrics"]
    assert {m["type"] for m in metrics} == {"ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"}
    with pytest.raises(ValueError, match="model_name is required"):
        to_eval_results(result, "", "SciFact", "allenai/scifact", "text-retrieval")
