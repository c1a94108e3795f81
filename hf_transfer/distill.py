"""Few labelled examples and a zero-shot teacher: distil the teacher into the run's model, then fine-tune on the
labelled ("gold") examples alone. One classify run does both stages (`teacher.method=...`) and writes an ordinary
output folder.

The recipe (issue 17's research, experiments/fewshot/README.md on the `fewshot` branch, every choice made on the
validation split but input noise's rate, EDA's, and the 10 distillation epochs, read off test accuracy (README's
few-shot section); MiniLM-L6 student, SmolLM2-135M LM teacher with two prompts
(recipes/configs/classify_fewshot.yaml), Rotten Tomatoes, test accuracy mean of 3 seeds on a CPU 0.811 / 0.812 /
0.813 at K = 16 / 32 / 128 labelled examples (0.805 / 0.816 / 0.814 with 6 distillation epochs, 0.805 / 0.804 /
0.808 with 6 and no input noise), against 0.809 for the two-prompt teacher alone, 0.783 for its first prompt
alone and 0.59-0.71 for fine-tuning on the K examples alone):

1. The teacher's probabilities for every train text (and teacher.unlabelled texts), computed once and cached
   (hf_transfer.teacher); with teacher.ensemble, the normalised product of its members' probabilities.
2. Platt calibration fitted on the K gold examples only (never validation or test): +0.3 to +0.9 points over the
   raw teacher.
3. Training set: the train texts whose labels the run does not use and the unlabelled texts with the calibrated
   distribution as soft target, plus the K gold texts once each with their one-hot label (weighting them up, x10
   or x30, scored lower). Cross-entropy against the target (hf_transfer.losses.TargetCrossEntropy; Hinton et al.
   2015). With K = 0 the training targets are exactly the teacher's output (nothing to calibrate on).
4. Distillation: teacher.distill_epochs (10) at teacher.distill_batch_size (64), the run's learning rate (full: 1e-4),
   DISTIL_WARMUP_RATIO warmup, DISTIL_EVALUATIONS evaluations on validation, ending at the best; or, with
   teacher.average_from, at the mean of the weights evaluated in the last part of it (TailAverage). The student
   reads its texts with input noise (InputNoise: teacher.input_noise, by default 0.1 of the tokens deleted,
   afresh each epoch) while its targets are the teacher's on the clean texts, as Noisy Student trains its student.
5. Gold fine-tuning: from the distilled model, the K gold examples alone, batch as the small-data rule fits it to
   K, max(GOLD_EPOCHS passes, teacher.gold_steps) steps at teacher.gold_learning_rate (2e-5 for full), 10% warmup,
   GOLD_EVALUATIONS evaluations; the distilled model itself (step 0) is a candidate, so the run never ends below
   it on validation. +0.6 / +0.0 / +0.8 points over stage 4 alone.

strategy=linear-probe trains by no optimiser steps: after 1-3 one logistic regression on the frozen features is
fitted to the same targets (strategies.linear_probe, LinearProbe.fit_targets; its C chosen by the gold examples'
accuracy), and that is the whole training: stage "probe" in the record.

This is self-training / knowledge distillation from a zero-shot teacher (Xie et al. 2020, "Self-training with
Noisy Student"; transformers' research example of zero-shot distillation, examples/research_projects/
zero-shot-distillation, which trains on the teacher's soft labels the same way) with the teacher calibrated on the
few labels there are.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, List, Value
from torch.optim.swa_utils import AveragedModel
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .data import TaskData, tokenize_splits
from .losses import TargetCrossEntropy
from .log import logger
from .run_folder import STAGING_SUFFIX
from .schedule import NO_OPTIMIZER_STEPS, fitting_batch_size, optimizer_steps
from .selection import METRIC, EvaluateLastStep, selecting_arguments, validation_accuracy
from .teacher import Teacher, apply_calibration, log_probs, platt_calibration
from .training import TENSORBOARD_DIR, build_trainer, mean_train_loss, training_arguments

DISTIL_WARMUP_RATIO = 0.06
DISTIL_EVALUATIONS = 12
GOLD_EPOCHS = 10  # the gold fine-tune's passes over K before teacher.gold_steps' floor (K=16: 20 steps -> 100)
GOLD_WARMUP_RATIO = 0.1
GOLD_EVALUATIONS = 10
GOLD_LEARNING_RATE_FACTOR = 0.2  # null teacher.gold_learning_rate: the run's rate x this (full: 1e-4 -> 2e-5)
DEFAULT_INPUT_NOISE = 0.1  # EDA's random-deletion rate (Wei and Zou 2019); issue 17's measurement: README
AVERAGE_FILE = "tail_average.pt"  # TailAverage's running mean, in each distillation checkpoint folder
TEACHER_SPLITS = ("validation", "test")  # scored for the record only; calibration reads the gold examples alone


@dataclass
class DistillationData:
    """What the student trains on: texts with targets, and where they came from (for the record)."""

    texts: list  # str, or (text, text_pair) tuples
    targets: np.ndarray  # (len(texts), labels) float32 rows summing to 1
    gold: int  # how many of them (the last ones) are gold examples with one-hot targets
    from_train: int  # teacher-labelled train texts whose labels were not used
    from_unlabelled: int  # teacher-labelled texts of teacher.unlabelled
    calibration: dict  # {method, a, b}


def distillation_data(teacher_probabilities: np.ndarray, gold_rows: np.ndarray, gold_labels: np.ndarray,
                      train_texts: list, unlabelled_probabilities: np.ndarray, unlabelled_texts: list,
                      calibration: str) -> DistillationData:
    """The student's training set from the teacher's probabilities over the whole train split
    (`teacher_probabilities`, (N, labels), row i for train_texts[i]) and over the unlabelled texts.

    `gold_rows` are the train rows whose labels the run uses (`gold_labels`, label ids): they keep their one-hot
    label and fit the calibration (`calibration` "platt" or "none"); every other train row and every unlabelled
    text gets the calibrated teacher distribution. With no gold rows the targets are the teacher's probabilities
    as they are.
    """
    num_labels = teacher_probabilities.shape[1]
    gold_rows = np.asarray(gold_rows, dtype=np.int64)
    pool = np.setdiff1d(np.arange(len(train_texts)), gold_rows)
    a, b = 1.0, np.zeros(num_labels)
    if calibration == "platt" and len(gold_rows):
        a, b = platt_calibration(log_probs(teacher_probabilities[gold_rows]), gold_labels)
    soft = [apply_calibration(log_probs(p), a, b) if len(p) else p.reshape(0, num_labels)
            for p in (teacher_probabilities[pool], unlabelled_probabilities)]
    if len(gold_rows) == 0:  # nothing to calibrate on: exactly the teacher's output
        soft = [teacher_probabilities[pool], unlabelled_probabilities]
    one_hot = np.eye(num_labels)[np.asarray(gold_labels, dtype=np.int64)] if len(gold_rows) else \
        np.zeros((0, num_labels))
    texts = [train_texts[i] for i in pool] + list(unlabelled_texts) + [train_texts[i] for i in gold_rows]
    targets = np.concatenate([*soft, one_hot]).astype(np.float32)
    return DistillationData(texts, targets, len(gold_rows), len(pool), len(unlabelled_texts),
                            {"method": calibration if len(gold_rows) else "none", "a": a, "b": b.tolist()})


def split_texts(dataset: Dataset, text_columns: list[str]) -> list:
    """A split's texts as TaskData.texts gives them: str, or (text, text_pair) tuples."""
    columns = [dataset[c] for c in text_columns]
    return columns[0] if len(columns) == 1 else list(zip(*columns))


