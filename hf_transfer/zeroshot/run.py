"""The zero-shot run: data -> checkpoint -> method -> evaluation -> output folder with metrics, predictions and a card.

Same data loading (`load_task_data`, hence the same splits as classify) and metrics (`classification_report`) as a
classify run, and the same metrics.json schema (kind "zero-shot"), written by the same run-folder layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones import (ResolvedModel, check_max_length, family_of, load_model_config, loading, position_limit,
                         resolve_model)
from ..config import ZEROSHOT_SPLITS, ZeroShotBaselineConfig, ZeroShotConfig, to_dict
from ..data import TaskData, load_task_data, prediction_rows
from ..errors import UserError
from ..metrics import classification_report
from ..results import RunResult
from ..run_folder import RunFolder, default_output_dir
from ..runtime import hardware_description, peak_memory_mb
from ..tasks import TextClassification
from .base import ZeroShotMethod, get_method
from .descriptions import choose_options, with_dataset_descriptions

EVAL_SPLITS = ZEROSHOT_SPLITS
DEFAULT_MAX_LENGTH = 128  # DataConfig.max_length's default


def checked_model(method: ZeroShotMethod, model: str | ResolvedModel, trust_remote_code: bool = False,
                  max_length: int | None = None) -> tuple[ResolvedModel, Any]:
    """The resolved checkpoint and its config, after the method has checked the config is of its kind and, when
    `max_length` is given, that texts of that many tokens fit the model's positions."""
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, trust_remote_code)
    if resolved.from_config:
        raise UserError(f"model {resolved.name!r} is an architecture without pretrained weights, and zero-shot "
                        "needs what pretraining learned: name a pretrained checkpoint (asset, folder or Hub id)")
    config = load_model_config(resolved)
    method.check_model(config, resolved.name)
    if max_length is not None:
        check_max_length(config, max_length, resolved.name)
    return resolved, config


def check_labels(method: ZeroShotMethod, label_names: list[str], multi_label: bool) -> None:
    """Raises UserError for fewer than two labels, a multi-label task with a single-label method, or per-label options
    that name unknown labels."""
    if len(label_names) < 2:
        raise UserError(f"zero-shot classification needs at least two labels, got {list(label_names)}: "
                        "check data.labels and data.label_column")
    if multi_label and not method.supports_multi_label:
        raise UserError(f"method {method.name!r} picks one label per text, but the task is multi-label: "
                        "use method=nli or method=embedding")
    method.label_prompts(label_names)  # per-label options name known labels


def as_text(text) -> str:
    """Tasks with two text columns give (text, text_pair); zero-shot methods read them as one text."""
    return text if isinstance(text, str) else "\n".join(text)


class ZeroShotClassifier:
    """A pretrained checkpoint used as a classifier over `label_names` through a zero-shot method, no training.

        classifier = ZeroShotClassifier("embedding", "minilm-l6", ["fresh", "rotten"], options={"label_descriptions": {
            "fresh": "An excellent, enjoyable film.", "rotten": "A boring, disappointing film."}})
        classifier.predict(["A quietly moving film.", "Two hours I will never get back."])  # a label name per text
        classifier.predict_proba(texts)  # (len(texts), 2) probabilities

    `max_length` tokens per text (UserError above the model's positions); None: DEFAULT_MAX_LENGTH or the model's
    positions, whichever is fewer.
    """

    def __init__(self, method: str | ZeroShotMethod, model: str | ResolvedModel, label_names: list[str],
                 multi_label: bool = False, options: dict[str, Any] | None = None, batch_size: int = 32,
                 max_length: int | None = None):
        """Build `method` (a name with `options`, or a built method), check the labels and the checkpoint's kind, then
        load the weights onto cuda if available, else cpu, and prepare the label side."""
        self.method = get_method(method, options) if isinstance(method, str) else method
        self.label_names = list(label_names)
        self.multi_label = multi_label
        self.batch_size = batch_size
        check_labels(self.method, self.label_names, multi_label)
        self.model, self.model_config = checked_model(self.method, model, max_length=max_length)
        self.max_length = max_length or min(DEFAULT_MAX_LENGTH, position_limit(self.model_config) or DEFAULT_MAX_LENGTH)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        with loading(self.model, "weights"):
            self.method.load(self.model, self.device)
        self.method.prepare(self.label_names, multi_label)

    def predict_proba(self, texts, desc: str | None = None) -> np.ndarray:
        """(len(texts), num_labels) probabilities: over labels (single-label) or per label (multi-label)."""
        if not len(texts):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        return self.method.split_probabilities([as_text(t) for t in texts], self.max_length, self.batch_size,
                                               desc or f"zero-shot {self.method.name}")

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Label ids (single-label) or multi-hot rows (multi-label: probability above 0.5)."""
        return (probabilities > 0.5).astype(int) if self.multi_label else probabilities.argmax(-1)

    def predict(self, texts) -> list:
        """The predicted label name per text; a list of names per text in multi-label tasks."""
        decided = self.decide(self.predict_proba(texts)).tolist()
        if self.multi_label:
            return [[name for name, on in zip(self.label_names, row) if on] for row in decided]
        return [self.label_names[i] for i in decided]

    def evaluate(self, task: TaskData, splits=EVAL_SPLITS) -> tuple[dict[str, dict], list[dict]]:
        """classification_report per split, and one prediction row per example (the predictions.jsonl format)."""
        metrics, rows = {}, []
        for split in splits:
            probabilities = self.predict_proba(task.texts(split), desc=f"zero-shot {self.method.name}, {split}")
            predicted = self.decide(probabilities)
            metrics[split] = classification_report(predicted, task.splits[split]["labels"], self.label_names,
                                                   self.multi_label)
            rows += prediction_rows(task, split, predicted, probabilities)
        return metrics, rows

    @property
    def num_parameters(self) -> int:
        """The loaded model's parameter count (elements)."""
        return sum(p.numel() for p in self.method.model.parameters())


