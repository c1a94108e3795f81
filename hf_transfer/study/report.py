"""The study's tables: results.jsonl (one row per run and evaluation set), summary.csv / summary.md (mean ± std
over seeds per arm x size x evaluation set) and the recommendation per training-set size.

When is a difference real? The seeds are the only repetition a study has (every arm sees the same test set), so
the rule tests the seed-to-seed spread (SIGNIFICANCE_LEVEL, two-sided):
- two arms with several seeds each: Welch's t-test (unequal variances) on their per-seed scores;
- against a deterministic arm (zero-shot and the baselines: one run, no seed randomness): a one-sample t-test of the
  other arm's seed scores against that arm's score;
- two deterministic arms: their scores are exact, any difference counts (test-set sampling is not modelled: on a
  test set of N examples an accuracy is only known to about ±1.96·sqrt(p(1-p)/N));
- an arm with one seed against a non-deterministic one: not testable, reported as such.
"""

from __future__ import annotations

import csv
import json
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from scipy import stats

from ..results import RunResult
from .files import RESULTS_FILE, SUMMARY_CSV, SUMMARY_MD
from .grid import ALL, Job
from .runner import read_eval_sets

TEST = "test"
SIGNIFICANCE_LEVEL = 0.05
# The columns that identify a result and its scores; times and memory vary from machine to machine and run to run.
RESULT_KEYS = ("arm", "kind", "size", "train_examples", "seed", "eval_set", "num_examples", "accuracy", "f1_macro",
               "f1_micro", "trainable_parameters")
SCORES = ("accuracy", "f1_macro", "f1_micro")
# The score columns of summary.md per task, in order: a tagger's accuracy is per word (O included).
SCORE_COLUMNS = {"text-classification": {"accuracy": "Accuracy", "f1_macro": "Macro F1"},
                 "token-classification": {"f1_micro": "Entity F1, micro", "f1_macro": "Entity F1, macro",
                                          "accuracy": "Token accuracy"}}
DETERMINISTIC_KINDS = ("zero-shot", "baseline")


def result_rows(jobs: Iterable[Job], study_dir: Path, baselines: dict[str, dict], train_size: int,
                eval_sets: list[str]) -> list[dict]:
    """One row per finished run (then per baseline) and evaluation set (test, then the out-of-domain sets).

    A row: arm, kind (classify | zero-shot | baseline), strategy, model, size (number, "all", 0 for zero-shot),
    train_examples, seed (null for deterministic arms), eval_set, num_examples, accuracy (a tagger's: token
    accuracy), f1_macro, f1_micro (a tagger's: entity F1, hf_transfer.metrics.entity_report), trainable_parameters,
    train_time_s, peak_memory_mb (MiB), run_time_s (the whole run), hardware, run_folder (relative to the study
    folder; null for baselines)."""
    rows = []
    for job in jobs:
        result = RunResult.load(job.folder)
        reports = {TEST: result.metrics[TEST], **read_eval_sets(job.folder)}
        strategy = (result.strategy["name"] if job.kind == "classify"
                    else f"zero-shot {result.strategy.get('method', '')}".strip())
        common = {"arm": job.arm, "kind": job.kind, "strategy": strategy, "model": result.model["name"],
                  "size": job.size, "train_examples": result.task["split_sizes"]["train"] if job.kind == "classify"
                  else 0, "seed": job.seed}
        extra = {"trainable_parameters": result.parameters["trainable"],
                 "train_time_s": result.compute["train_time_s"], "peak_memory_mb": result.compute["peak_memory_mb"],
                 "run_time_s": result.compute["total_time_s"], "hardware": result.compute["hardware"],
                 "run_folder": str(job.folder.relative_to(study_dir))}
        rows += [{**common, **_scores(name, reports[name]), **extra} for name in [TEST, *eval_sets]]
    for name, record in baselines.items():
        common = {"arm": name, "kind": "baseline", "strategy": record["method"], "model": record["model"],
                  "size": ALL, "train_examples": train_size, "seed": None}
        extra = {"trainable_parameters": None, "train_time_s": record["fit_time_s"], "peak_memory_mb": None,
                 "run_time_s": record["fit_time_s"], "hardware": None, "run_folder": None}
        rows += [{**common, **_scores(s, record["metrics"][s]), **extra} for s in [TEST, *eval_sets]]
    return rows


