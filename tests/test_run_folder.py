"""Crash safety of run folders (hf_transfer.run_folder): a run killed with SIGKILL resumes exactly from its last
checkpoint; two runs on one output folder never mix; a replace killed between any two filesystem steps leaves a
complete folder at OUT; finished folders have ordinary permissions.

Runs that must die run in child processes of a multiprocessing forkserver that imported hf_transfer once: each
child starts in milliseconds instead of re-importing torch and transformers. Tiny BERT, 48 texts, batch 8: 5
optimiser steps an epoch, 2 epochs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import stat
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import TrainerCallback, pipeline

from conftest import sentiment_rows, write_csv
from hf_transfer.errors import UserError
from hf_transfer.run_folder import RunFolder

CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["hf_transfer.classify"])

CHECKPOINT_STEPS = 3  # checkpoints at steps 3, 6, 9 and 10 (the last); the loss is logged every 2 steps
LOGS = itertools.count()


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


def _redirect_output(log: str) -> None:
    with open(log, "w") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = os.fdopen(2, "w", buffering=1)
    os.umask(0o022)


def _classify_child(overrides: list[str], kill_at: int | str | None, log: str) -> None:
    """A classify run as the recipe does it (a UserError: one line on stderr, exit 2), its output into `log`."""
    _redirect_output(log)
    from hf_transfer.classify import run_classify
    from hf_transfer.config import ClassifyConfig, load_config
    from hf_transfer.errors import exit_on_user_error

    callbacks = (KillAt(kill_at),) if kill_at is not None else ()
    exit_on_user_error(lambda: run_classify(load_config(ClassifyConfig, None, overrides), callbacks=callbacks))()


def start(overrides: list[str], kill_at: int | str | None = None):
    """A classify run in a child process, started; its output goes to `process.log`."""
    log = Path(overrides[-1].split("=", 1)[1]).parent / "logs" / f"{next(LOGS)}.log"  # settings() ends in output_dir
    log.parent.mkdir(exist_ok=True)
    process = CONTEXT.Process(target=_classify_child, args=(overrides, kill_at, str(log)))
    process.start()
    process.log = log
    return process


def classify(overrides: list[str], kill_at: int | str | None = None) -> tuple[int, str]:
    """(exit code, output) of a classify run in a child process; -9 when it was killed."""
    process = start(overrides, kill_at)
    process.join()
    return process.exitcode, process.log.read_text()


def error_lines(output: str) -> list[str]:
    assert "Traceback" not in output, output[-3000:]
    return [line for line in output.splitlines() if line.startswith("hf-transfer: error:")]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("crash-data") / "reviews.csv", sentiment_rows(48))


def settings(model, data, strategy, *extra, output_dir) -> list[str]:
    return [f"model={model}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=32", f"strategy={strategy}", "train.epochs=2", "train.batch_size=8",
            "train.learning_rate=5e-3", "train.precision=fp32", "train.logging_steps=2", "train.threads=1",
            "train.freeze_word_embeddings=false", f"train.checkpoint_steps={CHECKPOINT_STEPS}", "baselines=[]", *extra,
            f"output_dir={output_dir}"]


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


def assert_finished(out: Path) -> None:
    """OUT is a finished folder with ordinary permissions, and nothing of the run is left beside it."""
    assert not (out / "checkpoints").exists()
    paths = RunFolder(out, overwrite=False)
    assert not [path for path in (paths.staging, paths.replaced, paths.discarded) if path.exists()]
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*") if path.is_file()}
    assert any(name.endswith(".safetensors") for name in modes)
    assert set(modes.values()) == {0o644}, modes  # the runs' umask is 022; safetensors writes 0600 temp files


STRATEGIES = {  # extra settings, kill points: before the first checkpoint, after it, in epoch 1 (from step 6)
    "full": ([], (5, 8, "evaluation")),
    "adapter": (["strategy_options={method: lora, r: 4}"], (2, 7)),  # the head is peft's modules_to_save
    "gradual-unfreeze": ([], (2, 5, 8)),  # epoch 0 trains the head and the top block, epoch 1 everything
    "frozen": (["strategy_options={pooling: mean}"], (2, 5)),  # the head trains on stored features
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_killed_run_resumes_to_the_uninterrupted_result(strategy, tiny_bert, reviews, tmp_path):
    extra, kill_points = STRATEGIES[strategy]
    code, output = classify(settings(tiny_bert, reviews, strategy, *extra, output_dir=tmp_path / "reference"))
    assert code == 0, output[-3000:]
    expected = outcome(tmp_path / "reference")
    for kill_at in kill_points:
        out = tmp_path / f"killed-at-{kill_at}"
        overrides = settings(tiny_bert, reviews, strategy, *extra, output_dir=out)
        code, output = classify(overrides, kill_at=kill_at)
        assert code == -signal.SIGKILL, output[-3000:]
        assert not out.exists() and out.with_name(out.name + ".partial").is_dir()
        code, output = classify(overrides)
        assert code == 0, output[-3000:]
        resumed = outcome(out)
        for key in expected:
            assert resumed[key] == expected[key], (kill_at, key)
        # it did resume (a run started over would reproduce the result too), from the last checkpoint
        last_checkpoint = 10 if kill_at == "evaluation" else kill_at // CHECKPOINT_STEPS * CHECKPOINT_STEPS
        assert json.loads((out / "metrics.json").read_text())["training"]["resumed_from_step"] == last_checkpoint
        assert_finished(out)


def test_a_changed_config_refuses_to_resume_and_resume_false_starts_over(tiny_bert, reviews, tmp_path):
    out = tmp_path / "out"
    overrides = settings(tiny_bert, reviews, "full", output_dir=out)
    assert classify(overrides, kill_at=5)[0] == -signal.SIGKILL
    checkpoint = out.with_name("out.partial") / "checkpoints" / "checkpoint-3"
    assert checkpoint.is_dir()

    changed = [*overrides[:-1], "train.learning_rate=1e-3", overrides[-1]]
    code, output = classify(changed)
    assert code == 2 and len(error_lines(output)) == 1, output[-3000:]
    assert "train.learning_rate: 0.005 then, 0.001 now" in output and "resume=false" in output
    assert checkpoint.is_dir(), "a refused run leaves the interrupted one as it was"

    code, output = classify([*changed[:-1], "resume=false", changed[-1]])
    assert code == 0, output[-3000:]
    log = json.loads((out / "metrics.json").read_text())["training"]["log_history"]
    assert [entry["learning_rate"] for entry in log if entry.get("step") == 2] == [1e-3], "trained anew at 1e-3"
    assert_finished(out)

    before = (out / "metrics.json").read_bytes()
    code, output = classify(overrides)
    assert code == 2 and len(error_lines(output)) == 1, output[-3000:]
    assert "exists: pass overwrite_output_dir=true" in error_lines(output)[0]
    assert (out / "metrics.json").read_bytes() == before


def check_consistent(out: Path) -> None:
    """metrics.json, the card and the model agree with predictions.jsonl: one run's folder, not a mix."""
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for split in ("validation", "test"):
        in_split = [row for row in rows if row["split"] == split]
        accuracy = sum(row["prediction"] == row["label"] for row in in_split) / len(in_split)
        assert metrics["metrics"][split]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    card = {(result.dataset_split, result.metric_type): result.metric_value
            for result in ModelCard.load(out / "README.md").data.eval_results}
    assert card[("test", "accuracy")] == pytest.approx(metrics["metrics"]["test"]["accuracy"], abs=1e-4)
    classifier = pipeline("text-classification", model=str(out), top_k=None)
    for row, scores in zip(rows, classifier([row["text"] for row in rows])):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(row["scores"], abs=2e-6), row["text"]


