"""Crash safety of run folders (hf_transfer.run_folder): a run killed with SIGKILL resumes exactly from its last
checkpoint; two runs on one output folder never mix; a replace killed between any two filesystem steps leaves a
complete folder at OUT.

Runs that must die run in child processes of a multiprocessing forkserver that imported hf_transfer once: each
child starts in milliseconds instead of re-importing torch and transformers. Tiny BERT, 48 texts, batch 8: 5
optimiser steps an epoch, a checkpoint every 3 steps.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import pytest
from transformers import TrainerCallback

from conftest import sentiment_rows, write_csv

CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["hf_transfer.classify"])

CHECKPOINT_STEPS = 3  # checkpoints at steps 3, 6, 9 and 10 (the last); the loss is logged every 2 steps


class KillAt(TrainerCallback):
    """SIGKILL this process when optimiser step `when` ends (before that step's checkpoint, if it has one), or
    with `when="evaluation"` at the first evaluation batch after training (the last step's checkpoint is saved)."""

    def __init__(self, when: int | str):
        self.when = when

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.when:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_prediction_step(self, args, state, control, **kwargs):
        if self.when == "evaluation":
            os.kill(os.getpid(), signal.SIGKILL)


def _classify_child(overrides: list[str], kill_at: int | None, stderr: str) -> None:
    """A classify run as the recipe does it (a UserError: one line, exit 2), stderr into a file."""
    with open(stderr, "w") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = os.fdopen(2, "w", buffering=1)
    from hf_transfer.classify import run_classify
    from hf_transfer.config import ClassifyConfig, load_config
    from hf_transfer.errors import exit_on_user_error

    callbacks = (KillAt(kill_at),) if kill_at is not None else ()
    exit_on_user_error(lambda: run_classify(load_config(ClassifyConfig, None, overrides), callbacks=callbacks))()


def start(overrides: list[str], kill_at: int | None = None, log: Path | None = None):
    log = log or Path(overrides_dict(overrides)["output_dir"] + f".{kill_at}.log")
    process = CONTEXT.Process(target=_classify_child, args=(overrides, kill_at, str(log)))
    process.start()
    process.log = log
    return process


def classify(overrides: list[str], kill_at: int | None = None) -> tuple[int, str]:
    """(exit code, stderr) of a classify run in a child process; -9 when it was killed."""
    process = start(overrides, kill_at)
    process.join()
    return process.exitcode, process.log.read_text()


def overrides_dict(overrides: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in overrides)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("crash-data") / "reviews.csv", sentiment_rows(48))


def settings(model, data, output_dir, strategy, *extra) -> list[str]:
    return [f"model={model}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=32", f"strategy={strategy}", "train.epochs=2", "train.batch_size=8",
            "train.learning_rate=5e-3", "train.precision=fp32", "train.logging_steps=2", "train.threads=1", "train.freeze_word_embeddings=false",
            f"train.checkpoint_steps={CHECKPOINT_STEPS}", f"output_dir={output_dir}", *extra]


def outcome(out: Path) -> dict:
    """What a resumed run must reproduce: predictions.jsonl, the metrics of every split, the loss curve, and the
    strategy's own log entries (gradual unfreezing's), from a finished run's folder."""
    metrics = json.loads((out / "metrics.json").read_text())
    log = metrics["training"]["log_history"]
    return {"predictions": [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()],
            "metrics": metrics["metrics"],
            "losses": [(entry["step"], entry["loss"]) for entry in log if "loss" in entry],
            "mean train loss": pytest.approx(metrics["training"]["final_train_loss"], rel=1e-9),
            "strategy log": [entry for entry in log if "trainable_layer_groups" in entry]}


STRATEGIES = {
    "full": ([], (2, 5, 8, "evaluation")),
    "adapter": (["strategy_options={method: lora, r: 4}"], (2, 7)),
    # kill points: before the first checkpoint, in epoch 0 after it, in epoch 1 (step 6 begins it)
    "gradual-unfreeze": ([], (2, 5, 8)),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_killed_run_resumes_to_the_uninterrupted_result(strategy, tiny_bert, reviews, tmp_path):
    extra, kill_points = STRATEGIES[strategy]
    reference = tmp_path / "reference"
    code, log = classify(settings(tiny_bert, reviews, reference, strategy, *extra))
    assert code == 0, log[-3000:]
    expected = outcome(reference)
    for kill_at in kill_points:
        out = tmp_path / f"killed-at-{kill_at}"
        overrides = settings(tiny_bert, reviews, out, strategy, *extra)
        code, log = classify(overrides, kill_at=kill_at)
        assert code == -signal.SIGKILL, log[-3000:]
        assert not out.exists() and out.with_name(out.name + ".partial").is_dir()
        code, log = classify(overrides)
        assert code == 0, log[-3000:]
        resumed = outcome(out)
        for key in expected:
            assert resumed[key] == expected[key], (kill_at, key)
        assert not (out / "checkpoints").exists() and not out.with_name(out.name + ".partial").exists()
