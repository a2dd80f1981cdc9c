"""Parity with a direct transcription of the official MIND scorer (msnews/MIND evaluate.py).

The transcription keeps the official per-impression functions; `roc_auc_score` is replaced by its
definition (the probability that a clicked item outscores a non-clicked one, ties counting 1/2),
and argsort is made stable, which is the tie rule newsrec documents.
"""
from __future__ import annotations

import numpy as np
import pytest

from newsrec.pipeline import metrics
from newsrec.pipeline.metrics import clicked_ranks, concatenate, descending_order, per_impression_metrics, recall_from_ranks, ranking_metrics, recall_at_k


def official_auc(y_true, y_score):
    positive, negative = y_score[y_true == 1], y_score[y_true == 0]
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return (greater + 0.5 * ties) / (len(positive) * len(negative))


def official_mrr(y_true, y_score):
    order = np.argsort(y_score, kind="stable")[::-1]
    y_true = np.take(y_true, order)
    rr_score = y_true / (np.arange(len(y_true)) + 1)
    return np.sum(rr_score) / np.sum(y_true)


def official_dcg(y_true, y_score, k=10):
    order = np.argsort(y_score, kind="stable")[::-1]
    y_true = np.take(y_true, order[:k])
    gains = 2 ** y_true - 1
    discounts = np.log2(np.arange(len(y_true)) + 2)
    return np.sum(gains / discounts)


def official_ndcg(y_true, y_score, k=10):
    best = official_dcg(y_true, y_true, k)
    actual = official_dcg(y_true, y_score, k)
    return actual / best


def random_impressions(rng, count):
    lengths = rng.integers(2, 60, count)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    labels = (rng.random(offsets[-1]) < rng.uniform(0.05, 0.5, count).repeat(lengths)).astype(np.int64)
    for i in range(count):  # every impression two-class, several with many clicks
        labels[offsets[i]] = 1
        labels[offsets[i] + 1] = 0
    scores = rng.integers(0, 8, offsets[-1]).astype(float)  # few distinct values: many ties
    scores[: offsets[-1] // 2] = rng.random(offsets[-1] // 2)  # and a part without ties
    return labels, scores, offsets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_official_formulas(seed):
    labels, scores, offsets = random_impressions(np.random.default_rng(seed), 300)
    ours = per_impression_metrics(labels, scores, offsets)
    for i in range(len(offsets) - 1):
        y, s = labels[offsets[i]:offsets[i + 1]], scores[offsets[i]:offsets[i + 1]]
        assert ours.auc[i] == pytest.approx(official_auc(y, s), abs=1e-12)
        assert ours.mrr[i] == pytest.approx(official_mrr(y, s), abs=1e-12)
        assert ours.ndcg5[i] == pytest.approx(official_ndcg(y, s, 5), abs=1e-12)
        assert ours.ndcg10[i] == pytest.approx(official_ndcg(y, s, 10), abs=1e-12)
    means = ranking_metrics(labels, scores, offsets)
    assert means.auc == pytest.approx(np.mean(ours.auc)) and means.impressions == 300


def test_ties_rank_the_later_candidate_first():
    m = per_impression_metrics(np.array([1, 0]), np.array([0.5, 0.5]), np.array([0, 2]))
    assert m.mrr[0] == 0.5 and m.auc[0] == 0.5
    m = per_impression_metrics(np.array([0, 1]), np.array([0.5, 0.5]), np.array([0, 2]))
    assert m.mrr[0] == 1.0


def test_descending_order_sorts_each_impression_best_first_later_candidate_first_on_ties():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 12, 400)  # empty impressions included
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    scores = rng.integers(0, 4, offsets[-1]).astype(float)
    order, rank = descending_order(scores, offsets)
    for i in range(len(lengths)):
        block = order[offsets[i]:offsets[i + 1]] - offsets[i]
        expected = sorted(range(lengths[i]), key=lambda row: (-scores[offsets[i] + row], -row))
        assert block.tolist() == expected
        assert rank[offsets[i]:offsets[i + 1]].tolist() == list(range(1, lengths[i] + 1))


