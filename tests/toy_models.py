"""Three toy models, each with the shape of a seed model to come, to prove the contract has room for them
(tests/test_contract.py registers them for the duration of a test):

- WordHistoryModel (FUM's shape): news from token ids, the user from the *words* of the clicked titles
  (`token_level`, `reads_history_news`); a cacheable user vector.
- PairScorer (UNBERT's shape): a cross-encoder scoring each candidate with the history's words in
  `forward`; no user vector (`user_is_cacheable = False`).
- RecallKey (Recallnet's shape): a recall key trained on top of another checkpoint (`needs_base`), the
  base frozen; its own checkpoint carries the base's config and weights.
Tiny on purpose: they show that training, evaluation and feeding run them through the contract alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from newsrec.pipeline.models.contract import (Batch, ModelSettings, NewsFeatures, NewsInputs, NewsRecModel, Output,
                                      UserVectors)
from newsrec.pipeline.models.registry import build_model

BUCKETS = 4096  # token ids hashed into this many word embeddings


@dataclass(frozen=True)
class WordConfig:
    dim: int = 64

    @classmethod
    def from_vocabulary(cls, vocab, settings: ModelSettings) -> "WordConfig":
        return cls(dim=settings.dim)


class WordHistoryModel(NewsRecModel):
    config_class = WordConfig
    token_level = True
    reads_history_news = True

    def __init__(self, config: WordConfig):
        super().__init__(config)
        self.words = nn.Embedding(BUCKETS, config.dim)
        self.attention = nn.Linear(config.dim, 1)

    def title_words(self, news: NewsFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        # tokens (..., 2, T) -> title word vectors (..., T, D) and mask (..., T)
        return self.words(news.tokens[..., 0, :] % BUCKETS), news.token_mask[..., 0, :].bool()

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        vectors, mask = self.title_words(news)  # (N, T, D), (N, T)
        return (vectors * mask[..., None]).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1)

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        vectors, mask = self.title_words(history_news)  # (B, H, T, D), (B, H, T)
        mask = mask & history_mask[..., None]
        vectors, mask = vectors.flatten(1, 2), mask.flatten(1, 2)  # every word of the history: (B, H·T, ...)
        scores = self.attention(vectors).squeeze(-1).masked_fill(~mask, -1e9)
        user = torch.einsum("bw,bwd->bd", torch.softmax(scores, -1) * mask, vectors)
        return UserVectors(user, user)

    @property
    def serving_dim(self) -> int:
        return self.config.dim

    @property
    def finetune_layers(self) -> int:
        return 0


class PairScorer(WordHistoryModel):
    """Word-level matching: each candidate title word against its best-matching history word."""

    reads_history_news = False
    user_is_cacheable = False

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        raise AssertionError("a cross-encoder has no user vector: inference must score pairs through forward")

    def forward(self, batch: Batch) -> Output:
        candidates, candidate_mask = self.title_words(batch.news.select(batch.candidates))  # (B, C, T, D)
        history, history_mask = self.title_words(batch.news.select(batch.history))  # (B, H, T, D)
        history_mask = (history_mask & batch.history_mask[..., None]).flatten(1, 2)  # (B, H·T)
        similarity = torch.einsum("bctd,bwd->bctw", candidates, history.flatten(1, 2))
        best = similarity.masked_fill(~history_mask[:, None, None, :], -1e9).max(-1).values  # (B, C, T)
        best = best.masked_fill(~candidate_mask, 0.0).clamp(min=-10.0)
        return Output(self.attention.weight.sum() * best.sum(-1) / candidate_mask.sum(-1).clamp(min=1))


@dataclass(frozen=True)
class RecallKeyConfig:
    base_kind: str
    base_config: dict
    hidden: int = 32

    @classmethod
    def from_vocabulary(cls, vocab, settings: ModelSettings) -> "RecallKeyConfig":
        return cls(base_kind=settings.base_kind, base_config=asdict(settings.base.config))


class RecallKey(NewsRecModel):
    config_class = RecallKeyConfig
    stages = ("recall",)
    stage_trainable = {"recall": ("key.",)}  # the base stays as trained
    needs_base = True

    def __init__(self, config: RecallKeyConfig):
        super().__init__(config)
        self.base = build_model(config.base_kind, config.base_config)
        self.reads_history_news = self.base.reads_history_news  # what the base's user encoder reads
        dim = self.base.serving_dim
        self.key = nn.Sequential(nn.Linear(dim, config.hidden), nn.Tanh(), nn.Linear(config.hidden, dim))

    def load_base(self, base: NewsRecModel) -> None:
        self.base.load_state_dict(base.state_dict())

    def inputs(self) -> NewsInputs:
        return self.base.inputs() | super().inputs()

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.base.encode_news(news)

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        ranking = self.base.encode_user(history_vectors, history_mask, user_index, history_news).ranking  # (B, D)
        return UserVectors(ranking, ranking + self.key(ranking))

    def forward(self, batch: Batch) -> Output:
        news_vectors = self.encode_news(batch.news)  # (U, D)
        history_news = batch.news.select(batch.history) if self.reads_history_news else None
        user = self.encode_user(news_vectors[batch.history], batch.history_mask, batch.user_index, history_news)
        return Output(torch.einsum("bd,bkd->bk", user.recall, news_vectors[batch.candidates]))

    @property
    def serving_dim(self) -> int:
        return self.base.serving_dim

    @property
    def finetune_layers(self) -> int:
        return self.base.finetune_layers
