"""Feature transfer with a frozen backbone: only the classification head trains (`strategy=frozen`).

The head is the family's head modules (`Family.head_modules`): BERT's pooler (dense + tanh on the CLS state) and
`classifier`, GPT-2's `score`, T5's whole `classification_head` (dense + tanh + out_proj), our backbones'
`classifier`; or, for a checkpoint that declares its pooling (sentence-transformers' 1_Pooling, e.g. MiniLM's mean)
or with option `pooling` mean / cls / max, a new `classifier` on that pooling of the encoder's states
(hf_transfer.pooling). Every other weight keeps its pretrained value bit for bit. The output folder is a whole
model that `transformers.pipeline` loads (a pooled one with trust_remote_code=True: hft-pooled's code is saved
with it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from ..pooling import pooled_classifier
from .base import Strategy, StrategySetup, register_strategy
from .layers import head_modules

Pooling = Literal["auto", "head", "mean", "cls", "max"]


@dataclass
class PoolingOptions:
    """strategy_options of strategy=frozen: `pooling` auto (the pooling the checkpoint declares in
    sentence-transformers' 1_Pooling, else the model's own head), head (the model's own head), or mean / cls / max
    (a new classifier on that pooling of the last hidden states)."""

    pooling: Pooling = "auto"


def freeze_all_but(model, trainable_modules) -> None:
    """Set requires_grad False on every parameter of `model`, then True on those of `trainable_modules`."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for module in trainable_modules:
        for parameter in module.parameters():
            parameter.requires_grad_(True)


@register_strategy
class FrozenBackbone(Strategy):
    """strategy=frozen: the pretrained backbone's features stay fixed; the classification head trains."""

    name = "frozen"
    description = "the pretrained backbone stays frozen; only the classification head trains"
    transferred = "features"
    default_learning_rate = 2e-3  # a freshly initialised head alone tolerates (and needs) a high rate
    options_class = PoolingOptions
    # MiniLM-L6 on wnut16, 5 epochs: 1e-2 gave validation entity F1 24.7 against 18.1 at 2e-3
    task_learning_rates = {"token-classification": 1e-2}

    def setup(self, model, family, train_config) -> StrategySetup:
        """Freeze everything but the family's head modules (layers.head_modules), on the pooling the checkpoint
        declares (pooling.pooled_classifier) unless strategy_options.pooling says otherwise."""
        model, family, pooling = pooled_classifier(model, family, self.options.pooling)
        freeze_all_but(model, head_modules(model, family).values())
        return StrategySetup(model, family, options={**asdict(self.options), "pooling": pooling})
