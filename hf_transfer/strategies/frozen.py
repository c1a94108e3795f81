"""Feature transfer with a frozen backbone: only the classification head trains (`strategy=frozen`).

The head is the family's head modules (`Family.head_modules`): BERT's pooler (dense + tanh on the CLS state) and
`classifier`, GPT-2's `score`, T5's whole `classification_head` (dense + tanh + out_proj), our backbones'
`classifier`; or, for a checkpoint that declares its pooling (sentence-transformers' 1_Pooling, e.g. MiniLM's mean)
or with option `pooling` mean / cls / max, a new `classifier` on that pooling of the encoder's states
(hf_transfer.pooling). Every other weight keeps its pretrained value bit for bit. The output folder is a whole
model that `transformers.pipeline` loads (a pooled one with trust_remote_code=True: hft-pooled's code is saved
with it).

On a pooled classifier the head (dropout -> classifier) reads one fixed vector per text, so it trains on stored
features (strategies.on_features: the backbone runs once per split, in eval mode, and in a study once per backbone
and split for every size, seed and feature arm), with the run's Trainer settings and the head's own dropout but
without the backbone's dropout, which a forward pass per step would apply to the features. Heads that read more
than a fixed vector (BERT's pooler, which trains on the CLS state; token classification) train through the frozen
backbone at every step, dropout on, by Trainer.train.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from ..features import dataset_columns, split_features
from ..pooling import pooled_classifier
from .base import Strategy, StrategySetup, register_strategy
from .layers import head_modules
from .on_features import HeadOnFeatures, feature_reader, head_logits, train_features, train_head

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

    def train(self, setup, trainer, task, tokenized, resume_from=None) -> None:
        """A pooled classifier's head on stored features (module docstring); any other head by Trainer.train."""
        if setup.model.config.model_type != "hft-pooled":
            return super().train(setup, trainer, task, tokenized, resume_from)
        reader = feature_reader(setup, trainer)
        features = {"train": train_features(reader, task, tokenized, trainer.processing_class),
                    "validation": split_features(reader, dataset_columns(tokenized["validation"]), "validation")}
        head = HeadOnFeatures(setup.model.dropout, setup.model.classifier, task.multi_label)
        train_head(head, trainer, features, tokenized, resume_from)
        setup.head_logits = head_logits(reader, setup.model.classifier, features)
