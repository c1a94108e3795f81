"""The objectives' collators: token blocks -> model inputs and labels, for masked LM, causal LM and T5 spans.

Every batch draws its randomness from a generator of its own, seeded from (seed, process, stream, batch number),
never from a generator that runs on from the seed. A run resumed from a checkpoint at step s makes its first batch
with number s (ResumedBatchNumbers sets it; the Trainer never collates the batches it skips), so it masks and
corrupts exactly as the uninterrupted run did. This assumes the batches of one process are made in order in that
process, as with the Trainer's default dataloader_num_workers=0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, TrainerCallback

from ..batching import right_pad
from ..errors import UserError
from .tokenizer import sentinel_ids

MLM_PROBABILITY = 0.15  # BERT's share of masked tokens (Devlin et al. 2019, section 3.1)
OBJECTIVES = {  # objective -> what the model learns; its eval loss and perplexity are of these predictions
    "mlm": f"masked language modelling: predict the {MLM_PROBABILITY:.0%} of the tokens that were masked",
    "causal": "causal language modelling: predict each next token",
    "span": "T5 span corruption: write out the spans of tokens that sentinels replaced in the input",
}
STREAMS = {"train": 0, "eval": 1}  # eval batches have their own numbers: the same masks whatever came before


class NumberedBatches:
    """Mixin for a collator whose batch k draws from a generator seeded by (seed, process_index, stream, k).

    The class using it has `seed` and `process_index` attributes and calls `restart_batches()` on creation.
    """

    seed: int
    process_index: int

    def restart_batches(self, stream: str = "train", batch_number: int = 0) -> None:
        """Number the next batch `batch_number` of `stream` ("train" or "eval")."""
        self._stream, self._batch_number = STREAMS[stream], batch_number

    def next_batch_seed(self) -> np.random.SeedSequence:
        """The seed of the batch being made; the following batch gets the next number."""
        seed = np.random.SeedSequence([self.seed, self.process_index, self._stream, self._batch_number])
        self._batch_number += 1
        return seed


@dataclass
class LanguageModelingCollator(NumberedBatches, DataCollatorForLanguageModeling):
    """transformers' DataCollatorForLanguageModeling (BERT's 80/10/10 masking of `mlm_probability` of the non-special
    tokens with mlm=True; labels = inputs with pads at -100 with mlm=False), with numbered per-batch generators.

    Input: examples with input_ids (and special_tokens_mask for masked LM). Output: input_ids, attention_mask and
    labels, LongTensors of shape (batch, longest); labels are -100 where no loss is taken.
    """

    process_index: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.restart_batches()

    def options(self) -> dict:
        """The masking settings, for the run's record (none for causal LM)."""
        if not self.mlm:
            return {}
        return {"mlm_probability": self.mlm_probability, "mask_replace_prob": self.mask_replace_prob,
                "random_replace_prob": self.random_replace_prob}

    def torch_call(self, examples):
        """Collate one batch (see the class docstring) with a generator of its own batch number."""
        self.generator = None  # so DataCollatorForLanguageModeling asks create_rng for this batch's generator
        return super().torch_call(examples)

    def create_rng(self, return_tensors=None):
        """Seed this batch's generator from `next_batch_seed` (seed, process, stream, batch number) instead of
        transformers' single stream, so a resumed run masks its batches as the uninterrupted one."""
        self.generator = self.get_generator(int(self.next_batch_seed().generate_state(1)[0]), return_tensors)


