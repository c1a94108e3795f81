"""A zero-shot teacher for a few-shot run: any hf_transfer.zeroshot method, its probabilities cached on disk and
calibrated on the run's labelled examples.

    teacher = prepare_teacher(config.teacher, config.model, task, dataset, strategy)  # or None
    probabilities = teacher.probabilities(texts, max_length)      # (texts, labels); computed once, then cached
    a, b = platt_calibration(log_probs(probabilities[gold]), gold_labels)
    calibrated = apply_calibration(log_probs(probabilities[pool]), a, b)

A teacher can be an ensemble (`teacher.ensemble`: more prompts of the same language model, or other zero-shot
methods): each member's label probabilities are computed and cached on their own, and the teacher's are the
normalised product of the members' (their log-probabilities summed: a product of experts, Hinton 2002; prompt
ensembling as in Schick & Schuetze 2021's PET, which combines several patterns), before calibration.

The cache: `$HF_TRANSFER_CACHE/teacher/<key>.npy` (default ~/.cache/hf_transfer/teacher), where the key is a
sha256 of a member's method, model, options (asset label descriptions filled in), the label names, max_length and
the texts themselves in order, so the same data set, split seed, teacher and options find the same file whatever
the run's subsample, seed or strategy (a study's runs share it). It is written whole (a temporary file renamed into
place) under a file lock: concurrent runs wait for the first one's labels instead of computing them twice. A
`<key>.json` beside it says what it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from .assets import cache_dir
from .config import TeacherConfig, to_dict
from .data import TaskData, read_text_records
from .errors import UserError
from .log import logger
from .schedule import NO_OPTIMIZER_STEPS
from .zeroshot import ZeroShotClassifier, get_method
from .zeroshot.descriptions import with_dataset_descriptions
from .zeroshot.run import as_text, check_labels, checked_model

# Platt scaling's pull toward the uncalibrated teacher (a=1, b=0), per labelled example: 0.01 x K x ((a - 1)^2 +
# |b - mean b|^2). Issue 17's research (experiments/fewshot/fewshot_lib.py): enough to keep K=16 fits sane.
PLATT_L2 = 0.01
PROBABILITY_FLOOR = 1e-12  # log(0) guard for teachers that give a label probability 0


def teacher_cache_dir() -> Path:
    """Where teacher probabilities are cached: beside the asset cache ($HF_TRANSFER_CACHE/teacher)."""
    return cache_dir().parent / "teacher"


@dataclass
class TeacherMember:
    """One zero-shot method and checkpoint of a teacher."""

    method: object  # a hf_transfer.zeroshot ZeroShotMethod, options checked
    model: object  # its ResolvedModel

    def record(self) -> dict:
        """{method, model, options}: what metrics.json and the card name."""
        return {"method": self.method.name, "model": self.model.name, "options": to_dict(self.method.options)}


@dataclass
class Teacher:
    """A zero-shot method and checkpoint (or an ensemble of them) that labels texts for a classify run
    (hf_transfer.distill), with a record of what it computed and what came from the cache."""

    config: TeacherConfig
    members: list[TeacherMember]  # the first is teacher.method / teacher.model; the rest teacher.ensemble's
    label_names: list[str]
    unlabelled_texts: list = field(default_factory=list)  # teacher.unlabelled's texts, read when it was prepared
    labelled: dict[str, dict] = field(default_factory=dict)  # what: {texts, cached}

    @property
    def method(self):
        """The first member's zero-shot method (the teacher's name and record)."""
        return self.members[0].method

    @property
    def model(self):
        """The first member's ResolvedModel."""
        return self.members[0].model

    @property
    def name(self) -> str:
        """The teacher's key in metrics.json's baselines: "teacher zero-shot METHOD"."""
        return f"teacher zero-shot {self.method.name}"

    def cache_key(self, member: TeacherMember, texts: list, max_length: int) -> str:
        """The sha256 naming the cached probabilities of these texts by this member (see the module docstring)."""
        digest = hashlib.sha256()
        for text in texts:
            digest.update(as_text(text).encode("utf-8") + b"\x00")
        identity = {"method": member.method.name, "model": member.model.name,
                    "options": to_dict(member.method.options), "labels": self.label_names, "max_length": max_length,
                    "texts": digest.hexdigest()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def probabilities(self, texts: list, max_length: int, what: str) -> np.ndarray:
        """(len(texts), labels) float32 probabilities: the one member's, or the normalised product of the members'
        (softmax of their summed log-probabilities); each member's read from the cache or computed (and then
        cached).

        `what` names the texts for logs and the record ("train", "validation", "unlabelled", ...)."""
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        outputs = [self._member_probabilities(member, texts, max_length, what) for member in self.members]
        self.labelled[what] = {"texts": len(texts), "cached": all(cached for _, cached in outputs)}
        if len(outputs) == 1:
            return outputs[0][0]
        summed = sum(log_probs(probabilities) for probabilities, _ in outputs)
        return apply_calibration(summed, 1.0, np.zeros(len(self.label_names))).astype(np.float32)

    def _member_probabilities(self, member: TeacherMember, texts: list, max_length: int,
                              what: str) -> tuple[np.ndarray, bool]:
        """(probabilities, whether they came from the cache) of one member."""
        key = self.cache_key(member, texts, max_length)
        folder = teacher_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}.npy"
        with FileLock(str(folder / f"{key}.lock")):
            cached = path.is_file()
            if cached:
                probabilities = np.load(path)
                if probabilities.shape != (len(texts), len(self.label_names)):
                    raise UserError(f"the cached teacher labels {path} hold {probabilities.shape}, not "
                                    f"{(len(texts), len(self.label_names))}: delete the file")
            else:
                logger.info(f"teacher {member.method.name} ({member.model.name}) labels {len(texts):,} {what} texts "
                            f"(cached in {path} for later runs)")
                probabilities = self._compute(member, texts, max_length, what)
                _save_atomically(path, probabilities, {**member.record(), "what": what, "texts": len(texts),
                                                       "labels": self.label_names})
        return probabilities, cached

    def _compute(self, member: TeacherMember, texts: list, max_length: int, what: str) -> np.ndarray:
        classifier = ZeroShotClassifier(member.method, member.model, self.label_names,
                                        batch_size=self.config.batch_size, max_length=max_length)
        return classifier.predict_proba(texts, desc=f"teacher, {what}").astype(np.float32)


