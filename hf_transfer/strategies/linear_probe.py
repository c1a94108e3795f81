"""The classic linear probe (`strategy=linear-probe`): frozen features, a scikit-learn logistic regression on top.

Which features: exactly those the saved model's output layer sees, so that the saved folder (a whole model that
`transformers.pipeline` loads) reproduces the probe's predictions. They come from the feature store
(hf_transfer.features.classifier_reader, through strategies.on_features: one fp32 forward pass per split in eval
mode, and in a study one per backbone and split for every size and seed), read with the head's last Linear swapped
for an identity, so pooling is each architecture's own:

- decoders (GPT-2, Llama): the last real token's final hidden state;
- our backbones: their pooled output (hft-attention mean or CLS, hft-textcnn max over time, hft-rnn its pooling);
- BERT: the pooler's tanh(dense(CLS)), because that is what BertForSequenceClassification feeds its classifier;
  unless the checkpoint declares its pooling (sentence-transformers' 1_Pooling: MiniLM's mean) or option `pooling`
  asks for mean / cls / max: then that pooling of the last hidden states, saved as an hft-pooled model
  (hf_transfer.pooling, as strategy=frozen);
- T5: tanh(dense(eos state)) with `classification_head.dense` left at its random init (a fixed random projection),
  because the head's `out_proj` is the only linear map that can take the probe's weights.

Evaluation applies the output layer to the stored validation and test features (StrategySetup.head_logits): fp32,
as the saved model computes them, so no near-tie needs an fp32 re-check.

The fitted coefficients (features standardised for the solver, the scaling folded back into the weights; dead
features, which barely vary, left at weight 0: DEAD_FEATURE_SPREAD) are copied into that output layer: softmax for
single-label (a binary probe becomes logits ±z/2), one sigmoid per label for multi-label. Options: `C` (inverse L2
strength) and `max_iter`. Left unset, C is the best of C_GRID by stratified k-fold cross-validation on the training
examples alone (scikit-learn's LogisticRegressionCV, accuracy; k = min(CV_FOLDS, examples of the rarest label), so
16 examples of two labels get 5 folds of ~3), which is what a user with K labelled examples has; issue 17 asks for
it instead of the validation split, which a few-shot user may not have. With fewer than 2 examples of some label no
fold can hold it out: C = 1 (scikit-learn's default). Multi-label: one cross-validated C per label. The chosen C,
the cross-validation accuracy, the validation accuracy and the probe's training log-loss go to the log history.
train.class_weight weights the log-loss per label as it weights the other strategies' loss (scikit-learn's
class_weight).

With a zero-shot teacher (teacher.method; hf_transfer.distill calls `fit_targets`), the probe is fitted instead to
the teacher's calibrated probabilities over the train texts whose labels the run does not use, plus the K gold
examples one-hot: the soft-target cross-entropy sum_k t_k * -log q_k that the other strategies' distillation
minimises, which a weighted logistic regression computes exactly when each text is repeated once per label with
its target probability as the sample weight. C: the best of C_GRID by the accuracy on the K gold examples of a
probe fitted to the teacher-labelled texts alone (the gold examples are the only true labels and are held out of
that fit), then refitted on all texts; FALLBACK_C with fewer than 2 gold examples. No optimiser steps, so there is
no gold fine-tuning stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..errors import UserError
from ..features import dataset_columns, split_features
from ..pooling import pooled_classifier
from .base import Strategy, StrategySetup, register_strategy
from .frozen import Pooling, freeze_all_but
from .layers import output_layer
from .on_features import feature_reader, head_logits, train_features

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
CV_FOLDS = 5  # at most; fewer when the rarest label has fewer training examples
FALLBACK_C = 1.0  # too few examples to cross-validate: scikit-learn's default
# A feature whose spread over the training texts is under a millionth of the widest feature's is a dead unit, not a
# signal: all-MiniLM-L6-v2's last layer norm has three weights under 2e-9 (units 127, 223 and 319; spread 7e-33 to
# 2e-9 against 0.11-0.25). Standardising one gives it a weight of 1 / its spread (9e30 there), which the saved head
# then multiplies into every gradient of further training: their sum of squares overflows, and clipping zeroes every
# update. Dead features get weight 0.
DEAD_FEATURE_SPREAD = 1e-6


@dataclass
class LinearProbeOptions:
    """strategy_options of strategy=linear-probe: `C` and `max_iter` of scikit-learn's LogisticRegression,
    and the pooling of the features."""

    C: float | None = None  # inverse L2 regularisation strength; None: the best of C_GRID by cross-validation
    max_iter: int = 1000
    pooling: Pooling = "auto"  # as strategy=frozen's option: auto (declared, else head) | head | mean | cls | max


@register_strategy
class LinearProbe(Strategy):
    """strategy=linear-probe: see the module docstring."""

    name = "linear-probe"
    description = "a logistic-regression probe (scikit-learn) on frozen pooled features, saved as the model's head"
    transferred = "features"
    options_class = LinearProbeOptions
    tasks = ("text-classification",)  # one pooled feature vector per text

    def __init__(self, options=None):
        """Raises UserError for C <= 0 or max_iter < 1."""
        super().__init__(options)
        if self.options.C is not None and self.options.C <= 0:
            raise UserError(f"strategy_options.C must be positive, got {self.options.C}")
        if self.options.max_iter < 1:
            raise UserError(f"strategy_options.max_iter must be at least 1, got {self.options.max_iter}")

    def setup(self, model, family, train_config) -> StrategySetup:
        """Freeze everything but the head's output layer, which `train` overwrites with the fitted probe."""
        model, family, pooling = pooled_classifier(model, family, self.options.pooling)
        freeze_all_but(model, [output_layer(model, family)[2]])
        return StrategySetup(model, family, options={**self.applied_options(), "pooling": pooling})

    def train(self, setup, trainer, task, tokenized, resume_from=None) -> None:
        """Fit the probe on the train split's features (no optimiser steps: nothing to resume) and copy it into
        the output layer; the chosen C goes to the Trainer's log history."""
        reader = feature_reader(setup, trainer)
        train_x = train_features(reader, task, tokenized, trainer.processing_class)
        train_y = np.asarray(tokenized["train"]["labels"])
        _check_every_label_seen(train_y, task.label_names, task.multi_label)

        def fit(z, intercept):
            weight, bias, C, cv_accuracy = _fit(z, train_y, task.multi_label, setup.model.config.num_labels,
                                                self.options.C, self.options.max_iter, intercept, trainer.args.seed,
                                                _class_weights(trainer))
            return weight, bias, {"linear_probe_C": C, "cross_validation_accuracy": cv_accuracy}

        _fit_output_layer(setup, trainer, reader, tokenized, train_x, train_y, task.multi_label, fit)

    def fit_targets(self, setup, trainer, task, tokenized, targets_set, gold: int) -> dict:
        """The teacher's stage (hf_transfer.distill): fit the probe to `targets_set`'s soft targets (a tokenized
        Dataset whose `labels` are [labels] probability rows; its last `gold` rows are the gold examples, one-hot)
        as the module docstring says, and copy it into the output layer. Returns the log-history entry:
        {linear_probe_C, gold_accuracy (of the teacher-labelled fit that chose C; None without a choice),
        validation_accuracy, train_loss (against the targets)}. Raises UserError when some label has no target
        weight at all."""
        reader = feature_reader(setup, trainer)
        x = split_features(reader, dataset_columns(targets_set), "teacher-labelled")
        targets = np.asarray(targets_set["labels"], dtype=np.float64)
        _check_every_label_seen(np.flatnonzero(targets.sum(0) > 0), task.label_names, False)

        def fit(z, intercept):
            probe, C, gold_accuracy = gold_chosen_soft_probe(z, targets, gold, self.options.C, self.options.max_iter,
                                                             intercept, _class_weights(trainer))
            return *probe_logits(probe, targets.shape[1]), {"linear_probe_C": C, "gold_accuracy": gold_accuracy}

        return _fit_output_layer(setup, trainer, reader, tokenized, x, targets, False, fit)


