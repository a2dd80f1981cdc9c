"""Batched inference: every news item encoded once, users computed from indices into that matrix.

Device moves happen here, at the batch boundary; models never move data themselves. A model whose
user is not a cacheable vector (a cross-encoder) is scored pair by pair through its `forward`.
"""
from __future__ import annotations

import numpy as np
import torch

from newsrec.pipeline.device import autocast, release_freed_memory
from newsrec.pipeline.features import history_matrix, make_batch, spans
from newsrec.pipeline.metrics import clicked_ranks
from newsrec.pipeline.mind import Behaviors
from newsrec.pipeline.models.contract import ModelConfigError, NewsFeatures, NewsRecModel, UserVectors
from newsrec.pipeline.progress import progress_bar, tracked


def encode_all_news(model: NewsRecModel, features: NewsFeatures, device: torch.device,
                    batch_size: int | None = None) -> torch.Tensor:
    """(N, D) float32 vectors of every news row, on `device` (smaller batches when the LM runs too)."""
    batch_size = batch_size or (256 if model.finetune_layers else 4096)
    model.eval()
    parts = []
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(features), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(features)))
            parts.append(model.encode_news(features.select(rows).to(device)).float())
    return torch.cat(parts) if parts else torch.zeros(0, 0, device=device)


USER_BATCH = {"cpu": 512, "cuda": 4096}


def encode_users(model: NewsRecModel, news_matrix: torch.Tensor, behaviors: Behaviors, impressions: np.ndarray,
                 user_rows: np.ndarray, max_history: int, device: torch.device, batch_size: int | None = None,
                 features: NewsFeatures | None = None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranking (B, D), recall (B, D)) float32 user vectors of `impressions`, from their histories, `batch_size`
    users at a time; `features` (every news row) is needed by models that read the clicked news' features
    (`reads_history_news`). Streamed: each chunk's vectors are copied into the two output matrices, allocated
    once, so memory is the outputs plus one chunk's temporaries, whatever the number of users. Default chunk:
    USER_BATCH[device type] (CPU: 512, measured fastest, 1.6x faster than 2,048 whose attention maps leave cache)."""
    _require_user_vectors(model)
    batch_size = batch_size or USER_BATCH.get(device.type, USER_BATCH["cuda"])
    model.eval()
    ranking = recall = None
    reporter = progress_bar(f"encoding {len(impressions):,} users", len(impressions), "user", progress)
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(impressions), batch_size):
            chunk = impressions[start:start + batch_size]
            if reporter is not None:
                reporter.update(len(chunk))
            users = _encode_chunk(model, news_matrix, behaviors, chunk, user_rows[chunk], max_history, device,
                                  features)
            if ranking is None:
                ranking = torch.empty((len(impressions), users.ranking.shape[1]), device=device)
                recall = torch.empty((len(impressions), users.recall.shape[1]), device=device)
            ranking[start:start + len(chunk)] = users.ranking
            recall[start:start + len(chunk)] = users.recall
            del users
            if (start // batch_size) % 64 == 63:
                release_freed_memory()
    if reporter is not None:
        reporter.close()
    if ranking is None:
        return torch.zeros(0, 0, device=device), torch.zeros(0, 0, device=device)
    return ranking, recall


def _encode_chunk(model: NewsRecModel, news_matrix: torch.Tensor, behaviors: Behaviors, impressions: np.ndarray,
                  user_rows: np.ndarray, max_history: int, device: torch.device,
                  features: NewsFeatures | None) -> UserVectors:
    rows, mask = history_matrix(behaviors, impressions, max_history)
    history_vectors = news_matrix[torch.from_numpy(rows).to(device)]  # (b, H, D)
    history_news = None
    if model.reads_history_news:
        if features is None:
            raise ModelConfigError(f"{type(model).__name__} reads the clicked news' features: pass `features`")
        history_news = features.select(torch.from_numpy(rows)).to(device)  # (b, H, ...)
    return model.encode_user(history_vectors, torch.from_numpy(mask).to(device),
                             torch.from_numpy(user_rows).to(device), history_news)


def _require_user_vectors(model: NewsRecModel) -> None:
    if not model.user_is_cacheable:
        raise ModelConfigError(f"{type(model).__name__} is a cross-encoder: it has no user vector to compute "
                               "once (score candidates with `pair_scores`)")


def candidate_rows(behaviors: Behaviors, impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows (C,), offsets (I + 1,)): the candidate rows of `impressions` in order, and where each one starts."""
    starts, ends = behaviors.candidate_offsets[impressions], behaviors.candidate_offsets[impressions + 1]
    lengths = ends - starts
    rows = spans(starts, lengths)
    return rows, np.concatenate([[0], np.cumsum(lengths)])


