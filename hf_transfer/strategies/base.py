"""The strategy interface and its registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from transformers import TrainerCallback

from ..config import from_dict
from ..errors import UserError
from ..training import count_parameters


@dataclass
class NoOptions:
    pass


@dataclass
class StrategySetup:
    model: Any  # what the Trainer trains: the classifier, or a peft model around it
    optimizer_grouped_parameters: list[dict] | None = None  # None: Trainer's AdamW over the trainable parameters
    callbacks: list[TrainerCallback] = field(default_factory=list)
    trains_with_trainer: bool = True  # False: the strategy's own `fit` replaces the Trainer (linear probe)


class Strategy:
    name: ClassVar[str]
    description: ClassVar[str]
    options_class: ClassVar[type] = NoOptions
    pretrained_weights: ClassVar[bool] = True  # False: same architecture from random init
    transferred: ClassVar[str] = "parameters"  # parameters | features | structure, for cards
    default_learning_rate: float = 1e-4  # used unless the run sets train.learning_rate

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = from_dict(self.options_class, dict(options or {}), prefix="strategy_options.")

    def setup(self, model, family, train_config) -> StrategySetup:
        raise NotImplementedError

    def fit(self, setup: StrategySetup, trainer, task, tokenized, train_config) -> None:
        """Train without trainer.train(); only for strategies whose setup says trains_with_trainer=False.

        `trainer` is the run's Trainer, built but not trained: its predict() runs the model as evaluation will.
        """
        raise NotImplementedError

    def count_parameters(self, model) -> dict:
        """{trainable, total, trainable_fraction} of the model that trains, as metrics.json reports them."""
        return count_parameters(model)

    def save(self, model, tokenizer, output_dir: Path) -> None:
        """Write what loads the trained classifier back, tokenizer included, into `output_dir`."""
        model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)

    def model_for_inference(self, model):
        """The model that predicts: adapters may be merged here."""
        return model


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: choose one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](options)
