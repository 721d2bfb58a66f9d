"""`evaluate` module: SciMult classification metrics (single-label F1, multi-label ranking metrics).

Load it offline from the installed package::

    import evaluate
    from scimult_hf.evaluation import metric_path

    # single-label (default config): top-1 predicted label vs gold label
    f1 = evaluate.load(metric_path("scimult_classification"))
    f1.compute(predictions=["a", "b", "b", "a"], references=["a", "a", "b", "c"])
    # {'micro_f1': 0.5, 'macro_f1': 0.3888...}

    # multi-label: a label ranking per paper vs its gold label set
    ml = evaluate.load(metric_path("scimult_classification"), "multi_label")
    ml.compute(predictions=[{"labels": ["x", "y", "z"], "scores": [3.0, 2.0, 1.0]}],
               references=[["x", "z"]], k_values=[2])
    # {'recall@2': 0.5, 'precision@2': 0.5, 'ndcg@2': 0.6131...}

The computations are scimult_hf.evaluation.metrics.single_label_metrics and multi_label_metrics.
"""

import datasets
import evaluate

from scimult_hf.evaluation.metrics import CLASSIFICATION_K_VALUES, multi_label_metrics, single_label_metrics

_DESCRIPTION = """\
Classification metrics of SciMult's evaluation. Config "single_label" (default): Micro-F1 and Macro-F1
(scikit-learn; Macro-F1 over the labels present in references or predictions) of top-1 label
predictions. Config "multi_label": Recall@k, Precision@k and nDCG@k (trec_eval's recall_k, P_k,
ndcg_cut_k with binary gains) of each paper's label ranking against its gold label set, k capped at the
number of labels.
"""

_KWARGS_DESCRIPTION = """
Args (single_label):
    predictions: list of predicted label ids (str or int).
    references: list of gold label ids (str or int).
Args (multi_label):
    predictions: list of {"labels": list[str], "scores": list[float]}, a label ranking per paper.
    references: list of gold label id lists.
    k_values: cut-offs (default 20, 50, 100), capped at num_labels.
    num_labels: number of labels (default: the distinct labels seen in predictions and references).
Returns:
    dict metric name -> value.
Examples:
    >>> f1 = evaluate.load(metric_path("scimult_classification"))  # doctest: +SKIP
    >>> f1.compute(predictions=[0, 1], references=[0, 0])  # doctest: +SKIP
    {'micro_f1': 0.5, 'macro_f1': 0.3333333333333333}
"""

_CITATION = """\
@inproceedings{zhang2023scimult,
  title={Pre-training Multi-task Contrastive Learning Models for Scientific Literature Understanding},
  author={Zhang, Yu and Cheng, Hao and Shen, Zhihong and Liu, Xiaodong and Wang, Ye-Yi and Gao, Jianfeng},
  booktitle={Findings of EMNLP},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ScimultClassification(evaluate.Metric):
    def _info(self):
        if self.config_name == "multi_label":
            features = [
                datasets.Features(
                    {
                        "predictions": {
                            "labels": datasets.Sequence(datasets.Value(kind)),
                            "scores": datasets.Sequence(datasets.Value("float64")),
                        },
                        "references": datasets.Sequence(datasets.Value(kind)),
                    }
                )
                for kind in ("string", "int64")
            ]
        elif self.config_name in ("default", "single_label"):
            features = [
                datasets.Features({"predictions": datasets.Value(kind), "references": datasets.Value(kind)})
                for kind in ("string", "int64")
            ]
        else:
            raise ValueError(f"Unknown config {self.config_name!r}; choose 'single_label' or 'multi_label'.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, k_values=CLASSIFICATION_K_VALUES, num_labels=None):
        if self.config_name == "multi_label":
            scores = {}
            for i, pred in enumerate(predictions):
                if len(pred["labels"]) != len(pred["scores"]):
                    raise ValueError(f"prediction {i}: {len(pred['labels'])} labels but {len(pred['scores'])} scores.")
                scores[str(i)] = {str(label): float(s) for label, s in zip(pred["labels"], pred["scores"])}
            gold = {str(i): [str(label) for label in ref] for i, ref in enumerate(references)}
            return multi_label_metrics(scores, gold, k_values, num_labels=num_labels)
        return single_label_metrics(references, predictions)
