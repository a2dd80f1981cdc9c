"""UNBERT: a language-model cross-encoder of a candidate and the user's clicked titles (Zhang et al., "UNBERT:
User-News Matching BERT for News Recommendation", IJCAI 2021, doi:10.24963/ijcai.2021/462). The last step of
the funnel: it re-ranks the two-tower model's top N.

One pre-trained LM reads, per (candidate, user) pair,

    [CLS] candidate title [SEP] [NSEP] latest clicked title [NSEP] the one before ... [SEP]

and scores it from two grains (the paper's §3.3):

- word level: the LM's transformer layers over the whole sequence, so every candidate word attends to every
  history word; the [CLS] state is the word-level matching vector e_w;
- news level: each news' word states pooled into a news vector (the attention aggregator, the paper's best:
  a tanh layer scores each word, softmax within the news), then `news_layers` transformer layers over the
  candidate and clicked news; the candidate's output is the news-level matching vector e_n;
- click score: a linear layer over [e_w; e_n] (the paper's softmax over two classes is this logit's
  sigmoid); trained as every model here, each click against K negatives of its impression.

Embeddings (the paper's Eq. 1): token + segment (token type: 0 for [CLS] candidate [SEP], 1 after) +
news segment (0 for the candidate, j for the j-th clicked title: counted inside the model from the [NSEP]
positions, so the serving inputs are the standard input ids, attention mask and token type ids). The
paper drops the position embedding (footnote 4: worse with it); `position_embeddings=False` follows it.

The token sequence is exactly what Vespa's `tokenInputIds(L, attribute(title_tokens), query(history_tokens))`
builds ([CLS] = 101, [SEP] = 102, zero padding; `token_input_ids` below), so the same ONNX model re-ranks in
Vespa's global phase and in the embedded index: news documents carry `title_pieces`, user documents
`history_pieces`. [NSEP] is the vocabulary's `[unused0]` (id 1 in BERT vocabularies); the history keeps
the latest clicks first and is cut at `history_tokens` word pieces (markers included).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from newsrec.pipeline.models.contract import (Batch, ModelConfigError, ModelSettings, NewsFeatures, NewsInputs,
                                              NewsRecModel, Output, UserVectors)
from newsrec.pipeline.models.fum import latest_clicks
from newsrec.pipeline.text_encoder import resolve_model

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary

CLS, SEP = 101, 102  # what Vespa's tokenInputIds inserts (BERT vocabularies)
AGGREGATORS = ("attention", "mean", "nsep")
LEVELS = ("both", "word", "news")


@dataclass(frozen=True)
class UNBERTConfig:
    lm: dict  # the LM's transformers config (to_dict): the checkpoint rebuilds it without the original files
    text_model: str = "default"  # where the pre-trained weights come from when the model is built new
    title_tokens: int = 30  # word pieces of the candidate's title
    history_tokens: int = 128  # word pieces of the clicked titles, [NSEP] markers included
    history_news: int = 50  # clicked titles read at most (news segments 1..history_news)
    nsep_token: int = 1  # [unused0]
    news_layers: int = 1  # transformer layers of the news-level module
    aggregator: str = "attention"  # words -> news vector: "attention" (paper's best), "mean" or "nsep"
    levels: str = "both"  # matching signals the click predictor reads: "both", "word" or "news" (Table 3)
    position_embeddings: bool = False  # the paper leaves them out (footnote 4)
    dropout: float = 0.1
    pieces_per_pass: int = 2560  # word pieces (pairs × L) one training pass holds: memory, not the maths (below)

    def __post_init__(self) -> None:
        if self.aggregator not in AGGREGATORS:
            raise ModelConfigError(f"UNBERT: aggregator must be one of {', '.join(AGGREGATORS)}")
        if self.levels not in LEVELS:
            raise ModelConfigError(f"UNBERT: levels must be one of {', '.join(LEVELS)}")
        if min(self.title_tokens, self.history_tokens, self.history_news, self.pieces_per_pass) < 1:
            raise ModelConfigError("UNBERT: title_tokens, history_tokens, history_news and pieces_per_pass must be "
                                   "positive")

    @property
    def sequence_length(self) -> int:
        """L: [CLS] title [SEP] history [SEP]."""
        return self.title_tokens + self.history_tokens + 3

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "UNBERTConfig":
        from transformers import AutoConfig

        lm = AutoConfig.from_pretrained(resolve_model(settings.text_model)).to_dict()
        return cls(lm=_plain(lm), text_model=settings.text_model)


def _plain(values: dict) -> dict:
    """The LM config without entries a checkpoint cannot store (weights_only loading) or does not need."""
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool, type(None), list))}


# ------------------------------------------------------------------------------ token sequences


def compact(ids: torch.Tensor, keep: torch.Tensor, length: int) -> torch.Tensor:
    """(R, length): each row's kept ids moved to the front in order, zero-padded or cut to `length`."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    moved = (ids * keep).gather(1, order)
    if moved.shape[1] < length:
        moved = nn.functional.pad(moved, (0, length - moved.shape[1]))
    return moved[:, :length]


