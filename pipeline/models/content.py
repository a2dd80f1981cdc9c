"""The Vespa tutorial's content-based model: a user-id embedding times a content news embedding.

News: the same `ContentNewsEncoder` as UniRec (LM vectors + category, subcategory, entities).
User: one learned vector per training user id. Row 0 is the unknown user: training maps a random
`unknown_user_rate` of samples to it, so users never seen in training get a learned average user
rather than noise. No news-id embedding (the tutorial has one): unseen news are encoded from content.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from newsrec.pipeline.models.contract import ModelSettings, NewsFeatures, NewsRecModel, UserVectors
from newsrec.pipeline.models.layers import ContentNewsEncoder, NewsEncoderConfig, UserIdEmbedding

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary


@dataclass(frozen=True)
class ContentConfig:
    news: NewsEncoderConfig
    num_users: int  # including row 0, the unknown user
    unknown_user_rate: float = 0.05

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "ContentConfig":
        return cls(news=NewsEncoderConfig.from_vocabulary(vocab, settings), num_users=vocab.size("users"))


class ContentModel(NewsRecModel):
    config_class = ContentConfig

    def __init__(self, config: ContentConfig):
        super().__init__(config)
        self.news_encoder = ContentNewsEncoder(config.news)
        self.user_embedding = UserIdEmbedding(config.num_users, config.news.dim, config.unknown_user_rate)

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.news_encoder(news)

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        user = self.user_embedding(user_index)  # (B, D)
        return UserVectors(ranking=user, recall=user)
