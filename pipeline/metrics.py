"""MIND leaderboard metrics, vectorized over all impressions at once.

Per impression, with labels y and scores s (as msnews/MIND `evaluate.py`, see docs/generated-data.md, "Metrics"):
- AUC: ROC AUC of s against y (tied scores count one half, as sklearn's `roc_auc_score`);
- MRR: sum_i y[order[i]] / (i + 1) / sum(y): averaged over *all* clicked items;
- nDCG@k: DCG@k(s) / DCG@k(y), DCG@k = sum_{i<k} (2^y[order[i]] - 1) / log2(i + 2), k = 5, 10;
then each metric is averaged over impressions (macro average).

Ties. The official script orders by `np.argsort(s)[::-1]`, whose order among equal scores depends on
numpy's version and the CPU (numpy 2 sorts with SIMD quicksorts that are not stable), so the
official MRR and nDCG of tied scores are not reproducible across machines. Here the rule is fixed:
among equal scores the candidate listed *later* in the impression ranks first, exactly
`np.argsort(s, kind="stable")[::-1]`. AUC counts a tie between a click and a non-click as 1/2, as
sklearn's `roc_auc_score` does. Leaderboard predictions (s = 1/rank of a permutation) have no ties.

Single-class impressions (no click, or only clicks) have no AUC: they are left out of all four
averages and counted in `RankingMetrics.skipped_single_class`.

    >>> m = ranking_metrics(np.array([1, 0, 0, 1]), np.array([.9, .1, .5, .2]), np.array([0, 2, 4]))
    >>> round(m.auc, 3), round(m.mrr, 3), m.impressions
    (0.5, 0.75, 2)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METRIC_NAMES = ("auc", "mrr", "ndcg5", "ndcg10")


@dataclass(frozen=True)
class RankingMetrics:
    auc: float
    mrr: float
    ndcg5: float
    ndcg10: float
    impressions: int  # impressions averaged over
    skipped_single_class: int  # impressions with no click or no non-click, left out

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class PerImpression:
    """Per-impression values; rows where `valid` is False are single-class and hold NaN."""

    auc: np.ndarray
    mrr: np.ndarray
    ndcg5: np.ndarray
    ndcg10: np.ndarray
    valid: np.ndarray

    def mean(self, mask: np.ndarray | None = None) -> RankingMetrics:
        """Macro average over valid impressions, optionally only those where `mask` is True."""
        rows = self.valid if mask is None else self.valid & mask
        considered = len(self.valid) if mask is None else int(mask.sum())
        means = [float(getattr(self, name)[rows].mean()) if rows.any() else float("nan")
                 for name in METRIC_NAMES]
        return RankingMetrics(*means, impressions=int(rows.sum()), skipped_single_class=considered - int(rows.sum()))


def concatenate(parts: list[PerImpression]) -> PerImpression:
    """The per-impression values of consecutive blocks of impressions, as one."""
    return PerImpression(*(np.concatenate([getattr(p, name) for p in parts]) for name in (*METRIC_NAMES, "valid")))


def ranking_metrics(labels: np.ndarray, scores: np.ndarray, offsets: np.ndarray) -> RankingMetrics:
    """Leaderboard metrics of CSR-shaped impressions: impression i is rows offsets[i]:offsets[i+1]."""
    return per_impression_metrics(labels, scores, offsets).mean()


BLOCK_ROWS = 2_000_000  # candidate rows per block of impressions: bounded temporaries at MIND-large scale


def per_impression_metrics(labels: np.ndarray, scores: np.ndarray, offsets: np.ndarray) -> PerImpression:
    """Each impression's metrics, computed over blocks of whole impressions of about BLOCK_ROWS rows (an
    impression's values do not depend on the blocks)."""
    labels, scores, offsets = _check(labels, scores, offsets)
    if len(labels) <= BLOCK_ROWS:
        return _per_impression(labels, scores, offsets)
    cuts = np.unique(np.concatenate([np.searchsorted(offsets, np.arange(0, offsets[-1], BLOCK_ROWS), side="right") - 1,
                                     [len(offsets) - 1]]))
    return concatenate([_per_impression(labels[offsets[a]:offsets[b]], scores[offsets[a]:offsets[b]],
                                        offsets[a:b + 1] - offsets[a]) for a, b in zip(cuts[:-1], cuts[1:])])


def _per_impression(labels: np.ndarray, scores: np.ndarray, offsets: np.ndarray) -> PerImpression:
    lengths = np.diff(offsets)
    segment = np.repeat(np.arange(len(lengths)), lengths)  # (C,) impression of each row
    positives = np.bincount(segment, weights=labels, minlength=len(lengths))
    negatives = lengths - positives
    valid = (positives > 0) & (negatives > 0)
    ascending = _ascending_order(scores, segment)  # one sort serves both kinds of metric
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = _auc(labels, scores, segment, offsets, positives, negatives, ascending)
        mrr, ndcg5, ndcg10 = _rank_metrics(labels, segment, offsets, positives,
                                           _reverse_within(ascending, offsets, segment))
    invalid = ~valid
    for values in (auc, mrr, ndcg5, ndcg10):
        values[invalid] = np.nan
    return PerImpression(auc, mrr, ndcg5, ndcg10, valid)


def _check(labels, scores, offsets):
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-d of equal length")
    if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != len(labels) or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must start at 0, be non-decreasing and end at the number of rows")
    if not np.all(np.isin(labels, (0.0, 1.0))):
        raise ValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite (no NaN or inf)")
    return labels, scores, offsets


