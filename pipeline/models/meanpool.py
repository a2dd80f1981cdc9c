"""YoutubeNet-style baseline: the user is the mean of the clicked news vectors.

Same news encoder as UniRec, trained with the same ranking loss; no user parameters beyond a
learned vector for users with no history.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.contract import Batch, NewsFeatures, Output, UserVectors, score_candidates
from pipeline.models.layers import ContentNewsEncoder, NewsEncoderConfig


@dataclass(frozen=True)
class MeanPoolConfig:
    news: NewsEncoderConfig


class MeanPoolModel(nn.Module):
    stages = ("ranking",)

    def __init__(self, config: MeanPoolConfig):
        super().__init__()
        self.config = config
        self.news_encoder = ContentNewsEncoder(config.news)
        self.empty_user = nn.Parameter(torch.zeros(config.news.dim))

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.news_encoder(news)

    def encode_user(self, history_vectors, history_mask, user_index) -> UserVectors:
        # history_vectors (B, H, D), history_mask (B, H)
        weights = history_mask.to(history_vectors.dtype).unsqueeze(-1)  # (B, H, 1)
        count = weights.sum(1)  # (B, 1)
        mean = (history_vectors * weights).sum(1) / count.clamp(min=1.0)
        user = torch.where(count > 0, mean, self.empty_user.expand_as(mean))
        return UserVectors(ranking=user, recall=user)

    def forward(self, batch: Batch) -> Output:
        return Output(score_candidates(self, batch)[0])
