"""FUM: fine-grained and fast user modeling (Qi, Wu, Wu, Huang, "FUM: Fine-grained and
Fast User Modeling for News Recommendation", SIGIR 2022, arXiv:2204.04727).

User modeling becomes document modeling: the titles of the user's latest clicks are concatenated into
one document, and the user is read from it at two grains, combined into one cacheable user vector
(click score u · r, as every two-tower model here):

- Fine-grained: the word pieces of the latest `word_history` clicked titles (`words_per_news` each,
  the title's [CLS] and [SEP] marking its borders), each embedded (the LM's word-piece table, projected
  to D) plus its position in the title and its click's recency (segment embedding), run through
  `layers` Fastformer layers (Wu et al. 2021: additive attention, linear in the document length), so
  words of different clicked news interact, then pooled by additive attention.
- Coarse-grained: hierarchical pooling of the news-level vectors of the latest clicks (the training history):
  additive attention within windows of `pool_window` consecutive clicks, then across the windows.
- The two are concatenated and projected to D. A user with no history gets a learned vector.

News encoder: `ContentNewsEncoder` (cached LM vectors of title and abstract + categories + entities),
as UniRec and mean-pool, so the rows of the model table differ only in the user model.
Recall (issue 15, item 3): the user vector itself is the recall query (`recall="user"`), chosen by
measured Recall@K on world v2 small (docs/models.md, "Results on world v2": R@100 over the dev-day pool 0.0837
for the user vector against 0.0722 for UniRec's basis embeddings over it, top 5 of 20). The bases are
still trained in a second stage with everything else frozen (`RecallBases`), so that the comparison can
be rerun: `--top-p P` at evaluation serves them instead (P = 0: all bases).

Word features: the LM's (non-contextual) word-piece embedding table, frozen unless `tune_words`;
only the rows a batch touches are projected. Chosen over caching the LM's last hidden states, whose
size and cost are measured in BENCHMARKS ("FUM").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from newsrec.pipeline.models.contract import (Batch, ModelConfigError, ModelSettings, NewsFeatures, NewsRecModel,
                                              Output, UserVectors)
from newsrec.pipeline.models.layers import AdditiveAttention, ContentNewsEncoder, NewsEncoderConfig, RecallBases
from newsrec.pipeline.text_encoder import load_language_model, resolve_model

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary


@dataclass(frozen=True)
class FUMConfig:
    news: NewsEncoderConfig
    word_vocab: int  # word pieces of the LM's tokenizer (the token ids the features carry)
    word_dim: int  # width of the LM's word-piece embeddings
    words_per_news: int = 32  # word pieces read per clicked title, [CLS] and [SEP] included (the news encoder's
    # title budget: every generated title whole; 16 before issue #34 cut 80% of titles, and their ends with them)
    abstract_words: int = 0  # word pieces of each clicked abstract read after its title (0 = titles only)
    word_history: int = 20  # latest clicks read word by word (the coarse model reads the whole history)
    layers: int = 1  # Fastformer layers
    heads: int = 4
    pool_window: int = 5  # clicks per window of the coarse model's hierarchical pooling
    num_bases: int = 20  # recall bases M (UniRec's)
    top_p: int = 5  # bases kept at inference when the bases serve recall
    recall: str = "user"  # the recall query: "user" (the user vector, measured better) or "bases"
    dropout: float = 0.1
    tune_words: bool = False  # train the word-piece table too (else only its projection)
    word_init: str = "lm"  # "lm": the LM's word-piece table; "random": a seeded normal table (tests)

    def __post_init__(self) -> None:
        if self.news.dim % self.heads:
            raise ModelConfigError(f"FUM: the serving dimension D = {self.news.dim} must be a multiple of its "
                                   f"{self.heads} attention heads")
        if self.recall not in ("user", "bases"):
            raise ModelConfigError(f"FUM: recall must be 'user' or 'bases', not {self.recall!r}")
        if self.word_init not in ("lm", "random"):
            raise ModelConfigError(f"FUM: unknown word_init {self.word_init!r} (lm or random)")

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "FUMConfig":
        from transformers import AutoConfig

        lm = AutoConfig.from_pretrained(resolve_model(settings.text_model))
        return cls(news=NewsEncoderConfig.from_vocabulary(vocab, settings), word_vocab=lm.vocab_size,
                   word_dim=lm.hidden_size)


class FastformerLayer(nn.Module):
    """One Fastformer layer (Wu et al. 2021): a global query (additive attention over q_i), p_i = q * k_i, a
    global key (additive attention over p_i), u_i = k * v_i, output W_o u_i + q_i; then a feed-forward block.
    Every step is linear in the sequence length N. LayerNorm comes before each block (pre-norm): with the
    paper's post-norm the word-interest test (tests/test_fum.py) stalled at AUC 0.75, pre-norm reached 0.9+."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.query_score = nn.Parameter(torch.randn(heads, self.head_dim) * self.head_dim ** -0.5)
        self.key_score = nn.Parameter(torch.randn(heads, self.head_dim) * self.head_dim ** -0.5)
        self.output = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (B, N, D), mask (B, N) bool with at least one True per row -> (B, N, D)
        batch, length, dim = x.shape
        h = self.norm1(x)
        q, k, v = (part.view(batch, length, self.heads, self.head_dim) for part in self.qkv(h).chunk(3, dim=-1))
        global_query = self._pool(q, self.query_score, mask)  # (B, h, d)
        p = k * global_query[:, None]  # (B, N, h, d)
        global_key = self._pool(p, self.key_score, mask)
        mixed = self.output((v * global_key[:, None]).reshape(batch, length, dim)) + q.reshape(batch, length, dim)
        x = x + self.dropout(mixed)
        return x + self.dropout(self.feed_forward(self.norm2(x)))

    def _pool(self, values: torch.Tensor, score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # values (B, N, h, d) -> Σ_i softmax_i(w · values_i / √d) values_i per head: (B, h, d)
        logits = torch.einsum("bnhd,hd->bnh", values, score) / math.sqrt(self.head_dim)
        logits = logits.masked_fill(~mask[:, :, None], torch.finfo(logits.dtype).min)
        return torch.einsum("bnh,bnhd->bhd", torch.softmax(logits, dim=1), values)


class FineGrainedUser(nn.Module):
    """Word pieces of the latest clicked titles, as one document -> (B, D)."""

    def __init__(self, config: FUMConfig):
        super().__init__()
        dim = config.news.dim
        self.config = config
        self.words = nn.Embedding(config.word_vocab, config.word_dim, padding_idx=0)
        self.words.weight.requires_grad_(config.tune_words)
        self.projection = nn.Linear(config.word_dim, dim)
        self.word_position = nn.Embedding(config.words_per_news + config.abstract_words, dim)
        self.click_position = nn.Embedding(config.word_history, dim)  # 0 = the latest click
        self.layers = nn.ModuleList(FastformerLayer(dim, config.heads, config.dropout) for _ in range(config.layers))
        self.pooling = AdditiveAttention(dim, dim)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        # tokens, token_mask (B, C, W): the latest C clicks, latest first; -> (B, D)
        batch, clicks, width = tokens.shape
        distinct, inverse = torch.unique(tokens, return_inverse=True)  # project only the pieces in the batch
        x = self.projection(self.words(distinct))[inverse]  # (B, C, W, D)
        x = x + self.word_position.weight[:width] + self.click_position.weight[:clicks, None]
        mask = token_mask.reshape(batch, clicks * width)
        safe = mask.clone()
        safe[:, 0] = True  # rows without any word keep softmax defined; FUM replaces those users
        x = x.reshape(batch, clicks * width, -1)
        for layer in self.layers:
            x = layer(x, safe)
        return self.pooling(x, safe)


class CoarseGrainedUser(nn.Module):
    """Hierarchical pooling of news vectors: within windows of consecutive clicks, then across windows."""

    def __init__(self, config: FUMConfig):
        super().__init__()
        dim = config.news.dim
        self.window = config.pool_window
        self.within, self.across = AdditiveAttention(dim, dim), AdditiveAttention(dim, dim)

    def forward(self, history_vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # history_vectors (B, H, D), mask (B, H) -> (B, D); H padded up to a multiple of the window
        short = -history_vectors.shape[1] % self.window
        history_vectors = nn.functional.pad(history_vectors, (0, 0, 0, short))
        mask = nn.functional.pad(mask, (0, short))
        batch, length, dim = history_vectors.shape
        windows = length // self.window
        window_mask = mask.reshape(batch * windows, self.window)
        safe = window_mask.clone()
        safe[:, 0] = True
        pooled = self.within(history_vectors.reshape(batch * windows, self.window, dim), safe)
        present = window_mask.any(dim=1).reshape(batch, windows)
        safe_present = present.clone()
        safe_present[:, 0] = True
        return self.across(pooled.reshape(batch, windows, dim), safe_present)


def latest_clicks(history_tokens: torch.Tensor, history_token_mask: torch.Tensor, history_mask: torch.Tensor,
                  clicks: int, width: int, text: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The word pieces of text `text` (0 title, 1 abstract) of each row's latest `clicks` clicks, latest
    first: (B, clicks, width) ids and mask. history_* are (B, H, 2, T) with the real clicks left-aligned,
    oldest first (`history_matrix`)."""
    lengths = history_mask.sum(dim=1)  # (B,)
    steps = torch.arange(clicks, device=lengths.device)
    column = (lengths[:, None] - 1 - steps).clamp(min=0)  # (B, clicks): latest first
    present = steps[None, :] < lengths[:, None]
    index = column[:, :, None].expand(-1, -1, width)
    tokens = history_tokens[:, :, text, :width].gather(1, index)
    mask = history_token_mask[:, :, text, :width].gather(1, index).bool() & present[:, :, None]
    return tokens.masked_fill(~mask, 0), mask


class FUM(NewsRecModel):
    config_class = FUMConfig
    stages = ("ranking", "recall")
    stage_trainable = {"recall": ("bases.",)}  # stage 2: only the recall bases learn
    token_level = True
    reads_history_news = True

    def __init__(self, config: FUMConfig):
        super().__init__(config)
        dim = config.news.dim
        self.news_encoder = ContentNewsEncoder(config.news)
        self.fine = FineGrainedUser(config)
        self.coarse = CoarseGrainedUser(config)
        self.combine = nn.Linear(2 * dim, dim)
        self.empty_user = nn.Parameter(torch.zeros(dim))
        self.bases = RecallBases(config.num_bases, dim)
        self.top_p = config.top_p
        self.recall_from_bases = config.recall == "bases"

    def on_new(self) -> None:
        """Built new: the word-piece table starts as the LM's (a checkpoint brings its own)."""
        _initialize_words(self.fine.words, self.config)

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.news_encoder(news)  # (N, D)

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        if history_news is None or history_news.tokens is None:
            raise ModelConfigError("FUM reads the word pieces of the clicked news: pass history_news with tokens")
        tokens, mask = self._document(history_news, history_mask)
        user = self.combine(torch.cat([self.fine(tokens, mask), self.coarse(history_vectors, history_mask)], -1))
        user = torch.where(history_mask.any(dim=1)[:, None], user, self.empty_user.expand_as(user))
        if not (self.recall_from_bases or self.stage == "recall"):
            return UserVectors(ranking=user, recall=user)
        top_p = 0 if self.training else self.top_p
        return UserVectors(ranking=user, recall=self.bases(user, top_p))

    def _document(self, history_news: NewsFeatures, history_mask: torch.Tensor):
        """(B, C, W) word pieces and mask of the latest C clicks: each title, then its abstract's start."""
        config = self.config
        parts = [latest_clicks(history_news.tokens, history_news.token_mask, history_mask, config.word_history,
                               width, text) for text, width in ((0, config.words_per_news), (1, config.abstract_words))
                 if width]
        return torch.cat([p[0] for p in parts], dim=-1), torch.cat([p[1] for p in parts], dim=-1)

    def forward(self, batch: Batch) -> Output:
        if self.stage == "ranking":
            return super().forward(batch)
        news_vectors = self.encode_news(batch.news)  # (U, D)
        user = self.encode_user(news_vectors[batch.history], batch.history_mask, batch.user_index,
                                batch.news.select(batch.history))
        return Output(torch.einsum("bd,bkd->bk", user.recall, news_vectors[batch.candidates]))

    def set_top_p(self, top_p: int) -> None:
        """Serve the trained recall bases (the top P; 0 = all) instead of the user vector."""
        self.top_p, self.recall_from_bases = top_p, True


def _initialize_words(words: nn.Embedding, config: FUMConfig) -> None:
    """The LM's word-piece table (its ids are the features' token ids), or a seeded normal one (tests)."""
    if config.word_init == "random":
        return

    table = load_language_model(config.news.text_model)[1].get_input_embeddings().weight
    if tuple(table.shape) != (config.word_vocab, config.word_dim):
        raise ModelConfigError(f"FUM: the LM's word-piece table is {tuple(table.shape)}, the config says "
                               f"({config.word_vocab}, {config.word_dim})")
    with torch.no_grad():
        words.weight.copy_(table)
