import json

import pandas as pd
import pytest

from conftest import sentiment_rows, write_csv
from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data
from hf_transfer.errors import UserError


def config(path, **kwargs):
    return DataConfig(dataset=str(path), text_columns=["review"], label_column="sentiment", **kwargs)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet", ".csv.gz"])
def test_file_formats(tmp_path, suffix):
    frame = pd.DataFrame(sentiment_rows(100))
    path = tmp_path / f"data{suffix}"
    if suffix.startswith(".csv"):
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dict("records")))
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    task = load_task_data(config(path))
    assert task.label_names == ["neg", "pos"]
    assert task.id2label == {0: "neg", 1: "pos"}
    assert sum(task.sizes().values()) == 100


def test_stratified_split_with_fixed_seed(sentiment_csv):
    task = load_task_data(config(sentiment_csv, test_size=0.25, validation_size=0.2))
    assert task.sizes() == {"train": 72, "validation": 18, "test": 30}
    for split in task.splits.values():  # classes stay balanced in every split
        counts = pd.Series(split["labels"]).value_counts()
        assert abs(counts.iloc[0] - counts.iloc[-1]) <= 1
    again = load_task_data(config(sentiment_csv, test_size=0.25, validation_size=0.2))
    assert again.splits["test"]["review"] == task.splits["test"]["review"]


def test_given_splits_are_kept(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "train.csv", sentiment_rows(40))
    write_csv(folder / "dev.csv", sentiment_rows(10, seed=1))
    write_csv(folder / "test.csv", sentiment_rows(12, seed=2))
    task = load_task_data(config(folder))
    assert task.sizes() == {"train": 40, "validation": 10, "test": 12}


def test_multi_label_lists(tmp_path):
    rows = [{"review": f"text {i}", "sentiment": [["a"], ["b"], ["a", "c"], ["c"]][i % 4]} for i in range(40)]
    path = tmp_path / "multi.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    task = load_task_data(config(path))
    assert task.multi_label and task.label_names == ["a", "b", "c"]
    assert task.problem_type == "multi_label_classification"
    assert all(len(v) == 3 and set(v) <= {0.0, 1.0} for v in task.splits["train"]["labels"])


def test_rotten_tomatoes_asset_default_split():
    task = load_task_data(DataConfig())
    assert task.label_names == ["fresh", "rotten"]
    assert task.sizes() == {"train": 9221, "validation": 1025, "test": 2562}  # 12,808 reviews, plot rows dropped


def test_empty_texts_can_be_dropped(tmp_path):
    rows = sentiment_rows(40) + [{"review": "   ", "sentiment": "pos"}]
    task = load_task_data(config(write_csv(tmp_path / "d.csv", rows), empty_text="drop"))
    assert sum(task.sizes().values()) == 40


@pytest.mark.parametrize(
    "make, overrides, message",
    [
        (lambda p: p / "missing.csv", {}, "data file .*missing.csv.* not found"),
        (lambda p: write_csv(p / "d.csv", sentiment_rows(20)), {"label_column": "stars"},
         "column 'stars' is not in split 'train'.*set data.label_column"),
        (lambda p: write_csv(p / "d.csv", sentiment_rows(20)), {"text_columns": ["body"]},
         "column 'body' is not in split 'train'.*set data.text_columns"),
        (lambda p: write_csv(p / "d.csv", [{"review": "good film", "sentiment": "pos"}] * 20), {},
         "holds one class only"),
        (lambda p: write_csv(p / "d.csv", sentiment_rows(20) + [{"review": "", "sentiment": "pos"}]), {},
         "1 example.* have empty text.*data.empty_text=drop"),
        (lambda p: write_csv(p / "d.csv", [{"review": i, "sentiment": "pos" if i % 2 else "neg"} for i in range(20)]), {},
         "holds int64, not text"),
        (lambda p: p / "d.xlsx", {}, "not found"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, make, overrides, message):
    path = make(tmp_path)
    kwargs = {"text_columns": ["review"], "label_column": "sentiment", **overrides}
    with pytest.raises(UserError, match=message) as raised:
        load_task_data(DataConfig(dataset=str(path), **{k: v for k, v in kwargs.items()}))
    assert "\n" not in str(raised.value)


def test_unknown_label_in_an_eval_split(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "train.csv", sentiment_rows(20))
    write_csv(folder / "test.csv", sentiment_rows(4) + [{"review": "so so film", "sentiment": "meh"}])
    with pytest.raises(UserError, match="label 'meh' in split 'test' is not in the label set"):
        load_task_data(config(folder))


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="cannot read broken.parquet"):
        load_task_data(config(path))


def test_unknown_hub_dataset_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not a local file, a dataset asset .* or a loadable Hub dataset"):
        load_task_data(DataConfig(dataset="someone/no-such-dataset"))


def test_a_model_asset_is_not_a_dataset():
    with pytest.raises(UserError, match="asset 'minilm-l6' is a model, not a dataset"):
        load_task_data(DataConfig(dataset="minilm-l6"))


def test_the_data_facts_keep_each_capped_splits_size_before_the_cap(tmp_path):
    """A card names only the caps that made a split smaller (hf_transfer.cards.classifier._subsampled)."""
    from hf_transfer.data import share_loaded_data

    path = write_csv(tmp_path / "reviews.csv", sentiment_rows(200))
    whole = load_task_data(config(path)).sizes()
    capped = load_task_data(config(path, max_train_samples=20, max_eval_samples=10))
    assert capped.data_facts["subsampled"] == {"train": whole["train"], "validation": whole["validation"],
                                               "test": whole["test"]}
    assert {name: len(split) for name, split in capped.splits.items()} == {"train": 20, "validation": 10, "test": 10}
    loose = load_task_data(config(path, max_train_samples=100000, max_eval_samples=whole["validation"]))
    assert loose.data_facts["subsampled"] == {"test": whole["test"]}  # test is larger than validation
    previous = share_loaded_data(True)  # a study's path: the whole data once, each run's train subsample from it
    try:
        load_task_data(config(path))
        shared = load_task_data(config(path, max_train_samples=20))
    finally:
        share_loaded_data(previous)
    assert shared.data_facts["subsampled"] == {"train": whole["train"]}
