"""Accuracy: the fraction of predictions equal to the references (exact match of label sets for multi-label)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Accuracy = correct predictions / all predictions. Multi-label inputs count exact set matches."
_KWARGS = """
Args:
    predictions: predicted label ids (lists of 0/1 per label with config_name="multilabel").
    references: true label ids, same shape.
    normalize: return the fraction (True) or the count (False).
    sample_weight: optional per-example weights.
Returns:
    accuracy: float.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Accuracy(evaluate.Metric):
    """The evaluate module around scikit-learn's accuracy_score, loaded by path (hf_transfer.metrics.load_metric);
    config_name "multilabel" takes 0/1 rows per example."""

    def _info(self):
        value = datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        return {"accuracy": float(accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight))}
