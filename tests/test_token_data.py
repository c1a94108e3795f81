"""hf_transfer.token_data: reading tagged words (CoNLL, JSONL/Parquet, datasets folders), IOB2, splits, bad input."""

import gzip
import json
from collections import Counter

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from hf_transfer.assets import ASSETS
from hf_transfer.config import DataConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.token_data import detect_scheme, load_token_data, read_conll, split_sentences, to_iob2

CONLL = """-DOCSTART- -X- O O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
\t
BRUSSELS NNP B-NP B-LOC
"""


def write_conll(path, sentences, sep="\t"):
    """sentences: [[(word, tag), ...], ...] -> a two-column CoNLL file with a blank line after each sentence."""
    path.write_text("".join("".join(f"{w}{sep}{t}\n" for w, t in s) + "\n" for s in sentences))
    return path


def entity_sentences(n=40):
    """Sentences with person / place entities (place is rare), some without entities, IOB2."""
    rows = []
    for i in range(n):
        if i % 10 == 0:
            rows.append([("Visit", "O"), (f"Town{i}", "B-place"), ("now", "O")])
        elif i % 3 == 0:
            rows.append([("nothing", "O"), (f"here{i}", "O")])
        else:
            rows.append([("Ann", "B-person"), (f"Lee{i}", "I-person"), ("said", "O")])
    return rows


def config(path, **kwargs):
    return DataConfig(dataset=str(path), **kwargs)