def prepare_teacher(config: TeacherConfig, default_model: str, task: TaskData, dataset: str,
                    strategy) -> Teacher | None:
    """None without teacher.method; else the Teacher, checked before anything trains: its options, labels and
    checkpoint kind, a single-label task, a `strategy` (hf_transfer.strategies) that learns soft targets and, for
    teacher.average_from and teacher.input_noise, trains by optimiser steps, and texts to label
    (data.max_train_samples below the train split, or teacher.unlabelled). Raises UserError naming the fix
    otherwise."""
    if not config.method:
        return None
    if task.multi_label:
        raise UserError("teacher.method distils one label per text; this task is multi-label: drop teacher.method")
    if not strategy.learns_from_teacher:
        raise UserError("teacher.method needs a strategy that learns soft targets (full, adapter, frozen, "
                        "linear-probe, gradual-unfreeze, scratch): change strategy or drop teacher.method")
    if config.average_from is not None and strategy.name in NO_OPTIMIZER_STEPS:
        raise UserError(f"teacher.average_from averages the distillation's weights, and strategy={strategy.name} "
                        "trains by no optimiser steps: set teacher.average_from=null")
    if config.input_noise and strategy.name in NO_OPTIMIZER_STEPS:
        raise UserError(f"teacher.input_noise noises the texts of each training epoch, and strategy={strategy.name} "
                        "reads each text's features once: set teacher.input_noise=null")
    if task.train_pool is None and not config.unlabelled:
        raise UserError("teacher.method is set but every train text is labelled and used: set data.max_train_samples "
                        "to the labelled examples to use, or give unlabelled texts with teacher.unlabelled=FILE")
    members = [_member(config.method, config.model or default_model, config.options, dataset, task.label_names)]
    members += [_member(item.get("method", config.method), item.get("model", config.model or default_model),
                        item.get("options", {}), dataset, task.label_names) for item in config.ensemble]
    return Teacher(config, members, list(task.label_names), _unlabelled_texts(config, task.text_columns))