def _class_weights(trainer) -> dict[int, float] | None:
    """train.class_weight as {label id: weight}: the run's loss carries it (losses.TargetCrossEntropy), and the
    probe weights its log-loss the same way."""
    weights = getattr(trainer.compute_loss_func, "class_weights", None)
    return None if weights is None else dict(enumerate(weights.tolist()))


def _fit_output_layer(setup, trainer, reader, tokenized, train_x: np.ndarray, train_y: np.ndarray,
                      multi_label: bool, fit) -> dict:
    """Fit `fit(z, intercept)` -> (weight [labels, features], bias [labels], log entries) on `train_x` [rows,
    features] standardised (_fit_live_features) and copy the weights into the output layer; log (and return)
    the entries, the validation accuracy and the training log-loss against `train_y` (label ids, 0/1 rows, or target
    rows), and set setup.head_logits."""
    train_x = train_x.astype(np.float64)
    valid = split_features(reader, dataset_columns(tokenized["validation"]), "validation")
    valid_y = np.asarray(tokenized["validation"]["labels"])
    layer = output_layer(setup.model, setup.family)[2]
    # GPT-2's and Llama's `score` has no bias: then the probe has no intercept and features are only scaled.
    intercept = layer.bias is not None
    weight, bias, entries = _fit_live_features(train_x, intercept, fit)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        if intercept:
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    entry = {**entries, "validation_accuracy": _accuracy(valid.astype(np.float64) @ weight.T + bias, valid_y,
                                                          multi_label),
             "train_loss": _log_loss(train_x @ weight.T + bias, train_y, multi_label)}
    trainer.state.log_history.append(entry)
    setup.head_logits = head_logits(reader, layer, {"validation": valid})
    return entry


