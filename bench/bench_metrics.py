"""Metrics benchmark: newsrec's vectorized scorer vs the per-impression sklearn loop of the Vespa tutorial.

Input: a MIND-small-sized dev set (73,152 impressions, ~2.7M candidate rows; MIND's candidate
count distribution: median 24, mean 37, max 300), random labels with at least one click and one
non-click per impression, random scores with ties. Both scorers run side by side in this process
on the same arrays, and must agree.

    python3 bench/run.py metrics            # full size, recorded in BENCHMARKS.md
    python3 bench/bench_metrics.py --quick  # 5,000 impressions, printed only

Also times dev evaluation from a trained model's vectors: vectorized vs one query per impression.
"""
from __future__ import annotations

import statistics

import numpy as np
import torch

from bench.common import OUT, machine, row_main, side_by_side, table, timed, tiny_setup
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


def serving_evaluation(repeats: int) -> dict:
    """Dev metrics from a trained model's vectors: newsrec's vectorized scoring vs the tutorial's one ranking
    query per impression (here to the embedded index, in-process: no HTTP cost counted) + sklearn per impression."""
    from feed.connect import Target, open_backend
    from feed.feeding import embed_corpus
    from feed.job import FeedOptions, run_feed
    from pipeline.inference import candidate_scores
    from pipeline.mind import read_mind
    from pipeline.transforms import EuclideanTransform

    mind, model = tiny_setup()
    dataset = read_mind(mind)
    corpus = embed_corpus(dataset, model, "cpu")  # the vectors newsrec-feed computes ...
    target = Target(index_dir=str(OUT / "tiny" / "index"))
    run_feed(str(mind), target, FeedOptions(model_dir=str(model), device="cpu"), log=lambda _: None,
             dataset=dataset)  # ... and fed
    backend = open_backend(target)
    dev = dataset.splits["dev"]
    user = dev.user_index
    ranking = torch.from_numpy(corpus.user_ranking[user])
    news = torch.from_numpy(corpus.news_vectors)
    impressions = np.arange(dev.num_impressions)

    def ours():
        scores, labels, offsets = candidate_scores(news, ranking, dev, impressions)
        return ranking_metrics(labels, scores, offsets)

    queries = EuclideanTransform(1.0).query(corpus.user_ranking[user])
    ids = dataset.news.ids

    def per_query():
        scores = np.concatenate([backend.ranking_scores(queries[i].tolist(), [ids[n] for n in dev.candidates_of(i)])
                                 for i in impressions])
        return sklearn_loop(dev.labels.astype(np.int64), scores, dev.candidate_offsets)

    fast, slow = side_by_side(ours, per_query, repeats)
    agree = np.allclose(list(_values(ours())), per_query(), atol=1e-6)
    return {"impressions": int(dev.num_impressions), "rows": int(len(dev.candidates)), "ours_s": fast,
            "per_query_s": slow, "agree": bool(agree)}


def _values(metrics):
    return metrics.auc, metrics.mrr, metrics.ndcg5, metrics.ndcg10


def run(quick: bool) -> dict:
    impressions = 5_000 if quick else 73_152
    labels, scores, offsets = mind_small_dev(impressions)
    ours_times = [timed(lambda: ranking_metrics(labels, scores, offsets))[0] for _ in range(2 if quick else 5)]
    loop_seconds, reference = timed(lambda: sklearn_loop(labels, scores, offsets))
    agree = np.allclose(_values(ranking_metrics(labels, scores, offsets)), reference, rtol=0, atol=1e-12)
    if not agree:
        raise SystemExit("newsrec's metrics differ from the sklearn loop's")
    return {"machine": machine(), "impressions": impressions, "rows": int(len(labels)),
            "ours_s": statistics.median(ours_times), "ours_repeats": len(ours_times), "loop_s": loop_seconds,
            "agree": bool(agree), "serving": serving_evaluation(1 if quick else 3)}


def render(data: dict) -> str:
    serving = data["serving"]
    return f"""## Evaluation: dev metrics, newsrec vs the per-impression sklearn loop

`python3 bench/run.py metrics`

A MIND-small-sized dev set: {data['impressions']:,} impressions, {data['rows']:,} candidate rows (MIND's
candidate-count distribution: median 24, mean 37, max 300), random labels with at least one click and
one non-click per impression, scores with ties. The baseline is the tutorial's way: per impression,
sklearn's `roc_auc_score` and numpy MRR/nDCG, in a Python loop. Both must agree to 1e-12.

{table(["scorer", "time", "ratio"], [
        ["newsrec `ranking_metrics` (vectorized)", f"{data['ours_s']:.2f} s (median of {data['ours_repeats']})", ""],
        ["per-impression sklearn loop", f"{data['loop_s']:.1f} s (1 run)", ""],
        ["**speed-up**", "", f"**{data['loop_s'] / data['ours_s']:.1f}×** (target ≥ 20×)"]])}

End to end from a trained model's vectors (UniRec, generated tiny data, {serving['impressions']:,} dev
impressions, {serving['rows']:,} candidates): newsrec scores every candidate in one vectorized pass;
the tutorial sends one ranking query per impression (here to the embedded index in-process, so no
HTTP time is counted in the baseline's favour) and scores each impression with sklearn.

{table(["evaluation", "impressions/s", "ratio"], [
        ["newsrec (`newsrec evaluate`)", f"{serving['impressions'] / serving['ours_s']:,.0f}", ""],
        ["one query per impression + sklearn", f"{serving['impressions'] / serving['per_query_s']:,.0f}", ""],
        ["**speed-up**", "", f"**{serving['per_query_s'] / serving['ours_s']:.0f}×** (metrics agree: {serving['agree']})"]])}"""


if __name__ == "__main__":
    row_main(__doc__, run, render)
