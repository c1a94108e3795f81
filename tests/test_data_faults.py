"""Real-world data faults (issue 14): each input of tests/data_faults/ with its right value, and others of its kind.

The files are the small inputs of the issue's report, copied as they were; each test says what the product did
with them before the fix.
"""

import bz2
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import datasets
from datasets import ClassLabel, Dataset
from transformers import AutoTokenizer

from conftest import sentiment_rows, write_csv
from hf_transfer.config import DataConfig
from hf_transfer.data import (HEAD_SHARE, encode_texts, load_task_data, read_text_records,
                              tokenize_splits)
from hf_transfer.errors import UserError
from hf_transfer.inference import pool_chunk_logits

FAULTS = Path(__file__).parent / "data_faults"


def load(dataset, **kwargs):
    return load_task_data(DataConfig(dataset=str(dataset), **kwargs))


def one_line_error(match, dataset, **kwargs):
    with pytest.raises(UserError, match=match) as raised:
        load(dataset, **kwargs)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def rows_by_text(task):
    """{text: label value} over all splits, labels as names (lists of names for multi-label)."""
    out = {}
    for split in task.splits.values():
        for text, label in zip(split["text"], split["labels"]):
            out[text] = sorted(task.label_names[i] for i, on in enumerate(label) if on) if task.multi_label \
                else task.label_names[label]
    return out


# 1. Multi-hot vectors: became a 2-label task named "0" and "1" (test accuracy 0.83 reported).
def test_multi_hot_vectors_without_names_are_refused():
    one_line_error(r"column 'topics' holds 0/1 vectors of length 3 \(multi-hot labels\): name the 3 positions in "
                   r"order with data.labels=", FAULTS / "topics.jsonl", label_column="topics")


def test_multi_hot_vectors_are_the_same_task_as_lists_of_names(tmp_path):
    names = ["plot", "acting", "music"]
    task = load(FAULTS / "topics.jsonl", label_column="topics", labels=names)
    assert task.multi_label and task.label_names == names and task.data_facts["label_format"] == "multi-hot"
    source = [json.loads(line) for line in (FAULTS / "topics.jsonl").read_text().splitlines()]
    expected = {row["text"]: sorted(n for n, on in zip(names, row["topics"]) if on) for row in source}
    assert rows_by_text(task) == expected
    as_lists = write_jsonl(tmp_path / "lists.jsonl", [{"text": t, "topics": v} for t, v in expected.items()])
    same = load(as_lists, label_column="topics", labels=names)
    for split in ("train", "validation", "test"):
        assert same.splits[split]["labels"][:] == task.splits[split]["labels"][:]


@pytest.mark.parametrize("vector", [[True, False, True], [1.0, 0.0, 1.0]])
def test_multi_hot_vectors_of_booleans_or_floats(tmp_path, vector):
    rows = [{"text": f"text {i}", "y": vector if i % 2 else vector[::-1][:2] + [0]} for i in range(30)]
    task = load(write_jsonl(tmp_path / "d.jsonl", rows), label_column="y", labels=["a", "b", "c"])
    assert task.multi_label and task.label_names == ["a", "b", "c"]
    assert rows_by_text(task)["text 1"] == ["a", "c"]


def test_multi_hot_faults_name_the_fix(tmp_path):
    rows = [{"text": f"text {i}", "y": [1, 0, i % 2]} for i in range(30)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    one_line_error(r"data.labels names 2 labels but the 0/1 vectors of column 'y' have 3 positions", path,
                   label_column="y", labels=["a", "b"])
    ragged = write_jsonl(tmp_path / "r.jsonl", rows[:-1] + [{"text": "x", "y": [1, 1]}])
    one_line_error(r"0/1 vectors of different lengths \(2 to 3\)", ragged, label_column="y", labels=["a", "b", "c"])
    folder = tmp_path / "splits"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "test.jsonl", [{"text": "x", "y": [1, 0]}])
    one_line_error(r"row 0 of split 'test' holds '\[1, 0\]' in column 'y', not a 0/1 vector of length 3", folder,
                   label_column="y", labels=["a", "b", "c"])


def test_lists_of_label_ids_are_not_multi_hot(tmp_path):
    rows = [{"text": f"text {i}", "y": [[0], [1], [0, 1]][i % 3]} for i in range(30)]
    task = load(write_jsonl(tmp_path / "d.jsonl", rows), label_column="y")
    assert task.multi_label and task.label_names == ["0", "1"] and task.data_facts["label_format"] == "lists"