def test_two_runs_on_one_output_folder_do_not_mix(tiny_bert, reviews, tmp_path):
    out = tmp_path / "out"
    runs = [start(settings(tiny_bert, reviews, "full", f"train.seed={seed}", f"train.learning_rate={rate}",
                           "overwrite_output_dir=true", output_dir=out))
            for seed, rate in ((1, 5e-3), (2, 2e-3))]
    for run in runs:
        run.join()
    outputs = [run.log.read_text() for run in runs]
    assert sorted(run.exitcode for run in runs) == [0, 2], outputs
    winner, loser = sorted(range(2), key=lambda i: runs[i].exitcode)
    errors = error_lines(outputs[loser])
    assert len(errors) == 1 and f"being written by another run (pid {runs[winner].pid})" in errors[0], errors
    error_lines(outputs[winner])  # no traceback either
    assert json.loads((out / "metrics.json").read_text())["seed"] == winner + 1
    check_consistent(out)
    assert_finished(out)


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    with RunFolder(tmp_path / "out", overwrite=True):
        with pytest.raises(UserError, match=f"is being written by another run \\(pid {os.getpid()}\\)"):
            RunFolder(tmp_path / "out", overwrite=True).__enter__()
    with RunFolder(tmp_path / "out", overwrite=True) as folder:  # the lock went with the first run
        folder.commit()