def _scores(eval_set: str, report: dict) -> dict:
    return {"eval_set": eval_set, "num_examples": report["num_examples"],
            "accuracy": report["accuracy"] if "accuracy" in report else report["token_accuracy"],
            "f1_macro": report["f1_macro"], "f1_micro": report["f1_micro"]}


def write_results(rows: list[dict], study_dir: Path) -> Path:
    """Write `rows` (result_rows) as JSON Lines to STUDY_DIR/results.jsonl; returns its path."""
    path = Path(study_dir) / RESULTS_FILE
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_results(study_dir: Path) -> list[dict]:
    """The rows of STUDY_DIR/results.jsonl, blank lines skipped."""
    return [json.loads(line) for line in (Path(study_dir) / RESULTS_FILE).read_text().splitlines() if line]


# ---------------------------------------------------------------------------------------------------------------
# Summary: mean ± std over seeds


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (arm, eval_set, size), in the order first seen: seeds, mean and std of each of SCORES,
    trainable parameters, mean train time (s) and peak memory (MiB)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["arm"], row["eval_set"], row["size"]), []).append(row)
    summary = []
    for (arm, eval_set, size), members in groups.items():
        first = members[0]
        entry = {"arm": arm, "kind": first["kind"], "strategy": first["strategy"], "eval_set": eval_set,
                 "size": size, "train_examples": first["train_examples"], "seeds": len(members)}
        for metric in SCORES:
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = _mean_std([m[metric] for m in members])
        entry["trainable_parameters"] = first["trainable_parameters"]
        for key in ("train_time_s", "peak_memory_mb"):
            values = [m[key] for m in members if m[key] is not None]
            entry[f"{key}_mean"] = statistics.fmean(values) if values else None
        summary.append(entry)
    return summary


SUMMARY_COLUMNS = ("arm", "kind", "strategy", "eval_set", "size", "train_examples", "seeds", "accuracy_mean",
                   "accuracy_std", "f1_macro_mean", "f1_macro_std", "f1_micro_mean", "f1_micro_std",
                   "trainable_parameters", "train_time_s_mean", "peak_memory_mb_mean")


def write_summary(summary: list[dict], study_dir: Path, task: str = "text-classification") -> tuple[Path, Path]:
    """summary.csv (SUMMARY_COLUMNS) and summary.md (a table per evaluation set, the `task`'s SCORE_COLUMNS);
    returns both paths."""
    csv_path, md_path = Path(study_dir) / SUMMARY_CSV, Path(study_dir) / SUMMARY_MD
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(summary)
    md_path.write_text(summary_markdown(summary, task))
    return csv_path, md_path


def summary_markdown(summary: list[dict], task: str = "text-classification") -> str:
    """A markdown table per evaluation set: the `task`'s SCORE_COLUMNS as mean ± std over seeds, in percent."""
    scores = SCORE_COLUMNS[task]
    parts = []
    for eval_set in dict.fromkeys(row["eval_set"] for row in summary):
        parts += [f"### {eval_set}", "",
                  "| Arm | Strategy | Training examples | Seeds | "
                  + "".join(f"{name} (%) | " for name in scores.values())
                  + "Trainable parameters | Train time (s) | Peak memory (MiB) |",
                  "|---|---|---|---|" + "---|" * len(scores) + "---|---|---|"]
        for row in (r for r in summary if r["eval_set"] == eval_set):
            parts.append(
                f"| {row['arm']} | {row['strategy']} | {_examples(row)} | {row['seeds']} | "
                + "".join(f"{_percent(row[f'{key}_mean'], row[f'{key}_std'])} | " for key in scores)
                + f"{_count(row['trainable_parameters'])} "
                f"| {_number(row['train_time_s_mean'], '.1f')} | {_number(row['peak_memory_mb_mean'], '.0f')} |")
        parts.append("")
    return "\n".join(parts)


def _examples(row: dict) -> str:
    if row["kind"] == "zero-shot":
        return "0 (zero-shot)"
    return f"all ({row['train_examples']:,})" if row["size"] == ALL else f"{row['train_examples']:,}"


