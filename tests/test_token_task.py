"""hf_transfer.token_task: a tagger trained and evaluated through the task-family interface, windows included."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from conftest import tagged_sentences, write_conll
from hf_transfer.config import DataConfig, TrainConfig
from hf_transfer.token_task import TokenClassification
from hf_transfer.training import build_trainer, training_arguments


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagging")
    write_conll(folder / "train.conll", tagged_sentences(120))
    # max_length 8 holds 6 words: most sentences are cut into windows, in training and evaluation.
    data = DataConfig(dataset=str(folder / "train.conll"), max_length=8, stride=2, test_size=0.25,
                      label_subwords="first")  # run_classify resolves "auto" per strategy; this calls the family
    family = TokenClassification
    task = family.load_data(data)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=len(task.label_names),
                                                            id2label=task.id2label, label2id=task.label2id)
    tokenized = family.tokenize(task, tokenizer, data)
    train = TrainConfig(epochs=3, learning_rate=1e-2, batch_size=16, precision="fp32", threads=1, logging_steps=5)
    args = training_arguments(train, str(folder / "trainer"), "fp32", False)
    trainer = build_trainer(model, args, tokenizer, tokenized["train"], tokenized["validation"], [], None,
                            family.data_collator(tokenizer))
    trainer.train()
    metrics, rows = family.evaluate(trainer, task, tokenized)
    return task, tokenized, metrics, rows


def test_tagger_learns_and_every_word_of_every_window_gets_one_prediction(trained):
    task, tokenized, metrics, rows = trained
    windows = metrics["test"]["windows"]
    assert windows["sentences"] == task.sizes()["test"] and windows["sentences_windowed"] > 0
    assert windows["windows"] > windows["sentences"]
    assert metrics["test"]["f1_micro"] >= 0.8, metrics["test"]
    assert set(metrics["test"]["per_class"]) <= {"pos", "neg"}
    assert metrics["test"]["num_entities"] == sum(task.facts()["entities"]["test"].values())
    test_rows = [row for row in rows if row["split"] == "test"]
    assert [row["tokens"] for row in test_rows] == list(task.splits["test"]["tokens"])
    for row in test_rows:
        assert len(row["predicted_tags"]) == len(row["tokens"]) == len(row["tags"]) == len(row["scores"])
    assert len(rows) == task.sizes()["validation"] + task.sizes()["test"]


def test_record_holds_the_data_facts(trained):
    task = trained[0]
    record = TokenClassification.record(task)
    assert record["entity_types"] == ["neg", "pos"] and record["label_names"][0] == "O"
    assert record["data_facts"]["tag_scheme"] == "iob2" and record["split_sizes"] == task.sizes()


def test_validation_selection_scores_a_tagger_on_its_labelled_tokens():
    from transformers import EvalPrediction

    from hf_transfer.selection import validation_accuracy

    labels = np.array([[-100, 0, 1, -100, -100], [-100, 2, -100, -100, -100]])  # special tokens, subwords, padding
    logits = np.zeros((2, 5, 3))
    logits[0, 1, 0] = logits[0, 2, 1] = logits[1, 1, 0] = 1.0  # right, right, wrong
    assert validation_accuracy(False)(EvalPrediction(logits, labels)) == {"accuracy": pytest.approx(2 / 3)}