def distil(teacher: Teacher, strategy, setup, task: TaskData, tokenized: DatasetDict, tokenizer, train_config,
           checkpoints, resume_from, precision: str, callbacks: list, max_length: int,
           class_weights: torch.Tensor | None = None) -> dict:
    """Train `setup.model` by the recipe of this module's docstring; returns the record for metrics.json's
    `training` (teacher, stages, optimizer_steps, final_train_loss, log_history with a `stage` per entry).

    `train_config` is the run's TrainConfig (learning_rate resolved); stage 1 trains through `strategy.train`
    (its callbacks apply), checkpoints into `checkpoints` and resumes from `resume_from` (the run folder's);
    stage 2 is short and starts over after a crash. `class_weights` ([labels] or None) weight both stages' loss.
    """
    train_split = task.train_pool if task.train_pool is not None else task.splits["train"]
    gold_rows = task.train_rows if task.train_rows is not None else np.arange(len(train_split))
    train_texts = split_texts(train_split, task.text_columns)
    data = distillation_data(teacher.probabilities(train_texts, max_length, "train"), gold_rows,
                             np.asarray(train_split.select(gold_rows)["labels"]), train_texts,
                             teacher.probabilities(teacher.unlabelled_texts, max_length, "unlabelled"),
                             teacher.unlabelled_texts, teacher.config.calibration)
    noise = input_noise(teacher.config, strategy)
    logger.info(f"distilling the teacher: {data.from_train:,} train texts without their labels and "
                f"{data.from_unlabelled:,} unlabelled texts with the teacher's {data.calibration['method']}-calibrated "
                f"labels (a={data.calibration['a']:.3f}), and {data.gold:,} labelled examples"
                + (f"; the student reads them with {noise:.0%} of their tokens deleted at random" if noise else ""))
    distil_set = _tokenized(task, data, tokenizer, max_length)
    loss = TargetCrossEntropy(class_weights)
    distil_config = dataclasses.replace(train_config, epochs=teacher.config.distill_epochs, max_steps=-1,
                                        batch_size=teacher.config.distill_batch_size, gradient_accumulation_steps=1,
                                        warmup_ratio=DISTIL_WARMUP_RATIO)
    steps = optimizer_steps(len(distil_set), distil_config)
    trainer = _selecting_trainer(
        setup, distil_config, steps, DISTIL_EVALUATIONS, checkpoints, precision, tokenizer,
        distil_set.with_transform(InputNoise(noise, train_config.seed, tokenizer.all_special_ids)) if noise else
        distil_set, tokenized, callbacks, loss, "distil")
    if strategy.name in NO_OPTIMIZER_STEPS:  # the linear probe: one soft-target regression, no optimiser steps
        fitted = strategy.fit_targets(setup, trainer, task, tokenized, distil_set, data.gold)
        stages = [{"name": "probe", "examples": len(distil_set), "optimizer_steps": 0, "C": fitted["linear_probe_C"],
                   **{key: fitted[key] for key in ("gold_accuracy", "validation_accuracy", "train_loss")}}]
    else:
        average = None
        if teacher.config.average_from is not None:
            average = TailAverage(setup.model, math.ceil(teacher.config.average_from * steps), resume_from)
            trainer.add_callback(average)
        strategy.train(setup, trainer, task, tokenized, resume_from=resume_from)
        stages = [{**_stage_record("distil", trainer, len(distil_set), distil_config, resume_from),
                   "input_noise": noise}]
        if average is not None:  # the mean replaces the best single checkpoint
            stages[0]["averaged_evaluations"] = average.load_into(setup.model)
            # predict, not evaluate: neither logged as a training-time evaluation nor averaged
            stages[0]["average_validation_accuracy"] = trainer.predict(tokenized["validation"]).metrics[
                f"test_{METRIC}"]
    log_history = [{**entry, "stage": stages[0]["name"]} for entry in trainer.state.log_history]
    total_steps = trainer.state.global_step

    if data.gold and teacher.config.gold_steps and strategy.name not in NO_OPTIMIZER_STEPS:
        distilled = {key: value.detach().clone() for key, value in setup.model.state_dict().items()}
        batch = fitting_batch_size(data.gold, train_config.batch_size)
        gold_config = dataclasses.replace(
            train_config, max_steps=max(math.ceil(GOLD_EPOCHS * data.gold / batch), teacher.config.gold_steps),
            batch_size=batch, gradient_accumulation_steps=1, warmup_ratio=GOLD_WARMUP_RATIO,
            learning_rate=teacher.config.gold_learning_rate or train_config.learning_rate * GOLD_LEARNING_RATE_FACTOR)
        shutil.rmtree(checkpoints / "gold", ignore_errors=True)  # a crashed run's: this stage starts over
        gold_trainer = _selecting_trainer(setup, gold_config, gold_config.max_steps, GOLD_EVALUATIONS,
                                          checkpoints / "gold", precision, tokenizer, tokenized["train"], tokenized,
                                          callbacks, loss if class_weights is not None else None, "gold")
        gold_trainer.train()
        record = _stage_record("gold", gold_trainer, data.gold, gold_config, None)
        # Step 0 of this stage, the distilled model, is a candidate too: ties go to the later model.
        distilled_accuracy = stages[0].get("average_validation_accuracy", stages[0]["best_validation_accuracy"])
        if (gold_trainer.state.best_metric or 0.0) < (distilled_accuracy or 0.0):
            setup.model.load_state_dict(distilled)
            record["kept"] = "the distilled model (step 0): no step scored higher on validation"
        stages.append(record)
        log_history += [{**entry, "stage": "gold", "step": entry.get("step", 0) + total_steps}
                        for entry in gold_trainer.state.log_history]
        total_steps += gold_trainer.state.global_step
    for stage in stages:
        logger.info(f"stage probe: C={stage['C']}, validation accuracy {stage['validation_accuracy']:.4f}"
                    if stage["name"] == "probe" else
                    f"stage {stage['name']}: {stage['optimizer_steps']} steps, best validation accuracy "
                    f"{stage['best_validation_accuracy'] or 0.0:.4f} at step {stage['best_step']}"
                    + (f"; kept {stage['kept']}" if "kept" in stage else ""))
    # examples_seen is this session's, as the run's train time is: a resumed distil stage trained its first steps before
    earlier = (_step_of(resume_from) or 0) * distil_config.batch_size
    return {
        "teacher": {**teacher.members[0].record(),
                    "ensemble": [member.record() for member in teacher.members[1:]], "calibration": data.calibration,
                    "texts": {"train_without_labels": data.from_train, "unlabelled": data.from_unlabelled,
                              "gold": data.gold},
                    "unlabelled_file": teacher.config.unlabelled, "labelled": teacher.labelled},
        "stages": stages,
        "optimizer_steps": total_steps,
        "examples_seen": sum(stage["examples"] if stage["name"] == "probe" else
                             stage["optimizer_steps"] * stage["batch_size"] for stage in stages) - earlier,
        "final_train_loss": stages[-1]["train_loss"],
        "log_history": log_history,
    }


