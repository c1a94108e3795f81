"""Confusion matrix: rows are true labels, columns predicted labels."""

import datasets
import evaluate
from sklearn.metrics import confusion_matrix

_DESCRIPTION = "Confusion matrix C where C[i][j] counts examples of true label i predicted as label j."
_KWARGS = """
Args:
    predictions: predicted label ids.
    references: true label ids.
    labels: label ids giving the row/column order (default: all seen, sorted).
Returns:
    confusion_matrix: list of lists of ints.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ConfusionMatrix(evaluate.Metric):
    """The evaluate module around scikit-learn's confusion_matrix, loaded by path (hf_transfer.metrics.load_metric)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, labels=None):
        return {"confusion_matrix": confusion_matrix(references, predictions, labels=labels).tolist()}
