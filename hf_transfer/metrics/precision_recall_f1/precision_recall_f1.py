"""Precision, recall and F1 (their harmonic mean) together, per class or averaged (macro, micro, weighted)."""

import datasets
import evaluate
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = ("Precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their harmonic mean (scikit-learn's "
                "precision_recall_fscore_support). average=None gives one value per label.")
_KWARGS = """
Args:
    predictions: predicted label ids (lists of 0/1 per label with config_name="multilabel").
    references: true label ids, same shape.
    average: "macro" | "micro" | "weighted" | "binary" | None (per label).
    labels: label ids to include, in this order (default: all seen).
    zero_division: value used when a denominator is zero.
Returns:
    precision, recall, f1: floats, or lists of floats (one per label) with average=None.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class PrecisionRecallF1(evaluate.Metric):
    """The evaluate module around scikit-learn's precision_recall_fscore_support, loaded by path
    (hf_transfer.metrics.load_metric); config_name "multilabel" takes 0/1 rows per example."""

    def _info(self):
        value = datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, average="macro", labels=None, zero_division=0):
        scores = precision_recall_fscore_support(references, predictions, average=average, labels=labels,
                                                 zero_division=zero_division)[:3]
        return {name: score.tolist() if average is None else float(score)
                for name, score in zip(("precision", "recall", "f1"), scores)}