@dataclass
class SpanCorruptionCollator(NumberedBatches):
    """T5's pretraining objective: drop random spans from the input, have the decoder write them back.

    About `noise_density` of each block's tokens, in spans of `mean_span_length` on average, are cut out (T5's
    defaults: 0.15 and 3; Raffel et al. 2020, section 3.3). In the input each span becomes one sentinel
    (<extra_id_0>, <extra_id_1>, ...); the target lists each sentinel followed by the tokens it replaced. Both end
    in </s>:

        block    The cat sat on the mat today
        inputs   The <extra_id_0> on the <extra_id_1> today </s>
        labels   <extra_id_0> cat sat <extra_id_1> mat </s>

    Called on examples with input_ids, it returns input_ids and attention_mask of shape (batch, longest input) and
    labels of shape (batch, longest target), right-padded with `pad_token_id` (inputs) and -100 (labels).
    """

    sentinel_ids: list[int]
    eos_token_id: int
    pad_token_id: int
    noise_density: float = 0.15
    mean_span_length: float = 3.0
    seed: int = 0
    process_index: int = 0

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)  # for corrupt() called on its own
        self.restart_batches()

    def options(self) -> dict:
        """The corruption settings, for the run's record."""
        return {"noise_density": self.noise_density, "mean_span_length": self.mean_span_length}

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(self.next_batch_seed())
        pairs = [self.corrupt(list(example["input_ids"]), rng) for example in examples]
        inputs = right_pad([source for source, _ in pairs], self.pad_token_id)
        return {
            "input_ids": inputs,
            "attention_mask": (inputs != self.pad_token_id).long(),
            "labels": right_pad([target for _, target in pairs], -100),  # -100: no loss on padding
        }

    def corrupt(self, token_ids: list[int], rng: np.random.Generator | None = None) -> tuple[list[int], list[int]]:
        """(inputs, targets) token ids of one block, spans drawn from `rng` (default: the collator's own, seeded
        by `seed`). Raises UserError when the block needs more spans than there are sentinels."""
        noise = self.noise_mask(len(token_ids), rng or self.rng)
        inputs, targets = [], []
        span = -1
        for position, (token, is_noise) in enumerate(zip(token_ids, noise)):
            if not is_noise:
                inputs.append(token)
                continue
            if position == 0 or not noise[position - 1]:  # a span starts: one sentinel stands for all of it
                span += 1
                inputs.append(self.sentinel_ids[span])
                targets.append(self.sentinel_ids[span])
            targets.append(token)
        return inputs + [self.eos_token_id], targets + [self.eos_token_id]

    def noise_mask(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Boolean mask of `length` tokens, True on noise: T5's random_spans_noise_mask (google-research/
        text-to-text-transfer-transformer, t5/data/preprocessors.py), a fixed number of noise tokens
        (round(length * noise_density), at least 1 and at most length - 1) split into a fixed number of spans."""
        noise_count = min(max(round(length * self.noise_density), 1), length - 1)
        span_count = max(1, min(round(noise_count / self.mean_span_length), noise_count, length - noise_count))
        if span_count > len(self.sentinel_ids):
            raise UserError(f"blocks of {length} tokens need {span_count} sentinel tokens but the tokenizer has "
                            f"{len(self.sentinel_ids)}: lower max_seq_length or use a tokenizer with more <extra_id_N>")
        noise_lengths = _random_partition(noise_count, span_count, rng)
        kept_lengths = _random_partition(length - noise_count, span_count, rng)
        # Kept and noise spans alternate, kept first, so a block never starts with a sentinel.
        lengths = np.stack([kept_lengths, noise_lengths], axis=1).ravel()
        return np.repeat(np.tile([False, True], span_count), lengths)


def _random_partition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """`parts` positive integers summing to `total`, uniformly at random."""
    cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]]))


class ResumedBatchNumbers(TrainerCallback):
    """Numbers the first training batch after the step the run starts from (0, or a checkpoint's step)."""

    def __init__(self, collator: NumberedBatches):
        """`collator`: the run's training collator, renumbered when training begins."""
        self.collator = collator

    def on_train_begin(self, args, state, control, **kwargs):
        """Number the next training batch global_step x gradient_accumulation_steps."""
        # The Trainer has loaded the checkpoint's state by now; each step takes gradient_accumulation_steps batches.
        self.collator.restart_batches("train", state.global_step * args.gradient_accumulation_steps)


def collator_for(objective: str, tokenizer, seed: int, process_index: int = 0):
    """The collator of `objective` ("mlm", "causal" or "span") for blocks made by `tokenizer`.

    `process_index` (this process's rank) keeps processes from drawing the same masks for different blocks.
    """
    if objective == "span":
        return SpanCorruptionCollator(sentinel_ids(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id,
                                      seed=seed, process_index=process_index)
    return LanguageModelingCollator(tokenizer, mlm=objective == "mlm", mlm_probability=MLM_PROBABILITY, seed=seed,
                                    process_index=process_index)
