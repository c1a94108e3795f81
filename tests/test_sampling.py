"""Nested, seeded, stratified subsamples (hf_transfer.sampling)."""

from collections import Counter

import numpy as np
import pytest

from hf_transfer.sampling import nested_subsample, stratified_order

LABELS = ["fresh"] * 700 + ["rotten"] * 280 + ["rare"] * 20  # 70% / 28% / 2%
SIZES = (3, 16, 64, 256, 1000)


def test_smaller_samples_are_part_of_larger_ones_for_one_seed():
    for seed in (1, 2, 3):
        samples = [set(nested_subsample(LABELS, n, seed)) for n in SIZES]
        assert [len(s) for s in samples] == list(SIZES)
        for small, large in zip(samples, samples[1:]):
            assert small < large


def test_each_seed_draws_its_own_sample_and_the_same_seed_the_same_one():
    assert list(nested_subsample(LABELS, 64, 1)) == list(nested_subsample(LABELS, 64, 1))
    assert set(nested_subsample(LABELS, 64, 1)) != set(nested_subsample(LABELS, 64, 2))
    assert sorted(stratified_order(LABELS, 5)) == list(range(len(LABELS)))


@pytest.mark.parametrize("n", [16, 64, 256])
def test_samples_are_stratified_within_one_example_per_label_beyond_the_first(n):
    counts = Counter(LABELS[i] for i in nested_subsample(LABELS, n, 7))
    for label, total in Counter(LABELS).items():
        proportional = n * total / len(LABELS)
        assert abs(counts[label] - proportional) <= 2, (label, counts, proportional)


def test_a_sample_as_large_as_the_label_set_holds_every_label():
    for seed in range(20):
        assert {LABELS[i] for i in nested_subsample(LABELS, 3, seed)} == {"fresh", "rotten", "rare"}


def test_multi_label_rows_are_stratified_by_their_label_set():
    rows = [[1, 0]] * 60 + [[0, 1]] * 30 + [[1, 1]] * 10
    chosen = nested_subsample(rows, 50, 3)
    counts = Counter(tuple(rows[i]) for i in chosen)
    assert counts == {(1, 0): 30, (0, 1): 15, (1, 1): 5}
    assert set(nested_subsample(rows, 20, 3)) < set(chosen)


@pytest.mark.parametrize("n", [0, len(LABELS) + 1])
def test_sizes_outside_the_data_are_refused(n):
    with pytest.raises(ValueError, match="n must lie between 1 and 1000"):
        nested_subsample(LABELS, n, 1)


def test_the_whole_data_is_every_index():
    assert np.array_equal(nested_subsample(LABELS, len(LABELS), 4), np.arange(len(LABELS)))
