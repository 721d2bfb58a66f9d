"""The shipped `evaluate` modules load offline (fresh process, empty HF_HOME) and compute hand-checked values."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from helpers import run_python

from scimult_hf.evaluation import METRIC_NAMES, metric_path

SCRIPT = textwrap.dedent(
    """
    import inspect
    import json
    import evaluate
    from scimult_hf.evaluation import metric_path

    out = {}
    retrieval = evaluate.load(metric_path("scimult_retrieval"))
    # One query: d1 (not relevant) ranked above d2 (relevant) and d3; relevant also d4 (unretrieved).
    pred = [{"doc_ids": ["d1", "d2", "d3"], "scores": [0.9, 0.8, 0.1]}]
    ref = [{"doc_ids": ["d2", "d4"], "relevance": [1, 1]}]
    out["retrieval"] = retrieval.compute(predictions=pred, references=ref,
                                         metrics=["mrr@10", "mrr@1", "recall@3", "precision@2", "ndcg@10"])
    out["retrieval_default"] = retrieval.compute(predictions=pred, references=ref)
    lp = evaluate.load(metric_path("scimult_retrieval"), "link_prediction")
    out["link_prediction"] = lp.compute(predictions=pred, references=ref)

    single = evaluate.load(metric_path("scimult_classification"))
    out["single"] = single.compute(predictions=["a", "b", "b", "a"], references=["a", "a", "b", "c"])
    out["single_int"] = single.compute(predictions=[0, 1], references=[0, 0])
    multi = evaluate.load(metric_path("scimult_classification"), "multi_label")
    out["multi"] = multi.compute(predictions=[{"labels": ["x", "y", "z"], "scores": [3.0, 2.0, 1.0]}],
                                 references=[["x", "z"]], k_values=[2])
    out["module_files"] = [inspect.getfile(type(m)) for m in (retrieval, single)]
    print("RESULT " + json.dumps(out))
    """
)


def test_metric_paths_exist():
    for name in METRIC_NAMES:
        path = Path(metric_path(name))
        assert (path / f"{name}.py").is_file()
        source = (path / f"{name}.py").read_text()
        # evaluate's import scanner needs these on separate lines.
        assert "\nimport datasets\nimport evaluate\n" in source
    with pytest.raises(ValueError, match="Unknown metric module"):
        metric_path("nope")


def test_evaluate_load_offline_in_fresh_process(tmp_path):
    env = dict(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), HF_EVALUATE_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    proc = run_python(SCRIPT, env=env, unset=("HF_MODULES_CACHE", "HF_DATASETS_CACHE"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])

    r = out["retrieval"]
    assert r["mrr@10"] == pytest.approx(0.5)  # first relevant at rank 2
    assert r["mrr@1"] == 0.0
    assert r["recall@3"] == pytest.approx(0.5)  # d2 of {d2, d4}
    assert r["precision@2"] == pytest.approx(0.5)
    # nDCG@10: DCG = 1/log2(3); ideal = 1 + 1/log2(3).
    assert r["ndcg@10"] == pytest.approx((1 / 1.584962500721156) / (1 + 1 / 1.584962500721156))
    assert list(out["retrieval_default"]) == ["ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert out["retrieval_default"]["map@100"] == pytest.approx((1 / 2) / 2)  # P at rank 2 over 2 relevant
    assert list(out["link_prediction"]) == ["recall@20", "recall@50", "recall@100", "ndcg@10", "mrr"]

    # gold a a b c vs predicted a b b a: Micro-F1 2/4; Macro-F1 (1/2 + 2/3 + 0)/3.
    assert out["single"]["micro_f1"] == pytest.approx(0.5)
    assert out["single"]["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 3)
    # ints: gold 0 0 vs predicted 0 1: F1(0) = 2/3, F1(1) = 0 -> macro 1/3.
    assert out["single_int"]["macro_f1"] == pytest.approx(1 / 3)
    m = out["multi"]
    assert m["recall@2"] == pytest.approx(0.5) and m["precision@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(1 / (1 + 1 / 1.584962500721156))
    # Nothing was fetched: each module ran from evaluate's copy, in the fresh HF_HOME, of the shipped script.
    for file, name in zip(out["module_files"], METRIC_NAMES):
        assert Path(file).is_relative_to(tmp_path / "hf_home"), file
        assert Path(file).read_bytes() == (Path(metric_path(name)) / f"{name}.py").read_bytes()