def live_features(x: np.ndarray) -> np.ndarray:
    """[features] bool: the columns of x [rows, features] whose spread (standard deviation) is at least
    DEAD_FEATURE_SPREAD times the widest column's."""
    spread = x.std(axis=0)
    return spread >= DEAD_FEATURE_SPREAD * spread.max()


def _fit_live_features(train_x: np.ndarray, intercept: bool, fit) -> tuple[np.ndarray, np.ndarray, dict]:
    """(weight [labels, features], bias [labels], log entries) of `fit(z, intercept)` on the live features of
    `train_x` [rows, features] standardised, the scaling folded back into the weights; dead features (live_features)
    get weight 0 and the count `dead_features` in the entries."""
    live = live_features(train_x)
    scaler = StandardScaler(with_mean=intercept).fit(train_x[:, live])
    live_weight, bias, entries = fit(scaler.transform(train_x[:, live]), intercept)
    weight = np.zeros((live_weight.shape[0], train_x.shape[1]))
    weight[:, live] = live_weight / scaler.scale_
    bias = bias - weight[:, live] @ scaler.mean_ if intercept else bias
    return weight, bias, {**entries, "dead_features": int((~live).sum())}


def _check_every_label_seen(labels: np.ndarray, names: list[str], multi_label: bool) -> None:
    if multi_label:
        for k, name in enumerate(names):
            if labels[:, k].min() == labels[:, k].max():
                which = "every" if labels[0, k] else "no"
                raise UserError(f"label {name!r} is on {which} training example: a linear probe needs examples with "
                                "and without each label; drop it with data.exclude_labels or add examples")
    else:
        missing = sorted(set(range(len(names))) - set(labels.tolist()))
        if missing:
            raise UserError(f"label {names[missing[0]]!r} has no training example: a linear probe cannot learn it; "
                            "drop it with data.exclude_labels or add examples")


def _fit(x, y, multi_label: bool, num_labels: int, C: float | None, max_iter: int, intercept: bool, seed: int,
         class_weight: dict[int, float] | None = None):
    """(weight [num_labels, features], bias [num_labels], C, cross-validation accuracy or None) of logits that
    reproduce the fitted probabilities; C None: chosen per probe by cross_validated_probe (multi-label: the list of
    the per-label choices). `class_weight`: {label id: weight} of the log-loss (single-label), or None."""
    if multi_label:  # one binary probe per label; sigmoid(logit) is its probability
        fits = [cross_validated_probe(x, y[:, k], C, max_iter, intercept, seed) for k in range(num_labels)]
        probes = [probe for probe, _, _ in fits]
        scores = [float(score.mean()) for _, _, score in fits if score is not None]
        return (np.stack([p.coef_[0] for p in probes]), np.array([float(p.intercept_[0]) for p in probes]),
                [chosen for _, chosen, _ in fits] if C is None else C, float(np.mean(scores)) if scores else None)
    probe, C, score = cross_validated_probe(x, y, C, max_iter, intercept, seed, class_weight)
    return *probe_logits(probe, num_labels), C, None if score is None else float(score.mean())


def probe_logits(probe: LogisticRegression, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight [num_labels, features], bias [num_labels]) whose softmax is a fitted single-label scikit-learn
    LogisticRegression's probabilities (this probe's, SetFit's head)."""
    if num_labels == 2:  # sklearn's one binary logit z becomes the pair (-z/2, z/2): same softmax
        z_weight, z_bias = probe.coef_[0], probe.intercept_[0]
        return np.stack([-z_weight, z_weight]) / 2, np.array([-z_bias, z_bias]) / 2
    return probe.coef_, probe.intercept_


