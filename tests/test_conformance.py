"""The conformance suite of the two interfaces of an index (feed/backend.py): every operation of `FeedTarget` and
`SearchBackend`, fallbacks and errors included, run the same on the embedded default index and on the Vespa backend
against the contract server (Vespa's HTTP API, not Vespa). A new backend joins `BACKENDS` and passes by passing
these tests; where the two must agree to the last digit, a test asks both."""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from newsrec.contract_server import ContractServer
from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import category_ctr_document, news_document, user_document
from newsrec.feed.live import DecayConfig, condition_refused, impression_updates, publish_updates, sequence_numbers
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.queries import QueryError, UnknownFilterValueError, check_filter_values
from newsrec.feed.vespa_backend import VespaBackend
from newsrec.pipeline.errors import NewsrecError

BACKENDS = ("embedded", "vespa")
CATEGORIES = ("sports", "news", "finance")
CATEGORY_CTRS = {"sports": 0.05, "news": 0.02, "finance": 0.03}


def vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(64)] + [0.0]


def corpus() -> dict[str, list[dict]]:
    """30 news in 3 categories (titles with "hawks" every other one, dates over 3 days, CTRs varied), two users
    (U1 read N0 and N3; U2 nothing) and the global category CTRs."""
    news = [news_document(f"N{i}", CATEGORIES[i % 3], "sub", f"Story {i} about hawks" if i % 2 else f"Story {i}",
                          "An abstract.", f"https://x/{i}", 20191101 + i % 3, i % 7, 10 + i, vector(i),
                          entities=("Q1",) if i % 2 else ("Q7", "Q1"))
            for i in range(30)]
    users = [user_document("U1", vector(1001), vector(1002), ["N0", "N3"]),
             user_document("U2", vector(1003), vector(1004), [])]
    return {"category_ctr": [category_ctr_document(CATEGORY_CTRS)], "news": news, "user": users}


@pytest.fixture(scope="module")
def server():
    with ContractServer(hold_s=1.5) as running:
        yield running


def open_target(kind: str, directory: Path, server: ContractServer):
    if kind == "embedded":
        return LocalBackend(directory / "index")
    server.app.reset()
    return VespaBackend(server.url, timeout_s=5.0, backoff_s=0.05, max_backoff_s=0.2)


def fed(kind: str, directory: Path, server: ContractServer):
    """A target fed the corpus as the main job feeds it: under its feed state, the state recorded."""
    backend = open_target(kind, directory, server)
    backend.preflight()
    with backend.feed_state(directory / "state") as store:
        store.begin({"max_norm": 1.0})
        for doctype, documents in corpus().items():
            report = FeedReport()
            backend.feed(documents, doctype, report)
            assert report.success and report.ok == len(documents), report.summary()
        store.finish({"max_norm": 1.0, "news_ids": [f"N{i}" for i in range(30)]})
    return backend


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path: Path, server):
    return fed(request.param, tmp_path, server)


@pytest.fixture
def both(tmp_path: Path, server):
    """The embedded index and the Vespa backend over the same corpus (the server holds one corpus at a time)."""
    return fed("embedded", tmp_path / "embedded", server), fed("vespa", tmp_path / "vespa", server)


def ids(hits) -> list[str]:
    return [hit.news_id for hit in hits]


def dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- the feed's side

def test_the_feed_state_is_kept(backend, tmp_path: Path):
    with backend.feed_state(tmp_path / "state") as store:
        assert store.state()["news_ids"][:2] == ["N0", "N1"] and store.state()["max_norm"] == 1.0


def test_a_bad_document_is_counted_with_its_id_and_the_rest_is_fed(backend):
    good = news_document("N99", "sports", "sub", "Late story", "", "u", 20191103, 0, 0, vector(99))
    bad = {"id": "id:news:news::N98", "fields": {**good["fields"], "no_such_field": 1}}
    report = FeedReport()
    backend.feed([bad, good], "news", report)
    assert (report.sent, report.ok) == (2, 1)
    (doc_id, status, message), = report.failed
    assert doc_id == "id:news:news::N98" and status == 400 and "no_such_field" in message
    assert ids(backend.news(["N99", "N98"])) == ["N99"]


