"""Real-time popularity (feed/live.py): conditional partial updates count an impression once, whatever is resent;
the embedded index applies them atomically and keeps them across a restart; conditions outside the subset fail."""
from __future__ import annotations

import numpy as np
import pytest

from newsrec.feed import ranking
from newsrec.feed.backend import FeedReport
from newsrec.feed.live import (DecayConfig, LiveStore, condition_refused, impression_updates, publish_updates, reset_updates,
                               sequence_numbers)
from newsrec.feed.selection import ConditionError, parse_condition

IDS = ["N1", "N2", "N3"]
DECAY = DecayConfig(half_life_hours=6.0, origin=1_573_000_000.0)


def store() -> LiveStore:
    return LiveStore.from_documents(IDS, [{} for _ in IDS])


def play(live: LiveStore, impression: int, news: list[str], labels: list[int], time: int) -> FeedReport:
    report = FeedReport()
    publish, count = sequence_numbers(impression)
    live.apply(publish_updates(news, time, publish), report)
    live.apply(impression_updates(news, np.array(labels), time, count, DECAY), report)
    return report


def test_an_impression_sent_twice_counts_once():
    live = store()
    play(live, 0, ["N1", "N2"], [1, 0], 1_573_000_000)
    again = play(live, 0, ["N1", "N2"], [1, 0], 1_573_000_000)  # a retry, a resumed replay
    assert again.ok == 0 and all(condition_refused(status, message) for _, status, message in again.failed)
    assert live.columns["impressions"].tolist() == [1, 1, 0] and live.columns["clicks"].tolist() == [1, 0, 0]
    play(live, 1, ["N1"], [0], 1_573_003_600)
    assert live.columns["impressions"].tolist() == [2, 1, 0]


def test_decayed_counters_are_the_decayed_counts():
    """An event t hours before `now` weighs 2^(-t / half-life) in the live CTR."""
    live = store()
    t0 = int(DECAY.origin)
    play(live, 0, ["N1"], [1], t0)
    play(live, 1, ["N1"], [0], t0 + 6 * 3600)
    now = t0 + 12 * 3600
    ctr = ranking.live_ctr(live.columns["clicks_decayed"][:1], live.columns["impressions_decayed"][:1], now,
                           DECAY.origin, DECAY.rate)
    clicks, shown = 0.25, 0.25 + 0.5  # one click 12 h ago (1/4), impressions 12 h and 6 h ago
    assert ctr[0] == pytest.approx((clicks + 1) / (shown + 25), rel=1e-12)


def test_published_is_the_first_sighting_and_is_not_moved_by_a_later_one():
    live = store()
    play(live, 0, ["N1"], [0], 100)
    live.apply(publish_updates(["N1"], 200, sequence_numbers(0)[0]), FeedReport())  # a resent first sighting
    assert live.columns["published"][0] == 100


def test_bad_updates_fail_with_the_document_named():
    live = store()
    report = FeedReport()
    live.apply([{"update": "id:news:news::N9", "fields": {"clicks": {"increment": 1}}},
                {"update": "id:news:news::N1", "fields": {"clicks": {"multiply": 2}}},
                {"update": "id:news:news::N1", "fields": {"clicks": {"increment": "x"}}},
                {"update": "id:news:news::N1", "condition": "news.title == 3", "fields": {"clicks": {"increment": 1}}},
                {"update": "id:news:news::N1", "fields": {"clicks": {"increment": 0.5}}}], report)
    assert [status for _, status, _ in report.failed] == [412, 400, 400, 400, 400]
    assert report.failed[0][0] == "id:news:news::N9" and live.columns["clicks"][0] == 0


def test_conditions_outside_the_subset_are_refused():
    assert parse_condition("news.live_seq < 17", "news").holds({"live_seq": 16})
    assert not parse_condition("news.live_seq < 17", "news").holds({"live_seq": 17})
    assert parse_condition("news", "news").holds({})
    for text in ("news.live_seq < 17 and news.clicks > 0", "user.live_seq < 1", "news.title == 'x'"):
        with pytest.raises(ConditionError):
            parse_condition(text, "news")


def test_the_store_is_saved_atomically_and_bound_to_its_generation(tmp_path):
    live = store()
    play(live, 0, ["N1"], [1], 1_573_000_000)
    live.save(tmp_path / "live.npz", "g000001")
    again = LiveStore.load(tmp_path / "live.npz", IDS, "g000001")
    assert again is not None and again.columns["clicks"].tolist() == [1, 0, 0]
    assert LiveStore.load(tmp_path / "live.npz", IDS, "g000002") is None  # a newer feed's documents hold
    assert not list(tmp_path.glob(".*tmp"))


