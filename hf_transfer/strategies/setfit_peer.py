"""SetFit through its own library (`strategy=setfit`): the few-shot peer, run with the same data, split and output
folder as every other strategy, so a study puts it beside them.

SetFit (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts"; the `setfit` package, an optional
extra: `pip install 'hf_transfer[setfit]'`, pinned) fine-tunes a sentence-embedding body contrastively on pairs of
the training examples (same label: similar), then fits a logistic-regression head (scikit-learn) on the embeddings.
Here the body is the run's checkpoint as sentence-transformers reads it: its declared pooling and Normalize module
(hf_transfer.pooling), mean pooling for a plain transformers checkpoint (sentence-transformers' default). After the
library trains, its body's weights are copied into the run's hft-pooled classifier (same pooling and
normalisation) and its head's coefficients into the classifier's Linear (a binary head's one logit z becomes
(-z/2, z/2), the same softmax), so the saved folder predicts what SetFit predicts and is scored with the project's
own metrics: the library's evaluation (`evaluate.load("accuracy")`) is never called, as it fails offline.

Options are the library's own TrainingArguments of the same names (their defaults: 20 pair iterations per
example, 1 epoch, batch 16, body learning rate 2e-5); the seed is train.seed and the texts are cut at the longest
tokenized training example, i.e. data.max_length. Single-label tasks of one text column only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..pooling import declared_pooling, declares_normalize, pooled_classifier
from .base import Strategy, StrategySetup, register_strategy
from .frozen import freeze_all_but
from .linear_probe import probe_logits

SETFIT_VERSION = "1.2.0"  # as pinned by pyproject's setfit extra


@dataclass
class SetFitOptions:
    """strategy_options of strategy=setfit: setfit.TrainingArguments of the same names, with the library's
    defaults."""

    num_iterations: int = 20  # pairs made per training example (setfit's default)
    num_epochs: int = 1
    batch_size: int = 16
    body_learning_rate: float = 2e-5


@register_strategy
class SetFit(Strategy):
    """strategy=setfit: the setfit library trains body and head; the run saves them as an hft-pooled classifier."""

    name = "setfit"
    description = ("SetFit (the setfit library): contrastive fine-tuning of the sentence-embedding body on pairs of "
                   "the training examples, then a logistic-regression head")
    transferred = "parameters"
    options_class = SetFitOptions
    tasks = ("text-classification",)
    learns_from_teacher = False  # the library trains on pairs of labelled examples

    def __init__(self, options=None):
        super().__init__(options)
        for key in ("num_iterations", "num_epochs", "batch_size"):
            if getattr(self.options, key) < 1:
                raise UserError(f"strategy_options.{key} must be at least 1, got {getattr(self.options, key)}")
        self.location = None
        self.trained = None  # the library's SetFitModel after train, for comparison

    def setup(self, model, family, train_config) -> StrategySetup:
        """Wrap the checkpoint in an hft-pooled classifier with the pooling (and Normalize) sentence-transformers
        would read from it (mean when it declares none); nothing trains through the run's Trainer."""
        self.location = model.config.name_or_path
        pooling = declared_pooling(self.location) or "mean"
        model, family, pooling = pooled_classifier(model, family, pooling, declares_normalize(self.location))
        freeze_all_but(model, [])  # trained by the library, not by the run's Trainer
        return StrategySetup(model, family, options={**self.applied_options(), "pooling": pooling,
                                                     "normalize": model.config.normalize})

    def count_parameters(self, model) -> dict:
        """{trainable, total, trainable_fraction}: the library trains every weight of body and head."""
        total = sum(p.numel() for p in model.parameters())
        return {"trainable": total, "total": total, "trainable_fraction": 1.0}  # the library trains them all

    def train(self, setup, trainer, task, tokenized, resume_from=None) -> None:
        """Train with the setfit library on the train split and copy its body and head into setup.model; the
        library's last logged embedding loss goes to the Trainer's log history. Raises UserError for a
        multi-label or two-text task, a label without training examples, or a missing setfit package."""
        if task.multi_label or len(task.text_columns) != 1:
            raise UserError("strategy=setfit classifies one text into one label: use another strategy for "
                            "multi-label or two-text tasks")
        try:
            import setfit
        except ImportError:
            raise UserError(f"strategy=setfit needs the setfit library: pip install 'hf_transfer[setfit]' "
                            f"(setfit=={SETFIT_VERSION})") from None
        from datasets import Dataset

        labels = np.asarray(tokenized["train"]["labels"])
        missing = sorted(set(range(len(task.label_names))) - set(labels.tolist()))
        if missing:
            raise UserError(f"label {task.label_names[missing[0]]!r} has no training example: SetFit cannot learn "
                            "it; drop it with data.exclude_labels or add examples")
        model = setfit.SetFitModel.from_pretrained(self.location, local_files_only=True)
        args = setfit.TrainingArguments(
            output_dir=f"{trainer.args.output_dir}/setfit", batch_size=self.options.batch_size,
            num_epochs=self.options.num_epochs, num_iterations=self.options.num_iterations,
            body_learning_rate=self.options.body_learning_rate, seed=trainer.args.seed,
            max_length=max(len(ids) for ids in tokenized["train"]["input_ids"]), save_strategy="no",
            report_to="none", show_progress_bar=False)
        library = setfit.Trainer(model=model, args=args, metric=lambda predicted, gold: {},
                                 train_dataset=Dataset.from_dict({"text": list(task.texts("train")),
                                                                  "label": labels.tolist()}))
        library.train()
        self.trained = model

        body = model.model_body[0].auto_model
        setup.model.encoder.load_state_dict(body.state_dict())
        head = model.model_head  # scikit-learn LogisticRegression on the (normalised) embeddings
        if list(head.classes_) != list(range(len(task.label_names))):
            raise UserError(f"SetFit's head learned labels {list(head.classes_)}, not 0..{len(task.label_names) - 1}")
        weight, bias = probe_logits(head, len(task.label_names))
        with torch.no_grad():
            setup.model.classifier.weight.copy_(torch.as_tensor(weight, dtype=setup.model.classifier.weight.dtype))
            setup.model.classifier.bias.copy_(torch.as_tensor(bias, dtype=setup.model.classifier.bias.dtype))
        state = library.st_trainer.state  # the sentence-transformers Trainer that trained the body
        trainer.state.log_history.append({
            "setfit_version": setfit.__version__, "setfit_body_steps": state.global_step,
            "train_loss": next((e["train_loss"] for e in reversed(state.log_history) if "train_loss" in e), None)})