def test_partial_updates_assign_and_count(backend):
    report = FeedReport()
    backend.update([{"update": "id:news:news::N1", "fields": {"clicks": {"increment": 2}}},
                    {"update": "id:news:news::N2", "fields": {"impressions": {"decrement": 3},
                                                             "title": {"assign": "Renamed story"}}}], "news", report)
    assert (report.sent, report.ok, report.failed) == (2, 2, [])
    one, two = backend.news(["N1", "N2"])
    assert one.fields["clicks"] == 1 + 2 and two.fields["impressions"] == 12 - 3
    assert two.fields["title"] == "Renamed story"
    served = {hit.news_id: hit.relevance for hit in backend.popular(30)}  # served at once, by the new counts
    assert served["N1"] == pytest.approx(100 * (3 + 1) / (11 + 25)) and served["N2"] == pytest.approx(100 * 3 / 34)


def test_a_partial_update_of_a_missing_document_or_an_unknown_operation_fails_counted(backend):
    report = FeedReport()
    backend.update([{"update": "id:news:news::N404", "fields": {"clicks": {"increment": 1}}},
                    {"update": "id:news:news::N1", "fields": {"clicks": {"multiply": 2}}},
                    {"update": "id:news:news::N5", "fields": {"clicks": {"increment": 1}}}], "news", report)
    assert (report.sent, report.ok) == (3, 1)
    failed = {doc_id: status for doc_id, status, _ in report.failed}
    assert failed == {"id:news:news::N404": 412, "id:news:news::N1": 400}
    assert backend.news(["N404"]) == [] and backend.news(["N1"])[0].fields["clicks"] == 1


def test_an_impression_written_twice_counts_once(backend):
    """feed/live.py's conditional updates: the second sending fails its condition (412 test-and-set), nothing
    counted twice; the live fields are served at once."""
    decay = DecayConfig(origin=1_573_000_000.0)
    publish, count = sequence_numbers(0)
    for attempt in range(2):
        report = FeedReport()
        backend.update(publish_updates(["N3"], 1_573_000_000, publish)
                       + impression_updates(["N3", "N4"], np.array([1, 0]), 1_573_000_000, count, decay), "news", report)
        if attempt == 0:
            assert (report.ok, report.failed) == (3, []), report.summary()
        else:
            assert report.ok == 0 and all(condition_refused(status, message) for _, status, message in report.failed)
    three, four = backend.news(["N3", "N4"])
    assert (three.fields["clicks"], three.fields["impressions"], four.fields["impressions"]) == (3 + 1, 13 + 1, 14 + 1)
    assert three.fields["published"] == 1_573_000_000 and three.fields["live_seq"] == count


def test_live_features_at_the_impressions_time_and_the_recency_window(backend):
    """The live profile asked at `now` (Vespa: ranking.properties.vespa.now): the decayed smoothed CTR, the age,
    the appeal and the weighted live score, as feed/ranking.py computes them; recall within a window of
    publication times returns only news published in it."""
    from newsrec.feed import ranking

    decay = DecayConfig(origin=1_573_000_000.0)
    t = 1_573_000_000
    report = FeedReport()
    backend.update(publish_updates(["N3", "N4"], t, 1) + publish_updates(["N5"], t - 30 * 3600, 1)
                   + impression_updates(["N3", "N4"], np.array([1, 0]), t, 2, decay)
                   + [{"update": "id:news:news::N4", "fields": {"appeal": {"assign": 0.5}}}], "news", report)
    assert report.success, report.summary()
    now, weights = t + 7200, {"w_user": 0.5, "w_ctr": 1.0, "w_recency": -0.2, "w_appeal": 0.3}
    user = vector(1002)
    got = backend.live_features(user, ["N4", "N3"], now, {**decay.inputs(), **weights})
    ctr = ranking.live_ctr(np.array([1.0, 1.0]) * [0, 1], np.array([1.0, 1.0]), now, decay.origin, decay.rate)
    assert got["live_ctr"] == pytest.approx(ctr, rel=1e-9) and got["age_hours"] == pytest.approx([2.0, 2.0])
    assert got["appeal"] == pytest.approx([0.5, 0.0])
    expected = ranking.live_score(got["ranking_score"], ctr, np.array([2.0, 2.0]), np.array([0.5, 0.0]), weights)
    assert got["live_score"] == pytest.approx(expected, rel=1e-6)
    assert got["ranking_score"] == pytest.approx([dot(user, vector(4)), dot(user, vector(3))], rel=1e-5)
    window = backend.nearest_news(vector(3), 10, (t - 24 * 3600, now))
    assert sorted(window) == ["N3", "N4"]  # N5, published 30 h before t, is outside; the others never seen
    assert "N5" in backend.nearest_news(vector(3), 10, (t - 48 * 3600, now))


