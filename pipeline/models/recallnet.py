"""Recallnet: a retrieval key trained by a critic (Liu, Xing, Lian, Lian, Xie, Li,
"A Novel User Representation Paradigm for Making Personalized Candidate Retrieval", arXiv:1907.06323).

For each user an **actor** synthesizes a retrieval key Ψ_u, a virtual item in the news representation
space, so that nearest-neighbour search around Ψ_u finds what a precise (not dot-product) recommender
would pick. A **critic** rewards the key (§4.2, Eq. 13-15; the compound reward of Algorithm 1, weighted
here so that each one can be removed):

- evaluator φ_u = log σ(D(θ_u, Ψ_u)): a pre-trained bi-channel recommender (Eq. 12, "BI": two FFNs and a
  weighted element-wise product; or "FC": an FFN over [θ_u; θ_v]) scores Ψ_u as an item; frozen while
  the actor trains. Ψ_u goes through the item channel FFN_1 as a real item would (Eq. 13 as printed
  omits FFN_1; the text says the key is scored "as a virtual item's representation").
- validator ω_u = log σ(VAL(Ψ_u)): a discriminator between real news vectors (label 1) and keys (label 0),
  which keeps the key where the evaluator's judgement holds (no adversarial keys).
- referencer γ_u = log(½ (1 + cos(Ψ_u, θ_v'))), v' the news the user clicked next (the key is made from
  the history before it). Cosine is the paper's default; serving retrieves by inner product (Vespa's HNSW
  over the Euclidean-transformed vectors), which cosine ignores the news norms of, so
  `similarity="inner"` trains with log σ(Ψ_u · θ_v'), the similarity served (in place of the paper's
  Euclidean variant; both are measured in docs/models.md, "Recall: Recallnet").

Parts (§4.1): the user encoder is the paper's multi-head attentive pooling over the clicked news
(Eq. 9-10: K heads, concatenated, W_a + ReLU); the synthesizer an M-layer FFN without activation on its
last layer (Eq. 11).

Served with the base checkpoint (`newsrec train --model recallnet --from DIR`, `needs_base`): the news
vectors θ_v and the ranking user vector are the base's, unchanged; the user document's recall
embedding carries Ψ_u. The news representations are **taken from the base, not trained jointly**
(the paper's actor also updates its item encoder): one news vector per document serves both recall
and ranking, in Vespa's HNSW index and the second phase alike, so moving it for recall would change
the base's ranking. For the same reason the evaluator ranks nothing at serving time: it exists to
train the key.

Training (stages): "evaluator" — the user encoder and the evaluator learn from impressions (each click
against K non-clicked news of its impression, binary cross-entropy, Algorithm 1 step 1); "recall" —
the actor (synthesizer) maximizes the compound reward against the frozen evaluator, each click with T
random news of the whole corpus, which are the validator's real items. The user encoder stays frozen
too (the paper's actor updates it): the evaluator was trained on its θ_u, and a θ_u moved by the actor
would be judged where the evaluator never learned. The validator learns in the same step from the keys,
detached (the paper refines it after each round of the actor; updated every step here, as GANs are
usually trained, so it is never a round behind), starting from scratch (the paper initializes it
first); the stage's logged loss is therefore −reward + the validator's loss. The actor's best epoch is
kept by validation Recall@100, the metric it serves.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from newsrec.pipeline.models.contract import (Batch, ModelConfigError, ModelSettings, NewsFeatures, NewsInputs, NewsRecModel,
                                      Output, UserVectors)
from newsrec.pipeline.models.registry import build_model

if TYPE_CHECKING:
    from newsrec.pipeline.vocabulary import Vocabulary

EVALUATORS = ("bi", "fc")
SIMILARITIES = ("cosine", "inner")


@dataclass(frozen=True)
class RecallnetConfig:
    base_kind: str  # the base checkpoint's model: news vectors and ranking user vector
    base_config: dict
    dim: int  # D, the base's serving dimension
    heads: int = 4  # K pooling heads of the user encoder (Eq. 9)
    evaluator: str = "bi"  # "bi" (Eq. 12) or "fc"
    evaluator_hidden: int = 128
    synthesizer_layers: int = 2  # M (Eq. 11)
    synthesizer_hidden: int = 128
    validator_hidden: int = 64
    similarity: str = "cosine"  # the referencer's: "cosine" (Eq. 15) or "inner"
    evaluator_weight: float = 1.0  # 0 removes a reward (the ablations)
    validator_weight: float = 1.0
    referencer_weight: float = 1.0  # λ of Eq. 5

    def __post_init__(self) -> None:
        if self.evaluator not in EVALUATORS:
            raise ModelConfigError(f"Recallnet: evaluator {self.evaluator!r} is not one of {', '.join(EVALUATORS)}")
        if self.similarity not in SIMILARITIES:
            raise ModelConfigError(f"Recallnet: similarity {self.similarity!r} is not one of {', '.join(SIMILARITIES)}")
        if self.synthesizer_layers < 1 or self.heads < 1:
            raise ModelConfigError("Recallnet: synthesizer_layers and heads must be at least 1")
        if min(self.evaluator_weight, self.validator_weight, self.referencer_weight) < 0:
            raise ModelConfigError("Recallnet: reward weights must not be negative")
        if not (self.evaluator_weight or self.referencer_weight):
            raise ModelConfigError("Recallnet: with neither the evaluator nor the referencer nothing ties the key to "
                                   "the user (the validator alone rewards any real-looking key)")

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary, settings: ModelSettings) -> "RecallnetConfig":
        base = settings.base
        if base is None:
            raise ModelConfigError("Recallnet trains on top of a base checkpoint (--from DIR)")
        if not base.user_is_cacheable:
            raise ModelConfigError(f"Recallnet needs a base with news and user vectors; {settings.base_kind} is a "
                                   "cross-encoder")
        return cls(base_kind=settings.base_kind, base_config=asdict(base.config), dim=base.serving_dim)


class UserEncoder(nn.Module):
    """Multi-head attentive pooling (Eq. 9-10): head i pools the clicked news by softmax(θ_v · η_i); the K pooled
    vectors, concatenated, go through W_a and a ReLU. A user with no history gets a learned vector."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = nn.Parameter(torch.randn(heads, dim) * dim ** -0.5)  # η_1..η_K
        self.mapping = nn.Linear(heads * dim, dim)  # W_a, b_a
        self.empty_user = nn.Parameter(torch.zeros(dim))

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # history (B, H, D), mask (B, H) -> θ_u (B, D)
        scores = torch.einsum("bhd,kd->bkh", history, self.heads)
        scores = scores.masked_fill(~mask[:, None, :], torch.finfo(scores.dtype).min)
        pooled = torch.einsum("bkh,bhd->bkd", torch.softmax(scores, -1), history)  # (B, K, D)
        user = torch.relu(self.mapping(pooled.flatten(1)))
        return torch.where(mask.any(1, keepdim=True), user, self.empty_user.expand_as(user))