def _percent(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# ---------------------------------------------------------------------------------------------------------------
# Recommendations


@dataclass
class Recommendation:
    """The best arm at one training-set size on one evaluation set, and how it stands against the next best."""

    eval_set: str
    size: int | str
    train_examples: int
    best: str
    best_mean: float
    best_std: float
    runner_up: str | None
    runner_up_mean: float | None
    runner_up_std: float | None
    p_value: float | None
    verdict: str  # "significant" | "within seed noise" | "exact" | "untested" | "alone"

    @property
    def delta(self) -> float | None:
        """best - runner-up, in the metric's units (a fraction for accuracy)."""
        return None if self.runner_up_mean is None else self.best_mean - self.runner_up_mean


def difference_test(a: list[float], a_deterministic: bool, b: list[float], b_deterministic: bool
                    ) -> tuple[float | None, str]:
    """(p value or None, verdict) for the difference between two arms' per-seed scores; the rule is in the module
    docstring. Verdicts: significant, within seed noise, exact (both deterministic), untested (one seed)."""
    if a_deterministic and b_deterministic:
        return None, "exact"
    if a_deterministic or b_deterministic:
        fixed, varying = (a, b) if a_deterministic else (b, a)
        if len(varying) < 2:
            return None, "untested"
        if statistics.pvariance(varying) == 0:
            return None, "exact" if varying[0] != fixed[0] else "within seed noise"
        with warnings.catch_warnings():  # scipy warns of precision loss for nearly equal scores; p is still right
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_1samp(varying, fixed[0]).pvalue)
    else:
        if len(a) < 2 or len(b) < 2:
            return None, "untested"
        if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
            return None, "exact" if a[0] != b[0] else "within seed noise"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return p, "significant" if p < SIGNIFICANCE_LEVEL else "within seed noise"


def recommendations(rows: list[dict], metric: str = "accuracy") -> list[Recommendation]:
    """For each evaluation set and training-set size (ascending, all last), the arm with the best mean `metric`.

    Candidates at a size: the classify arms trained on that many examples, every zero-shot arm (it needs no
    examples), and at size all the baselines (they train on the whole train split). Ties go to the arm listed first.
    """
    by_arm: dict[tuple, list[float]] = {}
    kinds, examples = {}, {}
    for row in rows:
        by_arm.setdefault((row["eval_set"], row["size"], row["arm"]), []).append(row[metric])
        kinds[row["arm"]] = row["kind"]
        examples[row["size"]] = row["train_examples"]
    sizes = sorted({r["size"] for r in rows if r["kind"] == "classify"},
                   key=lambda s: (s == ALL, examples[s] if s != ALL else 0))
    out = []
    for eval_set in dict.fromkeys(r["eval_set"] for r in rows):
        for size in sizes:
            candidates = {arm: scores for (e, s, arm), scores in by_arm.items()
                          if e == eval_set and (s == size or kinds[arm] == "zero-shot"
                                                or (size == ALL and kinds[arm] == "baseline"))}
            ranked = sorted(candidates, key=lambda arm: -statistics.fmean(candidates[arm]))
            best = ranked[0]
            best_mean, best_std = _mean_std(candidates[best])
            if len(ranked) == 1:
                out.append(Recommendation(eval_set, size, examples[size], best, best_mean, best_std,
                                          None, None, None, None, "alone"))
                continue
            second = ranked[1]
            second_mean, second_std = _mean_std(candidates[second])
            p, verdict = difference_test(candidates[best], kinds[best] in DETERMINISTIC_KINDS,
                                         candidates[second], kinds[second] in DETERMINISTIC_KINDS)
            out.append(Recommendation(eval_set, size, examples[size], best, best_mean, best_std, second,
                                      second_mean, second_std, p, verdict))
    return out


@dataclass
class Regime:
    """Consecutive sizes (on one evaluation set) where the same arm is best: 'with up to N labelled examples, X'."""

    eval_set: str
    best: str
    items: list[Recommendation]

    @property
    def up_to(self) -> int:
        """The largest training set of the regime, in examples."""
        return self.items[-1].train_examples

    @property
    def from_examples(self) -> int:
        """The smallest training set of the regime, in examples."""
        return self.items[0].train_examples


def regimes(recommendations_: list[Recommendation]) -> list[Regime]:
    """Runs of consecutive sizes with the same best arm, per evaluation set, in order."""
    out: list[Regime] = []
    for item in recommendations_:
        if out and out[-1].eval_set == item.eval_set and out[-1].best == item.best:
            out[-1].items.append(item)
        else:
            out.append(Regime(item.eval_set, item.best, [item]))
    return out