def test_the_learned_rankers_features_at_the_impressions_time(backend):
    """Rank profile learned_features (the features a learned ranker reads, feed/ranking.py LEARNED_FEATURES): the
    mapped query tensors (category CTRs, the history's category and entity shares) against the news' category and
    entities attribute, the recall vector's closeness, the decayed impressions, the history's length."""
    from newsrec.feed import ranking
    from newsrec.feed.replay import LearnedQuery

    decay = DecayConfig(origin=1_573_000_000.0)
    t = 1_573_000_000
    report = FeedReport()
    backend.update(publish_updates(["N3", "N4"], t, 1) + impression_updates(["N3", "N4"], np.array([1, 0]), t, 2, decay),
                   "news", report)
    assert report.success, report.summary()
    now, recall = t + 7200, vector(1001)
    query = LearnedQuery(np.array(recall), {"sports": 0.05, "news": 0.02}, {"sports": 0.75, "news": 0.25},
                         {"Q1": 0.5, "Q7": 1.0}, 4)
    got = backend.live_features(vector(1002), ["N4", "N3"], now, decay.inputs(), query, "learned_features")
    features = dict(zip(ranking.LEARNED_FEATURES, got["features"].T))
    assert features["live_category_ctr"] == pytest.approx([0.02, 0.05])  # N4 is news, N3 sports
    assert features["category_match"] == pytest.approx([0.25, 0.75])
    assert features["entity_match"] == pytest.approx([1.5, 0.5])  # N4: Q7 and Q1, N3: Q1
    assert features["log_history_length"] == pytest.approx([np.log(5)] * 2)
    shown = np.exp(-decay.rate * 7200)  # one impression each, two hours before now
    assert features["log_impressions"] == pytest.approx([np.log1p(shown)] * 2, rel=1e-9)
    closeness = [1 / (1 + np.linalg.norm(np.array(recall) - np.array(vector(i)))) for i in (4, 3)]
    assert features["recall_closeness"] == pytest.approx(closeness, rel=1e-5)
    assert features["log_age"] == pytest.approx([np.log(3.0)] * 2)
    assert got["live_score"] == pytest.approx(features["ranking_score"], rel=1e-6)  # the schema's default weights


def test_a_condition_outside_the_subset_is_refused(backend):
    report = FeedReport()
    backend.update([{"update": "id:news:news::N3", "condition": "news.clicks > 0 and news.title == 'x'",
                     "fields": {"clicks": {"increment": 1}}}], "news", report)
    (_, status, message), = report.failed
    assert status == 400 and "condition" in message


def test_installing_a_reranker_serves_it_or_says_what_to_do(backend, tmp_path: Path):
    with backend.feed_state(tmp_path / "state") as store:
        store.begin({})
        todo = backend.install_reranker(b"not an onnx model", "unbert-model")
    assert (todo is None) == ("unbert" in backend.rank_profiles())
    assert todo is None or "newsrec app build --reranker unbert-model" in todo


def test_the_target_says_whether_a_feed_can_resume(backend):
    assert backend.resumable == isinstance(backend, VespaBackend) and backend.location


# ----------------------------------------------------------------------------- the serving side

def test_recommendations_exclude_what_was_read_and_are_ranked(backend):
    page = backend.recommend("U1", hits=10)
    assert page.fallback is None and page.user_id == "U1" and len(page.hits) == 10
    assert not {"N0", "N3"} & set(ids(page.hits))
    relevance = [hit.relevance for hit in page.hits]
    assert relevance == sorted(relevance, reverse=True)


def test_recommendations_page_and_filter(backend):
    first = ids(backend.recommend("U1", hits=20).hits)
    assert ids(backend.recommend("U1", hits=10).hits) + ids(backend.recommend("U1", hits=10, offset=10).hits) == first
    sports = backend.recommend("U1", hits=5, filters={"category": "sports"}).hits
    assert sports and all(hit.fields["category"] == "sports" for hit in sports)


def test_an_unknown_reader_gets_the_popular_news_marked_as_the_fallback(backend):
    page = backend.recommend("U404", hits=5)
    assert page.fallback == "popularity" and ids(page.hits) == ids(backend.popular(5))


@pytest.mark.parametrize("user_id", ["U1 or true", "", "x" * 65, "U/1"])
def test_a_malformed_reader_id_is_refused(backend, user_id: str):
    with pytest.raises(QueryError):
        backend.recommend(user_id)