# The hook points RunFolder.commit passes: a fresh OUT, a replaced OUT by exchange, and by the two-rename fallback.
TO_STAGING = ["checkpoints moved aside", "marker deleted"]
COMMIT_STEPS = {"fresh": [*TO_STAGING, "renamed"], "exchange": [*TO_STAGING, "exchanged", "old moved aside"],
                "fallback": [*TO_STAGING, "old moved aside", "renamed"]}
DIED = 3


def _commit_child(out: str, new: str, die_at: str, exchange: bool, log: str) -> None:
    """A run that replaces OUT by `new`'s files, dying (os._exit) right after commit step `die_at`."""
    _redirect_output(log)
    from hf_transfer import run_folder

    def after_step(step):
        if step == die_at:
            os._exit(DIED)

    run_folder.RunFolder._after_step = staticmethod(after_step)
    if not exchange:
        run_folder._exchange = lambda a, b: False
    with run_folder.RunFolder(out, overwrite=True, settings={"run": "new"}) as folder:
        shutil.copytree(new, folder.staging, dirs_exist_ok=True)
        (folder.checkpoints / "checkpoint-10").mkdir(parents=True)
        (folder.checkpoints / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 10}')
        folder.commit()


def tree(folder: Path) -> dict[str, str] | None:
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def old_and_new(tiny_bert, reviews, tmp_path_factory):
    """Two finished run folders of different seeds: the one at OUT and the one replacing it."""
    root = tmp_path_factory.mktemp("old-and-new")
    for name, seed in (("old", 1), ("new", 2)):
        code, output = classify(settings(tiny_bert, reviews, "full", f"train.seed={seed}", output_dir=root / name))
        assert code == 0, output[-3000:]
    check_consistent(root / "old")
    return root / "old", root / "new"


@pytest.mark.parametrize("path", COMMIT_STEPS)
def test_a_replace_killed_between_any_two_steps_leaves_a_complete_folder(path, old_and_new, tmp_path):
    old, new = old_and_new
    for die_at in COMMIT_STEPS[path]:
        out = tmp_path / die_at.replace(" ", "-") / "out"
        out.parent.mkdir()
        if path != "fresh":
            shutil.copytree(old, out)
        log = tmp_path / "commit.log"
        process = CONTEXT.Process(target=_commit_child, args=(str(out), str(new), die_at, path != "fallback", str(log)))
        process.start()
        process.join()
        assert process.exitcode == DIED, log.read_text()[-3000:]
        if path == "fallback" and die_at == "old moved aside":
            # the one window without an atomic exchange: OUT is gone and the old folder waits beside it ...
            assert tree(out) is None and tree(out.with_name("out.replaced")) == tree(old)
            with pytest.raises(UserError, match="exists"):  # ... until the next run on OUT puts it back
                RunFolder(out, overwrite=False).__enter__()
        assert tree(out) in ([tree(new)] if path == "fresh" and die_at == "renamed" else
                             [tree(old), tree(new)] if path != "fresh" else [None]), die_at

        with RunFolder(out, overwrite=True) as folder:  # the next run cleans up
            shutil.copytree(new, folder.staging, dirs_exist_ok=True)
            folder.commit()
        assert tree(out) == tree(new)
        assert sorted(p.name for p in out.parent.iterdir()) == [".out.lock", "out"], die_at
