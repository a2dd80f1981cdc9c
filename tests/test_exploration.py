"""The exploration law: at least the budget, at most the corpus, growing with both, and its calibrated points."""
from __future__ import annotations

import pytest

from newsrec.feed.exploration import CALIBRATION, PER_HIT, ExplorationError, base_exploration, explore

SIZES = [1, 50, 1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 100_000_000]
BUDGETS = [1, 10, 100, 200, 500, 1_000, 5_000]


def test_at_least_the_budget_and_at_most_the_corpus():
    for size in SIZES:
        for budget in BUDGETS:
            explored = explore(budget, size)
            assert explored <= size
            assert explored >= min(budget, size)


def test_grows_with_the_corpus_and_the_budget():
    for budget in BUDGETS:
        assert [explore(budget, size) for size in SIZES] == sorted(explore(budget, size) for size in SIZES)
    for size in SIZES:
        assert [explore(budget, size) for budget in BUDGETS] == sorted(explore(budget, size) for budget in BUDGETS)
    assert base_exploration(100_000_000) > base_exploration(1_000_000) > base_exploration(10_000)


def test_calibrated_points():
    for size, base in CALIBRATION:
        assert base_exploration(size) == base
    assert explore(100, 100_000) == 6_000 and explore(1_000, 100_000) == 1_000 * PER_HIT
    assert explore(100, 1_000_000) == 20_000


def test_small_corpus_is_explored_whole():
    assert explore(100, 150) == 150
    assert explore(1, 10) == 10


def test_the_vespa_default_base_is_a_corpus_of_about_70k_news():
    from newsrec.feed.funnel import VESPA_EXPLORATION

    assert base_exploration(60_000) < VESPA_EXPLORATION < base_exploration(80_000)


@pytest.mark.parametrize("budget, size", [(0, 100), (-5, 100), (10, 0)])
def test_rejects_non_positive_counts(budget, size):
    with pytest.raises(ExplorationError):
        explore(budget, size)
