"""Shared building blocks: additive attention pooling, recall bases and the content news encoder."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from newsrec.pipeline.models.contract import ModelSettings, NewsFeatures
from newsrec.pipeline.text_encoder import load_language_model, mean_pool

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary


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


class RecallBases(nn.Module):
    """UniRec's recall (§2.2-2.3): M basis user embeddings with keys w_i and values v_i;
    α = softmax(u_ra · w_i), u_re = Σ α_i v_i, with only the top P bases kept (re-normalized) when P > 0."""

    def __init__(self, num_bases: int, dim: int):
        super().__init__()
        self.keys = nn.Parameter(torch.randn(num_bases, dim) * dim ** -0.5)
        self.values = nn.Parameter(torch.randn(num_bases, dim) * dim ** -0.5)

    def weights(self, ranking_user: torch.Tensor, top_p: int) -> torch.Tensor:
        # ranking_user (B, D) -> α (B, M); with top_p > 0 only the top P are kept and re-normalized (Eq. 4)
        logits = ranking_user @ self.keys.T  # (B, M)
        if 0 < top_p < logits.shape[1]:
            kept = torch.topk(logits, top_p, dim=1).indices
            logits = torch.full_like(logits, float("-inf")).scatter(1, kept, logits.gather(1, kept))
        return torch.softmax(logits, dim=1)

    def forward(self, ranking_user: torch.Tensor, top_p: int) -> torch.Tensor:
        return self.weights(ranking_user, top_p) @ self.values  # (B, D)


class UserIdEmbedding(nn.Embedding):
    """One learned vector per training user id; row 0 is the unknown user. In training a random
    `unknown_rate` of the samples use row 0, so users never seen in training get a learned average."""

    def __init__(self, num_users: int, dim: int, unknown_rate: float):
        super().__init__(num_users, dim)
        self.unknown_rate = unknown_rate
        nn.init.normal_(self.weight, std=0.1)

    def forward(self, user_index: torch.Tensor) -> torch.Tensor:
        if self.training:
            forget = torch.rand(user_index.shape, device=user_index.device) < self.unknown_rate
            user_index = user_index.masked_fill(forget, 0)
        return super().forward(user_index)  # (B, D)


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
    finetune_layers: int = 0  # 0: frozen LM, vectors cached once; k > 0: the top k LM layers train
    text_model: str = "default"  # the LM to fine-tune (a path or name; "default" = all-MiniLM-L6-v2)

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "NewsEncoderConfig":
        return cls(text_dim=settings.text_dim, num_categories=vocab.size("categories"),
                   num_subcategories=vocab.size("subcategories"), num_entities=vocab.size("entities"),
                   dim=settings.dim, finetune_layers=settings.finetune_layers, text_model=settings.text_model)


class ContentNewsEncoder(nn.Module):
    """Title and abstract LM vectors + category, subcategory and entity embeddings -> (N, D).

    No news-id embedding: a news item never seen in training is encoded like any other.
    With `finetune_layers > 0` the language model is part of the module: it reads token ids, its
    embeddings and lower layers stay frozen and its top `finetune_layers` layers train.
    """

    def __init__(self, config: NewsEncoderConfig):
        super().__init__()
        self.language_model = _finetuned_language_model(config) if config.finetune_layers else None
        self.category = nn.Embedding(config.num_categories, config.category_dim)
        self.subcategory = nn.Embedding(config.num_subcategories, config.category_dim)
        self.entity = nn.EmbeddingBag(config.num_entities, config.entity_dim, mode="mean", padding_idx=0)
        width = 2 * config.text_dim + 2 * config.category_dim + config.entity_dim
        self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, config.hidden_dim), nn.GELU(),
                                 nn.Dropout(config.dropout), nn.Linear(config.hidden_dim, config.dim))

    def forward(self, news: NewsFeatures) -> torch.Tensor:
        text = news.text if self.language_model is None else self._encode_tokens(news)  # (N, 2, L)
        parts = [text.flatten(1), self.category(news.category), self.subcategory(news.subcategory),
                 self.entity(news.entities)]
        return self.mlp(torch.cat(parts, dim=-1))  # (N, D)

    def _encode_tokens(self, news: NewsFeatures) -> torch.Tensor:

        tokens, mask = news.tokens.flatten(0, 1), news.token_mask.flatten(0, 1)  # (2N, T)
        hidden = self.language_model(input_ids=tokens, attention_mask=mask).last_hidden_state  # (2N, T, L)
        pooled = mean_pool(hidden, mask) * (mask.sum(1, keepdim=True) > 0)  # empty abstract -> zeros
        return pooled.view(len(news), 2, -1)


def _finetuned_language_model(config: NewsEncoderConfig) -> nn.Module:
    """The LM with everything frozen except its top `finetune_layers` transformer layers."""

    model = load_language_model(config.text_model)[1]
    layers = model.encoder.layer  # BERT-family layout (MiniLM, BERT, DistilBERT-like)
    model.requires_grad_(False)
    for layer in layers[len(layers) - config.finetune_layers:]:
        layer.requires_grad_(True)
    return model
