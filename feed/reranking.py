"""The re-ranker's side of a feed and of the embedded index's global phase (rank profile `unbert`,
schemas/news/unbert.profile).

Feeding with a re-ranker (`newsrec-feed --reranker DIR`, an UNBERT checkpoint): every news document carries its
title's word pieces (`title_tokens`) and every user document the pieces of its history (`history_tokens`),
tokenized with the re-ranker's own tokenizer — the one it was trained with — and cut at its budgets exactly
as in training (pipeline/models/unbert.py); the model is exported to ONNX (parity with torch checked) and
installed with the embedded index's generation, or built into the Vespa package (`newsrec app build
--reranker DIR`). Serving: the funnel's best N (`rerank_budget`, default the profile's rerank-count) are
re-scored: the model's score fused with the two-tower's (`fuse`, FUSION: each normalized over the N as Vespa's
global-phase normalizers do, then added), the others keep their order below them (`global_phase`, Vespa's rule).
Replacing the two-tower's score by the cross-encoder's (the profile's global phase until issue #32) lowered the
funnel with the CPU-trained model (BENCHMARKS.md "UNBERT"); `fuse` keeps it measurable beside the fusions.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from newsrec.feed.profiles import RERANKER, profile
from newsrec.feed.schema import SCHEMA_DIR, SchemaMismatchError, load_schemas, tensor_size
from newsrec.pipeline.errors import NewsrecError

if TYPE_CHECKING:
    import torch

PROFILE_FILE = SCHEMA_DIR / profile(RERANKER).schema_file  # the rank profile whose global phase runs the re-ranker
MAX_RERANK_BUDGET = 1000
RECIPROCAL_RANK_K = 60.0  # Vespa's default k of reciprocal_rank(x)
FUSION = "normalize_linear"  # the unbert profile's global phase: normalize_linear(two-tower) + normalize_linear(UNBERT)
FUSIONS = ("replace", "normalize_linear", "reciprocal_rank")


class RerankError(NewsrecError):
    """Re-ranking was asked for but cannot run (no re-ranker installed, no history tokens, bad budget)."""


@dataclass(frozen=True)
class ProfileSettings:
    length: int  # L of tokenInputIds
    rerank_count: int  # the global phase's default N


def profile_settings(path: Path = PROFILE_FILE) -> ProfileSettings:
    """L and the default N, read from the rank profile (the one place they are written)."""
    text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))
    lengths = {int(n) for n in re.findall(r"token(?:InputIds|AttentionMask|TypeIds)\((\d+)", text)}
    count = re.search(r"global-phase\s*\{[^}]*rerank-count:\s*(\d+)", text)
    if len(lengths) != 1 or count is None:
        raise SchemaMismatchError(f"{path}: expected one token sequence length and a global-phase rerank-count")
    return ProfileSettings(lengths.pop(), int(count.group(1)))


def field_widths() -> tuple[int, int]:
    """(title_tokens, history_tokens) widths of the document fields in schemas/."""
    schemas = load_schemas()
    return (tensor_size(schemas["news"].fields["title_tokens"]),
            tensor_size(schemas["user"].fields["history_tokens"]))


@dataclass(frozen=True, eq=False)
class RerankerInputs:
    title_tokens: np.ndarray  # (N, title width) int32 per news row, zero-padded
    history_tokens: np.ndarray  # (U, history width) int32 per dataset user, zero-padded
    onnx: bytes  # the exported model
    parity: float  # max |onnxruntime - torch| over the export's samples


class WordPieces:
    """A re-ranker checkpoint with the word pieces of a news table, at the schemas' field widths: what the
    documents carry (titles) and what a history becomes (`histories`). Its budgets must fit the fields."""

    def __init__(self, reranker_dir: str | Path, news, device_name: str = "cpu"):
        import torch

        from newsrec.pipeline.checkpoint import load_checkpoint
        from newsrec.pipeline.features import model_news_features
        from newsrec.pipeline.models.unbert import title_pieces
        from newsrec.pipeline.reranker import reranker_of

        self.checkpoint = load_checkpoint(reranker_dir)
        self.scorer = reranker_of(self.checkpoint.model)  # a clear error for a two-tower checkpoint
        self.config = config = self.checkpoint.model.config
        self.title_width, self.history_width = field_widths()
        if config.title_tokens > self.title_width or config.history_tokens > self.history_width:
            raise SchemaMismatchError(f"{reranker_dir}: the re-ranker reads {config.title_tokens} title and "
                                      f"{config.history_tokens} history pieces; schemas/ hold {self.title_width} and "
                                      f"{self.history_width} (retrain with smaller budgets or widen the fields)")
        require_vespa_special_ids(self.checkpoint.text.model, reranker_dir)
        self.features = model_news_features(news, self.checkpoint.vocab, self.checkpoint.text,
                                            self.checkpoint.model.inputs(), torch.device(device_name))
        self.titles = _pad(title_pieces(self.features.tokens, config.title_tokens), self.title_width)  # (N, width)

    def histories(self, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, history width) int32: the history pieces of (B, H) clicked news rows (oldest first) and their mask."""
        import torch

        from newsrec.pipeline.models.unbert import history_pieces

        clicked = self.features.select(torch.from_numpy(rows))
        return _pad(history_pieces(clicked.tokens, clicked.token_mask, torch.from_numpy(mask), self.config),
                    self.history_width)


