"""Batched inference: every news item encoded once, users computed from indices into that matrix.

Device moves happen here, at the batch boundary; models never move data themselves.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.features import history_matrix
from pipeline.mind import Behaviors
from pipeline.models.contract import NewsFeatures


def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def encode_all_news(model, features: NewsFeatures, device: torch.device, batch_size: int = 4096) -> torch.Tensor:
    """(N, D) float32 vectors of every news row, on `device`."""
    model.eval()
    parts = []
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(features), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(features)))
            parts.append(model.encode_news(features.select(rows).to(device)).float())
    return torch.cat(parts) if parts else torch.zeros(0, 0, device=device)


def encode_users(model, news_matrix: torch.Tensor, behaviors: Behaviors, impressions: np.ndarray,
                 user_rows: np.ndarray, max_history: int, device: torch.device,
                 batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranking (B, D), recall (B, D)) user vectors of `impressions`, from their histories."""
    model.eval()
    ranking, recall = [], []
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(impressions), batch_size):
            chunk = impressions[start:start + batch_size]
            rows, mask = history_matrix(behaviors, chunk, max_history)
            history_vectors = news_matrix[torch.from_numpy(rows).to(device)]  # (b, H, D)
            users = model.encode_user(history_vectors, torch.from_numpy(mask).to(device),
                                      torch.from_numpy(user_rows[chunk]).to(device))
            ranking.append(users.ranking.float())
            recall.append(users.recall.float())
    return torch.cat(ranking), torch.cat(recall)


def candidate_scores(news_matrix: torch.Tensor, user_ranking: torch.Tensor, behaviors: Behaviors,
                     impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores u_ra · r of the candidates of `impressions` (in order): (scores, labels, offsets)."""
    starts, ends = behaviors.candidate_offsets[impressions], behaviors.candidate_offsets[impressions + 1]
    lengths = ends - starts
    rows = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
    owner = torch.from_numpy(np.repeat(np.arange(len(impressions)), lengths)).to(user_ranking.device)
    news = torch.from_numpy(behaviors.candidates[rows].astype(np.int64)).to(news_matrix.device)
    with torch.inference_mode():
        scores = (user_ranking[owner] * news_matrix[news]).sum(-1).float().cpu().numpy()
    return scores, behaviors.labels[rows], np.concatenate([[0], np.cumsum(lengths)])


def top_k_inner_product(queries: torch.Tensor, items: torch.Tensor, k: int, pool: np.ndarray,
                        chunk: int = 1024) -> np.ndarray:
    """(Q, k) item rows from `pool` with the largest exact inner product, best first."""
    pool_t = torch.from_numpy(pool.astype(np.int64)).to(items.device)
    pool_items = items[pool_t]  # (P, D)
    k = min(k, len(pool))
    out = []
    with torch.inference_mode():
        for start in range(0, len(queries), chunk):
            scores = queries[start:start + chunk] @ pool_items.T  # (c, P)
            out.append(pool_t[torch.topk(scores, k, dim=1).indices].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)
