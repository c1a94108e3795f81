"""The classic baselines on the recipe's own split (hf_transfer.baselines): majority class and TF-IDF + logistic
regression.

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

from sklearn.base import clone

from hf_transfer.baselines import C_VALUES, fit_tfidf, joined_texts, majority_baseline, score_estimator
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.data import load_task_data


def main(argv: list[str]) -> None:
    config = load_config(ClassifyConfig, None, argv)
    task = load_task_data(config.data)
    majority = majority_baseline(task)
    started = time.perf_counter()
    fitted = fit_tfidf(task)
    fit_time = time.perf_counter() - started
    test = score_estimator(fitted, task.texts("test"), task.splits["test"]["labels"], task)
    refit = clone(fitted).fit(joined_texts(task.texts("train")) + joined_texts(task.texts("validation")),
                              list(task.splits["train"]["labels"]) + list(task.splits["validation"]["labels"]))
    refit_test = score_estimator(refit, task.texts("test"), task.splits["test"]["labels"], task)
    print(f"split sizes {task.sizes()}; majority class ({majority['model']}): test accuracy "
          f"{majority['metrics']['test']['accuracy']:.4f}")
    print(f"TF-IDF (1-2 grams) + logistic regression, C={fitted.chosen_c_} of {C_VALUES} on validation: test accuracy "
          f"{test['accuracy']:.4f} ({fit_time:.1f} s for {len(C_VALUES)} fits); refitted on train + validation: "
          f"{refit_test['accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
