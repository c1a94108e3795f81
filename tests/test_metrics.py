import numpy as np
import pytest
from sklearn.metrics import f1_score

from hf_transfer.metrics import classification_report, load_metric


def test_metric_modules_load_by_path_offline():
    accuracy = load_metric("accuracy")
    assert accuracy.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"] == pytest.approx(2 / 3)


def test_report_single_label_matches_sklearn():
    predictions = [0, 1, 1, 0, 2, 2, 1]
    references = [0, 1, 0, 0, 2, 1, 1]
    report = classification_report(predictions, references, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(5 / 7)
    for average in ("macro", "micro", "weighted"):
        assert report[f"f1_{average}"] == pytest.approx(f1_score(references, predictions, average=average))
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [0, 0, 1]]  # rows: true labels
    assert report["per_class"]["b"]["support"] == 3
    assert report["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert report["num_examples"] == 7


def test_report_multi_label():
    references = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    predictions = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0]])
    report = classification_report(predictions, references, ["x", "y", "z"], multi_label=True)
    assert report["accuracy"] == pytest.approx(1 / 3)  # exact set match
    assert report["per_class"]["y"]["support"] == 2
    assert "confusion_matrix" not in report


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        load_metric("bleu")


# ----- entity-level metrics (token classification) -----

# Gold and predicted IOB2 tags with the cases that separate scorers: a type error, a boundary error, an I- tag
# after O (conlleval starts an entity there, strict IOB2 does not), a type only predicted, a missed entity.
GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],
    ["B-LOC", "O", "O"],
    ["O", "B-PER", "I-PER"],
]
PREDICTED = [
    ["B-PER", "I-PER", "O", "B-ORG", "O"],
    ["O", "B-ORG", "I-ORG", "O", "O", "B-PER"],
    ["B-LOC", "O", "B-MISC"],
    ["O", "I-PER", "I-PER"],
]


def test_entity_report_equals_seqeval_and_hand_counts():
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    from hf_transfer.metrics import entity_report

    report = entity_report(PREDICTED, GOLD)
    for average in ("micro", "macro", "weighted"):
        assert report[f"f1_{average}"] == pytest.approx(f1_score(GOLD, PREDICTED, average=average, zero_division=0))
        assert report[f"precision_{average}"] == pytest.approx(precision_score(GOLD, PREDICTED, average=average, zero_division=0))
        assert report[f"recall_{average}"] == pytest.approx(recall_score(GOLD, PREDICTED, average=average, zero_division=0))
    strict = {"mode": "strict", "scheme": IOB2}
    assert report["strict"]["f1_micro"] == pytest.approx(f1_score(GOLD, PREDICTED, **strict))
    assert report["strict"]["f1_macro"] == pytest.approx(f1_score(GOLD, PREDICTED, average="macro", zero_division=0, **strict))
    assert report["token_accuracy"] == pytest.approx(accuracy_score(GOLD, PREDICTED))
    # By hand (conlleval): 6 gold entities, 7 predicted, 4 right: PER (s1), PER (s2), LOC (s3), PER from I- I- (s4).
    assert (report["num_entities"], report["num_predicted_entities"]) == (6, 7)
    assert report["precision_micro"] == pytest.approx(4 / 7) and report["recall_micro"] == pytest.approx(4 / 6)
    assert report["strict"]["precision_micro"] == pytest.approx(3 / 6)  # the I-PER I-PER chunk is no entity
    assert report["per_class"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}
    assert report["per_class"]["MISC"]["support"] == 0 and report["per_class"]["ORG"]["recall"] == 0.0
    assert report["token_accuracy"] == pytest.approx(13 / 17)
    assert report["num_examples"] == 4 and report["num_tokens"] == 17


def test_entity_report_without_entities_and_mismatched_input():
    from hf_transfer.metrics import entity_report

    report = entity_report([["O", "O"]], [["O", "O"]])
    assert report["f1_macro"] == 0.0 and report["per_class"] == {} and report["token_accuracy"] == 1.0
    with pytest.raises(ValueError, match="same number of sentences"):
        entity_report([["O"]], [["O", "O"]])
