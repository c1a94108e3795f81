"""Batches that waste little compute on padding, for training and for inference.

Training: `LengthBucketedSampler` keeps the batch size fixed (so the optimisation is the one the user asked for)
but fills each batch with examples of similar length: it shuffles, cuts the shuffled order into pools of many
batches, sorts each pool by length, cuts it into batches and shuffles the batches. Unlike transformers'
`LengthGroupedSampler` the batches of a pool reach the model in random order, not longest to shortest.

Inference: `length_sorted_batches` orders examples by length and fills each batch up to a token budget;
callers put the outputs back in the original order. Training under a token budget: `budget_row_slices` cuts a
batch into micro-batches of whole rows (hf_transfer.training.TransferTrainer accumulates their gradients).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

POOL_BATCHES = 64  # batches sorted together: enough for near-zero padding, few enough to keep the order random


class LengthBucketedSampler(Sampler[int]):
    """Index order whose consecutive runs of `global_batch_size` are examples of similar length.

    `global_batch_size` is what one optimiser step sees: per-device batch x gradient accumulation x processes.
    The DataLoader cuts each global batch into consecutive per-device batches (micro-batches for accumulation,
    and accelerate hands them to the processes in turn), so 1 process with batch 32, 1 process with batch 8 and
    4 accumulation steps, and 2 processes with batch 16 all see the same examples in each optimiser step.
    The order depends on `seed` and the epoch only (`set_epoch`, which accelerate calls each epoch), so every
    process computes the same order.
    """

    def __init__(self, lengths: Sequence[int], global_batch_size: int, seed: int = 0, pool_batches: int = POOL_BATCHES):
        """`lengths`: tokens of each example (one per dataset row); `pool_batches`: how many global batches are sorted
        together (POOL_BATCHES)."""
        self.lengths = np.asarray(lengths)
        self.batch_size = global_batch_size
        self.seed = seed
        self.pool_size = global_batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch` (with the seed) for the next order: each epoch gets another shuffle."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start:start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        # The one short batch (the end of the last pool) stays last: the DataLoader cuts batches by counting
        # indices, so a short batch in the middle would shift every batch after it.
        last = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        for i in rng.permutation(len(batches)):
            yield from batches[i].tolist()
        for batch in last:
            yield from batch.tolist()


def length_sorted_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int = 512) -> list[np.ndarray]:
    """Index batches, shortest examples first, each padded size (rows x longest) within `max_tokens`."""
    return budget_batches(np.argsort(np.asarray(lengths), kind="stable"), lengths, max_tokens, max_batch_size)


def budget_batches(order: Sequence[int], lengths: Sequence[int], max_tokens: int,
                   max_batch_size: int) -> list[np.ndarray]:
    """`order` (indices into `lengths`) cut into consecutive batches of at most `max_batch_size` indices, each
    padded size (rows x longest) within `max_tokens`; a longer single example is a batch of its own."""
    batches, current, longest = [], [], 0
    for index in np.asarray(order).tolist():
        length = int(lengths[index])
        if current and (max(longest, length) * (len(current) + 1) > max_tokens or len(current) == max_batch_size):
            batches.append(np.asarray(current))
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(np.asarray(current))
    return batches


def budget_row_slices(shape: Sequence[int], max_tokens: int) -> list[slice]:
    """Consecutive row slices of a padded batch of `shape` (rows, length, ...), each at most `max_tokens` padded
    tokens (rows x length), at least one row each: the micro-batches of a training batch under a token budget."""
    rows, length = int(shape[0]), int(shape[1])
    per_slice = max(1, max_tokens // max(1, length))
    return [slice(start, min(start + per_slice, rows)) for start in range(0, rows, per_slice)]


def pad_batch(columns: dict[str, Sequence[Sequence[int]]], rows: Sequence[int], pad_id: int) -> dict:
    """Right-padded tensors of the given rows of tokenizer output columns (input_ids, attention_mask,
    token_type_ids, ...): what DataCollatorWithPadding does, without its per-example Python overhead."""
    return {name: right_pad([values[row] for row in rows], pad_id if name == "input_ids" else 0)
            for name, values in columns.items()}


def right_pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """rows (n sequences of ints, lengths may differ) -> LongTensor (n, longest), each row followed by `value`."""
    longest = max(len(row) for row in rows)
    return torch.tensor([list(row) + [value] * (longest - len(row)) for row in rows], dtype=torch.long)
