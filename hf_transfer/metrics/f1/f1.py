"""F1 = harmonic mean of precision and recall, per class or averaged (macro, micro, weighted)."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "F1 = harmonic mean of precision and recall. average=None gives one value per label."
_KWARGS = """
Args:
    predictions: predicted label ids (lists of 0/1 per label with config_name="multilabel").
    references: true label ids, same shape.
    average: "macro" | "micro" | "weighted" | "binary" | None (per label).
    labels: label ids to include, in this order (default: all seen).
    zero_division: value used when a denominator is zero.
Returns:
    f1: float, or a list of floats with average=None.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class F1(evaluate.Metric):
    def _info(self):
        value = datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, average="macro", labels=None, zero_division=0):
        score = f1_score(references, predictions, average=average, labels=labels, zero_division=zero_division)
        return {"f1": score.tolist() if average is None else float(score)}
