"""The ranking funnel (feed/funnel.py): budgets independent of hits and offset, the same on the embedded index,
in the query builders and against the Vespa stand-in; pages of one query; the query hygiene that comes with it
(one exclusion term, vector sizes, full-match ids, text as words)."""
from __future__ import annotations

import numpy as np
import pytest

from newsrec.feed import queries
from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import news_document, user_document
from newsrec.feed.funnel import DEFAULT, MAX_RECALL_BUDGET, BudgetError, Budgets, budgets
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.queries import QueryError, recommend_body, search_body, user_profile_params
from newsrec.pipeline.mind_checks import ID_PATTERN
from newsrec.pipeline.transforms import EuclideanTransform
from support import DIM

NEWS = 600


def corpus(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """600 news with MIPS-transformed random vectors and two users (one with 50 read news)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(NEWS, DIM - 1)).astype(np.float32) * rng.uniform(0.5, 2.0, size=(NEWS, 1))
    transform = EuclideanTransform.fit(vectors)
    news = [news_document(f"N{i}", "sports" if i % 3 else "weather", "x", f"title {i}", "", "u", 20191101, i % 7, 50,
                          transform.news(vectors[i:i + 1])[0].tolist()) for i in range(NEWS)]
    users = [user_document(user, transform.query(rng.normal(size=(1, DIM - 1)))[0].tolist(),
                           transform.query(rng.normal(size=(1, DIM - 1)))[0].tolist(), read)
             for user, read in (("U1", [f"N{i}" for i in range(0, 100, 2)]), ("U2", []))]
    return news, users


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> LocalBackend:
    backend = LocalBackend(tmp_path_factory.mktemp("funnel") / "index")
    news, users = corpus()
    with backend.transaction():
        backend.feed(news, "news", FeedReport())
        backend.feed(users, "user", FeedReport())
    return backend


# ---------------------------------------------------------------------------- budgets

def test_budgets_are_checked():
    for bad in (0, -1, MAX_RECALL_BUDGET + 1, True, 1.5):
        with pytest.raises(BudgetError, match="recall budget must be an integer"):
            Budgets(recall=bad)
    with pytest.raises(BudgetError, match="global-phase budget 30 must be from 1 to the recall budget 20"):
        Budgets(recall=20, global_rerank=30)
    assert budgets(5) == Budgets(recall=5, global_rerank=5) and budgets() == DEFAULT


def test_exploration_follows_the_budget_not_the_page():
    assert len({DEFAULT.explored(10, offset) for offset in (0, 10, 90)}) == 1
    assert DEFAULT.explored(10, 0) >= DEFAULT.recall
    assert budgets(500).explored(10, 0) > DEFAULT.explored(10, 0)
    assert DEFAULT.explored(400, 1000, corpus_size=50) == 1400  # a deep page still has its hits to show
    assert DEFAULT.explored(10, 0, corpus_size=50) == 50  # never more than the corpus


# ---------------------------------------------------------------------------- the embedded index

def ids(hits) -> list[str]:
    return [hit.news_id for hit in hits]


def test_page_one_plus_page_two_is_the_top_twenty_of_one_query(index):
    for user in ("U1", "U2"):
        top20 = ids(index.recommend(user, 20).hits)
        assert ids(index.recommend(user, 10).hits) + ids(index.recommend(user, 10, offset=10).hits) == top20
        assert len(set(top20)) == 20


def test_the_second_phase_reranks_the_whole_recall_budget(index):
    user = index.docs["user"]["U2"]
    rows, squared = index.nearest(np.asarray(user["recall_embedding"]["values"]), NEWS, index._allowed(None))
    best_by_closeness = [index._news_order[r] for r in rows[:DEFAULT.recall]]  # phase 1's hand-over, exactly
    ranking = np.asarray(user["ranking_embedding"]["values"], dtype=np.float32)
    score = {n: float(np.dot(index._vectors[index._position[n]], ranking)) for n in best_by_closeness}
    assert ids(index.recommend("U2", 10).hits) == sorted(best_by_closeness, key=lambda n: -score[n])[:10]
    # a page beyond the budget continues in first-phase order, never repeating a page-1 hit
    beyond = ids(index.recommend("U2", 10, offset=DEFAULT.recall).hits)
    assert beyond == [index._news_order[r] for r in rows[DEFAULT.recall:DEFAULT.recall + 10]]
    narrow = ids(index.recommend("U2", 10, recall_budget=10).hits)
    assert sorted(narrow) == sorted(best_by_closeness[:10]) and narrow != ids(index.recommend("U2", 10).hits)


def test_read_news_are_excluded_and_bad_pages_refused(index):
    read = set(index.docs["user"]["U1"]["has_read_items"])
    assert not read & set(ids(index.recommend("U1", 400).hits))
    for bad in (-1, 1001, 2.5):
        with pytest.raises(QueryError, match="offset must be an integer from 0 to 1000"):
            index.recommend("U1", 10, offset=bad)
    with pytest.raises(BudgetError):
        index.recommend("U1", 10, recall_budget=0)


def test_a_filtered_search_is_exact_where_that_reads_fewer_vectors_than_the_graph(index, monkeypatch):
    """Exact where the allowed news are at most EXACT_ROWS_PER_EXPLORED (80) per graph candidate the search would
    explore (feed/exploration.py exact_is_cheaper), else the graph."""
    from newsrec.feed import local_backend

    calls, graph_search = [], local_backend.graph_search
    monkeypatch.setattr(local_backend, "graph_search", lambda *args: calls.append(args[2]) or graph_search(*args))
    query = np.asarray(index.docs["user"]["U2"]["recall_embedding"]["values"], dtype=np.float32)
    weather = index._allowed({"category": "weather"})  # 200 of the 600 news
    rows = np.flatnonzero(weather)
    exact = rows[np.argsort(((index._vectors[rows] - query) ** 2).sum(1), kind="stable")]
    assert local_backend.graph_exploration(100, weather) == 300 and local_backend.graph_exploration(1, weather) == 3
    assert index.nearest(query, 100, weather)[0].tolist() == exact[:100].tolist() and calls == []  # 200 <= 80 x 300
    assert index.nearest(query, 2, weather)[0].tolist() == exact[:2].tolist() and calls == []  # 200 <= 80 x 6
    everything = index._allowed(None)
    assert local_backend.graph_exploration(5, everything) == 5
    index.nearest(query, 5, everything)  # 600 news > 80 x 5 explored: the graph
    assert calls == [5]


def test_a_query_vector_of_the_wrong_size_is_refused(index):
    with pytest.raises(QueryError, match="query vector has 64 values; the index's vectors have 65"):
        index.nearest(np.zeros(DIM - 1), 10, index._allowed(None))


# ---------------------------------------------------------------------------- the query builders

def test_recommend_bodies_of_two_pages_ask_for_the_same_candidates():
    first = recommend_body([0.1] * DIM, [0.2] * DIM, hits=10)
    second = recommend_body([0.1] * DIM, [0.2] * DIM, hits=10, offset=10)
    assert first["yql"] == second["yql"] and second["offset"] == 10 and "offset" not in first
    assert f"{{totalTargetHits: {DEFAULT.explored(10, 0)}}}nearestNeighbor(embedding, user_recall)" in first["yql"]
    assert first["ranking.secondPhase.totalRerankCount"] == DEFAULT.recall
    wide = recommend_body([0.1] * DIM, None, hits=10, ranking="recall", budgets=budgets(500))
    assert f"{{totalTargetHits: {budgets(500).explored(10, 0)}}}" in wide["yql"]
    assert "ranking.secondPhase.totalRerankCount" not in wide  # the recall profile has no second phase


def test_user_profile_params_carry_offset_and_budget():
    assert user_profile_params("U1", 10, offset=20, recall_budget=500) == {
        "user_id": "U1", "hits": 10, "user_fallback": "error", "offset": 20, "recall_budget": 500}
    assert "recall_budget" not in user_profile_params("U1")  # the application's own default
    with pytest.raises(BudgetError):
        user_profile_params("U1", recall_budget=MAX_RECALL_BUDGET + 1)


def test_read_news_are_excluded_with_one_term():
    read = [f"N{i}" for i in range(500)]
    yql = recommend_body([0.1] * DIM, hits=10, exclude=read)["yql"]
    assert yql.count("news_id") == 1 and yql.endswith(' and !(news_id in ("N0", "N1", "N2"' + yql[yql.index('"N2"') + 4:])
    assert '"N499"))' in yql


def test_vectors_of_the_wrong_size_are_refused_before_sending():
    with pytest.raises(QueryError, match=r"query\(user_recall\) must have 65 values \(the schema's tensor\), got 64"):
        recommend_body([0.1] * (DIM - 1), hits=10)
    with pytest.raises(QueryError, match=r"query\(user_ranking\) must have 65 values"):
        recommend_body([0.1] * DIM, [0.1] * (DIM + 1), hits=10)
    with pytest.raises(QueryError, match=r"query\(user_ranking\) must have 65 values"):
        search_body("storm", ranking_vector=[0.1] * 10)


def test_ids_must_match_in_full():
    for value in ("N1\n", "N1\r\n", "\nN1", "N1 ", "N1/x", ""):
        with pytest.raises(QueryError):
            queries.safe_value("news id", value)
        assert ID_PATTERN.fullmatch(value) is None
    assert queries.safe_value("news id", "N1") == "N1"


def test_search_text_is_words_not_query_syntax():
    body = search_body("news_id:N1 -storm +hawks")
    assert '{grammar: "linguistics"}userInput(@query)' in body["yql"] and body["query"] == "news_id:N1 -storm +hawks"


# ---------------------------------------------------------------------------- against the Vespa stand-in

def test_vespa_pages_come_from_one_candidate_set(tmp_path):
    from newsrec.feed.vespa_backend import VespaBackend
    from newsrec.contract_server import ContractServer

    news, users = corpus()
    with ContractServer() as server:
        backend = VespaBackend(server.url)
        report = FeedReport()
        backend.feed(news, "news", report)
        backend.feed(users, "user", FeedReport())
        assert report.ok == NEWS
        top20 = ids(backend.recommend("U2", 20).hits)
        assert ids(backend.recommend("U2", 10).hits) + ids(backend.recommend("U2", 10, offset=10).hits) == top20
        request = server.app.requests[-1]
        assert request.params["offset"] == "10" and "recall_budget" not in request.params
        narrow = ids(backend.recommend("U2", 20, recall_budget=10).hits)
        assert narrow != top20 and server.app.requests[-1].params["recall_budget"] == "10"
