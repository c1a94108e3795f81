"""Token-classification outputs: the memorisation baseline, predictions.jsonl rows and entity grouping."""

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from hf_transfer.baselines import MemorizationTagger, memorization_baseline
from hf_transfer.token_data import TokenTaskData, entities_from_tags, token_prediction_rows

TAGS = ["O", "B-person", "I-person", "B-place", "I-place"]


def task_of(train, test):
    features = Features({"tokens": List(Value("string")), "tags": List(ClassLabel(names=TAGS))})

    def split(rows):
        ids = {name: i for i, name in enumerate(TAGS)}
        return Dataset.from_dict({"tokens": [[w for w, _ in s] for s in rows],
                                  "tags": [[ids[t] for _, t in s] for s in rows]}, features=features)

    return TokenTaskData(DatasetDict(train=split(train), validation=split(test), test=split(test)), TAGS,
                         "x", "x", "iob2")


TRAIN = [
    [("Ann", "B-person"), ("saw", "O"), ("Paris", "B-place")],
    [("Ann", "B-person"), ("Lee", "I-person"), ("left", "O")],
    [("ann", "O"), ("Paris", "O")],  # Paris: place twice, O once -> place
    [("Lee", "B-person")],  # Lee: I-person once, B-person once -> the tag seen first
]
TEST = [
    [("Ann", "B-person"), ("Lee", "I-person"), ("saw", "O"), ("Rome", "B-place")],
    [("ann", "O"), ("left", "O"), ("Paris", "B-place")],
]


def test_memorization_tagger_most_frequent_tag_case_sensitive_unseen_o():
    tagger = MemorizationTagger().fit([[w for w, _ in s] for s in TRAIN], [[t for _, t in s] for s in TRAIN])
    assert tagger.predict([["Ann", "Lee", "ann", "Paris", "Rome"]]) == [["B-person", "I-person", "O", "B-place", "O"]]


def test_memorization_baseline_report():
    baseline = memorization_baseline(task_of(TRAIN, TEST))
    assert baseline["method"] == "memorization" and set(baseline["metrics"]) == {"validation", "test"}
    report = baseline["metrics"]["test"]
    # Found: Ann Lee (person), Paris (place); missed: Rome (unseen word -> O). 3 gold, 2 predicted, 2 right.
    assert report["precision_micro"] == 1.0 and report["recall_micro"] == 2 / 3
    assert report["per_class"]["place"]["recall"] == 0.5


def test_entities_group_as_the_metrics_do():
    words = ["Ann", "Lee", "visited", "New", "York", "and", "Rome", "Paris"]
    tags = ["B-person", "I-person", "O", "I-place", "I-place", "O", "B-place", "B-place"]
    assert entities_from_tags(words, tags) == [
        {"type": "person", "start": 0, "end": 2, "text": "Ann Lee"},
        {"type": "place", "start": 3, "end": 5, "text": "New York"},  # I- after O opens an entity (conlleval)
        {"type": "place", "start": 6, "end": 7, "text": "Rome"},
        {"type": "place", "start": 7, "end": 8, "text": "Paris"},
    ]
    assert entities_from_tags(["x"], ["O"]) == []


def test_prediction_rows():
    task = task_of(TRAIN, TEST)
    predicted = [[1, 2, 0, 0], [0, 0, 3]]
    probabilities = [[[0.1, 0.8, 0.1, 0, 0]] * 4, [[0.9, 0.1, 0, 0, 0]] * 2 + [[0.2, 0, 0, 0.7, 0.1]]]
    rows = token_prediction_rows(task, "test", predicted, probabilities)
    assert rows[0] == {
        "split": "test", "tokens": ["Ann", "Lee", "saw", "Rome"], "tags": ["B-person", "I-person", "O", "B-place"],
        "predicted_tags": ["B-person", "I-person", "O", "O"],
        "entities": [{"type": "person", "start": 0, "end": 2, "text": "Ann Lee"}],
        "scores": [0.8, 0.1, 0.1, 0.1],
    }
    assert rows[1]["scores"] == [0.9, 0.9, 0.7]
    assert "scores" not in token_prediction_rows(task, "test", predicted)[0]
