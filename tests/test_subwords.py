"""hf_transfer.subwords: words -> first subwords, windows for long sentences, logits back to one row per word."""

import random

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoConfig, AutoModelForTokenClassification, DataCollatorForTokenClassification
from transformers import PreTrainedTokenizerFast

import hf_transfer.models  # noqa: F401  registers our backbones with the Auto classes
from hf_transfer.errors import UserError
from hf_transfer.subwords import IGNORE_INDEX, _windows, encode_words, tokenize_token_splits, window_facts, word_logits
from hf_transfer.token_data import TokenTaskData

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
PIECES = ["ann", "lee", "par", "##is", "visit", "##ed", "the", "town", "##s", "new", "york", "##er"]
TAGS = ["O", "B-person", "I-person", "B-place", "I-place"]


@pytest.fixture(scope="module")
def tokenizer():
    """A lowercasing WordPiece tokenizer like MiniLM's: "Paris" -> par ##is, "visited" -> visit ##ed."""
    vocab = {token: i for i, token in enumerate(SPECIAL + PIECES)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def random_sentence(n, seed=0):
    rng = random.Random(seed)
    words = ["Ann", "Lee", "Paris", "visited", "the", "towns", "New", "Yorker", "zzz"]
    return [rng.choice(words) for _ in range(n)]


def test_first_subword_labels_and_all_subwords(tokenizer):
    words = ["Ann", "Lee", "visited", "Paris"]
    tags = [[1, 2, 0, 3]]
    rows = encode_words(tokenizer, [words], tags, max_length=16, stride=4)
    tokens = tokenizer.convert_ids_to_tokens(rows["input_ids"][0])
    assert tokens == ["[CLS]", "ann", "lee", "visit", "##ed", "par", "##is", "[SEP]"]
    assert rows["labels"][0] == [IGNORE_INDEX, 1, 2, 0, IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert rows["word_index"][0] == [-1, 0, 1, 2, -1, 3, -1, -1]
    assert rows["sentence"] == [0]
    every = encode_words(tokenizer, [words], tags, max_length=16, stride=4, label_subwords="all", label_names=TAGS)
    assert every["labels"][0] == [IGNORE_INDEX, 1, 2, 0, 0, 3, 4, IGNORE_INDEX]  # par=B-place, ##is=I-place
    assert every["word_index"][0] == rows["word_index"][0]  # predictions still come from first subwords


def test_a_sentence_that_fits_is_tokenized_as_without_windows(tokenizer):
    words = random_sentence(20)
    rows = encode_words(tokenizer, [words], max_length=64)
    plain = tokenizer(words, is_split_into_words=True, truncation=True, max_length=64)
    assert rows["input_ids"] == [plain["input_ids"]] and rows["attention_mask"] == [plain["attention_mask"]]
    first = [p for p, w in enumerate(plain.word_ids()) if w is not None and (p == 0 or plain.word_ids()[p - 1] != w)]
    assert [p for p, w in enumerate(rows["word_index"][0]) if w >= 0] == first
    assert "labels" not in rows


def test_windows_cover_every_word_once():
    lengths = [1, 2, 1, 1, 3, 1, 1, 1, 2, 1] * 5
    windows = _windows(lengths, budget=8, stride=3)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (start, end), (next_start, _) in zip(windows, windows[1:]):
        assert start < next_start <= end  # overlapping or touching, always moving on
        assert sum(lengths[next_start:end]) <= 3
    assert all(sum(lengths[s:e]) <= 8 for s, e in windows)
    # A word longer than the budget gets a window of its own (truncated there), without repeating its neighbours.
    assert _windows([1, 1, 20, 1], budget=8, stride=3) == [(0, 2), (2, 3), (3, 4)]


def tagger(tokenizer, seed=0):
    """A TextCNN tagger whose per-token output depends on the token and its neighbours only (filter widths 2, 3):
    windowed predictions equal whole-sentence ones exactly when each word is predicted where it has context."""
    torch.manual_seed(seed)
    config = AutoConfig.for_model("hft-textcnn", vocab_size=len(tokenizer), embedding_dim=8, num_filters=4,
                                  filter_sizes=(2, 3), pad_token_id=0, num_labels=len(TAGS),
                                  id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)})
    return AutoModelForTokenClassification.from_config(config).eval()


def padded_logits(model, rows):
    """What Trainer.predict returns: logits of right-padded batches, padded with -100."""
    collator = DataCollatorForTokenClassification(rows["tokenizer"])
    features = [{k: rows[k][i] for k in ("input_ids", "attention_mask", "labels")} for i in range(len(rows["labels"]))]
    batch = collator(features)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits.masked_fill(~batch["attention_mask"].bool()[..., None], -100).numpy(), batch["labels"].numpy()


