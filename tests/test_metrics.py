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