def test_conll_file_docstart_blank_lines_and_tag_column(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\ufeff" + CONLL)  # a byte-order mark is dropped
    raw = read_conll(path)
    assert raw.tokens == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert raw.tags[0] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert raw.where[1] == "line 9 of train.txt"
    assert read_conll(path, tag_column=2).tags[0] == ["B-NP", "B-VP", "B-NP", "I-NP", "O"]  # the chunk column

    task = load_token_data(config(path, test_size=0.3, validation_size=0.5))
    assert task.label_names == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert task.entity_types == ["LOC", "MISC", "ORG", "PER"]
    assert task.id2label[0] == "O" and task.label2id["I-PER"] == 8
    assert sum(task.sizes().values()) == 3
    assert task.splits["train"].features["tags"] == List(ClassLabel(names=task.label_names))
    everything = {tuple(w): t for split in task.splits for w, t in zip(task.splits[split]["tokens"],
                                                                         task.tag_names(split))}
    assert everything[("Peter", "Blackburn")] == ["B-PER", "I-PER"]


def test_compressed_and_space_separated_conll(tmp_path):
    path = tmp_path / "train.conll.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("Ann B-person\nsaid O\n\nBob B-person\n")
    assert read_conll(path).tokens == [["Ann", "said"], ["Bob"]]


@pytest.mark.parametrize(
    "tags, scheme, expected, repairs",
    [
        (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "iob1", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], 0),
        (["B-PER", "I-PER", "O", "I-LOC", "I-LOC"], "iob2", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], 1),
        (["I-PER", "I-LOC"], "iob2", ["B-PER", "B-LOC"], 2),  # a change of type without B- starts an entity too
        (["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "E-ORG"], "bioes",
         ["B-PER", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG"], 1),
        (["B-LOC", "E-LOC", "I-LOC"], "bioes", ["B-LOC", "I-LOC", "B-LOC"], 1),  # nothing continues after E-
        (["U-PER", "B-LOC", "L-LOC"], "bioes", ["B-PER", "B-LOC", "I-LOC"], 0),  # BILOU
    ],
)
def test_schemes_convert_to_iob2(tags, scheme, expected, repairs):
    assert to_iob2(tags, scheme) == (expected, repairs)


def test_scheme_detection():
    def detect(*sentences):
        return detect_scheme([[(t[0], t[2:] or None) for t in s] for s in sentences])

    assert detect(["B-PER", "I-PER", "O"], ["O", "I-LOC"]) == "iob2"  # B- opens entities: I- after O is an error
    assert detect(["I-PER", "I-PER", "B-PER", "O"], ["I-LOC"]) == "iob1"  # B- only separates adjacent entities
    assert detect(["S-PER", "O"]) == "bioes"
    assert detect(["O", "O"]) == "iob2"


def test_repairs_are_counted_or_refused(tmp_path):
    sentences = entity_sentences(20)
    sentences[1] = [("Ann", "O"), ("Lee", "I-person"), ("said", "O")]  # I- after O in an IOB2 file
    path = write_conll(tmp_path / "train.txt", sentences)
    task = load_token_data(config(path))
    assert task.tag_scheme == "iob2"
    assert task.repaired_tags == {"train": 1}
    assert task.facts()["repaired_tags"] == {"train": 1}
    with pytest.raises(UserError, match=r"tag I-person of word 2 in the sentence at line 5 of train.txt follows O "
                                        r".*data.invalid_tags=repair") as error:
        load_token_data(config(path, invalid_tags="error"))
    assert "\n" not in str(error.value)
    # Declared IOB1: the same I- opens an entity by definition, no repair.
    assert load_token_data(config(path, tag_scheme="iob1")).repaired_tags == {"train": 0}


def test_jsonl_and_parquet_lists_with_given_splits(tmp_path):
    rows = [{"tokens": [w for w, _ in s], "tags": [t for _, t in s]} for s in entity_sentences(30)]
    folder = tmp_path / "data"
    folder.mkdir()
    for split, part in (("train", rows[:20]), ("dev", rows[20:25]), ("test", rows[25:] + rows[:1])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    task = load_token_data(config(folder))
    assert task.sizes() == {"train": 20, "validation": 5, "test": 6}
    assert task.splits["validation"]["tokens"][0] == rows[20]["tokens"]
    facts = task.facts()
    assert facts["overlap_with_train"] == {"validation": 0, "test": 1}  # given splits: overlap counted, not hidden
    assert facts["sentences"] == task.sizes()
    assert facts["tokens"]["validation"] == sum(len(r["tokens"]) for r in rows[20:25])

    parquet = tmp_path / "words.parquet"
    Dataset.from_list([{"words": r["tokens"], "labels": r["tags"]} for r in rows]).to_parquet(parquet)
    task = load_token_data(config(parquet, text_columns=["words"], label_column="labels"))
    assert sum(task.sizes().values()) == 30


def hub_style(rows, tag_names):
    features = Features({"id": Value("string"), "tokens": List(Value("string")),
                         "ner_tags": List(ClassLabel(names=tag_names))})
    ids = {name: i for i, name in enumerate(tag_names)}
    return Dataset.from_dict({"id": [str(i) for i in range(len(rows))], "tokens": [[w for w, _ in s] for s in rows],
                              "ner_tags": [[ids[t] for _, t in s] for s in rows]}, features=features)


def test_datasets_with_sequence_classlabel_tags(tmp_path):
    # The Hub's layout for NER (conll2003, wnut_17): ner_tags as Sequence(ClassLabel), in an order of its own.
    names = ["O", "B-person", "I-person", "B-place", "I-place"]
    rows = entity_sentences(30)
    saved = tmp_path / "saved"
    DatasetDict(train=hub_style(rows[:24], names), test=hub_style(rows[24:], names)).save_to_disk(saved)
    task = load_token_data(config(saved))
    assert task.label_names == ["O", "B-person", "I-person", "B-place", "I-place"]
    assert task.sizes()["test"] == 6
    assert task.tag_names("test")[0] == [t for _, t in rows[24]]

    hub_folder = tmp_path / "hub"  # what a Hub dataset repo holds: data/<split>-*.parquet
    (hub_folder / "data").mkdir(parents=True)
    hub_style(rows, names[::-1]).to_parquet(hub_folder / "data" / "train-00000-of-00001.parquet")
    task = load_token_data(config(hub_folder))
    assert sum(task.sizes().values()) == 30
    all_tags = [t for split in task.splits for tags in task.tag_names(split) for t in tags]
    assert Counter(all_tags)["B-place"] == 3


def test_split_only_train_stratified_seeded_and_duplicates_together(tmp_path):
    sentences = entity_sentences(100)
    sentences += [sentences[1]] * 5  # a tweet retweeted: its copies must not straddle train and test
    path = write_conll(tmp_path / "train.txt", sentences)
    task = load_token_data(config(path, test_size=0.2, validation_size=0.25, seed=3))
    assert sum(task.sizes().values()) == 105
    assert task.facts()["overlap_with_train"] == {"validation": 0, "test": 0}
    for split in task.splits:  # the rare type (10 sentences) reaches every split
        assert task.facts()["entities"][split]["place"] >= 1, split
    again = load_token_data(config(path, test_size=0.2, validation_size=0.25, seed=3))
    assert again.splits["test"]["tokens"] == task.splits["test"]["tokens"]
    other = load_token_data(config(path, test_size=0.2, validation_size=0.25, seed=4))
    assert other.splits["test"]["tokens"] != task.splits["test"]["tokens"]
    small = load_token_data(config(path, max_train_samples=10, max_eval_samples=5))
    assert small.sizes() == {"train": 10, "validation": 5, "test": 5}


def test_split_sentences_merges_strata_too_small_to_split():
    names = ["O", "B-a", "I-a", "B-b", "I-b"]
    features = Features({"tokens": List(Value("string")), "tags": List(ClassLabel(names=names))})
    data = Dataset.from_dict({"tokens": [[f"w{i}"] for i in range(9)],
                              "tags": [[1], [1], [1], [1], [3], [0], [0], [0], [0]]}, features=features)
    rest, held = split_sentences(data, 3, seed=0, key="data.test_size")  # type b: one sentence, merged
    assert (len(rest), len(held)) == (6, 3)
    assert sorted(list(rest["tokens"]) + list(held["tokens"])) == sorted(data["tokens"])


def test_labels_fix_the_types_and_exclude_labels_tags_them_o(tmp_path):
    path = write_conll(tmp_path / "train.txt", entity_sentences(30))
    task = load_token_data(config(path, labels=["place", "person", "thing"]))
    assert task.entity_types == ["place", "person", "thing"]
    task = load_token_data(config(path, exclude_labels=["place"]))
    assert task.entity_types == ["person"]
    assert all("place" not in tag for split in task.splits for tags in task.tag_names(split) for tag in tags)


@pytest.mark.parametrize(
    "files, kwargs, message",
    [
        ({"train.jsonl": [{"tokens": ["a", "b"], "tags": ["O"]}]}, {},
         r"sentence at row 0 of split 'train' has 2 words but 1 tags"),
        ({"train.jsonl": [{"tokens": ["Ann"], "tags": ["B-person"]}, {"tokens": [], "tags": []}]}, {},
         r"sentence at row 1 of split 'train' \(split 'train'\) is empty: .*data.empty_text=drop"),
        ({"train.jsonl": [{"tokens": ["Ann"], "tags": ["B-person"]}],
          "test.jsonl": [{"tokens": ["Paris"], "tags": ["B-place"]}]}, {},
         r"tag 'B-place' in the sentence at row 0 of split 'test' \(split 'test'\) has an entity type that the "
         r"'train' split lacks \(person\)"),
        ({"train.jsonl": [{"tokens": ["Ann"], "labels": ["B-person"]}]}, {},
         r"column 'tags' is not in split 'train' .*columns: tokens, labels\); set data.label_column"),
        ({"train.txt": "Ann B-person\nsaid\n"}, {},
         r"line 2 of train.txt has 1 column\(s\) \('said'\) but the tags are read from column -1"),
        ({"train.txt": "Ann B-person X\n"}, {"conll_tag_column": 3}, r"line 1 of train.txt has 3 column\(s\)"),
        ({"train.jsonl": [{"tokens": ["Ann"], "tags": [1]}]}, {},
         r"column 'tags' of split 'train' holds lists of int64, not tag names"),
        ({"train.txt": "Ann PER\n"}, {}, r"tag 'PER' of word 1 in the sentence at line 1 of train.txt is neither O"),
        ({"train.txt": "Ann S-person\n"}, {"tag_scheme": "iob2"}, r"tag S-person .* is not IOB2: set data.tag_scheme"),
        ({"train.txt": "Ann O\n"}, {}, r"split 'train' holds no entity tags, only O"),
        ({"train.jsonl": [{"tokens": ["Ann", " "], "tags": ["B-person", "O"]}]}, {}, r"word 2 of the sentence at row 0"),
        ({"train.csv": "tokens,tags\n"}, {}, r"a CSV file cannot hold lists"),
        ({"train.txt": b"Ann\xff B-person\n"}, {}, r"train.txt is not UTF-8 text"),
    ],
)
def test_bad_input_is_one_line(tmp_path, files, kwargs, message):
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, list):
            path.write_text("".join(json.dumps(row) + "\n" for row in content))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    target = tmp_path if len(files) > 1 else tmp_path / next(iter(files))
    with pytest.raises(UserError, match=message) as error:
        load_token_data(config(target, **kwargs))
    assert "\n" not in str(error.value)


def test_empty_sentences_can_be_dropped(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"tokens": [w for w, _ in s], "tags": [t for _, t in s]} for s in entity_sentences(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"tokens": [], "tags": []}]))
    assert sum(load_token_data(config(path, empty_text="drop")).sizes().values()) == 20