def test_reset_starts_every_news_item_afresh():
    live = store()
    play(live, 0, ["N1"], [1], 1_573_000_000)
    live.apply(reset_updates(IDS, appeal=np.array([0.5, 0.0, -0.5])), FeedReport())
    assert live.columns["clicks"].sum() == 0 and live.columns["live_seq"].sum() == 0
    assert live.columns["appeal"].tolist() == [0.5, 0.0, -0.5]


def _news(i: int, rng) -> dict:
    from newsrec.feed.documents import news_document

    return news_document(f"N{i}", "sports", "sub", f"Story {i}", "", "u", 20191101, 0, 0,
                         rng.uniform(-1, 1, 64).tolist() + [0.0])


def test_a_new_story_is_served_without_rebuilding_the_graph_and_the_counters_stay(tmp_path):
    """Continuous ingestion: a put of new news appends to the graph (no rebuild over every news item), keeps the
    live counters of the others, and the story is found at once."""
    from newsrec.feed.local_backend import LocalBackend

    rng = np.random.default_rng(0)
    index = LocalBackend(tmp_path / "index")
    index.feed([_news(i, rng) for i in range(200)], "news", FeedReport())
    report = FeedReport()
    index.update(impression_updates(["N1"], np.array([1]), 1_573_000_000, 2, DECAY), "news", report)
    assert report.ok == 1
    built = LocalBackend.__dict__["_build_news_index"]
    calls = []
    try:
        LocalBackend._build_news_index = lambda self, graph=None: calls.append(1) or built(self, graph)
        story = _news(500, rng)
        index.feed([story], "news", FeedReport())
    finally:
        LocalBackend._build_news_index = built
    assert calls == [] and index.news_count == 201 and index._index.ntotal == 201
    assert index.nearest_news(story["fields"]["embedding"]["values"], 1) == ["N500"]
    assert index.live_column("clicks")[index.news_rows(["N1"])[0]] == 1
    reopened = LocalBackend(tmp_path / "index")  # committed: graph, documents and the counters kept
    assert reopened.nearest_news(story["fields"]["embedding"]["values"], 1) == ["N500"]
    assert reopened.live_column("clicks")[reopened.news_rows(["N1"])[0]] == 1


def test_a_put_resets_the_live_fields_of_its_document_only(tmp_path):
    from newsrec.feed.local_backend import LocalBackend

    rng = np.random.default_rng(1)
    index = LocalBackend(tmp_path / "index")
    index.feed([_news(i, rng) for i in range(50)], "news", FeedReport())
    index.update(impression_updates(["N1", "N2"], np.array([1, 1]), 1_573_000_000, 2, DECAY), "news", FeedReport())
    index.feed([_news(2, rng)], "news", FeedReport())  # N2 put again: its counters are the document's (0)
    rows = index.news_rows(["N1", "N2"])
    assert index.live_column("clicks")[rows].tolist() == [1, 0]


def test_a_sequenced_update_that_timed_out_is_retried_and_counted_once():
    """Over HTTP: the update is applied but its answer is late (the client gives up); the retry fails the condition,
    which proves the first attempt applied: ok, counted once (an unsequenced increment is not retried)."""
    from newsrec.contract_server import ContractServer
    from newsrec.feed.vespa_backend import VespaBackend

    rng = np.random.default_rng(2)
    with ContractServer(hold_s=1.5) as server:
        backend = VespaBackend(server.url, timeout_s=0.5, backoff_s=0.05, max_backoff_s=0.1)
        assert backend.feed([_news(i, rng) for i in range(3)], "news", FeedReport()) is None
        server.inject("id:news:news::N1", ["slow"])
        report = FeedReport()
        backend.update(impression_updates(["N1", "N2"], np.array([1, 0]), 1_573_000_000, 2, DECAY), "news", report)
        assert (report.ok, report.failed, report.verified) == (2, [], 1), report.summary()
        assert backend.news(["N1"])[0].fields["clicks"] == 1
        server.inject("id:news:news::N2", ["slow"])
        report = FeedReport()
        backend.update([{"update": "id:news:news::N2", "condition": "news", "fields": {"clicks": {"increment": 1}}}],
                       "news", report)
        (_, status, message), = report.failed
        assert "may have been applied" in message and report.retries == 0
