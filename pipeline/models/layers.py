"""Shared building blocks: additive attention pooling and the content news encoder."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.contract import NewsFeatures


class AdditiveAttention(nn.Module):
    """Attention pooling: weights = softmax(q · tanh(W x)) over the unmasked positions."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.projection = nn.Linear(dim, hidden)
        self.query = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (B, H, D), mask (B, H) bool with at least one True per row -> (B, D)
        scores = self.query(torch.tanh(self.projection(x))).squeeze(-1)  # (B, H)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return torch.einsum("bh,bhd->bd", weights, x)


@dataclass(frozen=True)
class NewsEncoderConfig:
    text_dim: int  # width of the language model's vectors (384 for all-MiniLM-L6-v2)
    num_categories: int  # vocabulary sizes, index 0 = unknown
    num_subcategories: int
    num_entities: int
    dim: int = 64  # the serving dimension D
    category_dim: int = 32
    entity_dim: int = 32
    hidden_dim: int = 256
    dropout: float = 0.1


class ContentNewsEncoder(nn.Module):
    """Title and abstract LM vectors + category, subcategory and entity embeddings -> (N, D).

    No news-id embedding: a news item never seen in training is encoded like any other.
    """

    def __init__(self, config: NewsEncoderConfig):
        super().__init__()
        self.category = nn.Embedding(config.num_categories, config.category_dim)
        self.subcategory = nn.Embedding(config.num_subcategories, config.category_dim)
        self.entity = nn.EmbeddingBag(config.num_entities, config.entity_dim, mode="mean", padding_idx=0)
        width = 2 * config.text_dim + 2 * config.category_dim + config.entity_dim
        self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, config.hidden_dim), nn.GELU(),
                                 nn.Dropout(config.dropout), nn.Linear(config.hidden_dim, config.dim))

    def forward(self, news: NewsFeatures, text: torch.Tensor | None = None) -> torch.Tensor:
        text = news.text if text is None else text  # (N, 2, L)
        parts = [text.flatten(1), self.category(news.category), self.subcategory(news.subcategory),
                 self.entity(news.entities)]
        return self.mlp(torch.cat(parts, dim=-1))  # (N, D)