# 3. Label variants: `positive`, `positive `, `Positive`, `negative`, ` negative` became 5 classes with no word.
def test_label_variants_are_stripped_and_merged(capsys):
    task = load(FAULTS / "sentiment.csv")
    assert task.label_names == ["negative", "positive"]
    raw = list(csv.DictReader(open(FAULTS / "sentiment.csv", encoding="utf-8")))
    expected = Counter(row["label"].strip().lower() for row in raw)
    assert Counter(task.label_names[i] for s in task.splits.values() for i in s["labels"]) == expected
    facts = task.data_facts
    assert facts["labels_stripped"] == sum(r["label"] != r["label"].strip() for r in raw) == 32
    assert facts["label_case"] == "merge" and facts["label_case_variants"] == {"positive": ["Positive"]}
    log = capsys.readouterr().err
    assert "'Positive' -> 'positive'" in log and "32 label(s) in column 'label' had spaces around them" in log


def test_label_case_keep_error_and_the_spelling_named_in_data_labels(capsys):
    task = load(FAULTS / "sentiment.csv", label_case="keep")
    assert task.label_names == ["Positive", "negative", "positive"]
    assert "kept apart (data.label_case=keep): 'positive', 'Positive'" in capsys.readouterr().err
    one_line_error(r"labels differ only in case \('positive', 'Positive'\): set data.label_case=merge",
                   FAULTS / "sentiment.csv", label_case="error")
    assert "hf-transfer" not in capsys.readouterr().err  # a failed load says its one line, no notes before it
    one_line_error(r"holds one class only \('negative'\)", FAULTS / "sentiment.csv", exclude_labels=["POSITIVE"])
    named = load(FAULTS / "sentiment.csv", labels=["Positive", "negative"])
    assert named.label_names == ["Positive", "negative"]
    assert named.data_facts["label_case_variants"] == {"Positive": ["positive"]}
    one_line_error("data.labels names Positive and positive, which differ only in case", FAULTS / "sentiment.csv",
                   labels=["Positive", "positive", "negative"])


def test_label_case_in_multi_label_lists(tmp_path):
    rows = [{"text": f"t {i}", "y": [["Plot", "acting "], ["plot"], ["Acting", "plot"]][i % 3]} for i in range(30)]
    task = load(write_jsonl(tmp_path / "d.jsonl", rows), label_column="y")
    assert task.label_names == ["Acting", "plot"]  # the most frequent spelling; a tie goes to the first in order
    assert task.data_facts["label_case_variants"] == {"plot": ["Plot"], "Acting": ["acting"]}
    expected = {f"t {i}": [["Acting", "plot"], ["plot"], ["Acting", "plot"]][i % 3] for i in range(30)}
    assert rows_by_text(task) == expected


def test_a_blank_label_is_missing(tmp_path):
    rows = sentiment_rows(20) + [{"review": "fine film", "sentiment": "   "}]
    one_line_error(r"row 20 of split 'train' has no label in column 'sentiment': fill it or drop the row",
                   write_csv(tmp_path / "d.csv", rows), text_columns=["review"], label_column="sentiment")


