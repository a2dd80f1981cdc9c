"""`newsrec evaluate --backend local|vespa`: the ranking metrics through the serving path, next to the
offline ones, and the ANN recall of the serving index against exact maximum inner product.

Candidate scores come from the backend (`ranking_scores`: the rank profiles' ranking_score over the
fed, transformed embeddings) with the query side [u_ra, 0] computed as `newsrec-feed` computes it;
they must equal the offline u_ra · r up to float32 rounding, so the metrics must agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from newsrec.feed.reranking import FUSION, FUSIONS, WordPieces, fuse, global_phase, profile_settings
from newsrec.pipeline.evaluation import score_split
from newsrec.pipeline.features import history_matrix
from newsrec.pipeline.inference import top_k_inner_product
from newsrec.pipeline.metrics import RankingMetrics, ranking_metrics
from newsrec.pipeline.mind import MindDataset
from newsrec.pipeline.models.contract import ModelConfigError
from newsrec.pipeline.models.unbert import token_input_ids
from newsrec.pipeline.progress import tracked
from newsrec.pipeline.transforms import EuclideanTransform


@dataclass(frozen=True)
class ServingEvaluation:
    offline: RankingMetrics
    served: RankingMetrics
    max_score_difference: float
    ann_recall_at_100: float  # the backend's nearest-neighbour top-100 vs exact MIPS over all fed news
    ann_queries: int


def evaluate_serving(model_dir, dataset: MindDataset, backend, split: str = "dev", device_name: str = "auto",
                     ann_queries: int = 1000, seed: int = 0, progress: bool = False) -> ServingEvaluation:
    """Offline vs served metrics of every candidate of `split`, and the ANN recall@100 of the backend."""
    kind, scored = score_split(model_dir, dataset, split, device_name, progress=progress)
    if scored.ranking_users is None:
        raise ModelConfigError(f"{kind} has no user vector to serve: the serving path ranks with u_ra · r")
    behaviors = dataset.splits[split]
    query = EuclideanTransform(1.0).query(scored.ranking_users.cpu().numpy())  # [u_ra, 0]
    ids = dataset.news.ids
    served = np.concatenate([
        backend.ranking_scores(query[i].tolist(), [ids[n] for n in behaviors.candidates_of(i).tolist()])
        for i in tracked(range(behaviors.num_impressions), "scoring impressions through the serving path",
                         behaviors.num_impressions, "impression", progress)]).astype(np.float64)
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


# ------------------------------------------------------------------------------ the funnel with a re-ranker


@dataclass(frozen=True)
class FunnelEvaluation:
    impressions: int  # dev impressions measured (a seeded sample, or all)
    two_tower: RankingMetrics  # the two-tower scores served, every candidate
    reranked: dict[int, RankingMetrics]  # N -> the re-ranker as served (FUSION) over the best N, rest rescaled below
    fused: dict[tuple[str, int], RankingMetrics]  # (fusion of FUSIONS, N) -> the same with that global phase
    max_rerank_difference: float  # |served re-ranker score - torch's| over every re-scored candidate
    pairs: int  # (candidate, history) pairs the re-ranker scored


def evaluate_funnel(model_dir, reranker_dir, dataset: MindDataset, backend, rerank_budgets=(10, 20, 50),
                    split: str = "dev", sample: int | None = None, seed: int = 0,
                    device_name: str = "cpu") -> FunnelEvaluation:
    """The funnel through the serving path: per impression, the backend's two-tower scores of every candidate
    (`ranking_scores`), then the re-ranker's served scores (`rerank_scores`, its global phase) of the best N,
    checked against torch's; ranking metrics for the two-tower alone and, for each N, each fusion of the two scores
    (feed/reranking.py `fuse`; `reranked`: the one the profile serves)."""
    kind, scored = score_split(model_dir, dataset, split, device_name)
    if scored.ranking_users is None:
        raise ModelConfigError(f"{kind} has no user vector: the funnel's first phases need a two-tower model")
    behaviors = dataset.splits[split]
    chosen = np.arange(behaviors.num_impressions)
    if sample is not None and sample < len(chosen):
        chosen = np.sort(np.random.default_rng(seed).permutation(len(chosen))[:sample])
    reranker = _RerankerInputs(reranker_dir, dataset, behaviors, chosen)
    query = EuclideanTransform(1.0).query(scored.ranking_users[chosen].cpu().numpy())
    ids, deepest = dataset.news.ids, max(rerank_budgets)
    two_tower, labels, difference, pairs = [], [], 0.0, 0
    fused = {(fusion, n): [] for fusion in FUSIONS for n in rerank_budgets}
    for position, impression in enumerate(chosen.tolist()):
        candidates = behaviors.candidates_of(impression).tolist()
        served = np.asarray(backend.ranking_scores(query[position].tolist(), [ids[n] for n in candidates]))
        order = np.argsort(-served, kind="stable")
        top = order[:deepest]
        history = reranker.history[position]
        rescored = np.asarray(backend.rerank_scores(history.tolist(), [ids[candidates[i]] for i in top]))
        difference = max(difference, float(np.abs(rescored - reranker.offline(history, candidates, top)).max()))
        pairs += len(top)
        for fusion, n in fused:
            fused[fusion, n].append(global_phase(served, order, fuse(served[top[:n]], rescored[:n], fusion))[0])
        two_tower.append(served)
        labels.append(behaviors.labels[behaviors.candidate_offsets[impression]:behaviors.candidate_offsets[impression + 1]])
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in labels])])
    metric = lambda scores: ranking_metrics(np.concatenate(labels), np.concatenate(scores), offsets)  # noqa: E731
    fused = {key: metric(scores) for key, scores in fused.items()}
    return FunnelEvaluation(len(chosen), metric(two_tower), {n: fused[FUSION, n] for n in rerank_budgets}, fused,
                            difference, pairs)


class _RerankerInputs:
    """The re-ranker's word pieces (feed/reranking.py's, as fed) and the history pieces of each chosen impression
    (its own history, as offline)."""

    def __init__(self, reranker_dir, dataset: MindDataset, behaviors, chosen: np.ndarray):
        self.pieces = WordPieces(reranker_dir, dataset.news)
        self.scorer = self.pieces.scorer.eval()
        self.length = profile_settings().length
        self.history = self.pieces.histories(*history_matrix(behaviors, chosen, self.pieces.checkpoint.max_history))

    def offline(self, history: np.ndarray, candidates: list[int], top: np.ndarray) -> np.ndarray:
        """torch's scores of the candidates at `top` against `history`: what the served ones must equal."""
        titles = torch.from_numpy(self.pieces.titles[[candidates[i] for i in top]]).long()
        history = torch.from_numpy(history).long()[None].expand(len(titles), -1)
        with torch.no_grad():
            return self.scorer(*token_input_ids(self.length, titles, history)).numpy()
