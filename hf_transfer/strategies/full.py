"""Full fine-tuning (parameter transfer) and the same architecture from random init (structure only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..pooling import pooled_classifier, unread_pooler
from .base import Strategy, StrategySetup, register_strategy
from .frozen import Pooling, PoolingOptions


@dataclass
class FullOptions(PoolingOptions):
    """strategy_options of strategy=full and scratch: `pooling` as for strategy=frozen, but head (the model's own
    head) by default, so the output folder is a plain transformers classifier (pipeline without remote code, ONNX
    Runtime's fused attention, the Hub's widget). MiniLM-L6 on the default task, six seeds, test accuracy:
    pooling=auto (its declared mean) 0.8363 +- 0.0033 against head's 0.8336 +- 0.0038, +0.27 points paired (per
    seed -0.31 to +0.74): a tie within the seeds' spread, not worth remote code. Frozen features differ: there the
    pooling moves accuracy by 0.8-7.2 points (hf_transfer.pooling)."""

    pooling: Pooling = "head"


@register_strategy
class FullFineTuning(Strategy):
    """strategy=full: every weight loads from the checkpoint and trains (the default)."""

    name = "full"
    description = "all weights start from the checkpoint and train"
    transferred = "parameters"
    heads = ("classification", "text-to-text")
    # MiniLM-L6 on wnut16, 5 epochs: 2e-4 gave validation entity F1 49.2 against 44.5 at 1e-4 (scratch inherits it)
    task_learning_rates = {"token-classification": 2e-4}
    # MiniLM-L6 on wnut16, 3 seeds: every subword labelled gave the same test entity F1 as the first alone (40.67
    # against 40.65), and the stock pipeline then finds the run's entities in 473 of 478 test tweets, not 317.
    tagging_label_subwords = "all"
    options_class = FullOptions

    def setup(self, model, family, train_config) -> StrategySetup:
        """Make every parameter trainable; Trainer's AdamW trains them all at one learning rate. On a checkpoint
        that declares its pooling (MiniLM's mean) with option pooling=auto, or with mean / cls / max, the classifier
        reads that pooling of the last hidden states (hf_transfer.pooling.pooled_classifier), and the encoder's own
        pooler (BERT's dense + tanh on the CLS state), which it never reads, keeps its loaded weights: a trainable
        weight without a gradient stops DDP where it does not search for them (gradient checkpointing)."""
        model, family, pooling = pooled_classifier(model, family, self.options.pooling)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        pooler = unread_pooler(model.base_model) if pooling != "head" else None
        if pooler is not None:
            for parameter in pooler.parameters():
                parameter.requires_grad_(False)
        return StrategySetup(model, family, options={**asdict(self.options), "pooling": pooling})


@register_strategy
class FromScratch(FullFineTuning):
    """strategy=scratch: full training of the same architecture and tokenizer from random weights, the baseline that
    shows what pretraining contributes."""

    name = "scratch"
    description = "the checkpoint's architecture and tokenizer, weights from random init: what pretraining bought"
    transferred = "structure"
    pretrained_weights = False
    tagging_label_subwords = "first"  # wnut16, 3 seeds: every subword labelled cost 5.6 test F1 points here
