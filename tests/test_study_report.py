"""The study's report on hand-made results: recommendations and their significance rule, summary tables, plots
and the study card (no training here)."""

import csv
import statistics

import pytest
from huggingface_hub import ModelCard
from scipy import stats

from conftest import sentiment_rows, write_csv
from hf_transfer.config import CompareConfig, load_config
from hf_transfer.data import load_task_data
from hf_transfer.study.card import render_study_card
from hf_transfer.study.checks import EvalSet
from hf_transfer.study.grid import build_jobs
from hf_transfer.study.plots import pareto_front, study_plots
from hf_transfer.study.report import (difference_test, recommendations, regimes, summarize, summary_markdown,
                                      write_summary)

SCORES = {  # (arm, size) -> test accuracy per seed; zero-shot and baselines have one deterministic score
    ("full", 16): [0.60, 0.62, 0.58], ("lora", 16): [0.55, 0.57, 0.56],
    ("full", 64): [0.75, 0.76, 0.74], ("lora", 64): [0.745, 0.70, 0.78],
    ("full", "all"): [0.83, 0.84, 0.835], ("lora", "all"): [0.80, 0.81, 0.805],
    ("zs", 0): [0.70], ("majority", "all"): [0.578], ("tfidf-logreg", "all"): [0.765],
}
KINDS = {"full": "classify", "lora": "classify", "zs": "zero-shot", "majority": "baseline",
         "tfidf-logreg": "baseline"}
TRAIN_SIZE = 9221


def hand_made_rows(ood_shift: float = -0.1) -> list[dict]:
    rows = []
    for (arm, size), scores in SCORES.items():
        for i, score in enumerate(scores):
            kind = KINDS[arm]
            for eval_set, value in (("test", score), ("ood", score + ood_shift)):
                rows.append({
                    "arm": arm, "kind": kind, "strategy": arm, "model": "m", "size": size,
                    "train_examples": TRAIN_SIZE if size == "all" else size, "seed": i + 1 if kind == "classify"
                    else None, "eval_set": eval_set, "num_examples": 2562, "accuracy": value, "f1_macro": value - 0.01,
                    "f1_micro": value,
                    "trainable_parameters": {"full": 22_700_000, "lora": 222_000, "zs": 0}.get(arm),
                    "train_time_s": {"full": 10.0, "lora": 6.0, "zs": 0.0}.get(arm, 1.0) * (1 + (size == "all")),
                    "peak_memory_mb": 900.0 if kind != "baseline" else None, "run_time_s": 12.0,
                    "hardware": "CPU: test" if kind != "baseline" else None, "run_folder": None})
    return rows


def test_the_best_arm_per_size_and_whether_it_is_significant():
    found = {(r.eval_set, r.size): r for r in recommendations(hand_made_rows())}
    at16 = found[("test", 16)]
    assert (at16.best, at16.runner_up) == ("zs", "full"), "zero-shot competes at every size"
    assert at16.verdict == "significant"
    assert at16.p_value == pytest.approx(stats.ttest_1samp([0.60, 0.62, 0.58], 0.70).pvalue)
    at64 = found[("test", 64)]
    assert (at64.best, at64.runner_up, at64.verdict) == ("full", "lora", "within seed noise")
    assert at64.delta == pytest.approx(0.75 - statistics.fmean([0.745, 0.70, 0.78]))
    at_all = found[("test", "all")]
    assert (at_all.best, at_all.runner_up, at_all.verdict) == ("full", "lora", "significant")
    assert at_all.train_examples == TRAIN_SIZE
    assert set(found) == {(e, s) for e in ("test", "ood") for s in (16, 64, "all")}


def test_baselines_compete_only_with_all_the_data():
    rows = [r for r in hand_made_rows() if r["arm"] != "lora"]
    for row in rows:  # make TF-IDF the best model anywhere
        if row["arm"] == "tfidf-logreg":
            row["accuracy"] = 0.99
    found = {(r.eval_set, r.size): r.best for r in recommendations(rows)}
    assert found[("test", 16)] == "zs" and found[("test", 64)] == "full" and found[("test", "all")] == "tfidf-logreg"


def test_regimes_join_consecutive_sizes_with_the_same_best_arm():
    test = [r for r in regimes(recommendations(hand_made_rows())) if r.eval_set == "test"]
    assert [(r.best, [i.size for i in r.items]) for r in test] == [("zs", [16]), ("full", [64, "all"])]
    assert test[1].from_examples == 64 and test[1].up_to == TRAIN_SIZE


