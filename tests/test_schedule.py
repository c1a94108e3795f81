"""The small-data rule (hf_transfer.schedule): step counts for the sizes a study uses."""

import pytest

from hf_transfer.config import TrainConfig
from hf_transfer.schedule import (MAX_EPOCHS, MIN_OPTIMIZER_STEPS, MIN_WARMUP_RATIO, NO_DROPOUT_MIN_EXAMPLES,
                                  resolve_schedule, small_data_schedule)

DEFAULTS = dict(epochs=2.0, batch_size=32, warmup_ratio=0.06)  # TrainConfig's defaults


@pytest.mark.parametrize("n, batch_size, epochs, steps", [
    (16, 8, 100, 200),     # 2 epochs at 32 would be one step; batch min(32, max(8, n // 8))
    (32, 8, 50, 200),
    (128, 16, 25, 200),
    (1024, 32, 7, 224),    # 32 steps an epoch: the epochs grow to 7
    (9221, 32, 2, 578),    # the default task's whole train split: unchanged
])
def test_step_counts(n, batch_size, epochs, steps):
    schedule = small_data_schedule(n, **DEFAULTS)
    assert (schedule.batch_size, schedule.epochs, schedule.optimizer_steps) == (batch_size, epochs, steps)
    assert schedule.optimizer_steps >= MIN_OPTIMIZER_STEPS
    assert schedule.warmup_ratio == (MIN_WARMUP_RATIO if schedule.changes else 0.06)
    assert bool(schedule.changes) == (n < 9221)


def test_applying_the_rule_twice_changes_nothing():
    for n in (8, 16, 100, 1024, 5000):
        first = small_data_schedule(n, **DEFAULTS)
        again = small_data_schedule(n, epochs=first.epochs, batch_size=first.batch_size,
                                    warmup_ratio=first.warmup_ratio)
        assert (again.batch_size, again.epochs, again.warmup_ratio, again.changes) == (
            first.batch_size, first.epochs, first.warmup_ratio, ())


def test_the_global_batch_counts_processes_and_accumulation():
    schedule = small_data_schedule(64, epochs=2, batch_size=8, gradient_accumulation_steps=4, processes=2)
    assert schedule.gradient_accumulation_steps == 1 and schedule.batch_size * 2 == 8  # the floor of 8, global
    assert schedule.optimizer_steps == 200 and schedule.epochs == 25


def test_very_few_examples_stop_at_the_epoch_cap():
    schedule = small_data_schedule(2, **DEFAULTS)
    assert schedule.epochs == MAX_EPOCHS and schedule.batch_size == 2 and schedule.optimizer_steps == MAX_EPOCHS


@pytest.mark.parametrize("settings", [dict(strategy="linear-probe"), dict(max_steps=30)])
def test_fixed_steps_and_the_linear_probe_keep_what_was_asked(settings):
    schedule = small_data_schedule(16, **DEFAULTS, learning_rate=3e-5, **settings)
    assert (schedule.batch_size, schedule.epochs, schedule.warmup_ratio, schedule.changes) == (32, 2.0, 0.06, ())
    assert schedule.learning_rate == 3e-5


@pytest.mark.parametrize("dropout, strategy, n, resolved", [
    (None, "full", NO_DROPOUT_MIN_EXAMPLES, 0.0),      # enough data for the default schedule: no dropout
    (None, "full", NO_DROPOUT_MIN_EXAMPLES - 1, None),  # the small-data rule's range keeps the checkpoint's own
    (None, "adapter", 9221, None),                      # measured for full fine-tuning only
    (0.3, "full", 9221, 0.3),                           # as set
])
def test_dropout_null_is_off_for_full_fine_tuning_on_enough_data(dropout, strategy, n, resolved):
    train = TrainConfig(dropout=dropout)
    first, _ = resolve_schedule(train, strategy, n)
    again, _ = resolve_schedule(first, strategy, n)
    assert first.dropout == again.dropout == resolved