def zeroshot_output_dir(config: ZeroShotConfig) -> Path:
    """The run's output folder: `config.output_dir`, else outputs/zeroshot-<method>-<model>-<dataset>."""
    if config.output_dir:
        return Path(config.output_dir)
    return default_output_dir("zeroshot", config.method, config.model, config.data.dataset)


def run_zeroshot(config: ZeroShotConfig, command: str | None = None) -> RunResult:
    """Evaluate `config.model` zero-shot on the held-out splits and write its output folder (metrics.json,
    predictions.jsonl, plots, card); returns the run's record. Raises UserError for bad options, a checkpoint of
    the wrong kind or bad data, before the weights load where it can."""
    started = time.perf_counter()
    output_dir = zeroshot_output_dir(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    with RunFolder(output_dir, overwrite=config.overwrite_output_dir) as folder:
        # Options and the checkpoint's kind fail before the data and the weights load.
        options = with_dataset_descriptions(config.method, config.options, config.data.dataset)
        method = get_method(config.method, options)
        model, model_config = checked_model(method, config.model, config.trust_remote_code, config.data.max_length)
        task = load_task_data(config.data)

        classifier = ZeroShotClassifier(method, model, task.label_names, task.multi_label,
                                        batch_size=config.batch_size, max_length=config.data.max_length)
        selection = None
        if config.candidates:  # chosen on validation before anything reads test
            options, scores = choose_options(classifier, task, options, config.candidates)
            selection = {"split": "validation", "candidates": scores, "chosen": options}
        eval_started = time.perf_counter()
        splits = [s for s in EVAL_SPLITS if s in config.splits]
        metrics, predictions = classifier.evaluate(task, splits)
        eval_time = time.perf_counter() - eval_started

        result = RunResult(
            kind="zero-shot",
            model={"name": config.model, "location": model.location, "base_model": model.base_model,
                   "model_type": model_config.model_type, "family": family_of(model_config).name},
            strategy={"name": "zero-shot", "method": method.name, "description": method.description,
                      "transferred": "none", "options": to_dict(method.options),
                      "label_prompts": method.label_prompts(task.label_names),
                      **({"selection": selection} if selection else {})},
            task=TextClassification.record(task),
            metrics=metrics,
            parameters={"trainable": 0, "total": classifier.num_parameters, "trainable_fraction": 0.0},
            compute={
                "train_time_s": 0.0,
                "train_examples_per_s": 0.0,
                "train_tokens_per_s": 0.0,
                "eval_time_s": eval_time,
                "total_time_s": 0.0,  # set when the folder is written
                "peak_memory_mb": peak_memory_mb(),
                "precision": str(classifier.method.model.dtype).removeprefix("torch."),
                "device": str(classifier.device),
                "hardware": hardware_description(),
                "processes": 1,
            },
            config=to_dict(config),
            seed=config.data.seed,
        )
        folder.write_outputs(result, predictions, command, started)
        folder.commit()
    return result


@dataclass
class ZeroShotBaseline:
    """A classify run's zero-shot baseline, checked before training and evaluated on the same test split."""

    method: ZeroShotMethod
    model: ResolvedModel
    batch_size: int

    @property
    def name(self) -> str:
        """The baseline's key in metrics.json's baselines: "zero-shot METHOD"."""
        return f"zero-shot {self.method.name}"

    def evaluate(self, task: TaskData, max_length: int) -> dict:
        """Load the model and score the test split: {method, model, metrics {"test": report}}."""
        classifier = ZeroShotClassifier(self.method, self.model, task.label_names, task.multi_label,
                                        batch_size=self.batch_size, max_length=max_length)
        metrics, _ = classifier.evaluate(task, ["test"])
        return {"method": self.method.name, "model": self.model.name, "metrics": metrics}


def prepare_baseline(config: ZeroShotBaselineConfig, default_model: str, task: TaskData, batch_size: int,
                     trust_remote_code: bool = False, max_length: int | None = None) -> ZeroShotBaseline | None:
    """None when no baseline is asked for; a UserError now, before training, for bad options, labels or model
    (and, given the run's `max_length`, for texts longer than the model's positions)."""
    if not config.method:
        return None
    method = get_method(config.method, with_dataset_descriptions(config.method, config.options, task.source,
                                                                 task.label_names))
    check_labels(method, task.label_names, task.multi_label)
    model, _ = checked_model(method, config.model or default_model, trust_remote_code, max_length)
    return ZeroShotBaseline(method, model, batch_size)