def _member(method_name: str, model_name: str, options: dict, dataset: str, label_names: list[str]) -> TeacherMember:
    """A teacher member, its options, labels and checkpoint kind checked (UserError naming the fix otherwise)."""
    method = get_method(method_name, with_dataset_descriptions(method_name, options, dataset, label_names))
    check_labels(method, label_names, False)
    model, _ = checked_model(method, model_name)
    return TeacherMember(method, model)


def _unlabelled_texts(config: TeacherConfig, text_columns: list[str]) -> list:
    """teacher.unlabelled's texts (str, or pairs for a task of two text columns); [] without a file."""
    if not config.unlabelled:
        return []
    columns = config.unlabelled_text_columns or (text_columns if not config.unlabelled.endswith(".txt") else ["text"])
    if len(columns) != len(text_columns):
        raise UserError(f"teacher.unlabelled_text_columns names {len(columns)} column(s) where the task reads "
                        f"{len(text_columns)} ({', '.join(text_columns)}): name as many")
    texts = read_text_records(config.unlabelled, columns[0] if len(columns) == 1 else columns)
    if not texts:
        raise UserError(f"teacher.unlabelled={config.unlabelled} holds no texts: add some or drop the key")
    return texts


def log_probs(probabilities: np.ndarray) -> np.ndarray:
    """Natural log of `probabilities` (any shape) as float64, clipped below at PROBABILITY_FLOOR (1e-12) so a
    probability of 0 gives a finite log."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1.0))


def platt_calibration(log_probabilities: np.ndarray, labels: np.ndarray, l2: float = PLATT_L2) -> tuple[float, np.ndarray]:
    """(a, b): the scale and per-label offsets of softmax(a * log p + b) fitted by maximum likelihood on labelled
    examples, with the L2 pull l2 x n x ((a - 1)^2 + |b - mean b|^2) toward the uncalibrated teacher.

    log_probabilities: (n, labels) of the teacher on the n labelled examples; labels: (n,) label ids. Platt scaling
    (Platt 1999) with one offset per label (for two labels: a logistic regression on the teacher's log-odds); b is
    returned centred (softmax ignores a common shift). n = 0 gives (1, 0): nothing to fit. Issue 17's research: on
    16-128 Rotten Tomatoes examples it raised the LM teacher's validation accuracy from 0.754 to 0.765-0.768 (the
    teacher is under-confident: slopes 1.5-2.5).
    """
    log_probabilities = np.asarray(log_probabilities, dtype=np.float64)
    num_labels = log_probabilities.shape[1]
    if len(labels) == 0:
        return 1.0, np.zeros(num_labels)
    x = torch.tensor(log_probabilities, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    a = torch.ones((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_labels, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([a, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(a * x + b, y, reduction="sum")
        loss = loss + l2 * len(y) * (((b - b.mean()) ** 2).sum() + (a - 1) ** 2)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(a.detach()), (b - b.mean()).detach().numpy()


def apply_calibration(log_probabilities: np.ndarray, a: float, b: np.ndarray) -> np.ndarray:
    """softmax(a * log p + b) per row: the calibrated teacher, (n, labels) float64."""
    z = a * np.asarray(log_probabilities, dtype=np.float64) + np.asarray(b)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _save_atomically(path: Path, probabilities: np.ndarray, description: dict) -> None:
    """The .json description first, then the probabilities under a temporary name renamed into place: a reader
    (who holds the lock anyway) sees the whole array or none."""
    path.with_suffix(".json").write_text(json.dumps(description, indent=2) + "\n")
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    try:
        np.save(partial, probabilities)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