@pytest.mark.parametrize("impressions", [300, 70_000])  # the 16-bit radix path and the wide-key path
def test_ascending_order_is_lexsort_of_impression_then_score_ties_in_row_order(impressions):
    rng = np.random.default_rng(4)
    segment = np.sort(rng.integers(0, impressions, 3 * impressions))
    scores = rng.integers(0, 5, len(segment)).astype(float)  # many ties
    assert np.array_equal(metrics._ascending_order(scores, segment), np.lexsort((scores, segment)))


def test_metrics_of_blocks_of_impressions_concatenated_equal_the_whole():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, 40)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    labels, scores = rng.integers(0, 2, offsets[-1]), np.round(rng.random(offsets[-1]), 1)  # ties included
    blocks = [per_impression_metrics(labels[offsets[a]:offsets[b]], scores[offsets[a]:offsets[b]],
                                     offsets[a:b + 1] - offsets[a]) for a, b in ((0, 13), (13, 14), (14, 40))]
    assert concatenate(blocks).mean() == ranking_metrics(labels, scores, offsets)


def test_long_inputs_are_computed_in_blocks_of_whole_impressions_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(4)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(1, 30, 300))])
    labels, scores = rng.integers(0, 2, offsets[-1]), np.round(rng.random(offsets[-1]), 2)
    whole = per_impression_metrics(labels, scores, offsets)
    monkeypatch.setattr(metrics, "BLOCK_ROWS", 37)  # shorter than some impressions
    blocked = per_impression_metrics(labels, scores, offsets)
    for name in ("auc", "mrr", "ndcg5", "ndcg10", "valid"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name))


def test_recall_from_the_ranks_of_the_clicks_equals_recall_of_the_cut_lists():
    rng = np.random.default_rng(5)
    top = np.stack([rng.permutation(50)[:20] for _ in range(30)])
    top[3, 15:] = -1  # a short list
    counts = rng.integers(0, 4, 30)
    clicked_offsets = np.concatenate([[0], np.cumsum(counts)])
    clicked = rng.integers(0, 50, clicked_offsets[-1])
    ranks = clicked_ranks(top, clicked_offsets, clicked)
    assert ranks.min() >= 0 and ranks.max() <= 20 and (ranks < 20).any() and (ranks == 20).any()
    for k in (1, 5, 15, 20):
        assert recall_from_ranks(ranks, clicked_offsets, k) == recall_at_k(top[:, :k], clicked_offsets, clicked)


def test_single_class_impressions_are_skipped_and_counted():
    labels = np.array([1, 0, 0, 0, 1, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.3, 0.2, 0.5, 0.4, 0.8, 0.2])
    metrics = ranking_metrics(labels, scores, np.array([0, 2, 4, 6, 8]))
    assert metrics.impressions == 2 and metrics.skipped_single_class == 2
    assert metrics.auc == 0.5  # (1.0 + 0.0) / 2: the no-click and all-click impressions are left out


def test_perfect_and_reversed_rankings():
    labels = np.array([1, 1, 0, 0, 0, 0, 0])
    perfect = ranking_metrics(labels, -np.arange(7.0), np.array([0, 7]))
    assert (perfect.auc, perfect.mrr, perfect.ndcg5, perfect.ndcg10) == (1.0, 0.75, 1.0, 1.0)
    reversed_ = ranking_metrics(labels, np.arange(7.0), np.array([0, 7]))
    assert reversed_.auc == 0.0 and reversed_.mrr == pytest.approx((1 / 6 + 1 / 7) / 2)
    assert reversed_.ndcg5 == 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        ranking_metrics(np.array([2, 0]), np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="finite"):
        ranking_metrics(np.array([1, 0]), np.array([np.nan, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="offsets"):
        ranking_metrics(np.array([1, 0]), np.array([0.1, 0.2]), np.array([0, 3]))


def test_recall_at_k():
    top = np.array([[5, 3, 9], [1, 2, -1], [7, 8, 9]])
    offsets = np.array([0, 2, 3, 3])  # query 2 has no click: left out
    clicked = np.array([3, 4, 2])
    recall, queries = recall_at_k(top, offsets, clicked)
    assert queries == 2 and recall == pytest.approx((0.5 + 1.0) / 2)


def test_recall_padding_never_matches_a_neighbouring_query():
    top = np.array([[-1, -1], [0, 0]])
    recall, _ = recall_at_k(top, np.array([0, 1, 2]), np.array([1, 5]))  # stride trick must not alias
    assert recall == 0.0
