"""Batched forward passes over tokenized texts, and the fp32 re-check of low-precision near-ties.

Evaluation (hf_transfer.tasks) and `hf-transfer predict` both decide labels this way, so that a stock fp32 client
(`transformers.pipeline`) reproduces predictions.jsonl: bf16 keeps 8 significant bits, so logits of a few units move
by hundredths, and a decision closer than RECHECK_MARGIN to its boundary is computed again in fp32.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import numpy as np
import torch

from .batching import length_sorted_batches, pad_batch

# benchmarks/bench_predict.py prints the largest margin shift bf16 causes on real texts (it stays below this).
RECHECK_MARGIN = 0.2
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def decision_margins(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """(texts,) distance of each decision from its boundary, in logits: top-2 gap (single-label), or the smallest
    |logit| (multi-label: a label is on when its sigmoid passes 0.5, i.e. its logit passes 0)."""
    if multi_label:
        return np.abs(logits).min(-1)
    top2 = np.sort(logits, -1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def near_ties(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Row indices whose decision lies within RECHECK_MARGIN of its boundary."""
    return np.flatnonzero(decision_margins(logits, multi_label) < RECHECK_MARGIN)


@torch.inference_mode()
def batched_outputs(read, columns: dict[str, Sequence[Sequence[int]]], rows: np.ndarray, pad_id: int,
                    device: torch.device, max_batch_tokens: int = 4096) -> np.ndarray:
    """float32 outputs of `read(padded model inputs)` for the given rows of tokenizer output `columns`
    (input_ids, ...): (len(rows), features) from [batch, features] outputs, or (len(rows), longest row, labels) from
    per-token [batch, positions, labels] outputs, right-padded with -100 as Trainer.predict pads them. Rows run
    shortest-first in right-padded batches of at most `max_batch_tokens` padded tokens."""
    columns = {name: values for name, values in columns.items() if name in MODEL_INPUTS}
    lengths = [len(columns["input_ids"][row]) for row in rows]
    out = None
    for batch in length_sorted_batches(lengths, max_batch_tokens):
        inputs = {name: tensor.to(device) for name, tensor in pad_batch(columns, rows[batch], pad_id).items()}
        outputs = read(inputs).float().cpu().numpy()
        if out is None:
            per_token = outputs.ndim == 3
            out = np.full((len(rows), max(lengths), outputs.shape[-1]) if per_token else (len(rows), outputs.shape[-1]),
                          -100.0 if per_token else 0.0, dtype=np.float32)
        if outputs.ndim == 3:
            for row, index in enumerate(batch):
                out[index, :lengths[index]] = outputs[row, :lengths[index]]
        else:
            out[batch] = outputs
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def batched_logits(model, columns: dict[str, Sequence[Sequence[int]]], rows: np.ndarray, pad_id: int,
                   device: torch.device, bf16: bool = False, max_batch_tokens: int = 4096) -> np.ndarray:
    """float32 logits of the given rows of tokenizer output `columns` (batched_outputs: (len(rows), labels) from a
    sequence classifier, (len(rows), longest row, labels) from a token classifier), under bf16 autocast when
    `bf16`."""

    def logits(inputs):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model(**inputs).logits

    return batched_outputs(logits, columns, rows, pad_id, device, max_batch_tokens)


@contextmanager
def own_forward(model):
    """`model` running its own forward, in the precision of its weights.

    accelerate's mixed precision (what Trainer's bf16/fp16 use) wraps a prepared model's forward in autocast by
    setting the instance attribute `forward` (Accelerator.prepare_model); it is set aside meanwhile and put back.
    """
    wrapped = model.__dict__.pop("forward", None)
    try:
        yield model
    finally:
        if wrapped is not None:
            model.forward = wrapped


def pool_chunk_logits(logits: np.ndarray, example_ids, num_examples: int) -> np.ndarray:
    """Per-example logits from per-chunk logits: the mean over each example's chunks.

    logits: (chunks, labels); example_ids: (chunks,) the example row of each chunk (tokenize_splits' "example_id");
    returns (num_examples, labels). Averaging logits is the pooling of Pappagari et al. 2019 ("Hierarchical
    Transformers for Long Document Classification") reduced to a mean; it needs no training of its own.
    """
    logits = np.asarray(logits, dtype=np.float32)
    example_ids = np.asarray(example_ids)
    sums = np.zeros((num_examples, logits.shape[-1]), dtype=np.float32)
    np.add.at(sums, example_ids, logits)
    counts = np.bincount(example_ids, minlength=num_examples)
    if (counts == 0).any():
        raise ValueError(f"example {int(np.flatnonzero(counts == 0)[0])} has no chunk")
    return sums / counts[:, None]


def near_tie_rows(logits: np.ndarray, multi_label: bool, example_ids: np.ndarray | None = None,
                  num_examples: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-example logits, the examples whose decision is a near-tie, the rows to re-run for them) of row logits
    (rows, labels). Rows are examples, or with `example_ids` (rows,) chunks of `num_examples` examples, whose logits
    are pooled (pool_chunk_logits) and all of whose chunks are re-run for a near-tie."""
    decided = logits if example_ids is None else pool_chunk_logits(logits, example_ids, num_examples)
    decisions = near_ties(decided, multi_label)
    rows = decisions if example_ids is None else np.flatnonzero(np.isin(example_ids, decisions))
    return decided, decisions, rows


def recheck_near_ties(trainer, dataset, logits: np.ndarray, multi_label: bool) -> tuple[np.ndarray, int]:
    """(per-example logits, near-tie decisions re-checked) from `logits`, the rows of `trainer`'s low-precision
    predictions over the tokenized `dataset`, in its order: the examples whose decision is a near-tie get fp32
    logits (0 re-checked when the trainer ran in fp32).

    A dataset with an `example_id` column (data.truncation=chunks) has a row per chunk: the chunks' logits are
    pooled per example (pool_chunk_logits), and every chunk of a near-tie example is re-run before pooling again.
    Every process of a distributed run re-runs the same rows on its own copy of the model, so all agree.
    """
    example_ids = np.asarray(dataset["example_id"]) if "example_id" in dataset.column_names else None
    examples = None if example_ids is None else int(example_ids.max(initial=-1)) + 1
    decided, decisions, unsure = near_tie_rows(logits, multi_label, example_ids, examples)
    if not (trainer.args.bf16 or trainer.args.fp16) or not len(unsure):
        return decided, 0
    rows = dataset.select(unsure).select_columns([c for c in MODEL_INPUTS if c in dataset.column_names])[:]
    model = trainer.model.eval()
    logits = logits.copy()
    with own_forward(model):
        logits[unsure] = batched_logits(model, rows, np.arange(len(unsure)), trainer.processing_class.pad_token_id,
                                        trainer.args.device)
    return near_tie_rows(logits, multi_label, example_ids, examples)[0], len(decisions)
