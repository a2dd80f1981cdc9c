"""The one contract every model follows, so training, embedding and evaluation never branch on a name.

    encode_news(features: NewsFeatures) -> (N, D)
    encode_user(history_vectors (B, H, D), history_mask (B, H), user_index (B,)) -> UserVectors
    forward(batch: Batch) -> Output(logits (B, 1 + K), aux_loss=None)

A click score is the inner product `user.ranking · news`; recall uses `user.recall · news` (the same
vector for models with a single user embedding).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class NewsFeatures:
    """Inputs of the news encoder for N news items; a model reads only what it needs."""

    news_index: torch.Tensor  # (N,) int64 row in the news table (ID-based models)
    text: torch.Tensor  # (N, 2, L) float: frozen language-model vectors of title and abstract
    category: torch.Tensor  # (N,) int64, 0 = unknown
    subcategory: torch.Tensor  # (N,) int64, 0 = unknown
    entities: torch.Tensor  # (N, E) int64, 0 = padding / unknown
    tokens: torch.Tensor | None = None  # (N, 2, T) int64 token ids, only when fine-tuning the LM
    token_mask: torch.Tensor | None = None  # (N, 2, T) int64

    def select(self, rows: torch.Tensor) -> "NewsFeatures":
        return NewsFeatures(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                               for f in fields(self)})

    def to(self, device: torch.device) -> "NewsFeatures":
        return NewsFeatures(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                               for f in fields(self)})

    def __len__(self) -> int:
        return len(self.news_index)


@dataclass(frozen=True)
class UserVectors:
    ranking: torch.Tensor  # (B, D) u_ra: click score = u_ra · r
    recall: torch.Tensor  # (B, D) u_re: nearest-neighbour query for recall


@dataclass(frozen=True)
class Batch:
    """A training batch: each row a clicked news item with K non-clicked ones of the same impression."""

    news: NewsFeatures  # the U distinct news items the batch touches
    candidates: torch.Tensor  # (B, 1 + K) rows into `news`; column 0 is the clicked item
    history: torch.Tensor  # (B, H) rows into `news` (0 where masked)
    history_mask: torch.Tensor  # (B, H) bool, True = a real click
    user_index: torch.Tensor  # (B,) int64 user row (ID-based models), 0 = unknown user


@dataclass(frozen=True)
class Output:
    logits: torch.Tensor  # (B, 1 + K) click scores, column 0 the clicked item
    aux_loss: torch.Tensor | None = None


def score_candidates(model, batch: Batch) -> tuple[torch.Tensor, UserVectors]:
    """(B, 1 + K) inner products u_ra · r for a batch, through the contract alone."""
    news_vectors = model.encode_news(batch.news)  # (U, D)
    history_vectors = news_vectors[batch.history]  # (B, H, D)
    user = model.encode_user(history_vectors, batch.history_mask, batch.user_index)
    candidate_vectors = news_vectors[batch.candidates]  # (B, 1 + K, D)
    return torch.einsum("bd,bkd->bk", user.ranking, candidate_vectors), user
