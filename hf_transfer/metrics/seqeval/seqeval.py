"""Entity-level precision, recall and F1 of tag sequences, by seqeval (the field's reference), plus token accuracy."""

import warnings

import datasets
import evaluate
import numpy as np
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

_DESCRIPTION = """Entity-level scores as CoNLL's conlleval computes them (seqeval): an entity counts as found when
its type and its first and last word match a gold entity exactly. mode=None (seqeval's default) reads chunks as
conlleval does: an I- tag after O or after another type starts an entity. mode="strict" reads IOB2 strictly: such
a chunk is no entity at all."""
_KWARGS = """
Args:
    predictions: predicted tag sequences, one list of tag names (O, B-PER, I-PER, ...) per sentence.
    references: gold tag sequences, same lengths.
    mode: None (conlleval's rules) or "strict" (IOB2 only).
    zero_division: value used when a denominator is zero (no entity predicted, or none in the gold tags).
Returns:
    precision_micro, recall_micro, f1_micro: over all entities;
    precision_macro, recall_macro, f1_macro: the mean over entity types (those in references or predictions);
    precision_weighted, recall_weighted, f1_weighted: that mean weighted by each type's gold entities;
    per_type: {type: {precision, recall, f1, support (gold entities)}};
    token_accuracy: share of words whose tag is exactly right, O included.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Seqeval(evaluate.Metric):
    """The evaluate module around seqeval's classification_report and accuracy_score, loaded by path
    (hf_transfer.metrics.load_metric)."""

    def _info(self):
        tags = datasets.Sequence(datasets.Value("string"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Nakayama, seqeval (2018), github.com/chakki-works/seqeval; CoNLL-2000 conlleval",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": tags, "references": tags}),
        )

    def _compute(self, predictions, references, mode=None, zero_division=0):
        strict = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
        with warnings.catch_warnings():  # numpy warns on the macro mean when no entity occurs at all
            warnings.simplefilter("ignore", RuntimeWarning)
            report = classification_report(references, predictions, output_dict=True, zero_division=zero_division,
                                           **strict)
        out = {}
        for average in ("micro", "macro", "weighted"):
            row = report.pop(f"{average} avg")
            for name, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
                value = float(row[key])
                out[f"{name}_{average}"] = float(zero_division) if np.isnan(value) else value
        out["per_type"] = {
            kind: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                   "f1": float(row["f1-score"]), "support": int(row["support"])}
            for kind, row in sorted(report.items())
        }
        out["token_accuracy"] = float(accuracy_score(references, predictions))
        return out