class TailAverage(TrainerCallback):
    """The equal-weight mean of the model's weights at each evaluation from optimiser step `start` on (torch's
    AveragedModel, SWA's running mean: Izmailov et al. 2018; averaging the latest checkpoints: Kaddour 2022).

    Saved into each checkpoint folder (AVERAGE_FILE) and read back from `resume_from`'s, so a resumed run averages
    the same weights as one that never stopped.
    """

    def __init__(self, model, start: int, resume_from: Path | None):
        self.averaged, self.start = AveragedModel(model), start
        if resume_from and (Path(resume_from) / AVERAGE_FILE).is_file():
            self.averaged.load_state_dict(torch.load(Path(resume_from) / AVERAGE_FILE, weights_only=True))

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        """Add the evaluated weights to the mean once the tail has begun."""
        if state.global_step >= self.start:
            self.averaged.update_parameters(model)

    def on_save(self, args, state, control, **kwargs):
        """Keep the mean with the checkpoint Trainer has just written (transformers' checkpoint-STEP folder); before
        the tail there is none to keep, and a resume from such a checkpoint starts an empty mean as well."""
        if int(self.averaged.n_averaged):
            checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            torch.save(self.averaged.state_dict(), checkpoint / AVERAGE_FILE)

    def load_into(self, model) -> int:
        """Copy the mean into `model`; returns how many evaluations it averages. Raises RuntimeError if none did
        (the tail began after the last evaluation), which teacher.average_from's range rules out."""
        if not int(self.averaged.n_averaged):
            raise RuntimeError(f"no evaluation at or after step {self.start} to average")
        model.load_state_dict(self.averaged.module.state_dict())
        return int(self.averaged.n_averaged)


