"""PNG plots for output folders: what people would rather look at than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_plot(matrix: list[list[int]], label_names: list[str], path: Path, title: str) -> Path:
    """Draw `matrix` ([true label][predicted label] counts, in `label_names` order) as a heat map with each count
    written in its cell; saves a PNG at `path` (110 dpi) and returns `path`."""
    counts = np.asarray(matrix)
    size = max(3.5, 0.6 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = counts.max() / 2 if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curve_plot(log_history: list[dict], path: Path) -> Path | None:
    """Plot the training loss (and validation loss, where evaluated) against the optimiser step from a Trainer
    `log_history`; saves a PNG at `path` (110 dpi) and returns it, or None when nothing logged a loss."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
