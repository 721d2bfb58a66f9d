"""Ranking and classification metrics against hand-computed values (trec_eval definitions, scikit-learn F1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scimult_hf.evaluation.metrics import (
    LINK_PREDICTION_METRICS,
    SEARCH_METRICS,
    capped_k_values,
    metric_display_name,
    multi_label_metrics,
    qrels_from_records,
    retrieval_metrics,
    run_from_records,
    single_label_metrics,
    trec_order,
)

L2 = math.log2

# One query, five retrieved documents; relevant: d2 (rank 2), d4 (rank 4) and d6 (never retrieved).
RUN_A = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6, "d5": 0.5}}
QRELS_A = {"q1": {"d2": 1, "d4": 1, "d6": 1}}


def test_binary_relevance_hand_computed():
    m = retrieval_metrics(
        RUN_A,
        QRELS_A,
        ["precision@5", "recall@5", "recall@2", "mrr@10", "mrr@1", "ndcg@5", "map@5", "map@2", "mrr"],
    )
    # P@5: 2 relevant among the top 5 -> 2/5.
    assert m["precision@5"] == pytest.approx(0.4)
    # Recall@5: 2 of the 3 relevant; Recall@2: only d2 -> 1/3.
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["recall@2"] == pytest.approx(1 / 3)
    # MRR@10: first relevant at rank 2 -> 1/2; MRR@1: nothing relevant at rank 1 -> 0.
    assert m["mrr@10"] == pytest.approx(0.5)
    assert m["mrr@1"] == 0.0
    assert m["mrr"] == pytest.approx(0.5)
    # nDCG@5: DCG = 1/log2(3) + 1/log2(5); ideal (3 relevant) = 1/log2(2) + 1/log2(3) + 1/log2(4).
    dcg = 1 / L2(3) + 1 / L2(5)
    idcg = 1 / L2(2) + 1 / L2(3) + 1 / L2(4)
    assert m["ndcg@5"] == pytest.approx(dcg / idcg)  # 0.4982
    # MAP@5: precisions at the relevant ranks (1/2 at rank 2, 2/4 at rank 4) summed over all 3 relevant.
    assert m["map@5"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    # MAP@2: only d2 within the cut-off -> (1/2) / 3.
    assert m["map@2"] == pytest.approx(1 / 6)


def test_graded_relevance_uses_linear_gains():
    # trec_eval's ndcg: gain = the grade (not 2^grade - 1). Ranking d2 (grade 1) then d1 (grade 2).
    m = retrieval_metrics({"q": {"d2": 0.9, "d1": 0.8}}, {"q": {"d1": 2, "d2": 1}}, ["ndcg@10"])
    dcg = 1 / L2(2) + 2 / L2(3)
    idcg = 2 / L2(2) + 1 / L2(3)
    assert m["ndcg@10"] == pytest.approx(dcg / idcg)  # 0.8597


def test_mrr_at_k_only_counts_the_top_k():
    # First relevant document at rank 12: MRR@10 = 0 (BEIR/MTEB), MRR over the whole ranking = 1/12.
    run = {"q": {f"d{i:02d}": 100.0 - i for i in range(1, 21)}}
    qrels = {"q": {"d12": 1}}
    m = retrieval_metrics(run, qrels, ["mrr@10", "mrr", "recall@10", "recall@20"])
    assert m["mrr@10"] == 0.0
    assert m["mrr"] == pytest.approx(1 / 12)
    assert m["recall@10"] == 0.0 and m["recall@20"] == 1.0


def test_ties_follow_trec_eval_order():
    # Equal scores: trec_eval ranks by document id descending, so "b" comes before "a".
    assert trec_order({"a": 1.0, "b": 1.0}) == [("b", 1.0), ("a", 1.0)]
    assert retrieval_metrics({"q": {"a": 1.0, "b": 1.0}}, {"q": {"b": 1}}, ["mrr@10"])["mrr@10"] == 1.0
    assert retrieval_metrics({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 1}}, ["mrr@10"])["mrr@10"] == 0.5
    # The MRR@k truncation uses the same order: top-1 of a tie is "b".
    assert retrieval_metrics({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 1}}, ["mrr@1"])["mrr@1"] == 0.0


def test_mean_over_qrels_queries_missing_counts_zero():
    # q1 perfect (nDCG 1), q2 absent from the run (0), q3 in the run but not judged (ignored) -> 0.5.
    run = {"q1": {"d1": 1.0}, "q3": {"d9": 1.0}}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    m = retrieval_metrics(run, qrels, ["ndcg@10", "mrr@10", "recall@100"])
    assert m == {"ndcg@10": pytest.approx(0.5), "mrr@10": pytest.approx(0.5), "recall@100": pytest.approx(0.5)}


def test_two_queries_average():
    # q1: relevant at rank 1 (RR 1); q2: relevant at rank 3 (RR 1/3). MRR@10 = (1 + 1/3) / 2.
    run = {"q1": {"a": 3, "b": 2, "c": 1}, "q2": {"a": 3, "b": 2, "c": 1}}
    qrels = {"q1": {"a": 1}, "q2": {"c": 1}}
    assert retrieval_metrics(run, qrels, ["mrr@10"])["mrr@10"] == pytest.approx(2 / 3)


def test_default_metric_sets():
    assert SEARCH_METRICS == ("ndcg@10", "recall@100", "mrr@10", "map@100")
    assert set(LINK_PREDICTION_METRICS) == {"recall@20", "recall@50", "recall@100", "ndcg@10", "mrr"}
    m = retrieval_metrics(RUN_A, QRELS_A)
    assert list(m) == list(SEARCH_METRICS)
    assert m["recall@100"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", ["ndcg@0", "hits@10", "recall", "precision", "ndcg@x"])
def test_unknown_or_malformed_metric_names(bad):
    with pytest.raises(ValueError, match="metric|Metric"):
        retrieval_metrics(RUN_A, QRELS_A, [bad])


def test_empty_qrels_and_nan_scores_are_errors():
    with pytest.raises(ValueError, match="qrels is empty"):
        retrieval_metrics(RUN_A, {}, ["ndcg@10"])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics({"q1": {"d1": float("nan")}}, QRELS_A, ["ndcg@10"])


def test_display_names():
    assert metric_display_name("ndcg@10") == "nDCG@10"
    assert metric_display_name("mrr") == "MRR"
    assert metric_display_name("macro_f1") == "Macro-F1"


# ---------------------------------------------------------------------------------------------- classification


def test_single_label_f1_hand_computed():
    # gold a a b c / predicted a b b a.
    # Micro-F1 = correct / total = 2/4.
    # F1(a): P = 1/2 (a predicted twice, once right), R = 1/2 -> 1/2.
    # F1(b): P = 1/2, R = 1/1 -> 2 * (1/2 * 1) / (1/2 + 1) = 2/3.  F1(c): never predicted -> 0.
    m = single_label_metrics(["a", "a", "b", "c"], ["a", "b", "b", "a"])
    assert m["micro_f1"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)


def test_single_label_f1_accepts_ints_and_checks_lengths():
    assert single_label_metrics([0, 1, 1], [0, 1, 1]) == {"micro_f1": 1.0, "macro_f1": 1.0}
    with pytest.raises(ValueError, match="3 items but y_pred has 2"):
        single_label_metrics([0, 1, 1], [0, 1])


def test_multi_label_hand_computed():
    # Paper p1 gold {x, z}, ranking x > y > z; paper p2 gold {y}, ranking x > y > z.
    # k = 2: p1 Recall 1/2, P 1/2, nDCG 1/(1 + 1/log2 3); p2 Recall 1, P 1/2, nDCG (1/log2 3) / 1.
    scores = {"p1": {"x": 3, "y": 2, "z": 1}, "p2": {"x": 3, "y": 2, "z": 1}}
    gold = {"p1": ["x", "z"], "p2": ["y"]}
    m = multi_label_metrics(scores, gold, k_values=[2])
    assert m["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((1 / (1 + 1 / L2(3)) + 1 / L2(3)) / 2)


def test_multi_label_k_capped_at_label_count():
    assert capped_k_values((20, 50, 100), 23) == [20, 23]
    assert capped_k_values((20, 50, 100), 19) == [19]
    m = multi_label_metrics({"p": {"x": 3, "y": 2, "z": 1}}, {"p": ["z"]})  # 3 labels: 20/50/100 -> 3
    assert set(m) == {"recall@3", "precision@3", "ndcg@3"}
    assert m["recall@3"] == 1.0 and m["precision@3"] == pytest.approx(1 / 3)
    assert m["ndcg@3"] == pytest.approx(1 / L2(4))


def test_record_forms_round_trip():
    run = run_from_records([{"doc_ids": ["d1", "d2"], "scores": [0.5, 0.7]}], query_ids=["q"])
    qrels = qrels_from_records([{"doc_ids": ["d1"]}], query_ids=["q"])
    assert run == {"q": {"d1": 0.5, "d2": 0.7}} and qrels == {"q": {"d1": 1}}
    assert retrieval_metrics(run, qrels, ["mrr@10"])["mrr@10"] == 0.5
    with pytest.raises(ValueError, match="2 doc_ids but 1 scores"):
        run_from_records([{"doc_ids": ["a", "b"], "scores": [1.0]}])


def test_paired_bootstrap_interval_is_right_about_a_known_gap():
    """Model a beats b by 0.05 on average with noise: the 95 % interval holds 0.05 and excludes 0; with the gap
    removed the interval holds 0. Mismatched items are refused."""
    from scimult_hf.evaluation.metrics import paired_bootstrap

    rng = np.random.default_rng(0)
    b = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 400))}
    a = {q: v + 0.05 + float(rng.normal(0, 0.1)) for q, v in b.items()}
    r = paired_bootstrap(a, b)
    assert r["n"] == 400 and r["low"] < r["diff"] < r["high"]
    assert r["low"] > 0.03 and r["high"] < 0.07 and r["low"] < 0.05 < r["high"]
    same = paired_bootstrap({q: v - 0.05 for q, v in a.items()}, b)
    assert same["low"] < 0 < same["high"]
    assert paired_bootstrap(a, b, seed=1)["low"] == pytest.approx(r["low"], abs=0.005)  # stable in the seed
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap({"q1": 1.0}, {"q2": 1.0})


def test_paired_bootstrap_over_sets_weighs_each_set_once():
    """Over sets, the statistic is the mean of the set means: a large set with no gap and a small set with a gap
    of 0.1 give 0.05, and the small set's spread (not its size) widens the interval."""
    from scimult_hf.evaluation.metrics import paired_bootstrap

    rng = np.random.default_rng(1)
    big = {f"d{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 2000))}
    small = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 30))}
    a = {"big": dict(big), "small": {q: v + 0.1 + float(rng.normal(0, 0.05)) for q, v in small.items()}}
    r = paired_bootstrap(a, {"big": big, "small": small})
    assert r["n"] == 2030 and r["diff"] == pytest.approx(np.mean([0.0, np.mean(
        [a["small"][q] - small[q] for q in small])]))
    assert 0.03 < r["low"] < r["diff"] < r["high"] < 0.07
    with pytest.raises(ValueError, match="same sets"):
        paired_bootstrap(a, {"big": big})
