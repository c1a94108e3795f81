"""Our metrics, shipped as evaluate modules inside the package and loaded by path.

`evaluate.load("accuracy")` needs the Hub; these folders need nothing but this package.
"""

from __future__ import annotations

import functools
from pathlib import Path

import evaluate
import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

METRICS_DIR = Path(__file__).parent
AVERAGES = ("macro", "micro", "weighted")


@functools.lru_cache(maxsize=None)
def load_metric(name: str, multilabel: bool = False) -> evaluate.EvaluationModule:
    """Load one of our metric modules (accuracy, precision_recall_f1, confusion_matrix, seqeval) by path; ValueError
    for an unknown name."""
    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        known = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"unknown metric {name!r}: known metrics are {', '.join(known)}")
    return evaluate.load(str(folder), config_name="multilabel" if multilabel else "default")


def classification_report(predictions, references, label_names: list[str], multi_label: bool = False) -> dict:
    """Accuracy, averaged precision/recall/F1, a per-class table and (single-label) the confusion matrix."""
    predictions = np.asarray(predictions).astype(int)
    references = np.asarray(references).astype(int)
    label_ids = list(range(len(label_names)))
    scoring = dict(predictions=predictions.tolist(), references=references.tolist())
    report = {"accuracy": load_metric("accuracy", multi_label).compute(**scoring)["accuracy"]}
    metric = load_metric("precision_recall_f1", multi_label)
    averaged = {average: metric.compute(**scoring, average=average, labels=label_ids) for average in AVERAGES}
    report.update({f"{name}_{average}": averaged[average][name] for name in ("precision", "recall", "f1")
                   for average in AVERAGES})
    per_class = metric.compute(**scoring, average=None, labels=label_ids)
    support = references.sum(axis=0) if multi_label else np.bincount(references, minlength=len(label_names))
    report["per_class"] = {
        label: {
            "precision": per_class["precision"][i],
            "recall": per_class["recall"][i],
            "f1": per_class["f1"][i],
            "support": int(support[i]),
        }
        for i, label in enumerate(label_names)
    }
    if not multi_label:
        report["confusion_matrix"] = load_metric("confusion_matrix").compute(**scoring, labels=label_ids)["confusion_matrix"]
    report["num_examples"] = int(len(references))
    return report


def entity_report(predictions: list[list[str]], references: list[list[str]]) -> dict:
    """Entity-level scores of IOB2 tag sequences (one list of tag names per sentence), for metrics.json.

    Keys (the classification report's, per entity type instead of per class):
    precision / recall / f1 _micro / _macro / _weighted: seqeval's default mode, CoNLL conlleval's rules (an I- tag
        after O or another type starts an entity); an entity counts when its type and both ends match;
    per_class: {entity type: {precision, recall, f1, support (gold entities)}}, types of references or predictions;
    strict: {precision / recall / f1 _micro / _macro}: seqeval's strict IOB2 mode, where a chunk that does not
        open with B- is no entity (lower than the default when a model writes I- after O);
    token_accuracy: share of words whose tag is exactly right (O included; high even for a model that finds nothing);
    num_examples (sentences), num_tokens, num_entities (gold), num_predicted_entities (default mode).
    Raises ValueError when the sequences differ in number or length.
    """
    if len(predictions) != len(references) or any(len(p) != len(r) for p, r in zip(predictions, references)):
        raise ValueError("predictions and references must hold the same number of sentences of the same lengths")
    metric = load_metric("seqeval")
    default = metric.compute(predictions=predictions, references=references)
    strict = metric.compute(predictions=predictions, references=references, mode="strict")
    report = {key: value for key, value in default.items() if key not in ("per_type", "token_accuracy")}
    report["per_class"] = default["per_type"]
    report["strict"] = {f"{name}_{average}": strict[f"{name}_{average}"]
                        for average in ("micro", "macro") for name in ("precision", "recall", "f1")}
    report["token_accuracy"] = default["token_accuracy"]
    report["num_examples"] = len(references)
    report["num_tokens"] = sum(map(len, references))
    report["num_entities"] = sum(len(get_entities(tags)) for tags in references)
    report["num_predicted_entities"] = sum(len(get_entities(tags)) for tags in predictions)
    return report

