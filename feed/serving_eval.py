"""`newsrec evaluate --backend local|vespa`: the ranking metrics through the serving path, next to the
offline ones, and the ANN recall of the serving index against exact maximum inner product.

Candidate scores come from the backend (`ranking_scores`: the rank profiles' ranking_score over the
fed, transformed embeddings) with the query side [u_ra, 0] computed as `newsrec-feed` computes it;
they must equal the offline u_ra · r up to float32 rounding, so the metrics must agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation import score_split
from pipeline.models.contract import ModelConfigError
from pipeline.inference import top_k_inner_product
from pipeline.metrics import RankingMetrics, ranking_metrics
from pipeline.mind import MindDataset
from pipeline.transforms import EuclideanTransform


@dataclass(frozen=True)
class ServingEvaluation:
    offline: RankingMetrics
    served: RankingMetrics
    max_score_difference: float
    ann_recall_at_100: float  # the backend's nearest-neighbour top-100 vs exact MIPS over all fed news
    ann_queries: int


def evaluate_serving(model_dir, dataset: MindDataset, backend, split: str = "dev", device_name: str = "auto",
                     ann_queries: int = 1000, seed: int = 0) -> ServingEvaluation:
    """Offline vs served metrics of every candidate of `split`, and the ANN recall@100 of the backend."""
    kind, scored = score_split(model_dir, dataset, split, device_name)
    if scored.ranking_users is None:
        raise ModelConfigError(f"{kind} has no user vector to serve: the serving path ranks with u_ra · r")
    behaviors = dataset.splits[split]
    query = EuclideanTransform(1.0).query(scored.ranking_users.cpu().numpy())  # [u_ra, 0]
    ids = dataset.news.ids
    served = np.concatenate([
        backend.ranking_scores(query[i].tolist(), [ids[n] for n in behaviors.candidates_of(i).tolist()])
        for i in range(behaviors.num_impressions)]).astype(np.float64)
    offsets = behaviors.candidate_offsets
    recall = _ann_recall(backend, scored, dataset, ann_queries, seed)
    return ServingEvaluation(ranking_metrics(behaviors.labels, scored.scores, offsets),
                             ranking_metrics(behaviors.labels, served, offsets),
                             float(np.abs(served - scored.scores).max(initial=0.0)),
                             recall, min(ann_queries, behaviors.num_impressions))


def _ann_recall(backend, scored, dataset: MindDataset, queries: int, seed: int) -> float:
    """Mean |ANN top-100 ∩ exact MIPS top-100| / 100 over sampled users' recall vectors."""
    rows = np.random.default_rng(seed).permutation(len(scored.recall_users))[:queries]
    users = scored.recall_users[rows]
    exact = top_k_inner_product(users, scored.news_matrix, 100, np.arange(len(dataset.news)))
    ids = np.array(dataset.news.ids)
    query = EuclideanTransform(1.0).query(users.cpu().numpy())
    overlaps = [len(set(backend.nearest_news(query[i].tolist(), 100)) & set(ids[exact[i]].tolist())) / 100
                for i in range(len(rows))]
    return float(np.mean(overlaps))
