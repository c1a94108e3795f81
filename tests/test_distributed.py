"""The classify recipe in 2 CPU processes (DDP over gloo) with recipes/accelerate/cpu-2proc.yaml.

2 processes with batch 8, 1 process with batch 16, and 1 process with batch 8 accumulated twice see the same 16
examples per optimiser step (hf_transfer.batching.LengthBucketedSampler), so with dropout off they must log
the same loss curve. The two processes also run each batch as micro-batches under a small token budget
(train.max_batch_tokens), synchronising gradients once per step.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from conftest import VOCAB, sentiment_rows, write_csv
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    model = folder / "bert"
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(model)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    torch.manual_seed(0)
    BertForSequenceClassification(config).bert.save_pretrained(model)
    data = write_csv(folder / "reviews.csv", sentiment_rows(200))
    return folder, model, data


def overrides(model, data, output_dir, *extra):
    return [f"model={model}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=64", "train.max_steps=5", "train.learning_rate=3e-3", "train.warmup_ratio=0",
            "train.precision=fp32", "train.logging_steps=1", f"output_dir={output_dir}", *extra]


def losses(metrics: dict) -> list[float]:
    return [entry["loss"] for entry in metrics["training"]["log_history"] if "loss" in entry]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_cpu_processes_log_the_loss_curve_of_one_process_at_the_same_global_batch(setup):
    folder, model, data = setup
    out = folder / "two-processes"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"), "--main_process_port", str(free_port()),
               str(ROOT / "recipes" / "classify.py"), *overrides(model, data, out, "train.batch_size=8",
                                                                 "train.max_batch_tokens=24")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((out / "metrics.json").read_text())
    assert two["compute"]["processes"] == 2
    assert two["training"]["batch_size"] == 16 and two["training"]["optimizer_steps"] == 5

    one = run_classify(load_config(ClassifyConfig, None, overrides(model, data, folder / "one", "train.batch_size=16")))
    accumulated = run_classify(load_config(ClassifyConfig, None, overrides(
        model, data, folder / "accumulated", "train.batch_size=8", "train.gradient_accumulation_steps=2")))
    reference = losses({"training": one.training})
    assert len(reference) == 5 and len(set(reference)) == 5
    assert losses(two) == pytest.approx(reference, rel=1e-4)
    assert losses({"training": accumulated.training}) == pytest.approx(reference, rel=1e-4)
    # Evaluation gathers both processes' predictions back into dataset order: the same test metrics.
    assert two["metrics"]["test"]["accuracy"] == pytest.approx(one.metrics["test"]["accuracy"])
    assert two["metrics"]["test"]["num_examples"] == one.metrics["test"]["num_examples"]


def test_two_cpu_processes_fine_tune_through_the_declared_mean_pooling(setup):
    """pooling=auto on a checkpoint declaring mean: the pooled classifier never reads BERT's pooler; with gradient
    checkpointing DDP does not look for parameters without a gradient, and fails on any that train."""
    folder, model, data = setup
    pooled = folder / "bert-mean"
    if not pooled.exists():
        shutil.copytree(model, pooled)
        (pooled / "1_Pooling").mkdir()
        (pooled / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    out = folder / "two-processes-mean"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"), "--main_process_port", str(free_port()),
               str(ROOT / "recipes" / "classify.py"), *overrides(pooled, data, out, "train.batch_size=8",
                                                                 "train.gradient_checkpointing=true",
                                                                 "strategy_options.pooling=auto")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((out / "metrics.json").read_text())
    assert two["compute"]["processes"] == 2 and two["strategy"]["options"]["pooling"] == "mean"
    one = run_classify(load_config(ClassifyConfig, None, overrides(
        pooled, data, folder / "one-mean", "train.batch_size=16", "strategy_options.pooling=auto")))
    assert losses(two) == pytest.approx(losses({"training": one.training}), rel=1e-4)


def test_a_refused_run_stops_every_process_with_the_same_one_line(setup):
    """Only the main process checks the output folder; it tells the other, which must not train on alone until
    a gloo timeout (nor resume from another checkpoint)."""
    folder, model, data = setup
    out = folder / "exists"
    out.mkdir()
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"), "--main_process_port", str(free_port()),
               str(ROOT / "recipes" / "classify.py"), *overrides(model, data, out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=300)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("hf-transfer: error:")]
    assert errors and all("exists: pass overwrite_output_dir=true" in line for line in errors), done.stderr[-3000:]
    # torchrun ends the other process once one exits with 2, so one or two lines; neither process trained on
    assert "[rank0]: Traceback" not in done.stderr and "[rank1]: Traceback" not in done.stderr, done.stderr[-3000:]
    assert "tokenizing" not in done.stderr and list(out.iterdir()) == []