def title_pieces(tokens: torch.Tensor, width: int) -> torch.Tensor:
    """(N, width) the title's word pieces without [CLS]/[SEP], zero-padded: what a news document carries.
    tokens: (N, 2, T) the features' token ids (title, abstract; [CLS] ... [SEP] then 0)."""
    pieces = tokens[:, 0, 1:]
    pieces = pieces.masked_fill(pieces == SEP, 0)
    return compact(pieces, pieces > 0, width)


def history_pieces(history_tokens: torch.Tensor, history_token_mask: torch.Tensor, history_mask: torch.Tensor,
                   config: UNBERTConfig) -> torch.Tensor:
    """(B, history_tokens): [NSEP] latest title [NSEP] the one before ..., cut at the budget; zero-padded.
    history_*: (B, H, 2, T) features of the clicked news (oldest first) and (B, H) the click mask."""
    width = history_tokens.shape[-1]
    clicks = min(config.history_news, history_mask.shape[1])
    tokens, _ = latest_clicks(history_tokens, history_token_mask, history_mask, clicks, width)  # (B, C, T)
    pieces = tokens[:, :, 1:].masked_fill(tokens[:, :, 1:] == SEP, 0)
    present = history_mask.sum(1)[:, None] > torch.arange(clicks, device=tokens.device)[None, :]  # (B, C)
    marker = torch.where(present, config.nsep_token, 0)[:, :, None]
    segments = torch.cat([marker, pieces], dim=2).flatten(1)  # (B, C·T)
    return compact(segments, segments > 0, config.history_tokens)


