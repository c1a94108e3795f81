"""What a pretraining run records: its RunResult (metrics.json, kind "pretraining") and the flat summary that
run_pretraining returns and the recipe prints."""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass
from pathlib import Path

from transformers import Trainer

from ..backbones import ResolvedModel, family_of
from ..config import PretrainConfig, to_dict
from ..results import RunResult
from ..runtime import hardware_description, peak_memory_mb
from .architectures import Architecture
from .objectives import OBJECTIVES

# run_pretraining's returned keys -> their places in the RunResult. train_loss is this session's mean,
# final_train_loss the last logging window's; tokens_seen counts all sessions; tokens_per_second, train_seconds and
# wall_seconds are this session's; perplexity is of masked tokens, next tokens or span targets, by objective.
SUMMARY_KEYS = {
    "architecture": "model.name", "objective": "strategy.objective", "parameters": "parameters.total",
    "vocab_size": "model.vocab_size", "train_blocks": "task.split_sizes.train", "eval_blocks": "task.split_sizes.eval",
    "global_step": "training.optimizer_steps", "resumed_from_step": "training.resumed_from_step",
    "train_loss": "training.train_loss", "final_train_loss": "training.final_train_loss",
    "eval_loss": "metrics.eval.loss", "perplexity": "metrics.eval.perplexity", "tokens_seen": "training.tokens_seen",
    "tokens_per_second": "compute.train_tokens_per_s", "train_seconds": "compute.train_time_s",
    "wall_seconds": "compute.total_time_s", "precision": "compute.precision", "device": "compute.device",
}
MAX_LOG_LOSS = 700.0  # exp(700) is near float64's limit; a diverged run reports a huge perplexity, not an overflow


@dataclass(frozen=True)
class SessionFacts:
    """What this session (one invocation, maybe resumed) measured; times in seconds, losses in nats per token."""

    resumed_from_step: int  # the checkpoint's step, 0 for a fresh run
    train_loss: float  # mean over this session's steps
    train_seconds: float
    tokens: int  # non-pad input tokens this session trained on
    eval_seconds: float
    wall_seconds: float


def pretraining_result(config: PretrainConfig, architecture: Architecture, checkpoint: ResolvedModel | None,
                       files: list[Path], split_sizes: dict[str, int], trainer: Trainer, tokenizer, eval_loss: float,
                       session: SessionFacts, processes: int) -> RunResult:
    """The run's RunResult; `split_sizes` counts the train and eval blocks, `eval_loss` is in nats per token."""
    model, state = trainer.model, trainer.state
    logged_losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    total, trainable = model.num_parameters(), model.num_parameters(only_trainable=True)
    return RunResult(
        kind="pretraining",
        model={"name": config.architecture, "location": checkpoint.location if checkpoint else None,
               "base_model": checkpoint.base_model if checkpoint else None, "model_type": architecture.model_type,
               "family": family_of(model.config).name, "pretrained": checkpoint is not None,
               "tokenizer": config.tokenizer or config.from_checkpoint or "trained on the corpus",
               "vocab_size": len(tokenizer)},
        strategy={"name": "pretraining", "objective": architecture.objective,
                  "description": OBJECTIVES[architecture.objective],
                  "transferred": "parameters" if checkpoint else "none",
                  "options": trainer.data_collator.options()},
        task={"dataset": config.corpus, "description": f"{len(files)} text file(s) cut into blocks of "
                                                       f"{config.max_seq_length} tokens",
              "files": [str(file) for file in files], "block_length": config.max_seq_length,
              "split_sizes": split_sizes},
        metrics={"eval": {"loss": eval_loss, "perplexity": math.exp(min(eval_loss, MAX_LOG_LOSS)),
                          "num_examples": split_sizes["eval"]}},
        parameters={"trainable": trainable, "total": total, "trainable_fraction": trainable / total},
        compute={
            "train_time_s": session.train_seconds,
            "train_tokens_per_s": session.tokens / session.train_seconds if session.train_seconds else 0.0,
            "eval_time_s": session.eval_seconds,
            "total_time_s": session.wall_seconds,
            "peak_memory_mb": peak_memory_mb(),
            "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
            "device": str(trainer.args.device),
            "hardware": hardware_description(),
            "processes": processes,
        },
        training={
            "epochs": config.epochs,
            "max_steps": config.max_steps,
            "learning_rate": config.learning_rate,
            "batch_size": config.batch_size * processes,
            "warmup_ratio": config.warmup_ratio,
            "weight_decay": config.weight_decay,
            "max_seq_length": config.max_seq_length,
            "optimizer_steps": state.global_step,
            "resumed_from_step": session.resumed_from_step,
            "train_loss": session.train_loss,
            "final_train_loss": logged_losses[-1] if logged_losses else None,  # mean over the last logging window
            "tokens_seen": state.num_input_tokens_seen,  # non-pad input tokens, over all sessions
            "log_history": state.log_history,
        },
        config=to_dict(config),
        seed=config.seed,
    )


def summary(result: RunResult, output_dir: Path) -> dict:
    """The flat dict run_pretraining returns: each SUMMARY_KEYS key read from its place in `result`, then
    output_dir and config."""
    def lookup(path: str):
        section, *keys = path.split(".")
        return functools.reduce(operator.getitem, keys, getattr(result, section))

    return {**{key: lookup(path) for key, path in SUMMARY_KEYS.items()}, "output_dir": str(output_dir),
            "config": result.config}
