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


# ---------------------------------------------------------------------------- exact search against the graph

def test_exact_is_cheaper_up_to_the_measured_rows_per_explored_candidate():
    from newsrec.feed.exploration import EXACT_ROWS_PER_EXPLORED, exact_is_cheaper

    assert exact_is_cheaper(EXACT_ROWS_PER_EXPLORED * 100, 100)
    assert not exact_is_cheaper(EXACT_ROWS_PER_EXPLORED * 100 + 1, 100)
    # the law's exploration at 161k and 1M news (7,680 and 20,000 graph candidates) costs more than reading them all
    assert exact_is_cheaper(161_000, explore(100, 161_000)) and exact_is_cheaper(1_000_000, explore(100, 1_000_000))
    # a graph search exploring 1,000 candidates over 1M news is the cheaper one
    assert not exact_is_cheaper(1_000_000, 1_000)


def _mips_corpus(count: int = 3_000, queries: int = 200, seed: int = 0):
    """MIPS-transformed news (N, 17) with spread-out norms around 20 topics, and users' queries [u, 0]."""
    import numpy as np

    from newsrec.pipeline.transforms import EuclideanTransform

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, 16))
    news = centers[rng.integers(0, 20, count)] + 0.7 * rng.normal(size=(count, 16))
    news *= np.exp(0.3 * rng.normal(size=(count, 1)))
    users = centers[rng.integers(0, 20, queries)] + 0.5 * rng.normal(size=(queries, 16))
    transform = EuclideanTransform.fit(news)
    return transform.news(news), transform.query(users), users @ news.T


@pytest.fixture
def one_thread():
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # a deterministic graph
    yield
    faiss.omp_set_num_threads(threads)


def test_the_graph_is_fed_largest_norm_first_and_keeps_rows_as_ids(one_thread):
    """build_hnsw inserts by descending norm (bench/bench_ann_cost.py: far fewer candidates explored for the same
    recall@100) and renumbers the graph so that its ids are still the rows."""
    import faiss
    import numpy as np

    from newsrec.feed.local_backend import HNSW_EXPLORE_AT_INSERT, HNSW_LINKS, build_hnsw

    vectors, queries, scores = _mips_corpus()
    graph = build_hnsw(vectors)
    assert (graph.search(vectors[:300], 1)[1][:, 0] == np.arange(300)).all()  # each row is its own nearest
    one_add = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_LINKS)  # as build_hnsw was: one add, a random order
    one_add.hnsw.efConstruction = HNSW_EXPLORE_AT_INSERT
    one_add.add(vectors)
    truth = np.argsort(-scores, axis=1)[:, :10]
    recalls = []
    for index in (graph, one_add):
        index.hnsw.efSearch = 20
        found = index.search(queries, 10)[1]
        recalls.append(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
    assert recalls[0] >= 0.95 and recalls[0] > recalls[1]


def test_nearest_searches_exactly_where_that_is_cheaper_and_finds_the_exact_neighbours(one_thread, monkeypatch):
    import types

    import numpy as np

    from newsrec.feed import local_backend
    from newsrec.feed.exploration import EXACT_ROWS_PER_EXPLORED

    vectors, queries, _ = _mips_corpus()
    index = types.SimpleNamespace(_vectors=vectors, _index=local_backend.build_hnsw(vectors))
    calls = []
    graph_search = local_backend.graph_search
    monkeypatch.setattr(local_backend, "graph_search", lambda *args: calls.append(args[2]) or graph_search(*args))
    nearest = lambda k, allowed: local_backend.LocalBackend.nearest(index, queries[0], k, allowed)  # noqa: E731
    rng = np.random.default_rng(1)
    everything = np.ones(len(vectors), dtype=bool)
    filters = {"none": everything, "half": rng.random(len(vectors)) < 0.5, "tenth": rng.random(len(vectors)) < 0.1,
               "1%": rng.random(len(vectors)) < 0.01, "nothing": ~everything}
    for name, allowed in filters.items():
        rows = np.flatnonzero(allowed)
        distances = ((vectors[rows] - queries[0]) ** 2).sum(1)
        for k in (5, 40):
            calls.clear()
            found, squared = nearest(k, allowed)
            explored = local_backend.graph_exploration(k, allowed)
            graph = allowed.mean() >= local_backend.APPROXIMATE_THRESHOLD and len(rows) > EXACT_ROWS_PER_EXPLORED * explored
            assert calls == ([k] if graph else []), (name, k)
            if not graph:  # exact: the allowed rows nearest to the query, nearest first, with their distances
                best = np.argsort(distances, kind="stable")[:k]
                assert found.tolist() == rows[best].tolist(), (name, k)
                assert np.allclose(squared, distances[best], rtol=1e-5), (name, k)
    # over 3,000 news: 5 candidates explored cost less than reading all of them, 40 do not
    assert local_backend.graph_exploration(5, everything) * EXACT_ROWS_PER_EXPLORED < len(vectors)
    assert local_backend.graph_exploration(40, everything) * EXACT_ROWS_PER_EXPLORED >= len(vectors)


def test_the_fixture_of_the_java_law_holds_what_python_computes():
    """Vespa's searcher explores by Exploration.java, checked against tests/fixtures/exploration.json in the
    container tests (ExplorationTest); the file must be Python's law (`python tests/exploration_fixture.py`)."""
    import json

    from exploration_fixture import FIXTURE, fixture

    assert json.loads(FIXTURE.read_text()) == fixture()
