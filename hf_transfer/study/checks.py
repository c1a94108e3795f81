"""What a study checks before any training (each failure is one UserError line), and its out-of-domain sets.

- every arm applies to its backbone: a classify arm's backbone is loaded and its strategy set up on it, as the run
  will do (bad strategy options, a head or LoRA target the model lacks, ...), and its train.report_to trackers are
  installed; a zero-shot arm's method checks the checkpoint's kind and the task's labels;
- every size fits the train split (grid.check_sizes);
- every out-of-domain set loads and its labels map onto the task's.
"""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass
from typing import Any

import datasets

from ..config import (ClassifyConfig, DataConfig, EvalSetConfig, ZeroShotBaselineConfig, ZeroShotConfig,
                      from_dict)
from ..data import TaskData, load_task_data
from ..errors import UserError


def check_arm(name: str, kind: str, values: dict[str, Any], task: TaskData, eval_sets: bool) -> None:
    """Raise UserError (prefixed `arm NAME:`) if the arm cannot run on `task`: see the module docstring.

    A classify arm costs one load of its backbone (seconds for MiniLM-sized models), freed before returning.
    """
    try:
        if kind == "zero-shot":
            from ..zeroshot import prepare_baseline

            run = from_dict(ZeroShotConfig, values)
            prepare_baseline(ZeroShotBaselineConfig(method=run.method, model=run.model, options=run.options),
                             run.model, task, batch_size=1)
            return
        _check_classify_arm(from_dict(ClassifyConfig, values), task, eval_sets)
    except UserError as err:
        raise UserError(f"arm {name}: {err}") from None


def _check_classify_arm(config: ClassifyConfig, task: TaskData, eval_sets: bool) -> None:
    from ..backbones import load_backbone
    from ..strategies import get_strategy
    from ..training import check_report_to

    check_report_to(config.train.report_to)
    strategy = get_strategy(config.strategy, config.strategy_options)
    strategy.check_head(config.head)
    strategy.check_task(config.task)
    train = dataclasses.replace(config.train, learning_rate=config.train.learning_rate
                                or strategy.learning_rate_for(config.task))
    backbone = load_backbone(config, task, strategy)
    strategy.setup(backbone.model, backbone.family, train)
    del backbone
    gc.collect()
    if eval_sets and config.head == "text-to-text":
        raise UserError("out-of-domain eval_sets are not scored for head=text-to-text yet: drop eval_sets or use "
                        "head=classification")


@dataclass
class EvalSet:
    """An out-of-domain test set mapped onto the study task's labels: texts (strings, or pairs) and label ids."""

    name: str
    description: str
    texts: list
    labels: list  # task label ids, or multi-hot rows for multi-label tasks


def load_eval_set(config: EvalSetConfig, task: TaskData) -> EvalSet:
    """Read an out-of-domain set with the task's readers and map its labels with `config.label_map`.

    Every row is kept (the splits load_task_data carves are put back together) unless `config.split` names one.
    Raises UserError for a label that maps to no task label, a label_map entry naming an unknown task label, or a
    different number of text columns than the task's.
    """
    where = f"eval set {config.name!r}"
    data_config = DataConfig(dataset=config.dataset, text_columns=config.text_columns,
                             label_column=config.label_column, train_split=config.split or "train",
                             validation_split=config.split, test_split=config.split)
    try:
        data = load_task_data(data_config)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    if data.multi_label != task.multi_label:
        raise UserError(f"{where} is {'multi' if data.multi_label else 'single'}-label but the task is not: use a set "
                        "of the same kind")
    if len(data.text_columns) != len(task.text_columns):
        raise UserError(f"{where} has {len(data.text_columns)} text column(s) ({', '.join(data.text_columns)}) but "
                        f"the task has {len(task.text_columns)}: set eval_sets[].text_columns")
    unknown_targets = sorted(set(config.label_map.values()) - set(task.label_names))
    if unknown_targets:
        raise UserError(f"{where}: label_map maps to {unknown_targets[0]!r}, which is not a label of the task "
                        f"({', '.join(task.label_names)})")
    mapping = {}
    for name in data.label_names:
        target = config.label_map.get(name, name)
        if target not in task.label2id:
            raise UserError(f"{where}: its label {name!r} is not a label of the task ({', '.join(task.label_names)}): "
                            f"map it with eval_sets[].label_map, e.g. {{{name}: {task.label_names[0]}}}")
        mapping[data.label2id[name]] = task.label2id[target]
    rows = (datasets.concatenate_datasets([data.splits[s] for s in ("train", "validation", "test")])
            if config.split is None else data.splits["test"])
    columns = [list(rows[column]) for column in data.text_columns]
    texts = columns[0] if len(columns) == 1 else list(zip(*columns))
    if task.multi_label:
        labels = [_multi_hot(row, mapping, len(task.label_names)) for row in rows["labels"]]
    else:
        labels = [mapping[label] for label in rows["labels"]]
    return EvalSet(config.name, data.description, texts, labels)


def _multi_hot(row, mapping: dict[int, int], size: int) -> list[float]:
    hot = [0.0] * size
    for source, on in enumerate(row):
        if on:
            hot[mapping[source]] = 1.0
    return hot