def test_a_1000_word_sentence_gets_one_prediction_per_word_equal_to_the_unwindowed_ones(tokenizer):
    words = random_sentence(1000, seed=1)
    tags = [random.Random(i).randrange(len(TAGS)) for i in range(1000)]
    short = random_sentence(12, seed=2)
    rows = encode_words(tokenizer, [words, short], [tags, [0] * 12], max_length=64, stride=16)
    assert max(map(len, rows["input_ids"])) <= 64
    assert rows["sentence"].count(0) > 20 and rows["sentence"].count(1) == 1
    assert window_facts(rows) == {"sentences": 2, "windows": len(rows["sentence"]), "sentences_windowed": 1,
                                  "unk_words": 0}
    # Every word is labelled in exactly one window, so training sees it once.
    labelled = [label for labels, s in zip(rows["labels"], rows["sentence"]) if s == 0 for label in labels
                if label != IGNORE_INDEX]
    assert labelled == tags

    model = tagger(tokenizer)
    logits, label_ids = padded_logits(model, {**rows, "tokenizer": tokenizer})
    merged = word_logits(logits, rows["word_index"], rows["sentence"], label_ids=label_ids, num_words=[1000, 12])
    assert [m.shape for m in merged] == [(1000, len(TAGS)), (12, len(TAGS))]

    for sentence, result in zip((words, short), merged):  # TextCNN has no length limit: run it on the whole sentence
        whole = tokenizer(sentence, is_split_into_words=True)
        with torch.no_grad():
            full = model(input_ids=torch.tensor([whole["input_ids"]])).logits[0].numpy()
        ids = whole.word_ids()
        first = [p for p, w in enumerate(ids) if w is not None and (p == 0 or ids[p - 1] != w)]
        np.testing.assert_allclose(result, full[first], rtol=1e-5, atol=1e-6)


def test_word_logits_catches_left_padding_and_lost_words(tokenizer):
    rows = encode_words(tokenizer, [["Ann", "visited", "Paris"], ["Lee"]], [[1, 0, 3], [1]], max_length=16, stride=4)
    logits = np.zeros((2, 6, len(TAGS)))
    shifted = [[IGNORE_INDEX] * (6 - len(labels)) + labels for labels in rows["labels"]]  # padded on the left
    with pytest.raises(ValueError, match="padded on the right"):
        word_logits(logits, rows["word_index"], rows["sentence"], label_ids=shifted)
    with pytest.raises(ValueError, match="sentence 0: 1 of its words have no prediction"):
        word_logits(logits, rows["word_index"], rows["sentence"], num_words=[4, 1])


def test_words_without_subwords_are_fed_as_unknown(tokenizer):
    rows = encode_words(tokenizer, [["Ann", "\u200b", "Paris"]], [[1, 0, 3]], max_length=16, stride=4)
    assert tokenizer.convert_ids_to_tokens(rows["input_ids"][0]) == ["[CLS]", "ann", "[UNK]", "par", "##is", "[SEP]"]
    assert rows["labels"][0][2] == 0 and rows["unk_words"] == [1]


def test_bad_settings(tokenizer):
    with pytest.raises(UserError, match="data.stride=14 leaves windows no room: they hold 14 subword tokens"):
        encode_words(tokenizer, [["Ann"]], max_length=16, stride=14)
    with pytest.raises(UserError, match="sentence 1 has no words"):
        encode_words(tokenizer, [["Ann"], []], max_length=16, stride=4)


def test_tokenize_token_splits_and_collate(tokenizer):
    features = Features({"tokens": List(Value("string")), "tags": List(ClassLabel(names=TAGS))})
    split = Dataset.from_dict({"tokens": [["Ann", "visited", "Paris"], random_sentence(40)],
                               "tags": [[1, 0, 3], [0] * 40]}, features=features)
    task = TokenTaskData(DatasetDict(train=split, validation=split, test=split), TAGS, "x", "x", "iob2")
    tokenized = tokenize_token_splits(task, tokenizer, max_length=16, stride=4, label_subwords="all")
    assert tokenized["train"]["labels"][0][5] == 4 and tokenized["test"]["labels"][0][5] == IGNORE_INDEX  # ##is
    assert list(tokenized["test"]["sentence"])[:2] == [0, 1] and len(tokenized["test"]) > 2
    model_columns = tokenized["train"].remove_columns(["word_index", "sentence", "unk_words"])
    batch = DataCollatorForTokenClassification(tokenizer)([model_columns[i] for i in range(3)])
    assert batch["labels"].shape == batch["input_ids"].shape


def test_byte_level_tokenizers_need_add_prefix_space():
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import GPT2Tokenizer

    vocab = {char: i for i, char in enumerate(sorted(ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    glued = GPT2Tokenizer(vocab=vocab, merges=[])  # "Ann Lee" would lose the space before "Lee"
    with pytest.raises(UserError, match="GPT2Tokenizer reads pre-split words without the space .* add_prefix_space=True"):
        encode_words(glued, [["Ann", "Lee"]], max_length=16, stride=4)
    spaced = GPT2Tokenizer(vocab=vocab, merges=[], add_prefix_space=True)
    rows = encode_words(spaced, [["Ann", "Lee"]], max_length=16, stride=4)
    assert spaced.convert_ids_to_tokens(rows["input_ids"][0]) == ["Ġ", "A", "n", "n", "Ġ", "L", "e", "e"]
    assert rows["word_index"][0] == [0, -1, -1, -1, 1, -1, -1, -1]
