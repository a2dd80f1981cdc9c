"""A checkpoint applied to a dataset: load it, encode every news item once, then users and candidate
scores from indices into that matrix. The one path shared by evaluation, prediction, serving
evaluation and feeding.

    encoded = encode_dataset("runs/unirec", dataset)            # (N, D) news matrix on the device
    users = encoded.users(dataset.splits["dev"], impressions)   # UserVectors (B, D) each
    scores = encoded.candidate_scores(dataset.splits["dev"], impressions)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from newsrec.pipeline.checkpoint import Checkpoint, load_checkpoint
from newsrec.pipeline.device import pick_device
from newsrec.pipeline.features import model_news_features, user_rows
from newsrec.pipeline.inference import candidate_scores, encode_all_news, encode_users, score_impressions
from newsrec.pipeline.mind import Behaviors, MindDataset
from newsrec.pipeline.models.contract import NewsFeatures, UserVectors


@dataclass(frozen=True, eq=False)
class EncodedDataset:
    checkpoint: Checkpoint  # its model on `device`, in eval mode
    dataset: MindDataset
    device: torch.device
    features: NewsFeatures  # every news row (CPU)
    news_matrix: torch.Tensor  # (N, D) float32 on `device`
    seconds: float  # news features (LM vectors, unless cached) + news encoder
    progress: bool = False  # users and candidate scores report progress (pipeline/progress.py)

    def users(self, behaviors: Behaviors, impressions: np.ndarray) -> UserVectors:
        """(B, D) ranking and recall vectors of the users of `impressions`, from their histories."""
        ranking, recall = encode_users(self.checkpoint.model, self.news_matrix, behaviors, impressions,
                                       user_rows(self.dataset, behaviors, self.checkpoint.vocab),
                                       self.checkpoint.max_history, self.device, features=self.features,
                                       progress=self.progress)
        return UserVectors(ranking, recall)

    def candidate_scores(self, behaviors: Behaviors, impressions: np.ndarray,
                         users: UserVectors | None = None) -> np.ndarray:
        """(C,) click scores of the candidates of `impressions`, in order: u_ra · r with the users' ranking
        vectors (computed unless given), or pair by pair for a cross-encoder."""
        if users is not None:
            return candidate_scores(self.news_matrix, users.ranking, behaviors, impressions)[0]
        return score_impressions(self.checkpoint.model, self.features, self.news_matrix, behaviors, impressions,
                                 user_rows(self.dataset, behaviors, self.checkpoint.vocab),
                                 self.checkpoint.max_history, self.device, progress=self.progress)


def encode_dataset(model_dir: str | Path, dataset: MindDataset, device_name: str = "auto",
                   top_p: int | None = None, progress: bool = False) -> EncodedDataset:
    """Load the checkpoint in `model_dir` and encode every news item of `dataset` with it.
    `top_p`: recall bases kept at inference (0 = all; default: the checkpoint's P, or for FUM its user vector)."""
    checkpoint = load_checkpoint(model_dir)
    model = checkpoint.model
    if top_p is not None:
        model.set_top_p(top_p)
    device = pick_device(device_name)
    model.to(device)
    started = time.perf_counter()
    features = model_news_features(dataset.news, checkpoint.vocab, checkpoint.text,
                                   model.inputs(), device, checkpoint.cache_dir, progress)
    news_matrix = encode_all_news(model, features, device) if model.user_is_cacheable else \
        torch.zeros(len(dataset.news), 0, device=device)  # a cross-encoder has no news vectors
    return EncodedDataset(checkpoint, dataset, device, features, news_matrix, time.perf_counter() - started,
                          progress)