def cross_validated_probe(x: np.ndarray, y: np.ndarray, C: float | None, max_iter: int, intercept: bool,
                          seed: int, class_weight: dict[int, float] | None = None,
                          ) -> tuple[LogisticRegression, float, np.ndarray | None]:
    """(fitted probe, its C, that C's accuracy per cross-validation fold [folds] or None) on features x [n, features] and
    label ids y [n]: with C given, that C; else the best of C_GRID by stratified min(CV_FOLDS, rarest label's
    count)-fold cross-validation on x alone (shuffled with `seed`; ties go to the smallest C), refitted on all of
    x; FALLBACK_C where the rarest label has fewer than 2 examples. `class_weight` ({label id: weight} or None) weights
    the log-loss as scikit-learn's own class_weight."""
    folds = min(CV_FOLDS, int(np.unique(y, return_counts=True)[1].min()))
    if C is not None or folds < 2:
        C = FALLBACK_C if C is None else C
        return LogisticRegression(C=C, max_iter=max_iter, fit_intercept=intercept,
                                  class_weight=class_weight).fit(x, y), C, None
    search = LogisticRegressionCV(Cs=list(C_GRID), cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                  scoring="accuracy", l1_ratios=(0.0,), use_legacy_attributes=False, refit=False,
                                  max_iter=max_iter, fit_intercept=intercept, class_weight=class_weight,
                                  ).fit(x, y)  # l1_ratios 0: plain L2
    fold_scores = search.scores_[:, 0, :]  # [folds, C] accuracy
    best = int(np.argmax(fold_scores.mean(axis=0)))  # the first best: the smallest C, as LogisticRegressionCV's refit
    # refitted as LogisticRegression(C) itself, so that the probe is exactly scikit-learn's model for that C
    return (cross_validated_probe(x, y, C_GRID[best], max_iter, intercept, seed, class_weight)[0], C_GRID[best],
            fold_scores[:, best])


def soft_target_probe(x: np.ndarray, targets: np.ndarray, C: float, max_iter: int, intercept: bool,
                      class_weight: dict[int, float] | None = None) -> LogisticRegression:
    """A logistic regression fitted to soft targets: x [n, features], targets [n, labels] rows summing to 1. Each
    row is repeated once per label with that label's target (times its class weight, `class_weight` {label id:
    weight} or None) as its sample weight, so the weighted log-loss is the soft-target cross-entropy
    sum_i sum_k w_k t_ik * -log q_ik of losses.TargetCrossEntropy (zero-weight copies are dropped); with one-hot
    targets it is LogisticRegression(C, class_weight) on the label ids itself."""
    n, num_labels = targets.shape
    label_weights = np.array([(class_weight or {}).get(k, 1.0) for k in range(num_labels)])
    labels, weights = np.tile(np.arange(num_labels), n), (targets * label_weights).ravel()
    keep = weights > 0
    return LogisticRegression(C=C, max_iter=max_iter, fit_intercept=intercept).fit(
        np.repeat(x, num_labels, axis=0)[keep], labels[keep], sample_weight=weights[keep])


def gold_chosen_soft_probe(x: np.ndarray, targets: np.ndarray, gold: int, C: float | None, max_iter: int,
                           intercept: bool, class_weight: dict[int, float] | None = None,
                           ) -> tuple[LogisticRegression, float, float | None]:
    """(probe on all rows, its C, the gold accuracy that chose C or None): x [n, features], targets [n, labels]
    whose last `gold` rows are one-hot gold labels. C None: the best of C_GRID by the accuracy on the gold rows of
    soft_target_probe fitted to the other rows (ties go to the smallest C); FALLBACK_C with fewer than 2 gold rows
    or no other row. `class_weight` as soft_target_probe's."""
    if C is not None or gold < 2 or gold >= len(x):
        C = FALLBACK_C if C is None else C
        return soft_target_probe(x, targets, C, max_iter, intercept, class_weight), C, None
    gold_x, gold_y = x[-gold:], targets[-gold:].argmax(1)
    scores = [float((soft_target_probe(x[:-gold], targets[:-gold], c, max_iter, intercept, class_weight)
                     .predict(gold_x) == gold_y).mean()) for c in C_GRID]
    best = int(np.argmax(scores))
    return soft_target_probe(x, targets, C_GRID[best], max_iter, intercept, class_weight), C_GRID[best], scores[best]


def _accuracy(logits: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    if multi_label:
        return float(((logits > 0) == (y > 0.5)).mean())
    return float((logits.argmax(-1) == y).mean())


def _log_loss(logits: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    logits = torch.as_tensor(logits)
    if multi_label:
        return float(nn.functional.binary_cross_entropy_with_logits(logits, torch.as_tensor(y, dtype=logits.dtype)))
    return float(nn.functional.cross_entropy(logits, torch.as_tensor(y)))
