"""Shared by the benchmark scripts: how a column of repeated measurements is printed."""

from __future__ import annotations

import statistics


def mean_std(values: list[float], digits: int = 2) -> str:
    """'mean ± sample std' to `digits` decimals; the value alone for a single run."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