@pytest.mark.parametrize("a, a_fixed, b, b_fixed, verdict", [
    ([0.7], True, [0.6], True, "exact"),                       # two deterministic arms: exact scores
    ([0.7], False, [0.6, 0.61], False, "untested"),           # one seed of a trained arm cannot be tested
    ([0.7], True, [0.6], False, "untested"),
    ([0.7, 0.7], False, [0.6, 0.6], False, "exact"),          # no spread at all
    ([0.70, 0.71, 0.69], False, [0.60, 0.61, 0.59], False, "significant"),
    ([0.70, 0.60, 0.80], False, [0.69, 0.59, 0.79], False, "within seed noise"),
])
def test_difference_rule(a, a_fixed, b, b_fixed, verdict):
    p, found = difference_test(a, a_fixed, b, b_fixed)
    assert found == verdict
    if verdict in ("significant", "within seed noise"):
        assert p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_summary_is_mean_and_sample_std_over_seeds(tmp_path):
    summary = summarize(hand_made_rows())
    full16 = next(r for r in summary if (r["arm"], r["size"], r["eval_set"]) == ("full", 16, "test"))
    assert full16["seeds"] == 3 and full16["accuracy_mean"] == pytest.approx(0.60)
    assert full16["accuracy_std"] == pytest.approx(statistics.stdev([0.60, 0.62, 0.58]))
    zs = next(r for r in summary if r["arm"] == "zs" and r["eval_set"] == "test")
    assert zs["accuracy_std"] == 0.0 and zs["seeds"] == 1
    csv_path, md_path = write_summary(summary, tmp_path)
    read = list(csv.DictReader(open(csv_path)))
    assert len(read) == len(summary) and float(read[0]["accuracy_mean"]) == summary[0]["accuracy_mean"]
    assert "| full | full | 16 | 3 | 60.00 ± 2.00 |" in md_path.read_text()
    assert md_path.read_text() == summary_markdown(summary)


def test_pareto_front_keeps_the_fastest_way_to_each_score():
    points = [(0.0, 0.70), (5.0, 0.60), (10.0, 0.75), (12.0, 0.74), (20.0, 0.83)]
    assert pareto_front(points) == [0, 2, 4]


def test_plots_are_written_and_not_empty(tmp_path):
    written = study_plots(summarize(hand_made_rows()), "accuracy", tmp_path)
    assert [p.name for p in written] == ["learning_curves.png", "score_vs_train_time.png", "ood_vs_in_domain.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    in_domain_only = [r for r in hand_made_rows() if r["eval_set"] == "test"]
    assert len(study_plots(summarize(in_domain_only), "f1_macro", tmp_path / ".")) == 2


def test_study_card_parses_and_states_the_recommendation(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(100))
    config = load_config(CompareConfig, None, [
        "model=some-model", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "arms={zs: {kind: zero-shot}, full: {strategy: full}, lora: {strategy: adapter}}", "sizes=[16, 64, all]",
        "license=mit"])
    task = load_task_data(config.data)
    jobs = build_jobs(config, len(task.splits["train"]), tmp_path / "study")
    rows = hand_made_rows()
    summary = summarize(rows)
    plots = study_plots(summary, "accuracy", tmp_path)
    baselines = {"majority": {"method": "majority class", "model": "always neg"},
                 "tfidf-logreg": {"method": "TF-IDF + logistic regression", "model": "word 1-2 grams, C=3"}}
    ood = EvalSet("ood", "full-length reviews", ["a text"] * 40, [0] * 40)
    card = render_study_card(config=config, task=task, jobs=jobs, rows=rows, summary=summary,
                             recommendations_=recommendations(rows), baselines=baselines, eval_sets=[ood],
                             plots=plots, hardware=["CPU: test"], run_time=3600.0, wall_time=60.0)
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.license == "mit" and "transfer-study" in loaded.data.tags
    text = loaded.text
    assert ("With 16 labelled examples: **zs** (zero-shot, 70.0 ± 0.0), +10.0 points over full (60.0; p = 0.013, "
            "significant).") in text
    assert "With 64 to all 9,221 labelled examples: **full**" in text
    assert "![Learning curves](learning_curves.png)" in text and "| ood (out of domain" in text
    assert "p < 0.05" in text and "| Run time, all runs | 60.0 min |" in text
    assert str(tmp_path) not in text, "no local paths in a card"
