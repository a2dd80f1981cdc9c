from __future__ import annotations

import numpy as np
import pytest

from newsrec.feed.connect import FeedStateError, choose_transform
from newsrec.pipeline.transforms import EuclideanTransform, no_transform, running_max_transform


def vectors(seed: int = 0, n: int = 500, d: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.lognormal(0, 0.5, size=(n, 1))  # norms spread out


def test_euclidean_nearest_neighbour_is_maximum_inner_product():
    news, queries = vectors(0), vectors(1, n=50)
    transform = EuclideanTransform.fit(news)
    transformed_news, transformed_queries = transform.news(news), transform.query(queries)
    assert transformed_news.shape == (500, 9) and np.allclose(np.linalg.norm(transformed_news, axis=1),
                                                               transform.max_norm, rtol=1e-5)
    distances = ((transformed_queries[:, None, :] - transformed_news[None, :, :]) ** 2).sum(-1)
    assert np.array_equal(distances.argmin(1), (queries @ news.T).argmax(1))
    assert np.allclose(transformed_queries[:, -1], 0.0)


def test_explicit_transform_is_order_independent_and_the_frozen_running_max_is_not():
    news = vectors(2)
    order = np.random.default_rng(3).permutation(len(news))
    transform = EuclideanTransform.fit(news)
    assert np.array_equal(transform.news(news)[order], EuclideanTransform.fit(news[order]).news(news[order]))
    forward = running_max_transform(news)
    shuffled = running_max_transform(news[order])
    assert not np.allclose(forward[order], shuffled)  # the same item gets another extra coordinate


def test_headroom_scales_phi_and_keeps_maximum_inner_product_order():
    news, queries = vectors(5), vectors(6, n=40)
    plain, roomy = EuclideanTransform.fit(news), EuclideanTransform.fit(news, headroom=0.25)
    assert roomy.max_norm == pytest.approx(1.25 * plain.max_norm)
    transformed = roomy.news(news)
    distances = ((roomy.query(queries)[:, None, :] - transformed[None, :, :]) ** 2).sum(-1)
    assert np.array_equal(distances.argmin(1), (queries @ news.T).argmax(1))
    assert not roomy.needs_retransform(news * 1.2) and roomy.needs_retransform(news * 1.3)
    with pytest.raises(ValueError, match="headroom must be ≥ 0"):
        EuclideanTransform.fit(news, headroom=-0.1)


def test_no_transform_is_plain_euclidean():
    news = vectors(4)
    assert np.array_equal(no_transform(news)[:, :-1], news.astype(np.float32)) and not no_transform(news)[:, -1].any()


def test_a_vector_beyond_phi_is_refused():
    transform = EuclideanTransform(1.0)
    with pytest.raises(ValueError, match="re-transform the corpus"):
        transform.news(np.array([[2.0, 0.0]]))
    assert transform.needs_retransform(np.array([[2.0, 0.0]]))


def test_phi_kept_grown_or_refused_by_the_feed_state():
    corpus = np.array([[2.0, 0.0], [0.0, 1.0]])  # maximum norm 2
    larger = np.array([[0.0, 4.0]])  # maximum norm 4
    assert choose_transform(corpus, ["N1"], {}, headroom=0.0)[0].max_norm == 2.0
    kept, note = choose_transform(corpus, ["N1"], {"max_norm": 3.0, "news_ids": ["N1", "N9"]})
    assert kept.max_norm == 3.0 and "kept" in note
    grown, note = choose_transform(larger, ["N1", "N9"], {"max_norm": 3.0, "news_ids": ["N1", "N9"]}, headroom=0.0)
    assert grown.max_norm == 4.0 and "every news vector is re-transformed and re-fed" in note
    assert "norm 4 exceeds the stored Φ = 3" in note and "√(Φ² − |r|²)" in note  # says why
    with pytest.raises(FeedStateError, match="1 news fed earlier .*N9.* stale"):
        choose_transform(larger, ["N1"], {"max_norm": 3.0, "news_ids": ["N1", "N9"]})


def test_phi_set_with_headroom_lets_a_later_larger_news_in_without_a_refeed():
    first, later = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 2.4]])  # later: 1.2 × the first maximum
    transform, note = choose_transform(first, ["N1", "N2"], {}, headroom=0.25)
    assert transform.max_norm == pytest.approx(2.5) and "1.25 × the maximum news norm 2" in note
    state = {"max_norm": transform.max_norm, "news_ids": ["N1", "N2"]}
    kept, note = choose_transform(later, ["N3"], state, headroom=0.25)  # only the new news: no re-feed needed
    assert kept.max_norm == transform.max_norm and "kept" in note
    grown, _ = choose_transform(np.array([[0.0, 4.0]]), ["N1", "N2", "N3"], state, headroom=0.25)
    assert grown.max_norm == pytest.approx(5.0)  # grown Φ keeps the headroom
