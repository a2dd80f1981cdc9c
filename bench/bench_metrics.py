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

from newsrec.bench.common import OUT, machine, row_main, side_by_side, table, timed, tiny_setup
from newsrec.pipeline.metrics import ranking_metrics


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
    """The tutorial's way: one roc_auc_score call and numpy MRR/nDCG per impression. An impression whose labels
    are all clicks or all non-clicks has no AUC (sklearn warns and gives nan): it is skipped, newsrec's documented
    policy (pipeline/metrics.py: counted in `skipped_single_class`), so that both sides score the same impressions.
    Returns (AUC, MRR, nDCG@5, nDCG@10, impressions skipped)."""
    from sklearn.metrics import roc_auc_score

    def dcg(y_true, y_score, k):
        order = np.argsort(y_score, kind="stable")[::-1]
        gains = 2 ** np.take(y_true, order[:k]) - 1
        return np.sum(gains / np.log2(np.arange(len(gains)) + 2))

    def mrr(y_true, y_score):
        order = np.argsort(y_score, kind="stable")[::-1]
        y_true = np.take(y_true, order)
        return np.sum(y_true / (np.arange(len(y_true)) + 1)) / np.sum(y_true)

    aucs, mrrs, ndcg5s, ndcg10s, skipped = [], [], [], [], 0
    for i in range(len(offsets) - 1):
        y, s = labels[offsets[i]:offsets[i + 1]], scores[offsets[i]:offsets[i + 1]]
        if y.min() == y.max():
            skipped += 1
            continue
        aucs.append(roc_auc_score(y, s))
        mrrs.append(mrr(y, s))
        ndcg5s.append(dcg(y, s, 5) / dcg(y, y, 5))
        ndcg10s.append(dcg(y, s, 10) / dcg(y, y, 10))
    return np.mean(aucs), np.mean(mrrs), np.mean(ndcg5s), np.mean(ndcg10s), skipped


def serving_evaluation(repeats: int) -> dict:
    """Dev metrics from a trained model's vectors: newsrec's vectorized scoring vs the tutorial's one ranking
    query per impression (here to the embedded index, in-process: no HTTP cost counted) + sklearn per impression."""
    from newsrec.feed.connect import Target, open_backend
    from newsrec.feed.feeding import embed_corpus
    from newsrec.feed.job import FeedOptions, run_feed
    from newsrec.pipeline.inference import candidate_scores
    from newsrec.pipeline.mind import read_mind
    from newsrec.pipeline.transforms import EuclideanTransform

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
    require_agreement(_values(ours()), per_query(), 1e-6, "the serving-path evaluation")
    return {"impressions": int(dev.num_impressions), "rows": int(len(dev.candidates)), "ours_s": fast,
            "per_query_s": slow, "agree": True, "skipped_single_class": int(ours().skipped_single_class)}


def _values(metrics) -> tuple:
    return metrics.auc, metrics.mrr, metrics.ndcg5, metrics.ndcg10, metrics.skipped_single_class


def require_agreement(ours: tuple, reference: tuple, tolerance: float, what: str) -> None:
    """Both sides' (AUC, MRR, nDCG@5, nDCG@10, impressions skipped) equal within `tolerance`, else the row stops:
    a benchmark never publishes a ratio its own check refutes (bench/run.py exits non-zero, nothing saved)."""
    if ours[-1] != reference[-1] or not np.allclose(ours[:-1], reference[:-1], rtol=0, atol=tolerance):
        raise SystemExit(f"{what}: newsrec's metrics {ours} differ from the baseline's {reference}; no ratio")


def run(quick: bool) -> dict:
    impressions = 5_000 if quick else 73_152
    labels, scores, offsets = mind_small_dev(impressions)
    ours_times = [timed(lambda: ranking_metrics(labels, scores, offsets))[0] for _ in range(2 if quick else 5)]
    loop_seconds, reference = timed(lambda: sklearn_loop(labels, scores, offsets))
    require_agreement(_values(ranking_metrics(labels, scores, offsets)), reference, 1e-12, "the metrics row")
    return {"machine": machine(), "impressions": impressions, "rows": int(len(labels)),
            "ours_s": statistics.median(ours_times), "ours_repeats": len(ours_times), "loop_s": loop_seconds,
            "agree": True, "serving": serving_evaluation(1 if quick else 3)}


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
HTTP time is counted in the baseline's favour) and scores each impression with sklearn. Both skip the
impressions with a single class ({serving.get('skipped_single_class', 0)} here: no AUC), newsrec's policy, and
must agree to 1e-6, else the row stops without a ratio.

{_serving_table(serving)}"""


def _serving_table(serving: dict) -> str:
    if not serving.get("agree") or "skipped_single_class" not in serving:
        return "**No ratio:** the recorded run predates the agreement check (or failed it); rerun the row."
    return table(["evaluation", "impressions/s", "ratio"], [
        ["newsrec (`newsrec evaluate`)", f"{serving['impressions'] / serving['ours_s']:,.0f}", ""],
        ["one query per impression + sklearn", f"{serving['impressions'] / serving['per_query_s']:,.0f}", ""],
        ["**speed-up**", "", f"**{serving['per_query_s'] / serving['ours_s']:.0f}×** (metrics agree)"]])


if __name__ == "__main__":
    row_main(__doc__, run, render)