SCORE_ROWS = 1 << 18  # candidate rows scored at a time: three (rows, D) float32 temporaries of 64 MiB


def candidate_scores(news_matrix: torch.Tensor, user_ranking: torch.Tensor, behaviors: Behaviors,
                     impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores u_ra · r of the candidates of `impressions` (in order): (scores, labels, offsets), SCORE_ROWS
    candidate rows at a time."""
    rows, offsets = candidate_rows(behaviors, impressions)
    owner = np.repeat(np.arange(len(impressions)), np.diff(offsets))
    scores = np.empty(len(rows), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(rows), SCORE_ROWS):
            part = slice(start, start + SCORE_ROWS)
            users = user_ranking[torch.from_numpy(owner[part]).to(user_ranking.device)]
            news = news_matrix[torch.from_numpy(behaviors.candidates[rows[part]].astype(np.int64)).to(news_matrix.device)]
            scores[part] = (users * news).sum(-1).float().cpu().numpy()
    return scores, behaviors.labels[rows], offsets


def score_impressions(model: NewsRecModel, features: NewsFeatures, news_matrix: torch.Tensor | None, behaviors: Behaviors,
                      impressions: np.ndarray, user_rows: np.ndarray, max_history: int, device: torch.device,
                      user_ranking: torch.Tensor | None = None, progress: bool = False) -> np.ndarray:
    """(C,) click scores of the candidates of `impressions`, in order: u_ra · r with the users' ranking vectors
    (computed unless given), or pair by pair through `forward` for a model without user vectors."""
    if not model.user_is_cacheable:
        return pair_scores(model, features, behaviors, impressions, user_rows, max_history, device,
                           progress=progress)
    if user_ranking is None:
        user_ranking = encode_users(model, news_matrix, behaviors, impressions, user_rows, max_history, device,
                                    features=features, progress=progress)[0]
    return candidate_scores(news_matrix, user_ranking, behaviors, impressions)[0]


PAIR_BATCH = {"cpu": 64, "cuda": 512}


def pair_scores(model: NewsRecModel, features: NewsFeatures, behaviors: Behaviors, impressions: np.ndarray,
                user_rows: np.ndarray, max_history: int, device: torch.device,
                batch_size: int | None = None, progress: bool = False) -> np.ndarray:
    """Scores of every candidate of `impressions` (in order) through `forward`, one (candidate, history) pair
    per row: the path of models without a cacheable user vector (cross-encoders). Default chunk:
    PAIR_BATCH[device type]. On CPU, UNBERT's pairs of 161 word pieces (all-MiniLM-L6-v2: 12 heads' attention
    maps in each layer) add 0.33 GB at their peak 64 at a time and 1.5 GB 512 at a time, at the same speed
    (~30 pairs/s on 2 cores): a training run's validation stays below its training passes."""
    batch_size = batch_size or PAIR_BATCH.get(device.type, PAIR_BATCH["cuda"])
    rows, offsets = candidate_rows(behaviors, impressions)
    owners = np.repeat(impressions, np.diff(offsets))  # (R,) the impression of each pair
    candidates = behaviors.candidates[rows].astype(np.int64)
    model.eval()
    scores = []
    with torch.inference_mode(), autocast(device):
        for start in tracked(range(0, len(owners), batch_size), f"scoring {len(owners):,} (candidate, user) pairs",
                             -(-len(owners) // batch_size), "batch", progress):
            chunk = slice(start, start + batch_size)
            batch = make_batch(features, behaviors, owners[chunk], candidates[chunk, None],
                               user_rows[owners[chunk]], max_history, device)
            scores.append(model(batch).logits[:, 0].float().cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)


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


def retrieved_ranks(queries: torch.Tensor, items: torch.Tensor, k: int, pool: np.ndarray, clicked_offsets: np.ndarray,
                    clicked: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(clicks,) position of each query's clicked items in its exact top-k by inner product over `pool`
    (k when absent; `pipeline.metrics.clicked_ranks`), `chunk` queries at a time: no (Q, k) list is kept."""

    parts = []
    for start in range(0, len(queries), chunk):
        stop = min(start + chunk, len(queries))
        top = top_k_inner_product(queries[start:stop], items, k, pool)
        local = clicked_offsets[start:stop + 1] - clicked_offsets[start]
        parts.append(clicked_ranks(top, local, clicked[clicked_offsets[start]:clicked_offsets[stop]]))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