def ffn(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (width_in, width_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Evaluator(nn.Module):
    """D(θ_u, θ_v), a click logit. "bi" (Eq. 12): W_e (FFN_1(θ_v) ⊙ FFN_2(θ_u)); "fc": FFN([θ_u; θ_v])."""

    def __init__(self, dim: int, hidden: int, form: str):
        super().__init__()
        self.form = form
        if form == "bi":
            self.item = ffn([dim, hidden, hidden], last_activation=True)  # FFN_1
            self.user = ffn([dim, hidden, hidden], last_activation=True)  # FFN_2
            self.weights = nn.Linear(hidden, 1)  # W_e
        else:
            self.joint = ffn([2 * dim, hidden, 1], last_activation=False)

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # user (B, D), items (B, C, D) -> logits (B, C)
        if self.form == "bi":
            return self.weights(self.item(items) * self.user(user)[:, None, :]).squeeze(-1)
        return self.joint(torch.cat([user[:, None, :].expand_as(items), items], -1)).squeeze(-1)


class Rewards(NamedTuple):
    """Per-user rewards of a key (B,) each, all ≤ 0 (log-probabilities), larger = better."""

    evaluation: torch.Tensor  # φ_u
    validation: torch.Tensor  # ω_u
    reference: torch.Tensor  # γ_u


class Recallnet(NewsRecModel):
    config_class = RecallnetConfig
    stages = ("evaluator", "recall")
    stage_trainable = {"evaluator": ("user_encoder.", "evaluator."),  # Algorithm 1 step 1 (news from the base)
                       "recall": ("synthesizer.", "validator.")}  # step 3: the actor, and the validator beside it
    needs_base = True

    def __init__(self, config: RecallnetConfig):
        super().__init__(config)
        self.base = build_model(config.base_kind, config.base_config)
        self.reads_history_news = self.base.reads_history_news  # what the base's user encoder reads
        dim = config.dim
        self.user_encoder = UserEncoder(dim, config.heads)
        self.evaluator = Evaluator(dim, config.evaluator_hidden, config.evaluator)
        self.synthesizer = ffn([dim] + [config.synthesizer_hidden] * config.synthesizer_layers + [dim],
                               last_activation=False)
        self.validator = ffn([dim, config.validator_hidden, 1], last_activation=False)

    def load_base(self, base: NewsRecModel) -> None:
        self.base.load_state_dict(base.state_dict())

    def inputs(self) -> NewsInputs:
        return self.base.inputs()

    @property
    def serving_dim(self) -> int:
        return self.config.dim

    @property
    def finetune_layers(self) -> int:
        return self.base.finetune_layers

    def encode_news(self, news: NewsFeatures) -> torch.Tensor:
        return self.base.encode_news(news)  # θ_v, the base's

    def encode_user(self, history_vectors, history_mask, user_index, history_news=None) -> UserVectors:
        ranking = self.base.encode_user(history_vectors, history_mask, user_index, history_news).ranking
        return UserVectors(ranking=ranking, recall=self.key(history_vectors, history_mask))

    def key(self, history_vectors: torch.Tensor, history_mask: torch.Tensor) -> torch.Tensor:
        """Ψ_u (B, D) from the clicked news vectors (B, H, D)."""
        return self.synthesizer(self.user_encoder(history_vectors, history_mask))

    def forward(self, batch: Batch) -> Output:
        news_vectors = self.encode_news(batch.news)  # (U, D)
        user = self.user_encoder(news_vectors[batch.history], batch.history_mask)  # θ_u (B, D)
        candidates = news_vectors[batch.candidates]  # (B, 1 + K, D), column 0 clicked
        if self.stage == "evaluator":
            logits = self.evaluator(user, candidates)
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            return Output(logits, loss=F.binary_cross_entropy_with_logits(logits.float(), labels.float()))
        key = self.synthesizer(user)  # Ψ_u
        rewards = self.rewards(user, key, candidates[:, 0])
        config = self.config
        reward = (config.evaluator_weight * rewards.evaluation + config.validator_weight * rewards.validation
                  + config.referencer_weight * rewards.reference)
        loss = -reward.mean()
        if config.validator_weight:
            real = batch.candidates[:, 1:] if batch.candidates.shape[1] > 1 else batch.candidates  # T random news
            loss = loss + self.validator_loss(news_vectors[real.unique()], key.detach())
        return Output(torch.einsum("bd,bkd->bk", key, candidates), loss=loss)

    def rewards(self, user: torch.Tensor, key: torch.Tensor, clicked: torch.Tensor) -> Rewards:
        """The critic's three rewards of keys Ψ (B, D) for users θ_u (B, D) who clicked news θ_v' (B, D). Gradients
        reach the key only: the evaluator and the validator are read with their parameters detached."""
        evaluation = F.logsigmoid(torch.func.functional_call(self.evaluator, _detached(self.evaluator),
                                                             (user.detach(), key[:, None, :]))[:, 0].float())
        validation = F.logsigmoid(torch.func.functional_call(self.validator, _detached(self.validator),
                                                             (key,))[:, 0].float())
        if self.config.similarity == "cosine":
            reference = torch.log(0.5 * (1 + F.cosine_similarity(key, clicked, dim=-1)) + 1e-6)
        else:
            reference = F.logsigmoid((key.float() * clicked.float()).sum(-1))
        return Rewards(evaluation, validation, reference)

    def validator_loss(self, real: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The discriminator's binary cross-entropy: real news vectors (N, D) are 1, keys (B, D) are 0."""
        real_logits, key_logits = self.validator(real.detach())[:, 0].float(), self.validator(keys)[:, 0].float()
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(key_logits, torch.zeros_like(key_logits)))


def _detached(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: parameter.detach() for name, parameter in module.named_parameters()}
