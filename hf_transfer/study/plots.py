"""The study's PNG plots (matplotlib Agg, as hf_transfer.plots): learning curves, score against train time with
the Pareto front, and out-of-domain against in-domain score. Each takes summary rows (report.summarize)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from .grid import ALL  # noqa: E402

LEARNING_CURVES = "learning_curves.png"
SCORE_VS_TIME = "score_vs_train_time.png"
OOD_VS_IN_DOMAIN = "ood_vs_in_domain.png"
PLOT_TITLES = {LEARNING_CURVES: "Learning curves", SCORE_VS_TIME: "Score against train time",
               OOD_VS_IN_DOMAIN: "Out-of-domain against in-domain score"}
METRIC_NAMES = {"accuracy": "accuracy", "f1_macro": "macro F1", "f1_micro": "entity F1"}  # f1_micro: taggers only
BASELINE_STYLES = (":", "-.")


def _arms(summary: list[dict], kind: str) -> list[str]:
    return list(dict.fromkeys(r["arm"] for r in summary if r["kind"] == kind))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves_plot(summary: list[dict], metric: str, path: Path) -> Path:
    """Score against training examples (log x axis), one panel per evaluation set: a line and ±std band per
    classify arm, zero-shot arms dashed and baselines (trained on the whole train split) dotted, as horizontal lines."""
    eval_sets = list(dict.fromkeys(r["eval_set"] for r in summary))
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(6.5 * len(eval_sets), 4.5), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, eval_set in zip(axes[0], eval_sets):
        rows = [r for r in summary if r["eval_set"] == eval_set]
        for i, arm in enumerate(_arms(rows, "classify")):
            points = sorted((r["train_examples"], r[f"{metric}_mean"], r[f"{metric}_std"])
                            for r in rows if r["arm"] == arm)
            x, mean, std = zip(*points)
            color = colors[i % len(colors)]
            ax.plot(x, mean, "o-", color=color, label=arm)
            ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], color=color,
                            alpha=0.15)
        for j, arm in enumerate(_arms(rows, "zero-shot")):
            score = next(r[f"{metric}_mean"] for r in rows if r["arm"] == arm)
            ax.axhline(score, linestyle="--", color=colors[-1 - j], label=f"{arm} (zero-shot)")
        for j, arm in enumerate(_arms(rows, "baseline")):
            score = next(r[f"{metric}_mean"] for r in rows if r["arm"] == arm)
            ax.axhline(score, linestyle=BASELINE_STYLES[j % len(BASELINE_STYLES)], color="0.3",
                       label=f"{arm} (all data)")
        ax.set_xscale("log")
        ax.set_xlabel("training examples")
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.set_title(f"{eval_set} set")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    return _save(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (time, score) no other point beats: at most as slow and at least as good, one strictly.
    Sorted by time."""
    front = [i for i, (t, s) in enumerate(points)
             if not any(t2 <= t and s2 >= s and (t2 < t or s2 > s) for t2, s2 in points)]
    return sorted(front, key=lambda i: points[i])


def score_vs_time_plot(summary: list[dict], metric: str, path: Path, eval_set: str = "test") -> Path:
    """Mean score against mean train time (s, symmetric log axis: zero-shot sits at 0) per arm and size on one
    evaluation set, with the Pareto front (the fastest way to each score) drawn as a step line."""
    rows = [r for r in summary if r["eval_set"] == eval_set and r["kind"] != "baseline"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = [(r["train_time_s_mean"] or 0.0, r[f"{metric}_mean"]) for r in rows]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [(p, r) for p, r in zip(points, rows) if r["arm"] == arm]
        ax.scatter([p[0] for p, _ in mine], [p[1] for p, _ in mine], label=arm, s=30)
        for (t, s), r in mine:
            if r["kind"] == "classify":
                ax.annotate(str(r["size"]), (t, s), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = [points[i] for i in pareto_front(points)]
    if front:
        ax.step([t for t, _ in front], [s for _, s in front], where="post", color="black", linewidth=1,
                label="Pareto front")
        ax.scatter([t for t, _ in front], [s for _, s in front], facecolors="none", edgecolors="black", s=90)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("train time (s, mean over seeds)")
    ax.set_ylabel(f"{METRIC_NAMES[metric]}, {eval_set} set")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def ood_vs_in_domain_plot(summary: list[dict], metric: str, path: Path, in_domain: str = "test") -> Path | None:
    """Out-of-domain against in-domain mean score, one panel per out-of-domain set: per arm a point per size
    (joined in size order), and the diagonal where both are equal. None (no file) without out-of-domain sets."""
    eval_sets = [e for e in dict.fromkeys(r["eval_set"] for r in summary) if e != in_domain]
    if not eval_sets:
        return None
    score = {(r["arm"], r["size"], r["eval_set"]): r[f"{metric}_mean"] for r in summary}
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(5.5 * len(eval_sets), 5), squeeze=False)
    for ax, eval_set in zip(axes[0], eval_sets):
        for arm in dict.fromkeys(r["arm"] for r in summary):
            sizes = sorted({size for a, size, e in score if a == arm and e == eval_set},
                           key=lambda s: (s == ALL, 0 if s == ALL else s))
            x = [score[(arm, s, in_domain)] for s in sizes]
            y = [score[(arm, s, eval_set)] for s in sizes]
            ax.plot(x, y, "o-", label=arm, markersize=4)
        low = min(min(ax.get_xlim()), min(ax.get_ylim()))
        high = max(max(ax.get_xlim()), max(ax.get_ylim()))
        ax.plot([low, high], [low, high], color="0.6", linewidth=0.8, label="equal")
        ax.set_xlabel(f"{METRIC_NAMES[metric]}, {in_domain} set (in domain)")
        ax.set_ylabel(f"{METRIC_NAMES[metric]}, {eval_set} (out of domain)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def study_plots(summary: list[dict], metric: str, folder: Path) -> list[Path]:
    """Every plot of a study into `folder`; returns the files written."""
    folder = Path(folder)
    written = [learning_curves_plot(summary, metric, folder / LEARNING_CURVES),
               score_vs_time_plot(summary, metric, folder / SCORE_VS_TIME),
               ood_vs_in_domain_plot(summary, metric, folder / OOD_VS_IN_DOMAIN)]
    return [path for path in written if path is not None]
