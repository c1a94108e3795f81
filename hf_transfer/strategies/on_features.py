"""A classifier's head fitted and scored on stored features (hf_transfer.features): the backbone runs once per split.

For strategies whose backbone stays frozen (linear-probe; frozen on an hft-pooled classifier), the features the
head reads are fixed, so a run reads them from the feature store (features.classifier_reader):
- train_features: the train split's [rows, features]; in a study (feature store and share_loaded_data on) the
  rows of the whole train split's features that the run's subsample drew, so every size and seed reads one pass;
- train_head: the head (dropout -> output layer: hft-pooled's) trained on them by a Trainer with the run's
  TrainingArguments, callbacks, loss and selection, in random order (no length buckets: features have no length);
  the run's Trainer takes its state (log history, steps, epochs, best metric), and the layer trained is the
  model's own, so the saved model is whole;
- head_logits: StrategySetup.head_logits, the evaluation's [rows, labels] fp32 logits of the output layer on a
  split's stored features (dropout is off in evaluation), which is what the whole model computes in fp32.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from transformers import default_data_collator
from transformers.modeling_outputs import SequenceClassifierOutput

from ..data import tokenized_train_pool
from ..features import FeatureReader, classifier_reader, dataset_columns, sharing_features, split_features
from ..training import build_trainer
from .layers import output_layer


def feature_reader(setup, trainer) -> FeatureReader:
    """The reader of what `setup.model`'s output layer reads (features.classifier_reader)."""
    return classifier_reader(setup.model, output_layer(setup.model, setup.family),
                             trainer.processing_class.pad_token_id)


def train_features(reader: FeatureReader, task, tokenized, tokenizer) -> np.ndarray:
    """[train rows, features] float32 of `tokenized["train"]`: with the feature store on and the whole train split
    kept tokenized by this process (data.tokenized_train_pool), the subsample's rows task.train_rows of the whole
    split's features; else the rows' own."""
    facts = task.data_facts.get("truncation") or {}
    pool = tokenized_train_pool(task, tokenizer, facts["max_length"]) if sharing_features() and facts else None
    if pool is None:
        return split_features(reader, dataset_columns(tokenized["train"]), "train")
    return split_features(reader, dataset_columns(pool), "train")[task.train_rows]


class HeadOnFeatures(nn.Module):
    """dropout -> `layer` over stored features, as a model Trainer trains: forward(features [batch, features],
    labels [batch] ids, or [batch, labels] 0/1 when `multi_label`) -> SequenceClassifierOutput(loss, logits
    [batch, labels]); the loss is hft-pooled's (cross-entropy, or BCE-with-logits for multi-label)."""

    def __init__(self, dropout: nn.Module, layer: nn.Linear, multi_label: bool):
        super().__init__()
        self.dropout, self.layer, self.multi_label = dropout, layer, multi_label

    def forward(self, features, labels=None):
        logits = self.layer(self.dropout(features))
        loss = None
        if labels is not None:
            loss = (nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)) if self.multi_label
                    else nn.functional.cross_entropy(logits, labels))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def train_head(head: HeadOnFeatures, trainer, features: dict[str, np.ndarray], tokenized, resume_from=None) -> None:
    """Train `head` on `features` {train, validation: [rows, features]} with the labels of `tokenized`, by a Trainer
    with `trainer`'s arguments (random order, no token budget), callbacks, loss and metrics; `trainer` takes its
    state. `resume_from`: a checkpoint folder of an earlier call to resume."""
    data = {split: Dataset.from_dict({"features": rows, "labels": tokenized[split]["labels"]}).with_format("torch")
            for split, rows in features.items()}
    args = dataclasses.replace(trainer.args, train_sampling_strategy="random", max_batch_tokens=None)
    head_trainer = build_trainer(head, args, None, data["train"], data.get("validation"), [],
                                 data_collator=default_data_collator, compute_loss_func=trainer.compute_loss_func,
                                 compute_metrics=trainer.compute_metrics)
    present = {type(callback) for callback in head_trainer.callback_handler.callbacks}
    for callback in trainer.callback_handler.callbacks:
        if type(callback) not in present:
            head_trainer.add_callback(callback)
    head_trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    trainer.state = head_trainer.state


def head_logits(reader: FeatureReader, layer: nn.Linear,
                known: dict[str, np.ndarray] | None = None) -> Callable[[str, Dataset], np.ndarray]:
    """logits(split, tokenized dataset) -> [rows, labels] float32: `layer` on the split's stored features (those of
    `known` {split: features} when it holds the split: what this run read already)."""

    def logits(split: str, dataset) -> np.ndarray:
        features = (known or {}).get(split)
        if features is None or len(features) != len(dataset):
            features = split_features(reader, dataset_columns(dataset), split)
        with torch.inference_mode(), torch.autocast(layer.weight.device.type, enabled=False):
            inputs = torch.as_tensor(features, device=layer.weight.device, dtype=layer.weight.dtype)
            return layer(inputs).float().cpu().numpy()

    return logits
