"""World v3 of `newsrec demo-data` (the default): world v2 whose impressions show only news already published."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.pipeline import world_v2
from newsrec.pipeline.demo_data import DemoConfig, Planted, _Published, config_for, generate, plant


@functools.lru_cache(maxsize=None)
def planted(world: str) -> Planted:
    return plant(config_for("tiny", 0, world))


def row_times(impressions) -> np.ndarray:
    """The time (days since day 0) each candidate row is shown at: the clock of the logit."""
    return world_v2.impression_rows(impressions)[2]


def test_v3_is_the_default():
    assert DemoConfig.world == "v3" and config_for("tiny", 0).world == "v3"
    result = CliRunner().invoke(main, ["demo-data", "--help"])
    assert "[default: v3]" in " ".join(result.output.split())


def test_v3_never_shows_a_story_before_its_publication_and_v2_does():
    for split in ("train", "dev"):
        v3, v2 = getattr(planted("v3"), split), getattr(planted("v2"), split)
        assert (planted("v3").news.published[v3.candidates] <= row_times(v3)).all()
        assert (planted("v2").news.published[v2.candidates] > row_times(v2)).mean() > 0.2
        for impressions in (v3, v2):  # (day, seconds) stays sorted and within the day
            assert (np.lexsort((impressions.seconds, impressions.day)) == np.arange(len(impressions.day))).all()
            assert impressions.seconds.max() < 86_400 and np.diff(impressions.offsets).min() >= 2


def test_v3_is_world_v2_but_for_the_candidates():
    v3, v2 = planted("v3"), planted("v2")
    for name in ("topic", "entity", "published", "life", "wording", "residual", "buzz"):
        assert np.array_equal(getattr(v3.news, name), getattr(v2.news, name))
    assert all(np.array_equal(a, b) for a, b in zip(v3.users.history, v2.users.history))
    assert np.array_equal(v3.users.follows, v2.users.follows) and np.array_equal(v3.train.user, v2.train.user)
    user, item, time = world_v2.impression_rows(v3.dev)  # labels drawn from v2's logit
    logits = world_v2.logit(world_v2.WorldV2(), v3.news, v3.users, user, item, time)
    assert np.allclose(v3.dev.probability, 1 / (1 + np.exp(-logits)))


def test_v3_keeps_minds_statistics_and_reports_no_story_shown_before_publication(tmp_path: Path):
    summary = generate(tmp_path, config_for("tiny", 0))
    stats = summary["statistics"]
    assert summary["world"] == "v3" and 0.03 < summary["dev_ctr"] < 0.06
    assert summary["dev_candidates_unseen_in_train"] > 0.6 and summary["shown_before_published"] == 0.0
    assert 0 < stats["empty_history_share"] < 0.06 and 10 < stats["title_words_mean"] < 14
    assert 15 <= stats["candidates_median"] <= 30 and (stats["categories"], stats["subcategories"]) == (14, 38)
    written = json.loads((tmp_path / "planted.json").read_text())
    assert written["world"] == "v3" and written["shown_before_published"] == 0.0
    assert written["oracle_decomposition"]["cumulative"]["full (+ residual)"]["auc"] > 0.7
    assert written["recall_oracle"]["dev-day pool"]["100"] > 100 / summary["dev_distinct_candidates"]


def test_every_world_reports_the_share_shown_before_publication(tmp_path: Path):
    v2 = generate(tmp_path / "v2", config_for("tiny", 0, "v2"))
    v1 = generate(tmp_path / "v1", config_for("tiny", 0, "v1"))
    assert v2["shown_before_published"] > 0.2 and v1["shown_before_published"] == 0.0  # v1 news: at day start
    assert json.loads((tmp_path / "v1" / "planted.json").read_text())["shown_before_published"] == 0.0
    # v2's planted.json is pinned byte for byte (tests/test_world_v2.py): the statistic is returned, not written
    assert "shown_before_published" not in json.loads((tmp_path / "v2" / "planted.json").read_text())


def test_an_impression_with_fewer_than_two_published_stories_moves_to_the_second_publication():
    """Day 1's pool: one story of day 0 still live, three of day 1 published at 0.25, 0.5 and 0.75."""
    news = SimpleNamespace(day=np.array([0, 1, 1, 1]), life=np.array([2, 1, 1, 1]),
                           published=np.array([0.4, 1.75, 1.25, 1.5]))
    published = _Published.of(news, {1: np.array([0, 1, 2, 3])})
    assert published.items[1].tolist() == [0, 2, 3, 1]
    day, seconds = np.array([1, 1, 1, 1]), np.array([0, 21_600, 30_000, 70_000])  # 0 h, 6 h, 8.3 h, 19.4 h
    assert published.available(day, seconds).tolist() == [1, 2, 2, 4]
    moved_day, moved = published.delay(day, seconds)
    assert moved_day.tolist() == [1, 1, 1, 1] and moved.tolist() == [21_600, 21_600, 30_000, 70_000]
    assert published.available(moved_day, moved).min() == 2
    late = published.delay(np.array([1, 1]), np.array([10, 5]))[1]  # re-sorted: both moved to 6 h
    assert late.tolist() == [21_600, 21_600]
    draws = published.draw(np.random.default_rng(0), np.array([1] * 50), np.full(50, 2), np.full(50, 2))
    assert set(draws.tolist()) == {0, 2}  # only the two published stories


def test_v3_recall_oracle_pools_only_published_news():
    """The dev-day pool of a v3 impression holds the news published by its time: clicks rank no lower there."""
    p = planted("v3")
    world = world_v2.WorldV2()
    everything = world_v2.recall_oracle(world, p.news, p.users, p.train, p.dev, sample=200)
    published = world_v2.recall_oracle(world, p.news, p.users, p.train, p.dev, sample=200, published_only=True)
    assert published["all news"] == everything["all news"]
    assert published["dev-day pool"][100] >= everything["dev-day pool"][100]
