"""`evaluate` module: trec_eval ranking metrics (nDCG@k, Recall@k, P@k, MAP@k, MRR@k) via pytrec_eval.

Load it offline from the installed package::

    import evaluate
    from scimult_hf.evaluation import metric_path

    metric = evaluate.load(metric_path("scimult_retrieval"))
    metric.compute(
        predictions=[{"doc_ids": ["d1", "d2", "d3"], "scores": [0.9, 0.8, 0.1]}],   # one ranking per query
        references=[{"doc_ids": ["d2"], "relevance": [1]}],                         # its judgements
        metrics=["ndcg@10", "mrr@10"],
    )
    # {'ndcg@10': 0.6309..., 'mrr@10': 0.5}

The computation is scimult_hf.evaluation.metrics.retrieval_metrics (the plain Python API): see its
docstring for the exact trec_eval definitions.
"""

import datasets
import evaluate

from scimult_hf.evaluation.metrics import (
    LINK_PREDICTION_METRICS,
    RERANKING_METRICS,
    SEARCH_METRICS,
    qrels_from_records,
    retrieval_metrics,
    run_from_records,
)

_DESCRIPTION = """\
Ranking metrics with trec_eval's definitions (pytrec_eval), as BEIR and MTEB compute them: ndcg@k
(ndcg_cut_k), recall@k (recall_k), precision@k (P_k), map@k (map_cut_k), mrr@k (recip_rank over the top
k), and mrr / map / ndcg over the whole ranking. Each prediction is one query's ranking (document ids with
scores; trec_eval orders by score, ties by document id descending); each reference is that query's
judgements (document ids with graded relevance, >= 1 is relevant). Scores are means over the queries.
Config names pick the default metric set: "search" (ndcg@10, recall@100, mrr@10, map@100, the default),
"link_prediction" (recall@20/50/100, ndcg@10, mrr) and "reranking" (ndcg@5, ndcg@10).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"doc_ids": list[str], "scores": list[float]}, one per query.
    references: list of {"doc_ids": list[str], "relevance": list[int]}, one per query, same order.
    metrics: optional list of metric names overriding the config's set, e.g. ["ndcg@10", "mrr@10"].
Returns:
    dict metric name -> mean value.
Examples:
    >>> metric = evaluate.load(metric_path("scimult_retrieval"))  # doctest: +SKIP
    >>> metric.compute(predictions=[{"doc_ids": ["d1", "d2"], "scores": [2.0, 1.0]}],
    ...                references=[{"doc_ids": ["d2"], "relevance": [1]}], metrics=["mrr@10"])  # doctest: +SKIP
    {'mrr@10': 0.5}
"""

_CITATION = """\
@inproceedings{VanGysel2018pytreceval,
  title={Pytrec\\_eval: An Extremely Fast Python Interface to trec\\_eval},
  author={Van Gysel, Christophe and de Rijke, Maarten},
  booktitle={SIGIR},
  year={2018}
}
"""

_DEFAULTS = {
    "default": SEARCH_METRICS,
    "search": SEARCH_METRICS,
    "link_prediction": LINK_PREDICTION_METRICS,
    "reranking": RERANKING_METRICS,
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ScimultRetrieval(evaluate.Metric):
    def _info(self):
        if self.config_name not in _DEFAULTS:
            raise ValueError(f"Unknown config {self.config_name!r}; choose one of {sorted(_DEFAULTS)}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "doc_ids": datasets.Sequence(datasets.Value("string")),
                        "scores": datasets.Sequence(datasets.Value("float64")),
                    },
                    "references": {
                        "doc_ids": datasets.Sequence(datasets.Value("string")),
                        "relevance": datasets.Sequence(datasets.Value("int64")),
                    },
                }
            ),
            reference_urls=["https://github.com/cvangysel/pytrec_eval", "https://trec.nist.gov/trec_eval/"],
        )

    def _compute(self, predictions, references, metrics=None):
        run = run_from_records(predictions)
        qrels = qrels_from_records(references)
        return retrieval_metrics(run, qrels, metrics or _DEFAULTS[self.config_name])
