"""bench/bench_mips.py: the simulation of Vespa's `dotproduct` metric on faiss HNSW, on tiny data."""
from __future__ import annotations

import numpy as np
import pytest

from newsrec.bench import bench_mips
from newsrec.pipeline.transforms import EuclideanTransform, running_max_transform


def vectors(seed: int, n: int = 300, d: int = 8, scale: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(n, d)) * rng.lognormal(0, 0.5, size=(n, 1))).astype(np.float32)


def test_descending_norm_order_stores_the_explicit_phi_vectors_and_builds_the_same_graph():
    news, queries = vectors(0), vectors(1, n=20)
    rows = bench_mips.feed_order(news, "descending norm")
    simulated = bench_mips.dotproduct_graph(news[rows])
    explicit = EuclideanTransform.fit(news).news(news[rows])
    assert np.allclose(bench_mips.stored_vectors(simulated), explicit, rtol=1e-5, atol=1e-5)
    plain = bench_mips.sequential_graph(explicit)
    query = EuclideanTransform(1.0).query(queries)
    for index in (simulated, plain):
        index.hnsw.efSearch = 16
    assert np.array_equal(simulated.search(query, 10)[1], plain.search(query, 10)[1])


def test_every_stored_extra_coordinate_follows_the_final_running_maximum():
    news = vectors(2)
    rows = bench_mips.feed_order(news, "random", seed=3)
    stored = bench_mips.stored_vectors(bench_mips.dotproduct_graph(news[rows]))
    final = np.linalg.norm(news, axis=1).max()
    assert np.allclose(np.linalg.norm(stored, axis=1), final, rtol=1e-5)  # rewritten as the maximum grew
    frozen = running_max_transform(news[rows])  # what the extra coordinate was at each vector's own insert
    assert not np.allclose(stored[:, -1], frozen[:, -1], rtol=1e-3)


def test_the_running_maximum_starts_at_vespas_one():
    small = vectors(4, n=50, scale=0.05)  # every norm below 1
    assert np.linalg.norm(small, axis=1).max() < 1
    stored = bench_mips.stored_vectors(bench_mips.dotproduct_graph(small))
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, rtol=1e-5)
    assert bench_mips.running_max_squared_norm(small)[0] == 1.0


def test_queries_rank_by_exact_inner_product():
    news, queries = vectors(5), vectors(6, n=30)
    rows = bench_mips.feed_order(news, "ascending norm")
    index = bench_mips.dotproduct_graph(news[rows])
    stored, query = bench_mips.stored_vectors(index), EuclideanTransform(1.0).query(queries)
    distances = ((query[:, None, :] - stored[None, :, :]) ** 2).sum(-1)  # (Q, N) the graph's own order
    inner = queries @ news[rows].T  # (Q, N)
    assert np.array_equal(np.argsort(distances, axis=1)[:, :10], np.argsort(-inner, axis=1)[:, :10])
    exact = np.argsort(-(queries @ news.T), axis=1)[:, :10]
    assert bench_mips.recall(index, query, exact, 10, len(news), rows) == 1.0  # exploring everything is exact


def test_feed_orders_and_refeed_counts():
    news = vectors(7, n=50)
    norms = np.linalg.norm(news, axis=1)
    assert np.all(np.diff(norms[bench_mips.feed_order(news, "ascending norm")]) >= 0)
    assert np.all(np.diff(norms[bench_mips.feed_order(news, "descending norm")]) <= 0)
    with pytest.raises(ValueError, match="unknown feed order"):
        bench_mips.feed_order(news, "by date")
    assert bench_mips.refeeds(norms, 5, headroom=10.0, trials=5)["mean_refeeds"] == 0.0
    assert bench_mips.refeeds(norms, 5, headroom=0.0, trials=20)["share_without"] < 1.0
