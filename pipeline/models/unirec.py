"""UniRec (unified user modeling for ranking and recall), on a pre-trained LM news encoder.

- News encoder: `ContentNewsEncoder` (LM title/abstract vectors + category, subcategory, entities -> D).
- User encoder (§2.1): multi-head self-attention over the clicked-news vectors plus position
  embeddings, then additive attention pooling -> the ranking user embedding u_ra; click score u_ra · r.
  A position counts back from the latest click (0 = the latest), so it means recency for every user: histories
  are oldest first and of any length (checkpoints saved before `recency_positions` counted from the oldest).
  A user with no history gets a learned vector (`empty_user`): defined, and not constant across news.
- Recall (§2.2-2.3): M basis user embeddings with separate keys w_i and values v_i;
  α = softmax(u_ra · w_i), u_re = Σ α_i v_i. At inference only the top P bases, re-normalized (Eq. 4).
- Training: stage 1 "ranking" (click vs K impression negatives, softmax); stage 2 "recall" with the
  news and user encoders frozen, only the bases learn, against T random negatives from all news.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from newsrec.pipeline.models.contract import (Batch, ModelConfigError, ModelSettings, NewsFeatures, NewsRecModel, Output,
                                      UserVectors)
from newsrec.pipeline.models.layers import AdditiveAttention, ContentNewsEncoder, NewsEncoderConfig, RecallBases

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary


@dataclass(frozen=True)
class UniRecConfig:
    news: NewsEncoderConfig
    heads: int = 4
    max_history: int = 50
    num_bases: int = 20  # M
    top_p: int = 5  # P, bases kept at inference (0 = all)
    dropout: float = 0.1
    recency_positions: bool = False  # positions from the latest click; False: from the oldest (older checkpoints)

    def __post_init__(self) -> None:
        if self.news.dim % self.heads:
            raise ModelConfigError(f"UniRec: the serving dimension D = {self.news.dim} must be a multiple of its "
                                   f"{self.heads} attention heads (e.g. --dim {self.heads * 16})")

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "UniRecConfig":
        return cls(news=NewsEncoderConfig.from_vocabulary(vocab, settings), recency_positions=True)


class UserEncoder(nn.Module):
    def __init__(self, config: UniRecConfig):
        super().__init__()
        dim = config.news.dim
        self.position = nn.Embedding(config.max_history, dim)
        self.attention = nn.MultiheadAttention(dim, config.heads, dropout=config.dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.pooling = AdditiveAttention(dim, dim)
        self.empty_user = nn.Parameter(torch.zeros(dim))
        self.recency_positions = config.recency_positions

    def forward(self, history_vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # history_vectors (B, H, D), mask (B, H) -> u_ra (B, D)
        has_history = mask.any(dim=1)  # (B,)
        safe_mask = mask.clone()
        safe_mask[~has_history, 0] = True  # keep softmax defined; replaced by empty_user below
        if self.recency_positions:
            positions = recency(mask)  # (B, H)
        else:
            positions = torch.arange(history_vectors.shape[1], device=history_vectors.device)
        x = history_vectors + self.position(positions)  # (B, H, D)
        attended, _ = self.attention(x, x, x, key_padding_mask=~safe_mask, need_weights=False)
        user = self.pooling(self.norm(x + attended), safe_mask)  # (B, D)
        return torch.where(has_history[:, None], user, self.empty_user.expand_as(user))


def recency(mask: torch.Tensor) -> torch.Tensor:
    """(B, H) position of each click counted back from the user's latest one (0 = latest) in a left-aligned,
    oldest-first history with `mask` (B, H); padding gets 0 (masked out of the attention and the pooling)."""
    lengths = mask.sum(dim=1, keepdim=True)  # (B, 1)
    columns = torch.arange(mask.shape[1], device=mask.device)[None, :]
    return torch.where(mask, lengths - 1 - columns, torch.zeros_like(columns))


class UniRec(NewsRecModel):
    config_class = UniRecConfig
    stages = ("ranking", "recall")
    stage_trainable = {"recall": ("bases.",)}  # stage 2: news and user encoders frozen, only the bases learn

    def __init__(self, config: UniRecConfig):
        super().__init__(config)
        self.news_encoder = ContentNewsEncoder(config.news)
        self.user_encoder = UserEncoder(config)
        self.bases = RecallBases(config.num_bases, config.news.dim)
        self.top_p = config.top_p  # inference-time P; evaluation may set 0 (all bases)

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.news_encoder(news)  # (N, D)

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        ranking = self.user_encoder(history_vectors, history_mask)  # (B, D)
        top_p = 0 if self.training else self.top_p  # train over all bases, serve the top P
        return UserVectors(ranking=ranking, recall=self.bases(ranking, top_p))

    def forward(self, batch: Batch) -> Output:
        if self.stage == "ranking":
            return super().forward(batch)
        news_vectors = self.encode_news(batch.news)  # (U, D)
        user = self.encode_user(news_vectors[batch.history], batch.history_mask, batch.user_index)
        return Output(torch.einsum("bd,bkd->bk", user.recall, news_vectors[batch.candidates]))

    def set_top_p(self, top_p: int) -> None:
        self.top_p = top_p