def token_input_ids(length: int, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, token type ids), each (R, length) int64: Vespa's tokenInputIds,
    tokenAttentionMask and tokenTypeIds of zero-padded inputs (R, ·): [CLS] a [SEP] b [SEP] ... then 0, cut at
    `length`; type 0 up to the first [SEP], 1 after, 0 on padding; an input's length = its count of ids > 0
    (config-model's TokenTransformer)."""
    rows = inputs[0].shape[0]
    one = torch.ones(rows, 1, dtype=torch.int64, device=inputs[0].device)
    parts, keep = [CLS * one], [one.bool()]
    for part in inputs:
        lengths = (part > 0).sum(1, keepdim=True)
        parts += [part.long(), SEP * one]
        keep += [torch.arange(part.shape[1], device=part.device)[None, :] < lengths, one.bool()]
    ids = compact(torch.cat(parts, 1), torch.cat(keep, 1), length)
    first = 2 + (inputs[0] > 0).sum(1, keepdim=True)
    total = len(inputs) + 1 + sum((part > 0).sum(1, keepdim=True) for part in inputs)
    position = torch.arange(length, device=ids.device)[None, :]
    attention = (position < total).long()
    types = ((position >= first) & (position < total)).long()
    return ids, attention, types


# ------------------------------------------------------------------------------ the model


class UNBERTScorer(nn.Module):
    """(input ids, attention mask, token type ids) (R, L) -> (R,) click logits: the module exported to ONNX."""

    def __init__(self, config: UNBERTConfig):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        self.config = config
        lm_config = AutoConfig.for_model(**config.lm)
        self.lm = AutoModel.from_config(lm_config, add_pooling_layer=False) \
            if lm_config.model_type == "bert" else AutoModel.from_config(lm_config)
        hidden = lm_config.hidden_size
        if not config.position_embeddings and getattr(self.lm.embeddings, "position_embeddings", None) is None:
            # a third-party LM's layout (BERT-family ones have the table), not a newsrec capability
            raise ModelConfigError(f"UNBERT: {lm_config.model_type} has no position-embedding table to leave out")
        self.news_segment = nn.Embedding(config.history_news + 1, hidden)
        nn.init.normal_(self.news_segment.weight, std=0.02)
        self.word_score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        layer = nn.TransformerEncoderLayer(hidden, lm_config.num_attention_heads, 4 * hidden, config.dropout,
                                           activation="gelu", batch_first=True)
        self.news_level = nn.TransformerEncoder(layer, config.news_layers, enable_nested_tensor=False)
        width = hidden * (2 if config.levels == "both" else 1)
        self.click = nn.Linear(width, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        segment = self.news_segments(input_ids)  # (R, L)
        embedded = self.lm.embeddings.word_embeddings(input_ids) + self.news_segment(segment)
        if not self.config.position_embeddings:  # the LM adds its position table: take it out again
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            embedded = embedded - self.lm.embeddings.position_embeddings(positions)[None]
        words = self.lm(inputs_embeds=embedded, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state  # (R, L, hidden)
        parts = []
        if self.config.levels in ("both", "word"):
            parts.append(words[:, 0])  # e_w: the [CLS] state
        if self.config.levels in ("both", "news"):
            parts.append(self.news_vector(words, input_ids, attention_mask, segment))  # e_n
        return self.click(torch.cat(parts, dim=1)).squeeze(1)

    def news_segments(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(R, L): 0 for [CLS] candidate [SEP], j from the j-th [NSEP] on (capped at history_news)."""
        return torch.cumsum((input_ids == self.config.nsep_token).long(), dim=1).clamp(max=self.config.history_news)

    def news_vector(self, words: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    segment: torch.Tensor) -> torch.Tensor:
        """The candidate's news-level output: words pooled per news, then transformer layers across news."""
        news = self.config.history_news + 1
        member = nn.functional.one_hot(segment, news).to(words.dtype) * attention_mask[:, :, None].to(words.dtype)
        if self.config.aggregator == "attention":
            score = self.word_score(words).squeeze(-1)  # (R, L)
            score = score - score.max(dim=1, keepdim=True).values.detach()
            weight = torch.exp(score)[:, :, None] * member  # softmax within each news
        elif self.config.aggregator == "mean":
            weight = member
        else:  # "nsep": the marker's state ([CLS] for the candidate)
            first = (input_ids == self.config.nsep_token) | (torch.arange(input_ids.shape[1],
                                                                          device=input_ids.device) == 0)[None]
            weight = member * first[:, :, None].to(words.dtype)
        total = weight.sum(dim=1)  # (R, news)
        vectors = torch.einsum("rln,rlh->rnh", weight, words) / total.clamp(min=1e-9)[:, :, None]
        absent = total <= 0
        return self.news_level(vectors, src_key_padding_mask=absent)[:, 0]


class UNBERT(NewsRecModel):
    """The cross-encoder behind the contract: no user vector; `forward` scores (candidate, history) pairs."""

    config_class = UNBERTConfig
    token_level = True
    user_is_cacheable = False

    def __init__(self, config: UNBERTConfig):
        super().__init__(config)
        self.scorer = UNBERTScorer(config)

    def on_new(self) -> None:
        """Built new: start from the pre-trained LM's weights (a checkpoint brings its own)."""
        from transformers import AutoModel

        pretrained = AutoModel.from_pretrained(resolve_model(self.config.text_model))
        missing = self.scorer.lm.load_state_dict(pretrained.state_dict(), strict=False).missing_keys
        if any(not key.startswith("pooler.") for key in missing):
            raise ModelConfigError(f"UNBERT: the pre-trained LM lacks {missing[:3]}")

    @classmethod
    def news_inputs(cls, finetune_layers: int) -> NewsInputs:
        return NewsInputs(text_vectors=False, tokens=True)

    def inputs(self) -> NewsInputs:
        return self.news_inputs(0)

    @property
    def serving_dim(self) -> int:
        return 0  # no vector to serve: it re-ranks

    @property
    def finetune_layers(self) -> int:
        return int(self.config.lm.get("num_hidden_layers", 0))  # the whole LM trains

    @property
    def pairs_per_pass(self) -> int:
        """Pairs of one training pass: the LM's autograd graph holds ~0.4 MB a word piece on CPU (all-MiniLM-L6-v2,
        float32; 66 MB a pair of L = 161), so a batch of 128 clicks × 5 candidates in one pass would need ~42 GB.
        Training runs it as slices of `pieces_per_pass` pieces whose gradients add up (`train_step`)."""
        return max(1, self.config.pieces_per_pass // self.config.sequence_length)

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        raise ModelConfigError("UNBERT is a cross-encoder: it has no news vector (score pairs with `forward`)")

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        raise ModelConfigError("UNBERT is a cross-encoder: it has no user vector (score pairs with `forward`)")

    def forward(self, batch: Batch) -> Output:
        """(B, 1 + K) logits: every candidate of a row against that row's history."""
        news = batch.news
        titles = title_pieces(news.tokens, self.config.title_tokens)[batch.candidates]  # (B, C, Tc)
        history = news.select(batch.history)
        clicked = history_pieces(history.tokens, history.token_mask, batch.history_mask, self.config)  # (B, Th)
        rows, columns = batch.candidates.shape
        clicked = clicked[:, None, :].expand(rows, columns, -1)
        inputs = token_input_ids(self.config.sequence_length, titles.reshape(rows * columns, -1),
                                 clicked.reshape(rows * columns, -1))
        return Output(self.scorer(*inputs).view(rows, columns))
