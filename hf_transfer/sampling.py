"""Stratified subsamples that nest: for one seed, the first 16 examples are among the first 64.

A learning curve compares a method at 16, 64, 256, ... training examples; with nested subsamples the larger size
only adds examples, so a difference between sizes is the extra data, not a luckier draw. Each seed gives its own
order, and the test split is never touched (it is made before any subsample, with its own seed).

    order = stratified_order(labels, seed=1)       # a permutation of range(len(labels))
    nested_subsample(labels, 16, seed=1)           # sorted indices of order[:16]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_order(labels: Sequence, seed: int) -> np.ndarray:
    """A permutation of `range(len(labels))` whose every prefix is a stratified sample.

    Each label (a stratum; for multi-label rows, a list of labels, the label set) gets a random order of its
    examples; its j-th example (0-based) gets the key (j + u) / m, where m is the stratum's size and u one uniform
    offset per stratum, and the examples are sorted by key (ties in random order). A prefix of length n then holds
    n * m / N examples of each stratum, up to one (systematic sampling, whose counts never shrink as n grows, so
    prefixes nest). Single-label tasks put one example of every label first (in random label order): a prefix as
    long as the number of labels already holds every label, as few-shot training needs, at the cost of rare
    labels being over-represented by at most one example. Deterministic for a seed (numpy's PCG64).

    Shapes: labels has N entries (label ids or names, or lists of them); returns int64 indices of shape (N,).
    """
    rng = np.random.default_rng(seed)
    strata = [tuple(label) if isinstance(label, (list, tuple, np.ndarray)) else label for label in labels]
    multi_label = any(isinstance(label, tuple) for label in strata)
    groups: dict = {}
    for index, stratum in enumerate(strata):
        groups.setdefault(stratum, []).append(index)
    keys = np.empty(len(strata), dtype=np.float64)
    for members in groups.values():
        members = rng.permutation(members)
        positions = (np.arange(len(members)) + rng.uniform()) / len(members)
        if not multi_label:
            positions[0] = -1.0 + rng.uniform() * 0.5  # one of each label before all others
        keys[members] = positions
    tie_break = rng.permutation(len(strata))
    return np.lexsort((tie_break, keys)).astype(np.int64)


def nested_subsample(labels: Sequence, n: int, seed: int) -> np.ndarray:
    """The sorted indices of a stratified sample of `n` of the examples with these labels, nested across n.

    `nested_subsample(labels, 16, s)` is a subset of `nested_subsample(labels, 64, s)`; see stratified_order for
    the stratification. Raises ValueError for n < 1 or n > len(labels): callers check sizes against the data
    first and say which config key to change.
    """
    if not 1 <= n <= len(labels):
        raise ValueError(f"a subsample of {n} from {len(labels)} examples: n must lie between 1 and {len(labels)}")
    return np.sort(stratified_order(labels, seed)[:n])
