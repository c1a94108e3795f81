"""Selection on the validation split: evaluate a fixed number of times during training and end with the
checkpoint of the best validation accuracy (transformers' load_best_model_at_end), not the last one.

With few examples the last step is a noisy pick: Mosbach et al. 2021 and Zhang et al. 2021 select on held-out
data, and issue 17's measurements do so for every few-shot arm. Ties go to the earliest checkpoint
(Trainer keeps a new best only when it is strictly better).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from transformers import TrainerCallback, TrainingArguments

from .errors import UserError
from .schedule import NO_OPTIMIZER_STEPS

METRIC = "accuracy"
IGNORED_LABEL = -100  # the label torch's cross-entropy and the token collators skip


def selects_on_validation(select_best: bool | None, schedule_changes, strategy: str, task, teacher) -> bool:
    """Whether a classify run ends with its best validation checkpoint (train.select_best): as set, or (null) when
    the small-data rule changed the schedule and the task has validation examples. A teacher's stages select on
    their own (hf_transfer.distill), so the run's own Trainer does not. Raises UserError for select_best=true
    where nothing can be selected (no validation examples, a strategy without optimiser steps)."""
    validation = len(task.splits["validation"]) if "validation" in task.splits else 0
    if select_best and (not validation or strategy in NO_OPTIMIZER_STEPS):
        why = "there are no validation examples" if not validation else f"strategy={strategy} has no optimiser steps"
        raise UserError(f"train.select_best=true selects a checkpoint on the validation split, but {why}: set "
                        "train.select_best=false")
    if teacher is not None:
        return False
    if select_best is None:
        return bool(schedule_changes) and validation > 0 and strategy not in NO_OPTIMIZER_STEPS
    return select_best


def selecting_arguments(args: TrainingArguments, optimizer_steps: int, evaluations: int,
                        keep_optimizer_state: bool = True) -> TrainingArguments:
    """`args` evaluating every ceil(optimizer_steps / evaluations) steps and saving a checkpoint at each evaluation,
    so that the best one (validation accuracy, from `validation_accuracy`) is loaded when training ends.

    Checkpoints go to args.output_dir as before; save_total_limit=1 keeps the best and the latest (Trainer keeps
    the best as well). keep_optimizer_state=False saves weights only (save_only_model): smaller, not resumable.
    """
    interval = max(1, math.ceil(optimizer_steps / evaluations))
    return dataclasses.replace(args, eval_strategy="steps", eval_steps=interval, save_strategy="steps",
                               save_steps=interval, save_total_limit=1, load_best_model_at_end=True,
                               metric_for_best_model=METRIC, greater_is_better=True,
                               save_only_model=not keep_optimizer_state)


class EvaluateLastStep(TrainerCallback):
    """Evaluates (and so may select) the last step as well, which the evaluation interval need not reach."""

    def on_step_end(self, args, state, control, **kwargs):
        """Ask for an evaluation at the last step when the run keeps its best checkpoint."""
        if state.global_step >= state.max_steps and args.load_best_model_at_end:
            control.should_evaluate = True


def validation_accuracy(multi_label: bool):
    """A Trainer `compute_metrics`: {"accuracy"} of the evaluated logits (argmax; multi-label: every label's sigmoid
    on the right side of 0.5, i.e. exact match), as hf_transfer.metrics scores it. A tagger's (batch, tokens,
    tags) logits are scored on its labelled tokens only (each word's first subword), not on the positions labelled
    -100 (later subwords, special tokens, padding), which no checkpoint gets right."""

    def compute(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        labels = np.asarray(prediction.label_ids)
        if multi_label:
            return {METRIC: float(((np.asarray(logits) > 0) == (labels > 0.5)).all(-1).mean())}
        right = np.asarray(logits).argmax(-1) == labels
        return {METRIC: float(right[labels != IGNORED_LABEL].mean())}

    return compute
