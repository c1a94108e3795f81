"""The small-data rule: the training schedule a run actually uses for its number of training examples.

With 16 examples, the default 2 epochs at batch 32 is one optimiser step, and the run ends where it started (the
majority class; issue 17's table). The rule below keeps the requested schedule wherever it already gives enough
optimiser steps, and otherwise changes as little as it can:

1. **A batch that fits n.** The global batch (batch_size x gradient_accumulation_steps x processes) is cut so that
   one epoch has at least MIN_STEPS_PER_EPOCH optimiser steps, but not below MIN_BATCH_SIZE examples per step
   (nor above n): with the default batch of 32, min(32, max(8, n // 8)).
2. **Enough optimiser steps.** If the epochs then give fewer than MIN_OPTIMIZER_STEPS steps, the number of epochs
   grows (whole epochs, so every example is seen equally often) until they do, up to MAX_EPOCHS.
3. **Warmup.** At least MIN_WARMUP_RATIO of the steps warm the learning rate up.
4. **Learning rate.** A learning rate the user set is kept; left unset (null), strategies in
   SMALL_DATA_LEARNING_RATES get theirs (full fine-tuning 5e-5 instead of 1e-4), the others their default. torch's
   AdamW always applies Adam's bias correction, which the few-sample papers below found BERT's original optimiser
   lacked.
5. **Selection** (applied by the classify run, hf_transfer.selection): where the rule changed the schedule and there
   is a validation split, the run evaluates SELECT_EVALUATIONS times and ends with the checkpoint of the best
   validation accuracy (train.select_best sets it either way).

Dropout goes the other way (resolve_dropout): train.dropout=null is no dropout for full fine-tuning on
NO_DROPOUT_MIN_EXAMPLES or more examples (issue 19: a tie in accuracy at 1.34x faster CPU steps on the default
task), and the checkpoint's own below that, where the rule above was measured.

The literature behind it:
- Mosbach, Andriushchenko & Klakow 2021, "On the Stability of Fine-tuning BERT: Misconceptions, Explanations, and
  Strong Baselines" (ICLR): failed few-sample runs are an optimisation problem (vanishing gradients early on, too
  few iterations), not catastrophic forgetting; they recommend small learning rates with warmup (10% of the steps,
  linear), Adam's bias correction, and many more iterations than the usual 3 epochs (20 epochs in their setup),
  training to (almost) zero training loss.
- Zhang, Wu, Katiyar, Weinberger & Artzi 2021, "Revisiting Few-sample BERT Fine-tuning" (ICLR): the usual fixed,
  small number of iterations is one of three causes of few-sample instability (with the missing bias correction
  and re-usable top layers); training longer stabilises the runs and improves them.

The constants were measured by issue 17's research (experiments/fewshot/README.md on the `fewshot` branch: MiniLM-L6,
Rotten Tomatoes, the default split, K = 16 / 32 / 128 stratified examples, seeds 1-3, test accuracy of the
checkpoint chosen on validation): batch min(32, max(8, K // 8)) with at least 200 steps and 10% warmup; for full
fine-tuning lr 5e-5 scored 0.591 / 0.657 / 0.714 against 1e-4's 0.595 / 0.645 / 0.697 (+1.2 and +1.7 points at
K = 32 and 128, a tie at 16), where the defaults (2 epochs, batch 32) never left the majority class (0.578).
Batch 4 (this module's earlier floor) was not measured. They are named here and nowhere else. The rule is idempotent: applying it to its own result
changes nothing, so a study that applies it when it builds a run's config and a classify run that applies it again
agree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

# Epochs shorter than this many optimiser steps barely shuffle; with MIN_BATCH_SIZE it gives issue 17's measured
# batch min(32, max(8, n // 8)) at the default batch of 32.
MIN_STEPS_PER_EPOCH = 8
# Below this, per-step gradients of a sentence classifier are mostly noise; 8 is issue 17's measured floor.
MIN_BATCH_SIZE = 8
# Mosbach et al. train their smallest GLUE sets (2.5k examples, batch 16) for ~3,000 steps; 200 steps is far fewer,
# chosen to keep the smallest runs of a study well under a minute on a CPU while leaving the one-step regime behind.
MIN_OPTIMIZER_STEPS = 200
MAX_EPOCHS = 100  # with very few examples, beyond this more epochs only memorise
DEFAULT_EPOCHS = 2.0  # train.epochs=null: 2 passes where that gives enough steps (the default run: 578 steps)
MIN_WARMUP_RATIO = 0.1  # Mosbach et al.: linear warmup over the first 10% of the steps
# The learning rate where the rule applies and the run left it unset; measured for full fine-tuning only (issue 17:
# 5e-5 beat 1e-4 by 1.2 / 1.7 test points at K = 32 / 128, validation 0.5 / 1.6).
SMALL_DATA_LEARNING_RATES = {"full": 5e-5}
# train.dropout=null turns dropout off for these strategies from this many training examples on (where the default
# 2 epochs at batch 32 already give MIN_OPTIMIZER_STEPS steps); measured for full fine-tuning on the default task
# only (issue 19). Smaller sets keep the checkpoint's dropout, with which issue 17 measured the rule above.
NO_DROPOUT_STRATEGIES = ("full",)
NO_DROPOUT_MIN_EXAMPLES = 3200
SELECT_EVALUATIONS = 20  # evaluations on validation in a run the rule changed (issue 17's research: 20)
# Strategies that do not train by optimiser steps here (the linear probe fits a logistic regression, SetFit trains
# through its own library): the rule leaves them.
NO_OPTIMIZER_STEPS = frozenset({"linear-probe", "setfit"})


@dataclass(frozen=True)
class Schedule:
    """The schedule a run uses: per-device batch size, epochs, warmup, and what the rule changed (for logs and cards).

    `optimizer_steps` counts the steps these settings give for n examples (max_steps, when set, wins).
    """

    batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    warmup_ratio: float
    learning_rate: float | None
    optimizer_steps: int
    changes: tuple[str, ...] = field(default_factory=tuple)


def small_data_schedule(n: int, *, epochs: float, batch_size: int, learning_rate: float | None = None,
                        warmup_ratio: float = 0.0, strategy: str = "full", gradient_accumulation_steps: int = 1,
                        processes: int = 1, max_steps: int = -1) -> Schedule:
    """The schedule for `n` training examples, given the requested one (train.* settings) and the strategy's name.

    Units: batch sizes in examples per device per micro-batch, `epochs` in passes over the n examples. The requested
    values come back unchanged (with `changes` empty) when max_steps > 0 (the user fixed the steps), for strategies
    in NO_OPTIMIZER_STEPS, and whenever the requested schedule already meets the rule. Raises ValueError for n < 1.
    """
    if n < 1:
        raise ValueError(f"a schedule for {n} training examples: n must be at least 1")
    changes: list[str] = []
    if max_steps > 0 or strategy in NO_OPTIMIZER_STEPS:
        steps = max_steps if max_steps > 0 else 0
        return Schedule(batch_size, gradient_accumulation_steps, epochs, warmup_ratio, learning_rate, steps)

    global_batch = batch_size * gradient_accumulation_steps * processes
    fitting = fitting_batch_size(n, global_batch)
    if global_batch > fitting:
        gradient_accumulation_steps = 1
        batch_size = max(1, min(batch_size, fitting // processes))
        changes.append(f"batch size {global_batch} -> {batch_size * processes} (at least {MIN_STEPS_PER_EPOCH} steps "
                       f"per epoch of {n} examples)")
        global_batch = batch_size * processes
    steps_per_epoch = math.ceil(n / global_batch)
    steps = math.ceil(steps_per_epoch * epochs)
    if steps < MIN_OPTIMIZER_STEPS and epochs < MAX_EPOCHS:
        needed = min(MAX_EPOCHS, math.ceil(MIN_OPTIMIZER_STEPS / steps_per_epoch))
        if needed > epochs:
            changes.append(f"epochs {epochs:g} -> {needed} (at least {MIN_OPTIMIZER_STEPS} optimiser steps, at most "
                           f"{MAX_EPOCHS} epochs)")
            epochs = float(needed)
            steps = steps_per_epoch * needed
    if changes and warmup_ratio < MIN_WARMUP_RATIO:
        changes.append(f"warmup ratio {warmup_ratio:g} -> {MIN_WARMUP_RATIO:g}")
        warmup_ratio = MIN_WARMUP_RATIO
    if changes and learning_rate is None and strategy in SMALL_DATA_LEARNING_RATES:
        learning_rate = SMALL_DATA_LEARNING_RATES[strategy]
        changes.append(f"learning rate {learning_rate:g} (the strategy's small-data rate)")
    return Schedule(batch_size, gradient_accumulation_steps, epochs, warmup_ratio, learning_rate, steps, tuple(changes))


def fitting_batch_size(n: int, batch_size: int) -> int:
    """The largest global batch of at most `batch_size` that gives n examples MIN_STEPS_PER_EPOCH steps an epoch,
    but at least MIN_BATCH_SIZE (and at most n): min(batch_size, n, max(MIN_BATCH_SIZE, n // MIN_STEPS_PER_EPOCH))."""
    return min(batch_size, n, max(MIN_BATCH_SIZE, n // MIN_STEPS_PER_EPOCH))


def resolve_schedule(train, strategy: str, n: int, processes: int = 1):
    """(train config to use, changes): `train` (a TrainConfig whose learning_rate is the one the user set, or null)
    with the rule applied when its epochs are null (the default: DEFAULT_EPOCHS, or as many as `n` training examples
    need); explicit epochs are kept as given. The learning rate stays null unless the rule sets one; dropout as
    resolve_dropout says."""
    train = dataclasses.replace(train, dropout=resolve_dropout(train.dropout, strategy, n))
    if train.epochs is not None:
        return train, ()
    schedule = small_data_schedule(n, epochs=DEFAULT_EPOCHS, batch_size=train.batch_size,
                                   learning_rate=train.learning_rate, warmup_ratio=train.warmup_ratio,
                                   strategy=strategy, gradient_accumulation_steps=train.gradient_accumulation_steps,
                                   processes=processes, max_steps=train.max_steps)
    return dataclasses.replace(train, batch_size=schedule.batch_size,
                               gradient_accumulation_steps=schedule.gradient_accumulation_steps,
                               epochs=schedule.epochs, warmup_ratio=schedule.warmup_ratio,
                               learning_rate=schedule.learning_rate), schedule.changes


def resolve_dropout(dropout: float | None, strategy: str, n: int) -> float | None:
    """train.dropout for a run of `strategy` on `n` training examples: as set, or for null 0.0 (no dropout) for
    NO_DROPOUT_STRATEGIES from NO_DROPOUT_MIN_EXAMPLES examples on, else null (the checkpoint's own). Depends on n
    alone, not on the schedule, so applying it again changes nothing."""
    if dropout is None and strategy in NO_DROPOUT_STRATEGIES and n >= NO_DROPOUT_MIN_EXAMPLES:
        return 0.0
    return dropout


def optimizer_steps(n: int, train, processes: int = 1) -> int:
    """Optimiser steps of a run over n examples with `train` (a TrainConfig, epochs resolved): max_steps when set,
    else ceil(n / global batch) x epochs, rounded up (what Trainer runs, dropping no last partial batch)."""
    if train.max_steps > 0:
        return train.max_steps
    global_batch = train.batch_size * train.gradient_accumulation_steps * processes
    return math.ceil(math.ceil(n / global_batch) * (DEFAULT_EPOCHS if train.epochs is None else train.epochs))
