"""YoutubeNet-style baseline: the user is the mean of the clicked news vectors.

Same news encoder as UniRec, trained with the same ranking loss; no user parameters beyond a
learned vector for users with no history.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from newsrec.pipeline.models.contract import ModelSettings, NewsFeatures, NewsRecModel, UserVectors
from newsrec.pipeline.models.layers import ContentNewsEncoder, NewsEncoderConfig

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary


@dataclass(frozen=True)
class MeanPoolConfig:
    news: NewsEncoderConfig

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "MeanPoolConfig":
        return cls(news=NewsEncoderConfig.from_vocabulary(vocab, settings))


class MeanPoolModel(NewsRecModel):
    config_class = MeanPoolConfig

    def __init__(self, config: MeanPoolConfig):
        super().__init__(config)
        self.news_encoder = ContentNewsEncoder(config.news)
        self.empty_user = nn.Parameter(torch.zeros(config.news.dim))

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.news_encoder(news)

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        # history_vectors (B, H, D), history_mask (B, H)
        weights = history_mask.to(history_vectors.dtype).unsqueeze(-1)  # (B, H, 1)
        count = weights.sum(1)  # (B, 1)
        mean = (history_vectors * weights).sum(1) / count.clamp(min=1.0)
        user = torch.where(count > 0, mean, self.empty_user.expand_as(mean))
        return UserVectors(ranking=user, recall=user)
