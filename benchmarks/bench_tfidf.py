"""The classic baseline on the recipe's own split: TF-IDF features + logistic regression (scikit-learn).

Same data and splits as `recipes/classify.py` (the default config unless overridden: Rotten Tomatoes fresh vs
rotten, stratified 20% test with seed 42, validation carved from the rest); fitted on the train split, C chosen
on the validation split, scored once on the test split; then refitted on train + validation (all 80% the test
split leaves, as a plain 80/20 experiment would) and scored again.

    python benchmarks/bench_tfidf.py
    python benchmarks/bench_tfidf.py data.dataset=political-speeches
"""

from __future__ import annotations

import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.data import load_task_data

C_VALUES = (0.3, 1.0, 3.0, 10.0, 30.0)


def joined(task, split: str) -> list[str]:
    """One string per example: text pairs (two text columns) joined by a space."""
    return [text if isinstance(text, str) else " ".join(text) for text in task.texts(split)]


def main(argv: list[str]) -> None:
    config = load_config(ClassifyConfig, None, argv)
    task = load_task_data(config.data)
    texts = {split: joined(task, split) for split in ("train", "validation", "test")}
    labels = {split: list(task.splits[split]["labels"]) for split in texts}
    started = time.perf_counter()
    scores = {}
    for c in C_VALUES:
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                              LogisticRegression(C=c, max_iter=2000))
        model.fit(texts["train"], labels["train"])
        scores[c] = (model.score(texts["validation"], labels["validation"]), model)
    best = max(scores, key=lambda c: scores[c][0])
    test_accuracy = scores[best][1].score(texts["test"], labels["test"])
    refit = scores[best][1].fit(texts["train"] + texts["validation"], labels["train"] + labels["validation"])
    refit_accuracy = refit.score(texts["test"], labels["test"])
    print(f"split sizes {task.sizes()}; validation accuracy by C: "
          + ", ".join(f"{c}: {scores[c][0]:.4f}" for c in C_VALUES))
    print(f"TF-IDF (1-2 grams) + logistic regression, C={best}: test accuracy {test_accuracy:.4f} "
          f"({time.perf_counter() - started:.1f} s for {len(C_VALUES) + 1} fits); refitted on train + validation: "
          f"{refit_accuracy:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
