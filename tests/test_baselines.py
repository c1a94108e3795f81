"""The majority-class and TF-IDF + logistic regression baselines (hf_transfer.baselines)."""

import json

import numpy as np
import pytest

from conftest import sentiment_rows, write_csv
from hf_transfer.baselines import (fit_tfidf, majority_baseline, score_estimator, tfidf_baseline)
from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    rows = sentiment_rows(300)
    rows = rows + [row for row in rows if row["sentiment"] == "neg"][:60]  # 210 neg, 150 pos
    path = write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", rows)
    return load_task_data(DataConfig(dataset=str(path), text_columns=["review"], label_column="sentiment"))


def test_majority_predicts_the_most_frequent_train_label_everywhere(task):
    record = majority_baseline(task)
    assert record["method"] == "majority class" and record["model"] == "always neg"
    test = record["metrics"]["test"]
    share = np.mean(np.asarray(task.splits["test"]["labels"]) == task.label2id["neg"])
    assert test["accuracy"] == pytest.approx(share)
    assert test["confusion_matrix"][task.label2id["pos"]][task.label2id["pos"]] == 0
    assert set(record["metrics"]) == {"validation", "test"} and record["fit_time_s"] >= 0


def test_tfidf_learns_the_cue_words_and_scores_other_sets(task):
    record = tfidf_baseline(task, eval_sets={"shifted": (["great fun", "dull and boring"], [1, 0])})
    assert record["method"] == "TF-IDF + logistic regression" and record["model"].startswith("word 1-2 grams, C=")
    assert record["metrics"]["test"]["accuracy"] > 0.9, "each review carries its sentiment word"
    shifted = record["metrics"]["shifted"]
    assert shifted["num_examples"] == 2 and shifted["accuracy"] == 1.0
    for report in record["metrics"].values():  # the classification_report format, as JSON
        assert {"accuracy", "f1_macro", "per_class", "confusion_matrix", "num_examples"} <= set(report)
    json.dumps(record, default=lambda value: value.tolist())


def test_multi_label_tasks_get_one_regression_per_label(tmp_path):
    words = {"a": "apple", "b": "banana", "c": "cherry"}
    rows = []
    for i in range(240):
        labels = [name for j, name in enumerate("abc") if (i >> j) & 1] or ["a"]
        rows.append({"text": " ".join(words[name] for name in labels) + f" filler{i}", "labels": labels})
    path = tmp_path / "multi.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = load_task_data(DataConfig(dataset=str(path), label_column="labels"))
    fitted = fit_tfidf(task)
    report = score_estimator(fitted, task.texts("test"), task.splits["test"]["labels"], task)
    assert report["accuracy"] > 0.9, "exact-match accuracy: every label's word is in the text"
    majority = majority_baseline(task)["metrics"]["test"]
    assert majority["num_examples"] == len(task.splits["test"]) and "confusion_matrix" not in majority
