"""Metrics benchmark: newsrec's vectorized scorer vs the per-impression sklearn loop of the Vespa tutorial.

Input: a MIND-small-sized dev set (73,152 impressions, ~2.7M candidate rows; MIND's candidate
count distribution: median 24, mean 37, max 300), random labels with at least one click and one
non-click per impression, random scores with ties. Both scorers run side by side in this process
on the same arrays, and must agree.

    python bench/bench_metrics.py            # full size
    python bench/bench_metrics.py --impressions 5000
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pipeline.metrics import ranking_metrics


def mind_small_dev(impressions: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(24), 0.9, impressions)), 2, 300).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    labels = (rng.random(offsets[-1]) < 0.04).astype(np.int64)
    labels[offsets[:-1]] = 1  # at least one click ...
    labels[offsets[:-1] + 1] = 0  # ... and one non-click
    scores = np.round(rng.random(offsets[-1]), 3)  # 1,000 distinct values: ties happen
    return labels, scores, offsets


def sklearn_loop(labels, scores, offsets):
    """The tutorial's way: one roc_auc_score call and numpy MRR/nDCG per impression."""
    from sklearn.metrics import roc_auc_score

    def dcg(y_true, y_score, k):
        order = np.argsort(y_score, kind="stable")[::-1]
        gains = 2 ** np.take(y_true, order[:k]) - 1
        return np.sum(gains / np.log2(np.arange(len(gains)) + 2))

    def mrr(y_true, y_score):
        order = np.argsort(y_score, kind="stable")[::-1]
        y_true = np.take(y_true, order)
        return np.sum(y_true / (np.arange(len(y_true)) + 1)) / np.sum(y_true)

    aucs, mrrs, ndcg5s, ndcg10s = [], [], [], []
    for i in range(len(offsets) - 1):
        y, s = labels[offsets[i]:offsets[i + 1]], scores[offsets[i]:offsets[i + 1]]
        aucs.append(roc_auc_score(y, s))
        mrrs.append(mrr(y, s))
        ndcg5s.append(dcg(y, s, 5) / dcg(y, y, 5))
        ndcg10s.append(dcg(y, s, 10) / dcg(y, y, 10))
    return np.mean(aucs), np.mean(mrrs), np.mean(ndcg5s), np.mean(ndcg10s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=73_152)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the newsrec scorer (median)")
    args = parser.parse_args()
    labels, scores, offsets = mind_small_dev(args.impressions)
    print(f"{args.impressions} impressions, {len(labels)} candidate rows")
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        ours = ranking_metrics(labels, scores, offsets)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    reference = sklearn_loop(labels, scores, offsets)
    loop_time = time.perf_counter() - started
    agree = np.allclose([ours.auc, ours.mrr, ours.ndcg5, ours.ndcg10], reference, rtol=0, atol=1e-12)
    median = statistics.median(times)
    print(f"newsrec vectorized : {median:8.3f} s (median of {args.repeats})")
    print(f"sklearn loop       : {loop_time:8.3f} s (1 run)")
    print(f"speed-up           : {loop_time / median:8.1f} x   metrics agree: {agree}")
    if not agree:
        raise SystemExit(f"metrics differ: {ours} vs {reference}")


if __name__ == "__main__":
    main()
