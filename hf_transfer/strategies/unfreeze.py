"""ULMFiT-style gradual unfreezing with discriminative learning rates (`strategy=gradual-unfreeze`).

Layer groups (hf_transfer.strategies.layers): embeddings, one per transformer block, the head. The group at
depth d below the head gets learning rate `train.learning_rate / decay**d` (option `decay`), through
one optimizer param group per layer group (split, as Trainer does, into weight-decayed and not: biases and norms
are not decayed). Trainer's scheduler is a LambdaLR that multiplies every group's own peak rate by the same factor,
so warmup and decay keep the ratios. At the start of epoch e (0-based) the top (e + 1) * `groups_per_epoch`
groups train and the rest are frozen; frozen parameters get no gradient, so AdamW leaves them untouched.
Each epoch's trainable groups and their current learning rates go to the Trainer's log history (metrics.json).

Defaults differ from ULMFiT's (one group per epoch, decay 2.6, for a 3-layer LSTM trained for many epochs): with
MiniLM-L6's 8 groups and the recipe's 2 epochs those left all but the head and the top block frozen, and the
embeddings at 1/800 of the head's rate (test accuracy 0.7525 against full fine-tuning's 0.8423, seed 1). So by
default every group trains in the last epoch (`groups_per_epoch` = groups / epochs, rounded up) and the rate
decays by 1.25 per group, the layer-wise decay ELECTRA used for transformers (0.8 per layer).

Needs a backbone with a stack of blocks (BERT, GPT-2, T5, hft-attention); hft-textcnn and hft-rnn have none.
A parameter frozen before training starts (train.freeze_word_embeddings) is never unfrozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn
from transformers import TrainerCallback
from transformers.trainer_pt_utils import get_parameter_names

from ..errors import UserError
from .base import Strategy, StrategySetup, register_strategy
from .layers import LayerGroup, layer_groups

# Trainer.get_decay_parameter_names's rule: no weight decay for biases and normalisation weights.
NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


@dataclass
class GradualUnfreezeOptions:
    """strategy_options of strategy=gradual-unfreeze: `decay` and `groups_per_epoch` (module docstring)."""

    decay: float = 1.25  # each layer group's learning rate is the one above it divided by this
    groups_per_epoch: int | None = None  # groups unfrozen at each epoch's start, top down; None: all by the last


@register_strategy
class GradualUnfreeze(Strategy):
    """strategy=gradual-unfreeze: see the module docstring."""

    name = "gradual-unfreeze"
    description = "ULMFiT: layer groups unfreeze top down epoch by epoch, learning rates decaying layer by layer"
    transferred = "parameters"
    options_class = GradualUnfreezeOptions
    default_learning_rate = 2e-4  # the head's; the top block gets it / decay, the one below / decay**2, ...

    def __init__(self, options=None):
        """Raises UserError for decay < 1 or groups_per_epoch < 1."""
        super().__init__(options)
        if self.options.decay < 1:
            raise UserError(f"strategy_options.decay must be at least 1 (1: one learning rate), got {self.options.decay}")
        if self.options.groups_per_epoch is not None and self.options.groups_per_epoch < 1:
            raise UserError(f"strategy_options.groups_per_epoch must be at least 1, got {self.options.groups_per_epoch}")

    def setup(self, model, family, train_config) -> StrategySetup:
        """One optimizer param group per layer group and weight-decay class, at learning rate train_config.learning_rate
        / decay**depth (depth 0: the head), and the GradualUnfreezing callback. Raises UserError
        (layers.layer_groups) for a model without a stack of blocks."""
        groups_top_down = layer_groups(model, family)[::-1]
        for parameter in model.parameters():
            parameter.requires_grad_(True)  # all of it may train: the callback freezes what must wait
        decayed_names = set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY_PATTERNS))
        decayed = {id(p) for name, p in model.named_parameters() if name in decayed_names}
        param_groups = []
        for depth, group in enumerate(groups_top_down):
            learning_rate = train_config.learning_rate / self.options.decay ** depth
            decay = [p for p in group.parameters if id(p) in decayed]
            no_decay = [p for p in group.parameters if id(p) not in decayed]
            for weight_decay, parameters in ((train_config.weight_decay, decay), (0.0, no_decay)):
                if parameters:
                    param_groups.append({"params": parameters, "lr": learning_rate, "weight_decay": weight_decay,
                                         "layer_group": group.name})
        return StrategySetup(model, family, optimizer_grouped_parameters=param_groups,
                             callbacks=[GradualUnfreezing(groups_top_down, self.options.groups_per_epoch)])


class GradualUnfreezing(TrainerCallback):
    """Unfreezes `groups_per_epoch` more layer groups, top down, at the start of every epoch (None: as many as
    make every group train in the last epoch)."""

    def __init__(self, groups_top_down: list[LayerGroup], groups_per_epoch: int | None):
        """`groups_top_down`: the layer groups, head first."""
        self.groups = groups_top_down
        self.groups_per_epoch = groups_per_epoch
        self.may_train: set[int] = set()

    def on_train_begin(self, args, state, control, **kwargs):
        """Note which parameters may train at all (not frozen before training) and, when groups_per_epoch is None, set
        it to ceil(groups / epochs)."""
        self.may_train = {id(p) for group in self.groups for p in group.parameters if p.requires_grad}
        if self.groups_per_epoch is None:
            epochs = max(1, math.ceil(state.num_train_epochs))
            self.groups_per_epoch = math.ceil(len(self.groups) / epochs)

    def on_epoch_begin(self, args, state, control, optimizer=None, **kwargs):
        """Let the top (epoch + 1) x groups_per_epoch groups train and freeze the rest; log the epoch's trainable groups
        and their current learning rates once per epoch (not again after a resume)."""
        # A run resumed from a checkpoint inside epoch e begins at state.epoch = e + the fraction done: floor, not
        # round. Its log history, restored from the checkpoint, already has epoch e's entry.
        epoch = math.floor(state.epoch or 0)
        unfrozen = min(len(self.groups), (epoch + 1) * self.groups_per_epoch)
        for index, group in enumerate(self.groups):
            for parameter in group.parameters:
                parameter.requires_grad_(index < unfrozen and id(parameter) in self.may_train)
        if any(entry.get("epoch") == epoch and "trainable_layer_groups" in entry for entry in state.log_history):
            return
        state.log_history.append({
            "epoch": epoch,
            "step": state.global_step,
            "trainable_layer_groups": [group.name for group in self.groups[:unfrozen]],
            "layer_group_learning_rates": {g["layer_group"]: g["lr"] for g in optimizer.param_groups},
        })
