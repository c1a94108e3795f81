"""Baselines that need no pretrained model, scored with the run's own metrics."""

from __future__ import annotations

from collections import Counter, defaultdict

from .metrics import entity_report

EVAL_SPLITS = ("validation", "test")


class MemorizationTagger:
    """Each word gets the tag it most often had in the training data; words never seen there get O.

    The standard lower bound for a tagger (what a model learns from word identity alone, no context). Words are
    matched exactly, case included: case is an entity cue ("Apple" / "apple"), and a baseline should not get a
    normalisation the models it bounds may lack. Ties go to the tag seen first. The tags are per word, so a
    memorised I- tag after O is possible; the default metrics read it as the start of an entity (conlleval).
    """

    def __init__(self):
        self.tags: dict[str, str] = {}

    def fit(self, sentences: list[list[str]], tags: list[list[str]]) -> MemorizationTagger:
        counts: dict[str, Counter] = defaultdict(Counter)
        for words, labels in zip(sentences, tags):
            for word, tag in zip(words, labels):
                counts[word][tag] += 1
        self.tags = {word: counter.most_common(1)[0][0] for word, counter in counts.items()}
        return self

    def predict(self, sentences: list[list[str]]) -> list[list[str]]:
        return [[self.tags.get(word, "O") for word in words] for words in sentences]


def memorization_baseline(task, splits=EVAL_SPLITS) -> dict:
    """The memorisation baseline of a TokenTaskData, fitted on train, in metrics.json's `baselines` shape:
    {"method": "memorization", "model": None, "metrics": {split: entity_report}}."""
    tagger = MemorizationTagger().fit(task.splits["train"]["tokens"], task.tag_names("train"))
    metrics = {split: entity_report(tagger.predict(task.splits[split]["tokens"]), task.tag_names(split))
               for split in splits}
    return {"method": "memorization", "model": None, "metrics": metrics}
