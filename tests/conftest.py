"""Shared fixtures: tiny checkpoints and datasets written to temporary folders; nothing downloads."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each. Oversubscribed torch threads made steps 50x slower here.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

POSITIVE = "good great fun moving superb brilliant charming".split()
NEGATIVE = "bad awful boring dull clumsy tedious lifeless".split()
FILLER = "the a movie film plot is was and it this story acting".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + POSITIVE + NEGATIVE + FILLER


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    """Short synthetic reviews whose label follows the sentiment word in them."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        words = rng.sample(FILLER, rng.randint(2, 6)) + [cue]
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "sentiment": label})
    return rows


def tagged_sentences(n: int, seed: int = 0, continuations: tuple[str, ...] = ()) -> list[list[tuple[str, str]]]:
    """Filler words with one or two entities of type pos / neg: a sentiment word, followed by one of the
    `continuations` (words that occur nowhere else) half the time when some are given: B-kind I-kind."""
    rng = random.Random(seed)
    filler = [word for word in FILLER if word not in continuations]
    out = []
    for _ in range(n):
        words = [(w, "O") for w in rng.sample(filler, rng.randint(3, 8))]
        for _ in range(rng.randint(1, 2)):
            kind = rng.choice(["pos", "neg"])
            at = rng.randrange(len(words) + 1)
            entity = [(rng.choice(POSITIVE if kind == "pos" else NEGATIVE), f"B-{kind}")]
            if continuations and rng.random() < 0.5:
                entity.append((rng.choice(continuations), f"I-{kind}"))
            words[at:at] = entity
        out.append(words)
    return out


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    """A CoNLL column file: word and tag per line, a blank line after each sentence."""
    path.write_text("".join("".join(f"{word} {tag}\n" for word, tag in sentence) + "\n" for sentence in sentences))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def single_torch_thread():
    """The models are tiny: a second intra-op thread only adds contention on a shared 2-core machine. Modules use it
    with `pytestmark = pytest.mark.usefixtures("single_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT with a WordPiece tokenizer over VOCAB, saved like a Hub checkpoint. Its weights are
    seeded: unseeded, each session (and each xdist worker) drew other weights, and a few learning tests passed on
    most draws only."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(folder)  # v5 ignores vocab_file=
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def sentiment_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "reviews.csv", sentiment_rows(120))