def require_vespa_special_ids(text_model: str, reranker_dir) -> None:
    """Vespa's tokenInputIds puts 101 before the title and 102 after each segment (BERT's [CLS] and [SEP]): a
    re-ranker whose tokenizer gives them other ids would read other words in Vespa than in training."""
    from newsrec.pipeline.models.unbert import CLS, SEP
    from newsrec.pipeline.text_encoder import load_tokenizer

    tokenizer = load_tokenizer(text_model)
    if (tokenizer.cls_token_id, tokenizer.sep_token_id) != (CLS, SEP):
        raise SchemaMismatchError(f"{reranker_dir}: its tokenizer's [CLS] and [SEP] are {tokenizer.cls_token_id} and "
                                  f"{tokenizer.sep_token_id}; Vespa's tokenInputIds inserts {CLS} and {SEP} (a BERT "
                                  "vocabulary), so this re-ranker cannot be served")


def reranker_inputs(dataset, reranker_dir: str | Path, user_history: list[np.ndarray], device_name: str = "cpu",
                    chunk: int = 4096) -> RerankerInputs:
    """Title and history pieces of every news item and user, and the exported model, for the re-ranker in
    `reranker_dir`; its budgets must fit the schemas' fields."""
    from newsrec.pipeline.reranker import export_onnx

    pieces = WordPieces(reranker_dir, dataset.news, device_name)
    histories = np.zeros((len(user_history), pieces.history_width), dtype=np.int32)
    for start in range(0, len(user_history), chunk):
        rows, mask = _history_matrix(user_history[start:start + chunk], pieces.checkpoint.max_history)
        histories[start:start + len(rows)] = pieces.histories(rows, mask)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "unbert.onnx"
        parity = export_onnx(pieces.checkpoint.model, path)
        onnx = path.read_bytes()
    return RerankerInputs(pieces.titles, histories, onnx, parity.max_difference)


def _pad(pieces: torch.Tensor, width: int) -> np.ndarray:
    out = np.zeros((len(pieces), width), dtype=np.int32)
    out[:, :pieces.shape[1]] = pieces.numpy()
    return out


def _history_matrix(histories: list[np.ndarray], max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, H) news rows (the latest max_history clicks, oldest first, left-aligned) and the mask."""
    width = max(1, min(max_history, max((len(h) for h in histories), default=0)))
    rows = np.zeros((len(histories), width), dtype=np.int64)
    mask = np.zeros((len(histories), width), dtype=bool)
    for i, history in enumerate(histories):
        latest = np.asarray(history[-width:], dtype=np.int64)
        rows[i, :len(latest)], mask[i, :len(latest)] = latest, True
    return rows, mask


def require_rerank_budget(budget: int | None) -> int:
    """N: the profile's rerank-count unless given; 1..MAX_RERANK_BUDGET."""
    if budget is None:
        return profile_settings().rerank_count
    if not 1 <= budget <= MAX_RERANK_BUDGET:
        raise RerankError(f"rerank_budget must be within 1..{MAX_RERANK_BUDGET}, not {budget}")
    return budget


def normalize_linear(values: np.ndarray) -> np.ndarray:
    """Vespa's normalize_linear over the global phase's hits (container-search LinearNormalizer): (x - min) /
    (max - min) over the finite values, 0.5 for every hit when they are all equal."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.abs(values) < np.finfo(np.float32).max]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
    if not high > low:
        return np.full(len(values), 0.5)
    return 0.5 + (values - (low + high) * 0.5) / (high - low)


def reciprocal_rank(values: np.ndarray, k: float = RECIPROCAL_RANK_K) -> np.ndarray:
    """Vespa's reciprocal_rank over the global phase's hits (container-search ReciprocalRankNormalizer):
    1 / (k + rank), rank 1 for the highest value (NaN last, ties in hit order)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    out = np.empty(len(values))
    out[order] = 1.0 / (k + 1.0 + np.arange(len(values)))
    return out


def fuse(two_tower: np.ndarray, cross_encoder: np.ndarray, fusion: str = FUSION) -> np.ndarray:
    """The global phase's score of the best N hits from their two-tower scores (recommendation_score) and the
    cross-encoder's: `replace` keeps the cross-encoder's alone; a normalizer adds the two normalized scores."""
    if fusion == "replace":
        return np.asarray(cross_encoder, dtype=np.float64)
    normalizer = {"normalize_linear": normalize_linear, "reciprocal_rank": reciprocal_rank}.get(fusion)
    if normalizer is None:
        raise RerankError(f"unknown fusion {fusion!r}: one of {', '.join(FUSIONS)}")
    return normalizer(two_tower) + normalizer(cross_encoder)


def global_phase(relevance: np.ndarray, order: np.ndarray, rescored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vespa's global-phase re-ranking (container-search's ResultReranker): the best len(rescored) hits by
    `relevance` take their new scores; the other hits are rescaled by the ranges of old and new scores
    (each range at least 1) so that they stay below; then everything is sorted. Returns (relevance, order)."""
    relevance = relevance.astype(np.float64).copy()
    top = order[:len(rescored)]
    if len(top):
        old, new = relevance[top], rescored.astype(np.float64)
        scale = max(new.max() - new.min(), 1.0) / max(old.max() - old.min(), 1.0)
        bias = new.min() - old.min() * scale
        rest = order[len(top):]
        relevance[rest] = relevance[rest] * scale + bias
        relevance[top] = new
    return relevance, np.argsort(-relevance, kind="stable")
