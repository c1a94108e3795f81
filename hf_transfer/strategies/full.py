"""Full fine-tuning (parameter transfer) and the same architecture from random init (structure only)."""

from __future__ import annotations

from .base import Strategy, StrategySetup, register_strategy


@register_strategy
class FullFineTuning(Strategy):
    name = "full"
    description = "all weights start from the checkpoint and train"
    transferred = "parameters"
    heads = ("classification", "text-to-text")

    def setup(self, model, family, train_config) -> StrategySetup:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return StrategySetup(model, family)


@register_strategy
class FromScratch(FullFineTuning):
    name = "scratch"
    description = "the checkpoint's architecture and tokenizer, weights from random init: what pretraining bought"
    transferred = "structure"
    pretrained_weights = False
