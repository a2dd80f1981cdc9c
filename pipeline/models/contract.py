"""The one contract every model follows, so training, embedding and evaluation never branch on a name.

    encode_news(features: NewsFeatures) -> (N, D)
    encode_user(history_vectors (B, H, D), history_mask (B, H), user_index (B,), history_news=None) -> UserVectors
    forward(batch: Batch) -> Output(logits (B, 1 + K), aux_loss=None, loss=None)

Training minimizes softmax cross-entropy over `logits` (column 0 clicked) plus `aux_loss`, unless the
model returns its own `loss` for the stage (Recallnet: its evaluator's binary cross-entropy, then the
actor's negative reward). A click score is the inner product `user.ranking · news`; recall uses `user.recall · news` (the same
vector for models with a single user embedding). Every model subclasses `NewsRecModel`, whose class
attributes say what else it needs; the defaults fit a two-tower model over cached LM vectors:

- `stages` / `stage_trainable`: training stages in order and what trains in each (UniRec: "ranking",
  then "recall" with only its bases trainable).
- `token_level`: the news features carry token ids even with a frozen LM (a word-level model such as FUM).
- `reads_history_news`: encode_user also gets the clicked news' features, (B, H, ...) — their tokens, for
  a model that attends over the words of the history (FUM).
- `user_is_cacheable`: False for a cross-encoder (UNBERT) that scores a candidate together with the
  history's tokens in `forward`: inference then scores (candidate, history) pairs through `forward`, and
  there is no user vector to feed.
- `needs_base`: the model is trained on top of another checkpoint's model, e.g. a recall key trained
  against a ranking model (Recallnet). The base reaches it twice: `ModelSettings.base` when its config is
  made (to record the base's kind and config, so that its checkpoint describes itself) and `load_base`
  once it is built (to take the base's trained weights). Such a model sets `reads_history_news` from its
  base in `__init__` and adds its base's `inputs()`.
- `pairs_per_pass` (a property, 0 = no limit): the most (candidate, user) pairs one training pass may hold,
  for a model whose autograd graph grows with every pair (UNBERT: the LM over each pair's word pieces, ~66 MB
  a pair at the default budgets). Training then runs a larger batch as slices of rows whose gradients add up
  to the batch's (`pipeline.training.train_step`): the model's loss must be a mean over the batch's rows.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from newsrec.pipeline.errors import NewsrecError


class ModelConfigError(NewsrecError):
    """A model asked for something it does not have (a stage, an inference option, a base checkpoint)."""


@dataclass(frozen=True)
class NewsFeatures:
    """Inputs of the news encoder for N news items; a model reads only what it needs."""

    news_index: torch.Tensor  # (N,) int64 row in the news table (ID-based models)
    text: torch.Tensor  # (N, 2, L) float: frozen language-model vectors of title and abstract
    category: torch.Tensor  # (N,) int64, 0 = unknown
    subcategory: torch.Tensor  # (N,) int64, 0 = unknown
    entities: torch.Tensor  # (N, E) int64, 0 = padding / unknown
    tokens: torch.Tensor | None = None  # (N, 2, T) int64 token ids, when the model reads tokens
    token_mask: torch.Tensor | None = None  # (N, 2, T) int64

    def select(self, rows: torch.Tensor) -> "NewsFeatures":
        """The features of `rows` (any shape: (B,) gives (B, ...), (B, H) gives (B, H, ...))."""
        return NewsFeatures(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                               for f in fields(self)})

    def to(self, device: torch.device) -> "NewsFeatures":
        return NewsFeatures(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                               for f in fields(self)})

    def __len__(self) -> int:
        return len(self.news_index)


@dataclass(frozen=True)
class NewsInputs:
    """Which news features a model reads besides ids, categories and entities."""

    text_vectors: bool = True  # cached LM vectors of title and abstract (frozen LM)
    tokens: bool = False  # token ids (fine-tuned LM, or a token-level model)

    def __or__(self, other: "NewsInputs") -> "NewsInputs":
        return NewsInputs(self.text_vectors or other.text_vectors, self.tokens or other.tokens)


@dataclass(frozen=True)
class ModelSettings:
    """What a model config needs besides the vocabulary; `newsrec train` sets them."""

    dim: int = 64  # serving dimension D
    text_dim: int = 384  # width of the LM's vectors
    finetune_layers: int = 0  # top LM layers trained with the model (0 = frozen, vectors cached)
    text_model: str = "default"
    base: NewsRecModel | None = None  # the trained model of the base checkpoint, for models with `needs_base`
    base_kind: str = ""  # its registry name
    options: tuple[tuple[str, str], ...] = ()  # (field, value) overrides of the model's config (`--model-option`)


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

    def rows(self, start: int, stop: int) -> "Batch":
        """Rows start..stop - 1 of the batch (their candidates and histories still index the same `news`)."""
        return Batch(self.news, self.candidates[start:stop], self.history[start:stop],
                     self.history_mask[start:stop], self.user_index[start:stop])


@dataclass(frozen=True)
class Output:
    logits: torch.Tensor  # (B, 1 + K) click scores, column 0 the clicked item
    aux_loss: torch.Tensor | None = None  # added to the softmax cross-entropy over `logits`
    loss: torch.Tensor | None = None  # the whole loss instead, for a stage with its own objective (Recallnet's)


class NewsRecModel(nn.Module):
    """Base class of every model: the contract's methods, and defaults for what most models share.

    A model module defines a frozen config dataclass with `from_vocabulary(vocab, settings)`, then a
    subclass that sets `config_class` and implements `encode_news` and `encode_user`; the registry
    (`pipeline/models/registry.py`) gives it a name. The defaults of `serving_dim` and `finetune_layers`
    read `config.news` (a `NewsEncoderConfig`); a model without a content news encoder overrides them.
    """

    config_class: ClassVar[type]
    stages: ClassVar[tuple[str, ...]] = ("ranking",)
    stage_trainable: ClassVar[dict[str, tuple[str, ...]]] = {}  # stage -> parameter prefixes that train
    token_level: ClassVar[bool] = False
    reads_history_news: ClassVar[bool] = False
    user_is_cacheable: ClassVar[bool] = True
    needs_base: ClassVar[bool] = False

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.stage = self.stages[0]
        self._trainable_at_start: dict[str, bool] | None = None

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        raise NotImplementedError

    def encode_user(self, history_vectors: torch.Tensor, history_mask: torch.Tensor, user_index: torch.Tensor,
                    history_news: NewsFeatures | None = None) -> UserVectors:
        raise NotImplementedError

    def forward(self, batch: Batch) -> Output:
        """Click scores u_ra · r of the batch's candidates (a model with other stages overrides this)."""
        return Output(score_candidates(self, batch)[0])

    @property
    def serving_dim(self) -> int:
        """D, the width of the news and user vectors (the schemas hold D + 1 after the transform)."""
        return self.config.news.dim

    @property
    def finetune_layers(self) -> int:
        """Top LM layers trained with the model; 0 = frozen LM, its vectors computed once and cached."""
        return self.config.news.finetune_layers

    @property
    def pairs_per_pass(self) -> int:
        """(candidate, user) pairs one training pass holds at most; 0 = the whole batch in one pass."""
        return 0

    @classmethod
    def news_inputs(cls, finetune_layers: int) -> NewsInputs:
        """What the class reads, before a model exists: token ids when the LM is fine-tuned or the model is
        token-level; LM vectors when the LM is frozen."""
        return NewsInputs(text_vectors=finetune_layers == 0, tokens=finetune_layers > 0 or cls.token_level)

    def inputs(self) -> NewsInputs:
        """What this model reads; a model built on a base adds what its base reads."""
        return self.news_inputs(self.finetune_layers)

    def set_stage(self, stage: str) -> None:
        """Train `stage` next: only the parameters `stage_trainable` names for it train (every one, when it names
        none), among those trainable at construction (a fine-tuned LM keeps its lower layers frozen)."""
        if stage not in self.stages:
            raise ModelConfigError(f"{type(self).__name__} has no training stage {stage!r} (stages: "
                                   f"{', '.join(self.stages)})")
        self.stage = stage
        if self._trainable_at_start is None:
            self._trainable_at_start = {name: p.requires_grad for name, p in self.named_parameters()}
        prefixes = self.stage_trainable.get(stage)
        for name, parameter in self.named_parameters():
            allowed = prefixes is None or name.startswith(prefixes)
            parameter.requires_grad_(self._trainable_at_start[name] and allowed)

    def train(self, mode: bool = True) -> "NewsRecModel":
        """As nn.Module.train; parts frozen in the current stage stay in eval mode (no dropout)."""
        super().train(mode)
        prefixes = self.stage_trainable.get(self.stage)
        if mode and prefixes is not None:
            for name, child in self.named_children():
                if not any(prefix.startswith(f"{name}.") or f"{name}.".startswith(prefix) for prefix in prefixes):
                    child.eval()
        return self

    def on_new(self) -> None:
        """Called once when the model is built new for training, not when a checkpoint rebuilds it: the place to
        load pre-trained weights (an LM, a word-piece table) that a checkpoint's state dict would overwrite."""

    def set_top_p(self, top_p: int) -> None:
        """Recall bases kept at inference (UniRec's P); a model without bases refuses."""
        raise ModelConfigError(f"{type(self).__name__} has no recall bases: --top-p applies to UniRec")

    def load_base(self, base: NewsRecModel) -> None:
        """Before training, take the trained weights of the base checkpoint's model (models with `needs_base`)."""
        raise ModelConfigError(f"{type(self).__name__} is not trained on top of another checkpoint")


def score_candidates(model: NewsRecModel, batch: Batch) -> tuple[torch.Tensor, UserVectors]:
    """(B, 1 + K) inner products u_ra · r for a batch, through the contract alone."""
    news_vectors = model.encode_news(batch.news)  # (U, D)
    history_news = batch.news.select(batch.history) if model.reads_history_news else None  # (B, H, ...)
    user = model.encode_user(news_vectors[batch.history], batch.history_mask, batch.user_index, history_news)
    candidate_vectors = news_vectors[batch.candidates]  # (B, 1 + K, D)
    return torch.einsum("bd,bkd->bk", user.ranking, candidate_vectors), user
