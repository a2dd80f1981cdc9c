"""`newsrec evaluate` / `newsrec predict`: a checkpoint on dev (or test) impressions.

Ranking: leaderboard metrics of the click scores of each impression's candidates (u_ra · r; a
cross-encoder's pair scores), overall and split by cold (never a train candidate) vs warm news and by
empty vs non-empty history.
Recall: Recall@K of u_re by exact maximum inner product over two stated pools: (a) the dev-day pool
(every news item that is a candidate of the split) and (b) every news item in the news.tsv files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from newsrec.pipeline.baselines import popularity_scores
from newsrec.pipeline.encoding import encode_dataset
from newsrec.pipeline.features import clicked_sets
from newsrec.pipeline.inference import retrieved_ranks
from newsrec.pipeline.leaderboard import scores_to_ranks, write_leaderboard_file
from newsrec.pipeline.metrics import (RankingMetrics, clicked_ranks, per_impression_metrics, ranking_metrics,
                                      recall_from_ranks)
from newsrec.pipeline.mind import Behaviors, MindDataset

RECALL_KS = (100, 200, 500, 1000)


@dataclass(frozen=True)
class Evaluation:
    model: str
    ranking: RankingMetrics
    splits: dict[str, RankingMetrics] = field(default_factory=dict)
    recall: dict[str, dict[int, float]] = field(default_factory=dict)  # pool -> K -> Recall@K
    pool_sizes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Scored:
    """Everything evaluation needs from a model: candidate scores and the two user vectors."""

    scores: np.ndarray  # (C,) per candidate row of the split
    news_matrix: torch.Tensor  # (N, D)
    ranking_users: torch.Tensor | None  # (I, D); None for a cross-encoder (no user vector)
    recall_users: torch.Tensor | None  # (I, D)


def score_split(model_dir: str | Path, dataset: MindDataset, split: str, device_name: str = "auto",
                top_p: int | None = None, progress: bool = False) -> tuple[str, Scored]:
    """(model kind, scores and vectors) of every impression of `split`."""
    encoded = encode_dataset(model_dir, dataset, device_name, top_p, progress=progress)
    behaviors = dataset.splits[split]
    impressions = np.arange(behaviors.num_impressions)
    if not encoded.checkpoint.model.user_is_cacheable:
        return encoded.checkpoint.kind, Scored(encoded.candidate_scores(behaviors, impressions),
                                               encoded.news_matrix, None, None)
    users = encoded.users(behaviors, impressions)
    scores = encoded.candidate_scores(behaviors, impressions, users)
    return encoded.checkpoint.kind, Scored(scores, encoded.news_matrix, users.ranking, users.recall)


def evaluate_scores(name: str, dataset: MindDataset, split: str, scores: np.ndarray,
                    recall_ranks: dict[str, np.ndarray] | None = None,
                    impression_splits: dict[str, np.ndarray] | None = None,
                    row_splits: dict[str, np.ndarray] | None = None) -> Evaluation:
    """Ranking metrics (overall and split) of candidate scores, and Recall@K per pool from the rank of each
    clicked item in the retrieved lists (`recall_ranks`, `pipeline.metrics.clicked_ranks` over the impressions'
    clicks in `clicked_sets` order). `impression_splits`: more named (I,) bool masks of impressions;
    `row_splits`: named (C,) bool masks of candidate rows, each impression ranked over its rows in the mask."""
    behaviors = dataset.splits[split]
    per = per_impression_metrics(behaviors.labels, scores, behaviors.candidate_offsets)
    history_lengths = np.diff(behaviors.history_offsets)
    splits = {"empty history": per.mean(history_lengths == 0), "non-empty history": per.mean(history_lengths > 0)}
    splits.update({split_name: per.mean(mask) for split_name, mask in (impression_splits or {}).items()})
    warm = np.isin(behaviors.candidates, dataset.splits["train"].candidates)
    splits["cold news"] = _subset_metrics(behaviors, scores, ~warm)
    splits["warm news"] = _subset_metrics(behaviors, scores, warm)
    splits.update({split_name: _subset_metrics(behaviors, scores, rows)
                   for split_name, rows in (row_splits or {}).items()})
    evaluation = Evaluation(name, per.mean(), splits)
    if recall_ranks:
        clicked_offsets, _ = clicked_sets(behaviors, np.arange(behaviors.num_impressions))
        for pool, ranks in recall_ranks.items():
            evaluation.recall[pool] = {k: recall_from_ranks(ranks, clicked_offsets, k)[0] for k in RECALL_KS}
    return evaluation


def _subset_metrics(behaviors: Behaviors, scores: np.ndarray, keep: np.ndarray) -> RankingMetrics:
    """Metrics of each impression restricted to the candidate rows where `keep` is True."""
    owner = behaviors.impression_of_candidate()[keep]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=behaviors.num_impressions))])
    return ranking_metrics(behaviors.labels[keep], scores[keep], offsets)


def recall_pools(dataset: MindDataset, split: str) -> dict[str, np.ndarray]:
    return {"dev-day pool": np.unique(dataset.splits[split].candidates),
            "all news": np.arange(len(dataset.news))}


def evaluate_model(model_dir: str | Path, dataset: MindDataset, split: str = "dev", device_name: str = "auto",
                   top_p: int | None = None, name: str | None = None,
                   impression_splits: dict[str, np.ndarray] | None = None, progress: bool = False,
                   recall_by_ranking: bool = False, row_splits: dict[str, np.ndarray] | None = None) -> Evaluation:
    """Ranking metrics of the checkpoint on `split`, and Recall@K of its recall vectors over both pools
    (no recall for a cross-encoder, which has no recall vector); `recall_by_ranking`: the ranking user vector
    is the recall query instead (e.g. UniRec's u_ra beside its bases); splits as `evaluate_scores`."""
    kind, scored = score_split(model_dir, dataset, split, device_name, top_p, progress)
    queries = scored.ranking_users if recall_by_ranking else scored.recall_users
    pools = recall_pools(dataset, split) if queries is not None else {}
    behaviors = dataset.splits[split]
    clicked_offsets, clicked = clicked_sets(behaviors, np.arange(behaviors.num_impressions))
    ranks = {pool: retrieved_ranks(queries, scored.news_matrix, max(RECALL_KS), rows, clicked_offsets,
                                   clicked) for pool, rows in pools.items()}
    evaluation = evaluate_scores(name or kind, dataset, split, scored.scores, ranks, impression_splits, row_splits)
    evaluation.pool_sizes.update({pool: len(rows) for pool, rows in pools.items()})
    return evaluation


def popularity_evaluation(dataset: MindDataset, split: str = "dev") -> Evaluation:
    """Popularity (train clicks before the impression) ranking; recall = the most clicked news of each pool."""

    behaviors = dataset.splits[split]
    train = dataset.splits["train"]
    clicks = np.bincount(train.candidates[train.labels == 1], minlength=len(dataset.news)).astype(np.float64)
    clicked_offsets, clicked = clicked_sets(behaviors, np.arange(behaviors.num_impressions))
    ranks = {}
    for pool, rows in recall_pools(dataset, split).items():
        ranked = rows[np.argsort(-clicks[rows], kind="stable")][:max(RECALL_KS)]
        ranks[pool] = clicked_ranks(np.broadcast_to(ranked, (behaviors.num_impressions, len(ranked))),
                                    clicked_offsets, clicked)
    return evaluate_scores("popularity", dataset, split, popularity_scores(train, behaviors), ranks)


def predict(model_dir: str | Path, dataset: MindDataset, split: str, out: str | Path,
            device_name: str = "auto") -> Path:
    """Write a leaderboard prediction file (`ImpId [r1,r2,...]`) for every impression of `split`."""
    _, scored = score_split(model_dir, dataset, split, device_name)
    behaviors = dataset.splits[split]
    write_leaderboard_file(out, behaviors.impression_ids.tolist(), behaviors.candidate_offsets,
                           scores_to_ranks(scored.scores, behaviors.candidate_offsets))
    return Path(out)