def test_only_the_profiles_the_index_holds_are_served(backend):
    assert backend.rank_profiles() == ("recommendation", "recommendation_with_global_category_ctr", "live")
    with pytest.raises(NewsrecError):
        backend.recommend("U1", ranking="unbert")
    with pytest.raises(QueryError, match="unknown recommendation profile"):
        backend.recommend("U1", ranking="bm25")


def test_text_search_filters_and_sorts(backend):
    hits = backend.search("hawks", hits=30)
    assert len(hits) == 15 and all("hawks" in hit.fields["title"].lower() for hit in hits)
    sports = backend.search("hawks", hits=30, filters={"category": "sports"})
    assert sports and all(hit.fields["category"] == "sports" for hit in sports)
    dated = backend.search(None, hits=30, sort="date")
    assert [hit.fields["date"] for hit in dated] == sorted((hit.fields["date"] for hit in dated), reverse=True)


def test_personalized_search_adds_the_readers_ranking_vector(backend):
    hits = backend.search("hawks", hits=5, user_id="U1")
    for hit in hits:
        features = hit.fields["matchfeatures"]
        assert hit.relevance == pytest.approx(features["text_score"] + features["ranking_score"], abs=1e-4)
    with pytest.raises(NewsrecError):
        backend.search("hawks", user_id="U404")


def test_popular_is_the_smoothed_ctr_paged_and_filtered(backend):
    hits = backend.popular(30)
    ctrs = [(hit.fields["clicks"] + 1) / (hit.fields["impressions"] + 25) for hit in hits]
    assert ctrs == sorted(ctrs, reverse=True) and [h.relevance for h in hits] == pytest.approx([100 * c for c in ctrs])
    assert ids(backend.popular(5, offset=5)) == ids(hits)[5:10]
    assert all(hit.fields["category"] == "news" for hit in backend.popular(5, filters={"category": "news"}))


def test_matches_per_category(backend):
    assert dict(backend.group_counts("category")) == {"sports": 10, "news": 10, "finance": 10}
    assert sum(count for _, count in backend.group_counts("category", "hawks")) == 15


def test_an_unknown_filter_value_is_named(backend):
    assert backend.popular(5, filters={"category": "sprots"}) == []
    with pytest.raises(UnknownFilterValueError, match="did you mean 'sports'"):
        check_filter_values(backend, {"category": "sprots"})


def test_ranking_scores_are_the_ranking_vector_dot_the_news_vector(backend):
    scores = backend.ranking_scores(vector(7), ["N2", "N5"])
    assert scores == pytest.approx([dot(vector(7), vector(2)), dot(vector(7), vector(5))], rel=1e-5)


def test_nearest_news_are_the_nearest_by_euclidean_distance(backend):
    query = vector(4)
    expected = sorted((f"N{i}" for i in range(30)), key=lambda n: math.dist(query, vector(int(n[1:]))))[:5]
    assert backend.nearest_news(query, 5) == expected


def test_readers_and_their_history(backend):
    assert {"U1", "U2"} <= set(backend.user_ids(10)) and len(backend.user_ids(1)) == 1
    assert backend.read_items("U1") == ["N0", "N3"] and backend.read_items("U2") == []
    assert backend.read_items("U404") is None


def test_news_in_the_order_asked_missing_left_out(backend):
    assert ids(backend.news(["N7", "N404", "N2"])) == ["N7", "N2"]


# ----------------------------------------------------------------------------- both agree

@pytest.mark.parametrize("ranking", ["recommendation", "recommendation_with_global_category_ctr", "live"])
def test_both_backends_recommend_alike(both, ranking: str):
    embedded, vespa = (backend.recommend("U1", hits=10, ranking=ranking).hits for backend in both)
    assert ids(embedded) == ids(vespa)
    assert [h.relevance for h in embedded] == pytest.approx([h.relevance for h in vespa], rel=1e-5)
    assert set(embedded[0].fields["matchfeatures"]) == set(vespa[0].fields["matchfeatures"])


def test_both_backends_agree_on_popularity_and_updates(both):
    for backend in both:
        report = FeedReport()
        backend.update([{"update": "id:news:news::N9", "fields": {"clicks": {"assign": 40}}}], "news", report)
        assert report.ok == 1
    embedded, vespa = (backend.popular(10) for backend in both)
    assert ids(embedded) == ids(vespa) and ids(embedded)[0] == "N9"
