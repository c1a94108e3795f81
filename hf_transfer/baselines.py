"""Baselines that need no pretrained model, fitted on the train split only and scored with the run's own metrics,
in seconds; a record has the shape of `RunResult.baselines` entries ({method, model, metrics}).

Text classification: the majority class and TF-IDF + logistic regression, scored with classification_report.

    majority_baseline(task)      # {"method": "majority class", "model": "always fresh", "fit_time_s": ...,
                                 #  "metrics": {"validation": report, "test": report}}
    tfidf_baseline(task)         # C chosen on the validation split
    fitted = fit_tfidf(task)     # a scikit-learn estimator over texts, to score other texts (out-of-domain sets)
    score_estimator(fitted, texts, labels, task)

Token classification: memorisation (each word's most frequent training tag), scored with entity_report.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from .data import TaskData
from .metrics import classification_report, entity_report

EVAL_SPLITS = ("validation", "test")
# Inverse regularisation strengths tried on the validation split; on the default task 30 wins (0.7646 test accuracy,
# benchmarks/bench_tfidf.py).
C_VALUES = (0.3, 1.0, 3.0, 10.0, 30.0)
MAJORITY = "majority class"
TFIDF = "TF-IDF + logistic regression"
EvalSets = Mapping[str, tuple[Sequence, Sequence]]  # {name: (texts, label ids or multi-hot rows)}


# ---------------------------------------------------------------------------------------------------------------
# Text classification


def joined_texts(texts) -> list[str]:
    """One string per example: text pairs (two text columns) joined by a space."""
    return [text if isinstance(text, str) else " ".join(text) for text in texts]


def _targets(task: TaskData, split: str) -> np.ndarray:
    """Label ids (N,) or multi-hot rows (N, labels)."""
    return np.asarray(task.splits[split]["labels"], dtype=np.int64 if not task.multi_label else np.float32)


def fit_majority(task: TaskData) -> DummyClassifier:
    """The most frequent label of the train split (per label for multi-label tasks), whatever the text."""
    return DummyClassifier(strategy="most_frequent").fit(np.zeros((len(task.splits["train"]), 1)),
                                                         _targets(task, "train"))


def fit_tfidf(task: TaskData, c_values: tuple[float, ...] = C_VALUES) -> Pipeline:
    """TF-IDF over word 1-2 grams (sublinear tf) + logistic regression, C picked by validation accuracy (the first
    of equals).

    The vectorizer is fitted once on the train split; one regression per C. Multi-label tasks get one regression
    per label (one-vs-rest). Returns the fitted pipeline (texts in, label ids or multi-hot rows out); its
    `chosen_c_` attribute holds the C it kept.
    """
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    train = vectorizer.fit_transform(joined_texts(task.texts("train")))
    validation = vectorizer.transform(joined_texts(task.texts("validation")))
    y_train, y_validation = _targets(task, "train"), _targets(task, "validation")
    # liblinear fits a binary regression ~5x faster than lbfgs here (0.3 s against 1.5 s on the default task, same
    # test accuracy at the chosen C); it would fit a multi-class task one-vs-rest, so those keep lbfgs (softmax).
    solver = "liblinear" if task.multi_label or len(task.label_names) == 2 else "lbfgs"
    best = None
    for c in c_values:
        regression = LogisticRegression(C=c, max_iter=2000, solver=solver)
        classifier = OneVsRestClassifier(regression) if task.multi_label else regression
        classifier.fit(train, y_train)
        score = float(np.mean(np.all(classifier.predict(validation) == y_validation, axis=-1)
                              if task.multi_label else classifier.predict(validation) == y_validation))
        if best is None or score > best[0]:
            best = (score, c, classifier)
    pipeline = Pipeline([("tfidf", vectorizer), ("classifier", best[2])])
    pipeline.chosen_c_ = best[1]
    return pipeline


def score_estimator(estimator, texts, labels, task: TaskData) -> dict:
    """classification_report of a fitted estimator on `texts` (strings or pairs) against label ids / multi-hot rows."""
    texts = joined_texts(texts)
    inputs = np.zeros((len(texts), 1)) if isinstance(estimator, DummyClassifier) else texts
    predicted = estimator.predict(inputs)
    if sparse.issparse(predicted):
        predicted = predicted.toarray()
    return classification_report(predicted, np.asarray(labels), task.label_names, task.multi_label)


def _record(method: str, model: str, estimator, task: TaskData, splits, fit_time: float,
            eval_sets: EvalSets | None) -> dict:
    metrics = {split: score_estimator(estimator, task.texts(split), task.splits[split]["labels"], task)
               for split in splits}
    for name, (texts, labels) in (eval_sets or {}).items():
        metrics[name] = score_estimator(estimator, texts, labels, task)
    return {"method": method, "model": model, "metrics": metrics, "fit_time_s": fit_time}


def majority_baseline(task: TaskData, splits=EVAL_SPLITS, eval_sets: EvalSets | None = None
                      ) -> dict:
    """{method, model, metrics: {split: classification_report}, fit_time_s} of the majority class on the held-out
    splits, and on `eval_sets` ({name: (texts, label ids or multi-hot rows)}) when given."""
    started = time.perf_counter()
    estimator = fit_majority(task)
    fit_time = time.perf_counter() - started
    label = estimator.predict(np.zeros((1, 1)))[0]
    named = ([task.label_names[i] for i, on in enumerate(label) if on] if task.multi_label
             else task.label_names[int(label)])
    return _record(MAJORITY, f"always {named}", estimator, task, splits, fit_time, eval_sets)


def tfidf_baseline(task: TaskData, splits=EVAL_SPLITS, eval_sets: EvalSets | None = None
                   ) -> dict:
    """{method, model, metrics, fit_time_s} of TF-IDF + logistic regression fitted on the train split (see
    fit_tfidf), as majority_baseline."""
    started = time.perf_counter()
    estimator = fit_tfidf(task)
    fit_time = time.perf_counter() - started
    return _record(TFIDF, f"word 1-2 grams, C={estimator.chosen_c_:g}", estimator, task, splits, fit_time, eval_sets)


# ---------------------------------------------------------------------------------------------------------------
# Token classification


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
        """Count each word's tags over `sentences` (lists of words) and `tags` (same shape); returns self."""
        counts: dict[str, Counter] = defaultdict(Counter)
        for words, labels in zip(sentences, tags):
            for word, tag in zip(words, labels):
                counts[word][tag] += 1
        self.tags = {word: counter.most_common(1)[0][0] for word, counter in counts.items()}
        return self

    def predict(self, sentences: list[list[str]]) -> list[list[str]]:
        """One tag per word of each sentence (same shape as `sentences`): its memorised tag, else O."""
        return [[self.tags.get(word, "O") for word in words] for words in sentences]


def memorization_baseline(task, splits=EVAL_SPLITS) -> dict:
    """The memorisation baseline of a TokenTaskData, fitted on train, in metrics.json's `baselines` shape:
    {"method": "memorization", "model": None, "metrics": {split: entity_report}}."""
    tagger = MemorizationTagger().fit(task.splits["train"]["tokens"], task.tag_names("train"))
    metrics = {split: entity_report(tagger.predict(task.splits[split]["tokens"]), task.tag_names(split))
               for split in splits}
    return {"method": "memorization", "model": None, "metrics": metrics}
