"""The strategy interface and its registry.

A strategy is chosen by name (`strategy=`) with its options (`strategy_options`), checked when it is built. It
decides whether pretrained weights load (`pretrained_weights`), which heads it can train (`supports_head`), which
parameters train and at what learning rate (`setup`, which returns everything it resolved in a StrategySetup and
changes nothing else), how training runs (`train`: Trainer.train by default), and what is saved (`save`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from transformers import TrainerCallback

from ..config import from_dict, to_dict
from ..errors import UserError
from ..pooling import check_pooling_for
from ..training import count_parameters


@dataclass
class NoOptions:
    """The options of a strategy that takes none: any strategy_options key is refused."""

    pass


@dataclass
class StrategySetup:
    """What `Strategy.setup` resolved for one run."""

    model: Any  # what trains and predicts: the classifier, or a peft model around it
    family: Any  # the backbone's backbones.Family
    optimizer_grouped_parameters: list[dict] | None = None  # None: Trainer's AdamW over the trainable parameters
    callbacks: list[TrainerCallback] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # the options as applied (defaults filled), for records
    # set by a `train` that fitted the head on stored features (strategies.on_features): logits(split, tokenized
    # split) -> [rows, labels] fp32, which evaluation uses instead of a forward pass of the whole model
    head_logits: Callable[[str, Any], Any] | None = None


class Strategy:
    """A transfer strategy (see the module docstring); subclasses set the class attributes below and implement `setup`,
    and may override `train`, `count_parameters` and `save`."""

    name: ClassVar[str]
    description: ClassVar[str]
    options_class: ClassVar[type] = NoOptions
    pretrained_weights: ClassVar[bool] = True  # False: same architecture from random init
    transferred: ClassVar[str] = "parameters"  # parameters | features | structure, for cards
    default_learning_rate: ClassVar[float] = 1e-4  # used unless the run sets train.learning_rate
    task_learning_rates: ClassVar[dict[str, float]] = {}  # task -> its own default, where one was measured
    # what data.label_subwords=auto means for token tags; on wnut16 (3 seeds) labelling every subword cost adapter
    # (LoRA) 19 and frozen 3 test F1 points, and gave full fine-tuning the same F1 (strategies.full)
    tagging_label_subwords: ClassVar[str] = "first"
    heads: ClassVar[tuple[str, ...]] = ("classification",)  # the `head=` values this strategy can train
    tasks: ClassVar[tuple[str, ...]] = ("text-classification", "token-classification")  # `task=` values it trains
    learns_from_teacher: ClassVar[bool] = True  # trains on a zero-shot teacher's soft targets (hf_transfer.distill)

    def __init__(self, options: dict[str, Any] | None = None):
        """Parse and check `options` (strategy_options); raises UserError for an unknown or bad option."""
        self.options = from_dict(self.options_class, dict(options or {}), prefix="strategy_options.")

    def check_head(self, head: str) -> None:
        """Raise UserError, before anything loads, when this strategy cannot train `head`."""
        if head not in self.heads:
            raise UserError(f"head={head} trains the whole seq2seq model, which strategy={self.name} does not: use "
                            "strategy=full or strategy=scratch")

    def learning_rate_for(self, task: str) -> float:
        """The default learning rate for a run of `task` (a tasks.TASKS name): used unless train.learning_rate is
        set."""
        return self.task_learning_rates.get(task, self.default_learning_rate)

    def check_task(self, task: str) -> None:
        """Raise UserError, before anything loads, when this strategy cannot train a model for `task`."""
        if task not in self.tasks:
            raise UserError(f"strategy={self.name} does not apply to task={task} (it trains "
                            f"{' and '.join(self.tasks)}): use strategy=frozen for a head on frozen features")
        check_pooling_for(getattr(self.options, "pooling", "auto"), tags_tokens=task == "token-classification")

    def setup(self, model, family, train_config) -> StrategySetup:
        """Prepare `model` (freeze, wrap) for training with `train_config` (its learning_rate resolved)."""
        raise NotImplementedError

    def train(self, setup: StrategySetup, trainer, task, tokenized, resume_from: Path | None = None) -> None:
        """Train `setup.model`. `trainer` is the run's Trainer, built but not trained; by default it trains,
        resuming from the checkpoint folder `resume_from` when given."""
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    def evaluate(self, setup: StrategySetup, trainer, task_family, task, tokenized) -> tuple[dict, list[dict]]:
        """(report per split, prediction rows) of the trained model: `task_family.evaluate`, on the head's logits of
        stored features when `train` set setup.head_logits."""
        if setup.head_logits is not None:
            return task_family.evaluate(trainer, task, tokenized, logits=setup.head_logits)
        return task_family.evaluate(trainer, task, tokenized)

    def applied_options(self) -> dict[str, Any]:
        """The options as a dict, before setup fills model-dependent defaults (StrategySetup.options has those)."""
        return to_dict(self.options)

    def count_parameters(self, model) -> dict:
        """{trainable, total, trainable_fraction} of the model that trains, as metrics.json reports them."""
        return count_parameters(model)

    def save(self, setup: StrategySetup, tokenizer, output_dir: Path) -> None:
        """Write what loads the trained classifier back, tokenizer included, into `output_dir`."""
        setup.model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make `cls` choosable as strategy=cls.name (STRATEGIES); returns `cls`."""
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    """The strategy registered as `name`, built with `options`; UserError for an unknown name or bad options."""
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: choose one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](options)