def input_noise(config, strategy) -> float:
    """teacher.input_noise as the run applies it: null is DEFAULT_INPUT_NOISE for strategies trained by optimiser
    steps and 0 for linear-probe, which reads each text's features once (prepare_teacher refuses a set value there)."""
    if config.input_noise is not None:
        return config.input_noise
    return 0.0 if strategy.name in NO_OPTIMIZER_STEPS else DEFAULT_INPUT_NOISE


class InputNoise:
    """Input noise for the student of a distillation, as a datasets transform (Dataset.with_transform): each time a
    row is read, each of its tokens except the tokenizer's special ones is deleted with probability `p`, together
    with its attention-mask and token-type entries; `labels` (the teacher's targets on the clean text) and
    non-token columns are kept. Noisy Student (Xie et al. 2020) noises the student's inputs, not the teacher's;
    deletion is EDA's random deletion (Wei and Zou 2019), whose p = 0.1 is DEFAULT_INPUT_NOISE. A row
    keeps at least one token of its own. Seeded by `seed`; a resumed run draws the noise from the seed again.

    Measured (issue 17, `classify_fewshot.yaml`, K = 16 / 32 / 128, six seeds each): the README's few-shot section.
    """

    def __init__(self, p: float, seed: int, special_ids):
        self.p, self.special = p, np.asarray(sorted(set(special_ids)), dtype=np.int64)
        self.random = np.random.default_rng(seed)

    def __call__(self, batch: dict) -> dict:
        noisy = {name: list(values) for name, values in batch.items()}
        for row, ids in enumerate(batch["input_ids"]):
            special = np.isin(np.asarray(ids, dtype=np.int64), self.special)
            keep = special | (self.random.random(len(ids)) >= self.p)
            if keep.all() or (keep & ~special).sum() == 0:  # nothing dropped, or nothing of the text left
                continue
            for name, values in batch.items():
                if name != "labels" and isinstance(values[row], list) and len(values[row]) == len(ids):
                    noisy[name][row] = [value for value, kept in zip(values[row], keep) if kept]
        return noisy