def test_class_label_minus_one_is_no_label(tmp_path):
    """Hub data sets mark unlabelled rows (GLUE's test splits) with ClassLabel -1, which indexes the last name."""
    features = datasets.Features({"text": datasets.Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    folder = tmp_path / "folder"
    folder.mkdir()
    rows = {"text": [f"text {i}" for i in range(20)], "label": [i % 2 for i in range(20)]}
    Dataset.from_dict(rows, features=features).to_parquet(folder / "train.parquet")
    task = load(folder / "train.parquet")
    assert task.label_names == ["neg", "pos"] and task.data_facts["label_format"] == "class-label"
    Dataset.from_dict({"text": ["a", "b"], "label": [-1, -1]}, features=features).to_parquet(folder / "test.parquet")
    one_line_error(r"row 0 of split 'test' has no label in column 'label' \(-1: the split is unlabelled\)", folder)


# 4. Duplicate texts: 14 of 24 test texts and 8 of 10 validation texts were also in train.
def test_identical_texts_stay_in_one_split():
    task = load(FAULTS / "reviews_dup.csv")
    texts = {name: set(split["text"]) for name, split in task.splits.items()}
    assert not texts["test"] & texts["train"] and not texts["validation"] & texts["train"]
    assert not texts["test"] & texts["validation"]
    sizes = task.sizes()  # without duplicates: 86 / 10 / 24; pairs cannot always make an odd count
    assert sizes["test"] == 24 and abs(sizes["validation"] - 10) <= 2 and sum(sizes.values()) == 120
    for split in task.splits.values():  # still stratified: both labels equally often
        counts = Counter(split["labels"])
        assert abs(counts[0] - counts[1]) <= 1
    assert task.data_facts["duplicate_texts"] == 60 and task.data_facts["carved_splits"] == ["test", "validation"]
    assert task.data_facts["overlap"] == {"validation_in_train": 0, "test_in_train": 0, "test_in_validation": 0}


def test_without_duplicates_the_split_is_train_test_split(sentiment_csv):
    task = load(sentiment_csv, text_columns=["review"], label_column="sentiment", test_size=0.25)
    dataset = Dataset.from_pandas(pd.read_csv(sentiment_csv)).cast_column("sentiment", ClassLabel(names=["neg", "pos"]))
    reference = dataset.train_test_split(test_size=0.25, seed=42, stratify_by_column="sentiment")
    assert task.splits["test"]["review"][:] == reference["test"]["review"][:]


def test_duplicates_differing_in_whitespace_count_as_identical(tmp_path):
    rows = sentiment_rows(60)
    rows += [{"review": "  " + row["review"].replace(" ", "   ") + " ", "sentiment": row["sentiment"]} for row in rows]
    task = load(write_csv(tmp_path / "d.csv", rows), text_columns=["review"], label_column="sentiment")
    norm = {name: {" ".join(t.split()) for t in split["review"]} for name, split in task.splits.items()}
    assert not norm["test"] & norm["train"] and not norm["validation"] & norm["train"]


def test_overlap_of_given_splits_is_counted_and_printed(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    train = sentiment_rows(40)
    write_csv(folder / "train.csv", train)
    write_csv(folder / "validation.csv", train[:3] + sentiment_rows(7, seed=5))
    write_csv(folder / "test.csv", [dict(r, review=r["review"] + "  ") for r in train[10:15]] + sentiment_rows(9, seed=6))
    task = load(folder, text_columns=["review"], label_column="sentiment")
    validation = set(task.splits["validation"]["review"])
    expected = {
        "validation_in_train": sum(r["review"] in {t["review"] for t in train} for r in task.splits["validation"]),
        "test_in_train": sum(" ".join(t.split()) in {r["review"] for r in train} for t in task.splits["test"]["review"]),
        "test_in_validation": sum(" ".join(t.split()) in validation for t in task.splits["test"]["review"]),
    }
    assert task.data_facts["overlap"] == expected
    assert expected["validation_in_train"] >= 3 and expected["test_in_train"] >= 5
    assert task.data_facts["carved_splits"] == []
    log = capsys.readouterr().err
    assert f"{expected['test_in_train']} of 14 test texts are also in train" in log and "not fully held-out" in log


# 5. Strings pandas reads as missing: a label column of region codes NA / EU stopped with "row 0 has no label".
def test_na_strings_are_labels_and_texts(tmp_path):
    task = load(FAULTS / "regions.csv")
    assert task.label_names == ["EU", "NA"] and sum(task.sizes().values()) == 120
    rows = [{"text": t, "label": l} for t, l in [("None", "NA"), ("null", "n/a"), ("NA", "NA"), ("N/A", "null"),
                                                 ("nan", "None"), ("#N/A", "NaN")]] * 5
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        path = tmp_path / f"strings{suffix}"
        pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
        task = load(path, test_size=0.5, validation_size=0.5, label_case="keep")
        assert {t for s in task.splits.values() for t in s["text"]} == {"None", "null", "NA", "N/A", "nan", "#N/A"}
        assert set(task.label_names) == {"NA", "n/a", "null", "None", "NaN"}
    path = tmp_path / "empty_cell.csv"
    path.write_text("text,label\ngood film,EU\nbad film,\n")
    one_line_error(r"row 1 of split 'train' has no label in column 'label'", path)


# 7. A column of objects, a duplicated header, a header-only file, a class with one example, an unknown label.
def test_a_column_of_objects_is_named(tmp_path):
    path = write_jsonl(tmp_path / "obj.jsonl", [{"text": {"a": "x"}, "label": "p"}, {"text": {"a": "y"}, "label": "n"}])
    one_line_error(r"column 'text' of split 'train' in .*obj.jsonl holds objects such as \{'a': 'x'\}, not text: set "
                   "data.text_columns", path)
    path = write_jsonl(tmp_path / "lists.jsonl", [{"text": ["a", "b"], "label": "p"}, {"text": ["c"], "label": "n"}])
    one_line_error(r"column 'text' .* holds lists such as", path)
    path = write_jsonl(tmp_path / "lab.jsonl", [{"text": "a", "label": {"k": 1}}, {"text": "b", "label": {"k": 2}}])
    one_line_error(r"row 0 of split 'train' holds an object \(\{'k': 1\}\) in column 'label', not a label", path)
    path = write_jsonl(tmp_path / "soft.jsonl", [{"text": "a", "label": 0.25}, {"text": "b", "label": 0.75}])
    one_line_error(r"holds a fraction in column 'label', not a label", path)


def test_a_duplicated_header_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,text,label\ngood film,great,p\nbad film,awful,n\n")
    one_line_error(r"column 'text' appears 2 times in the header of dup.csv: give each column its own name", path)


@pytest.mark.parametrize("name, content, message", [
    ("header_only.csv", "text,label\n", r"header_only.csv has a header \(text, label\) but no rows"),
    ("empty.csv", "", r"empty.csv is empty"),
    ("empty.jsonl", "", r"empty.jsonl is empty"),
    ("blank.jsonl", "\n\n", r"blank.jsonl holds no examples"),
])
def test_files_without_examples(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    one_line_error(message, tmp_path / name)


def test_a_class_with_one_example_is_named():
    one_line_error(r"class 'mixed' has only 1 example among the 60 split by data.test_size=0.2: .* drop it with "
                   r"data.exclude_labels=\[mixed\]", FAULTS / "reviews_rare.csv")
    task = load(FAULTS / "reviews_rare.csv", exclude_labels=["mixed"])
    assert task.label_names == ["fresh", "rotten"] and sum(task.sizes().values()) == 59


def test_an_unknown_label_names_the_class_and_the_fix(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "train.csv", sentiment_rows(20))
    write_csv(folder / "test.csv", sentiment_rows(4) + [{"review": "so so film", "sentiment": "meh"}] * 2)
    one_line_error(r"label 'meh' in split 'test' is not in the label set of split 'train' \(neg, pos; 2 row\(s\)\): "
                   r"fix the data, drop it with data.exclude_labels=\[meh\] or add it to data.labels", folder,
                   text_columns=["review"], label_column="sentiment")


# 8. A UTF-8 byte-order mark: classify read it, predict said "record 1 has no text field 'text'".
def test_byte_order_mark_reads_alike_for_training_and_prediction(tmp_path):
    task = load(FAULTS / "reviews_bom.csv")
    assert task.text_columns == ["text"] and sum(task.sizes().values()) == 120
    texts = read_text_records(FAULTS / "to_label_bom.csv")
    plain = tmp_path / "to_label.csv"
    plain.write_bytes((FAULTS / "to_label_bom.csv").read_bytes()[3:])
    assert texts == read_text_records(plain) and len(texts) == 20
    assert texts == list(pd.read_csv(plain)["text"])
    for suffix, content in ((".txt", "\n".join(texts) + "\n\n"),
                            (".jsonl", "".join(json.dumps({"text": t}) + "\n" for t in texts))):
        path = tmp_path / f"bom{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + content.encode())
        assert read_text_records(path) == texts


def test_read_text_records_faults(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("body\nhello\n")
    with pytest.raises(UserError, match=r"t.csv has no text field 'text' \(columns: body\): pass --text-column NAME"):
        read_text_records(path)
    assert read_text_records(path, "body") == ["hello"]
    path.write_text("text,other\nhello,1\n,2\n")
    with pytest.raises(UserError, match=r"record 2 of t.csv has no text in column\(s\) text"):
        read_text_records(path)
    path.write_text("text\nNone\nNA\n")
    assert read_text_records(path) == ["None", "NA"]
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a\tb\nx y\tz\n")
    assert read_text_records(pairs, ["a", "b"]) == [("x y", "z")]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(UserError, match="latin.txt is not UTF-8 text"):
        read_text_records(latin)


# 13. A semicolon-separated .csv failed with a pandas tokenizer error that did not mention the separator.
def test_semicolon_csv_is_detected(capsys):
    task = load(FAULTS / "reviews_semicolon.csv")
    assert task.label_names == ["fresh", "rotten"] and sum(task.sizes().values()) == 120
    texts = {t for s in task.splits.values() for t in s["text"]}
    assert "At the same time touching, funny and breathtaking." in texts
    assert "columns separated by semicolons (detected; data.delimiter sets it)" in capsys.readouterr().err


@pytest.mark.parametrize("delimiter, suffix", [("|", ".csv"), ("\t", ".csv"), (";", ".csv.bz2"), (",", ".tsv")])
def test_other_delimiters_are_detected(tmp_path, delimiter, suffix):
    aside = "; really" if delimiter == "," else ", really"  # another candidate separator inside the texts
    lines = ["review" + delimiter + "sentiment"] + [f"{r['review']}{aside}{delimiter}{r['sentiment']}"
                                                      for r in sentiment_rows(40)]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"d{suffix}"
    path.write_bytes(bz2.compress(data) if suffix.endswith(".bz2") else data)
    task = load(path, text_columns=["review"], label_column="sentiment")
    assert task.label_names == ["neg", "pos"] and sum(task.sizes().values()) == 40
    assert all(t.endswith(aside) for s in task.splits.values() for t in s["review"])


def test_delimiter_key_and_misquoted_files(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text;label\n" + "".join(f"{r['review']};{r['sentiment']}\n" for r in sentiment_rows(30)))
    assert load(path, delimiter="semicolon").label_names == ["neg", "pos"]
    one_line_error(r"column 'text' is not in split 'train' .*\(columns: text;label\)", path, delimiter=",")
    one_column = tmp_path / "one.csv"
    one_column.write_text("text\ngood film\nbad, awful film\n")
    with pytest.raises(UserError, match=r"line 3 of one.csv has 2 fields where its header has 1 \(columns separated by "
                                        r"commas\): quote the fields that hold ','"):
        read_text_records(one_column)
    bad_row = tmp_path / "bad.csv"
    bad_row.write_text("text,label\n" + "".join(f"{r['review']},{r['sentiment']}\n" for r in sentiment_rows(10))
                       + "good, fun film,pos\n")
    one_line_error(r"line 12 of bad.csv has 3 fields where its header has 2", bad_row)


def test_delimiter_config_values():
    assert DataConfig(delimiter="tab").delimiter == "\t" and DataConfig(delimiter="pipe").delimiter == "|"
    assert DataConfig(delimiter=";").delimiter == ";"
    with pytest.raises(UserError, match="data.delimiter takes one character"):
        DataConfig(delimiter="")


# 15. Silent truncation: the share of truncated texts, and head+tail / chunks for long documents.
@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def long_task(tmp_path, lengths, **kwargs):
    words = "good bad the film movie plot".split()
    rows = [{"text": " ".join(words[(i + j) % len(words)] for j in range(n)), "label": "ab"[i % 2]}
            for i, n in enumerate(lengths)]
    return load(write_csv(tmp_path / "long.csv", rows), **kwargs)


def test_truncated_share_per_split_is_recorded(tmp_path, tokenizer, capsys):
    task = long_task(tmp_path, [5, 30] * 30, test_size=0.5, validation_size=0.5)
    tokenized = tokenize_splits(task, tokenizer, max_length=16)
    facts = task.data_facts["truncation"]
    for split in ("train", "validation", "test"):
        texts = task.splits[split]["text"][:]
        truncated = sum(len(tokenizer(t)["input_ids"]) > 16 for t in texts)
        assert facts["truncated"][split] == truncated and facts["truncated_share"][split] == round(truncated / len(texts), 4)
        assert max(len(ids) for ids in tokenized[split]["input_ids"]) == 16
    assert facts["strategy"] == "head" and facts["max_length"] == 16 and facts["median_tokens"]["train"] > 7
    assert "texts longer than data.max_length=16 tokens, cut by data.truncation=head: train 50.0%" in capsys.readouterr().err
    assert set(tokenized["train"].column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}


def test_head_is_the_tokenizers_truncation(tokenizer):
    texts = ["good " * 40, "bad film"]
    encoded, lengths, text_tokens = encode_texts(tokenizer, texts, max_length=10)
    assert encoded["input_ids"] == tokenizer(texts, truncation=True, max_length=10)["input_ids"]
    assert lengths == [42, 4] and text_tokens == [40, 2]


def test_head_plus_tail_keeps_both_ends(tokenizer):
    vocab = tokenizer.get_vocab()
    words = "good great fun moving superb brilliant charming bad awful boring dull clumsy tedious lifeless".split()
    text = " ".join(words * 3)  # 42 text tokens
    encoded, lengths, _ = encode_texts(tokenizer, [text], max_length=22, truncation="head+tail")
    ids = [vocab[w] for w in words * 3]
    head = round(20 * HEAD_SHARE)
    assert encoded["input_ids"][0] == [tokenizer.cls_token_id, *ids[:head], *ids[-(20 - head):], tokenizer.sep_token_id]
    assert len(encoded["attention_mask"][0]) == 22 and lengths == [44]
    assert round(510 * HEAD_SHARE) == 128  # Sun et al. 2019: the first 128 and the last 382 of 510


def test_head_plus_tail_through_tokenize_splits(tmp_path, tokenizer):
    task = long_task(tmp_path, [40] * 20, truncation="head+tail", test_size=0.5, validation_size=0.5)
    tokenized = tokenize_splits(task, tokenizer, max_length=12)
    row = tokenized["train"][0]["input_ids"]
    full = tokenizer(task.splits["train"]["text"][0])["input_ids"]
    head = round(10 * HEAD_SHARE)
    assert row == full[:1 + head] + full[-(10 - head) - 1:]
    one_line_error(r"data.truncation=head\+tail cuts one text, not the pair", FAULTS / "reviews_dup.csv",
                   text_columns=["text", "label"], truncation="head+tail")


def test_chunks_carry_their_example_and_pool(tmp_path, tokenizer):
    task = long_task(tmp_path, [3, 25] * 10, truncation="chunks", test_size=0.5, validation_size=0.5)
    with pytest.raises(UserError, match="data.truncation=chunks needs a pipeline that pools chunk predictions"):
        tokenize_splits(task, tokenizer, max_length=10)
    tokenized = tokenize_splits(task, tokenizer, max_length=10, pooled_chunks=True)
    test = tokenized["test"]
    ids = test["example_id"][:]
    assert sorted(set(ids)) == list(range(len(task.splits["test"])))
    for example in range(len(task.splits["test"])):
        chunks = [row for row, i in zip(test["input_ids"], ids) if i == example]
        full = tokenizer(task.splits["test"]["text"][example])["input_ids"][1:-1]
        assert all(len(c) <= 10 and c[0] == tokenizer.cls_token_id and c[-1] == tokenizer.sep_token_id for c in chunks)
        assert chunks[0][1:-1] == full[:8] and chunks[-1][1:-1] == full[-len(chunks[-1]) + 2:]
        assert len(chunks) == (1 if len(full) <= 8 else 1 + -(-(len(full) - 8) // 6))  # windows of 8, step 6
        assert {test["labels"][i] for i, e in enumerate(ids) if e == example} == {task.splits["test"]["labels"][example]}
    logits = np.arange(len(ids) * 2, dtype=np.float32).reshape(-1, 2)
    pooled = pool_chunk_logits(logits, ids, len(task.splits["test"]))
    for example in range(len(task.splits["test"])):
        assert np.allclose(pooled[example], logits[np.asarray(ids) == example].mean(0))


# 16. Texts with no tokens: a reshape traceback at the first training step.
def test_texts_that_tokenize_to_nothing(tmp_path, tokenizer):
    marks = "\u0301\u0300"  # combining accents: the uncased BERT normaliser strips them, leaving no token
    rows = [{"text": marks * (1 + i % 3), "label": "ab"[i % 2]} for i in range(20)]
    task = load(write_csv(tmp_path / "marks.csv", rows))
    with pytest.raises(UserError, match=r"every text of split 'train' \(column\(s\) text\) tokenizes to no tokens with "
                                        r"the tokenizer of .*, e.g. '(\\u0301\\u0300)+': check the model's tokenizer "
                                        r"and data.text_columns"):
        tokenize_splits(task, tokenizer, max_length=16)
    rows = sentiment_rows(40) + [{"review": marks, "sentiment": "pos"}]
    task = load(write_csv(tmp_path / "some.csv", rows), text_columns=["review"], label_column="sentiment")
    with pytest.raises(UserError, match=r"1 text\(s\) of split '\w+' tokenize to no tokens .*first at row \d+"):
        tokenize_splits(task, tokenizer, max_length=16)


def test_texts_of_invisible_characters_are_empty(tmp_path):
    rows = sentiment_rows(40) + [{"review": "\u200b\u200b", "sentiment": "pos"}, {"review": "\t", "sentiment": "neg"}]
    path = write_csv(tmp_path / "d.csv", rows)
    one_line_error(r"2 example\(s\) of split 'train' have empty text in column\(s\) review \(first at row 40\)", path,
                   text_columns=["review"], label_column="sentiment")
    task = load(path, text_columns=["review"], label_column="sentiment", empty_text="drop")
    assert sum(task.sizes().values()) == 40
