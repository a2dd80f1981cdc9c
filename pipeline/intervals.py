"""Confidence intervals over repeated runs (seeds): Student's t interval of a mean, and of a paired difference.

Example:
    seeds = [0.6712, 0.6730, 0.6701]                 # one model's dev AUC, three training seeds
    t_interval(seeds)                                # Interval(mean=0.6714, half_width=0.0036, n=3)
    paired_interval(seeds, [0.6709, 0.6711, 0.6713])  # the same seeds of mean-pool: the difference per seed
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95


class IntervalError(ValueError):
    """Too few runs for an interval, or paired runs of different counts."""


@dataclass(frozen=True)
class Interval:
    """mean ± half_width at `level` over n runs."""

    mean: float
    half_width: float
    n: int
    level: float = LEVEL

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        """The difference is established at this level (the interval lies on one side of 0)."""
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 4) -> str:
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of `values` with Student's t interval (n − 1 degrees of freedom); at least two values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise IntervalError(f"an interval needs at least 2 runs, got {x.size}")
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return Interval(float(x.mean()), float(half), int(x.size), level)


def paired_interval(values: Sequence[float], baseline: Sequence[float], level: float = LEVEL) -> Interval:
    """The interval of values − baseline, run by run (the same seed and data for both)."""
    if len(values) != len(baseline):
        raise IntervalError(f"paired runs: {len(values)} against {len(baseline)}")
    return t_interval(np.asarray(values, dtype=np.float64) - np.asarray(baseline, dtype=np.float64), level)