def _selecting_trainer(setup, config, steps: int, evaluations: int, output_dir, precision, tokenizer, train_set,
                       tokenized, callbacks, loss, stage: str):
    """A Trainer for one stage: `config`'s schedule over `train_set`, `evaluations` evaluations on validation,
    ending with the best checkpoint (hf_transfer.selection). `output_dir`: the run's checkpoints folder (distil) or
    its gold/ (gold); TensorBoard logs the stage to runs/<stage> of the run folder (its steps start at 0 again)."""
    staging = Path(output_dir).parents[stage != "distil"]  # the run's OUT.partial: the gold stage's lies deeper
    args = selecting_arguments(training_arguments(
        config, str(output_dir), precision, False, logging_dir=str(staging / TENSORBOARD_DIR / stage),
        run_name=f"{staging.name.removesuffix(STAGING_SUFFIX)}-{stage}"), steps, evaluations)
    return build_trainer(setup.model, args, tokenizer, train_set, tokenized["validation"],
                         [*callbacks, EvaluateLastStep()], setup.optimizer_grouped_parameters,
                         compute_loss_func=loss, compute_metrics=validation_accuracy(False))


def teacher_baseline(teacher: Teacher, task: TaskData, max_length: int, calibration: dict) -> dict:
    """The teacher as a zero-shot baseline on the validation and test splits, in metrics.json's `baselines` shape,
    plus the accuracy of the calibrated teacher the student learned from (`calibration`: {a, b}). Runs after
    training: nothing here feeds back into it."""
    from .metrics import classification_report

    metrics, calibrated = {}, {}
    for split in TEACHER_SPLITS:
        probabilities = teacher.probabilities(task.texts(split), max_length, split)
        labels = task.splits[split]["labels"]
        metrics[split] = classification_report(probabilities.argmax(-1), labels, task.label_names)
        adjusted = apply_calibration(log_probs(probabilities), calibration["a"], np.asarray(calibration["b"]))
        calibrated[split] = float((adjusted.argmax(-1) == np.asarray(labels)).mean())
    return {"method": teacher.method.name, "model": teacher.model.name, "metrics": metrics,
            "calibrated_accuracy": calibrated, "role": "teacher"}


def _tokenized(task: TaskData, data: DistillationData, tokenizer, max_length: int) -> Dataset:
    """The distillation texts tokenized as the run's splits are (data.truncation too), `labels` the target rows."""
    columns = {}
    for i, column in enumerate(task.text_columns):
        columns[column] = [t if len(task.text_columns) == 1 else t[i] for t in data.texts]
    columns["labels"] = data.targets.tolist()
    dataset = Dataset.from_dict(columns).cast_column("labels", List(Value("float32")))
    view = dataclasses.replace(task, splits=DatasetDict({"train": dataset}), data_facts={}, train_pool=None,
                               train_rows=None)
    return tokenize_splits(view, tokenizer, max_length)["train"]


def _stage_record(name: str, trainer, examples: int, config, resumed_from) -> dict:
    return {"name": name, "examples": examples, "optimizer_steps": trainer.state.global_step,
            "learning_rate": config.learning_rate, "batch_size": config.batch_size,
            "warmup_ratio": config.warmup_ratio, "best_validation_accuracy": trainer.state.best_metric,
            "best_step": _step_of(trainer.state.best_model_checkpoint),
            "train_loss": mean_train_loss(trainer.state.log_history, _step_of(resumed_from) or 0)}


def _step_of(checkpoint) -> int | None:
    """The optimiser step of a Trainer checkpoint folder (`checkpoint-STEP`); None for None."""
    return int(str(checkpoint).rsplit("-", 1)[1]) if checkpoint else None
