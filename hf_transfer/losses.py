"""The classification loss a run uses when the model's own cross-entropy will not do: soft targets (a teacher's
probabilities) and class weights.

Trainer calls it as `compute_loss_func(outputs, labels, num_items_in_batch)` (transformers' hook; the model then
gets no labels). Without a teacher and without class weights no run sets it, and sequence classification keeps
the model's own loss.
"""

from __future__ import annotations

from collections import Counter

import torch

from .errors import UserError


class TargetCrossEntropy:
    """Cross-entropy of the logits against a target distribution per example, optionally class-weighted.

    labels: [batch] label ids (a one-hot target; validation and gold rows) or [batch, labels] float rows that sum to
    1 (soft targets: a teacher's calibrated probabilities). The loss of example i is
    -sum_c w_c t_ic log softmax(z_i)_c, i.e. KL(t_i || p_i) up to a constant that does not depend on the model
    (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"); w is all ones unless class
    weights are given. The batch's loss is the sum over examples divided by the number of examples of the whole
    optimiser step when Trainer passes it (num_items_in_batch: gradient accumulation sums micro-batches), else by
    the batch's own count. With one-hot targets and no weights this is the model's own cross-entropy.
    """

    def __init__(self, class_weights: torch.Tensor | None = None):
        """`class_weights`: a [num_labels] float tensor (w above; `class_weights` computes it), or None."""
        self.class_weights = class_weights

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        if labels.is_floating_point():
            targets = labels.to(log_probs.dtype)
            # Trainer counts every entry of float labels (batch x labels) as an item
            examples = None if num_items_in_batch is None else num_items_in_batch / targets.shape[-1]
        else:
            targets = torch.nn.functional.one_hot(labels.long(), log_probs.shape[-1]).to(log_probs.dtype)
            examples = num_items_in_batch
        if self.class_weights is not None:
            targets = targets * self.class_weights.to(targets.device, targets.dtype)
        total = -(targets * log_probs).sum()
        return total / (examples if examples is not None else targets.shape[0])


def class_weights(spec, label_names: list[str], train_labels, multi_label: bool) -> torch.Tensor | None:
    """[labels] loss weights from train.class_weight: "balanced" gives label c the weight n / (C x n_c) (scikit-
    learn's `class_weight="balanced"`; labels absent from train get 1), a {label: weight} mapping gives the named
    labels their weight and the others 1, None gives None. Raises UserError for a multi-label task, an unknown
    label or a weight that is not positive."""
    if spec is None:
        return None
    if multi_label:
        raise UserError("train.class_weight weights single labels; this task is multi-label: drop "
                        "train.class_weight")
    if spec == "balanced":
        counts = Counter(int(label) for label in train_labels)
        n, c = sum(counts.values()), len(label_names)
        return torch.tensor([n / (c * counts[i]) if counts[i] else 1.0 for i in range(c)])
    given = {str(label): weight for label, weight in spec.items()}
    unknown = sorted(set(given) - set(label_names))
    if unknown:
        raise UserError(f"train.class_weight names label {unknown[0]!r}, which the task does not have "
                        f"({', '.join(label_names)}): fix the key")
    bad = [label for label, weight in given.items() if not weight > 0]
    if bad:
        raise UserError(f"train.class_weight gives label {bad[0]!r} the weight {given[bad[0]]}: weights must be "
                        "positive")
    return torch.tensor([float(given.get(name, 1.0)) for name in label_names])