def _ascending_order(scores: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Rows by (impression, score) ascending, ties in row order: `np.lexsort((scores, segment))`, computed
    as the rows by score (stable), then stably by impression: a radix sort when impression numbers fit in
    16 bits (blocks of up to 65,536 impressions), else one integer sort of (impression, rank of the score)."""
    by_score = np.argsort(scores, kind="stable")
    if segment.max(initial=0) < 1 << 16:
        return by_score[np.argsort(segment.astype(np.uint16)[by_score], kind="stable")]
    rank = np.empty(len(scores), dtype=np.int64)
    rank[by_score] = np.arange(len(scores))
    return np.argsort(segment.astype(np.int64) * max(len(scores), 1) + rank)  # keys distinct: any sort is exact


def _reverse_within(order: np.ndarray, offsets: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """The same rows with each impression's block reversed (impressions stay in place)."""
    rows = np.arange(len(order))
    return order[offsets[segment] + offsets[segment + 1] - 1 - rows]


def _auc(labels, scores, segment, offsets, positives, negatives, order) -> np.ndarray:
    """Mann-Whitney U with mid-ranks for ties, per impression (`order`: ascending score per impression)."""
    sorted_scores, sorted_segment = scores[order], segment[order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = (sorted_scores[1:] != sorted_scores[:-1]) | (sorted_segment[1:] != sorted_segment[:-1])
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], len(order)) - 1
    position = np.arange(len(order)) - offsets[sorted_segment]  # 0-based within the impression
    mid_rank = (position[starts] + position[ends]) / 2.0 + 1.0  # (groups,)
    rank_sum = np.bincount(sorted_segment, weights=mid_rank[group] * labels[order], minlength=len(positives))
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def descending_order(scores: np.ndarray, offsets: np.ndarray, segment: np.ndarray | None = None):
    """(order, rank): rows sorted best first within each impression (ties: later candidate first),
    and the 1-based rank of each sorted row within its impression."""
    if segment is None:
        segment = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    order = _reverse_within(_ascending_order(scores, segment), offsets, segment)
    return order, _rank_of_sorted(order, offsets, segment)


def _rank_of_sorted(order, offsets, segment) -> np.ndarray:
    return np.arange(len(order)) - offsets[segment[order]] + 1


def _rank_metrics(labels, segment, offsets, positives, order):
    rank = _rank_of_sorted(order, offsets, segment)
    clicked = labels[order]
    sorted_segment = segment[order]
    mrr = np.bincount(sorted_segment, weights=clicked / rank, minlength=len(positives)) / positives
    discount = 1.0 / np.log2(rank + 1.0)
    results = [mrr]
    for k in (5, 10):
        dcg = np.bincount(sorted_segment, weights=clicked * discount * (rank <= k), minlength=len(positives))
        results.append(dcg / ideal_dcg(positives, k))
    return results


def ideal_dcg(positives: np.ndarray, k: int) -> np.ndarray:
    """DCG@k of a perfect ordering with `positives` clicked items (binary gains)."""
    cumulative = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    return cumulative[np.minimum(positives, k).astype(np.int64)]


def recall_at_k(top_items: np.ndarray, clicked_offsets: np.ndarray, clicked: np.ndarray) -> tuple[float, int]:
    """Mean over queries of |clicked ∩ top-K| / |clicked|; returns (recall, queries averaged over).

    top_items: (Q, K) item ids retrieved from the stated candidate pool, best first; -1 pads short lists.
    clicked_offsets, clicked: CSR of each query's clicked item ids. Queries with no click are left out.
    """
    top_items = np.asarray(top_items)
    return recall_from_ranks(clicked_ranks(top_items, clicked_offsets, clicked), clicked_offsets, top_items.shape[1])


def clicked_ranks(top_items: np.ndarray, clicked_offsets: np.ndarray, clicked: np.ndarray) -> np.ndarray:
    """(clicks,) 0-based position of each clicked item in its query's retrieved list (K = its width when
    absent): Recall@k for every k <= K follows from these (`recall_from_ranks`) without keeping the lists."""
    top_items = np.asarray(top_items)
    clicked = np.asarray(clicked, dtype=np.int64)
    num_queries = len(clicked_offsets) - 1
    if top_items.ndim != 2 or top_items.shape[0] != num_queries:
        raise ValueError(f"top_items must be (queries={num_queries}, K), got {top_items.shape}")
    query_of_click = np.repeat(np.arange(num_queries), np.diff(clicked_offsets))
    ranks = np.full(len(clicked), top_items.shape[1], dtype=np.int64)
    for start in range(0, len(clicked), 65_536):  # (chunk, K) comparisons, bounded memory
        rows = slice(start, start + 65_536)
        equal = top_items[query_of_click[rows]] == clicked[rows, None]
        found = equal.any(axis=1)
        ranks[rows] = np.where(found, equal.argmax(axis=1), top_items.shape[1])
    return ranks


def recall_from_ranks(ranks: np.ndarray, clicked_offsets: np.ndarray, k: int) -> tuple[float, int]:
    """Recall@k (as `recall_at_k` of the lists cut at k) from `clicked_ranks`; (recall, queries averaged over)."""
    counts = np.diff(clicked_offsets)
    num_queries = len(counts)
    hits = np.bincount(np.repeat(np.arange(num_queries), counts), weights=np.asarray(ranks) < k, minlength=num_queries)
    has_clicks = counts > 0
    if not has_clicks.any():
        return float("nan"), 0
    return float(np.mean(hits[has_clicks] / counts[has_clicks])), int(has_clicks.sum())
