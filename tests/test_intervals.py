"""Intervals over seeds: Student's t by hand, paired differences, refusals."""
from __future__ import annotations

import math

import pytest

from newsrec.pipeline.intervals import IntervalError, paired_interval, t_interval


def test_t_interval_of_three_runs():
    interval = t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2 df) = 4.302653 -> half width 4.302653 / sqrt(3)
    assert interval.mean == pytest.approx(2.0) and interval.n == 3
    assert interval.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert not interval.excludes_zero and t_interval([1.0, 1.1, 0.9]).excludes_zero


def test_paired_differences_cancel_what_the_runs_share():
    model, baseline = [0.70, 0.68, 0.72], [0.69, 0.67, 0.71]  # run to run noise 0.02, difference always 0.01
    assert paired_interval(model, baseline).text() == "0.0100 ± 0.0000"
    assert paired_interval(model, baseline).excludes_zero


def test_too_few_or_unpaired_runs_are_refused():
    with pytest.raises(IntervalError, match="at least 2 runs"):
        t_interval([0.7])
    with pytest.raises(IntervalError, match="paired runs: 2 against 3"):
        paired_interval([0.7, 0.7], [0.6, 0.6, 0.6])