def test_token_keys_load_from_overrides():
    data = load_config(DataConfig, None, ["tag_scheme=bioes", "invalid_tags=error", "conll_tag_column=3",
                                          "label_subwords=all", "stride=16"])
    assert (data.tag_scheme, data.invalid_tags, data.conll_tag_column, data.label_subwords, data.stride) == (
        "bioes", "error", 3, "all", 16)
    with pytest.raises(UserError, match="data.stride=128 must lie in"):
        DataConfig(stride=128)
    assert DataConfig(max_length=32).stride is None  # a classify config with a short max_length stays valid
    with pytest.raises(UserError, match="tag_scheme takes one of auto, iob1, iob2, bioes"):
        load_config(DataConfig, None, ["tag_scheme=bilou"])


@pytest.mark.skipif(ASSETS.get("wnut16") is None, reason="the wnut16 asset is not registered yet")
def test_wnut16_asset_counts():
    task = load_token_data(DataConfig(dataset="wnut16"))
    facts = task.facts()
    assert sum(facts["sentences"].values()) == 2394
    assert sum(facts["tokens"].values()) == 46469
    assert sum(n for split in facts["entities"].values() for n in split.values()) == 1496
    assert len(task.entity_types) == 10 and task.tag_scheme == "iob2"
    assert facts["repaired_tags"] == {"train": 0}
    assert facts["overlap_with_train"] == {"validation": 0, "test": 0}  # retweets kept in one split


def test_a_text_classification_asset_is_not_token_data():
    with pytest.raises(UserError, match="asset 'rotten-tomatoes' is a dataset, not token data: token-dataset assets "
                                        "are wnut16"):
        load_token_data(DataConfig(dataset="rotten-tomatoes"))
