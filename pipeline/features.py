"""Model inputs from a MIND dataset: vocabularies, news feature tensors, history matrices.

Vocabularies are built from the training data and saved in checkpoints; index 0 always means
unknown (a category, entity, user or news id the model never saw).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.mind import Behaviors, MindDataset, NewsTable
from pipeline.models.contract import NewsFeatures

MAX_ENTITIES = 4


@dataclass(frozen=True)
class Vocabulary:
    categories: list[str]
    subcategories: list[str]
    entities: list[str]
    users: list[str]  # users of the training split
    news: list[str]  # news ids known at training time (ID-based models)

    @staticmethod
    def build(dataset: MindDataset, max_entities: int = 100_000) -> "Vocabulary":
        news = dataset.news
        counts: dict[str, int] = {}
        for entities in news.title_entities + news.abstract_entities:
            for entity in entities:
                counts[entity["WikidataId"]] = counts.get(entity["WikidataId"], 0) + 1
        entities = sorted(counts, key=lambda e: (-counts[e], e))[:max_entities]
        train_users = np.unique(dataset.splits["train"].user_index)
        return Vocabulary(list(news.categories), list(news.subcategories), entities,
                          [dataset.users[u] for u in train_users], list(news.ids))

    def lookup(self, name: str, values: list[str]) -> np.ndarray:
        position = {value: i + 1 for i, value in enumerate(getattr(self, name))}
        return np.fromiter((position.get(v, 0) for v in values), dtype=np.int64, count=len(values))

    def size(self, name: str) -> int:
        return len(getattr(self, name)) + 1


def news_features(news: NewsTable, vocab: Vocabulary, text_vectors: np.ndarray) -> NewsFeatures:
    """Features of every row of `news` (text_vectors: (N, 2, L) from `pipeline.text_encoder`)."""
    entity_rows = np.zeros((len(news), MAX_ENTITIES), dtype=np.int64)
    position = {entity: i + 1 for i, entity in enumerate(vocab.entities)}
    for row, entities in enumerate(zip(news.title_entities, news.abstract_entities)):
        ids = dict.fromkeys(position.get(e["WikidataId"], 0) for e in entities[0] + entities[1])
        ids = [i for i in ids if i][:MAX_ENTITIES]
        entity_rows[row, :len(ids)] = ids
    return NewsFeatures(
        news_index=torch.from_numpy(vocab.lookup("news", news.ids)),
        text=torch.from_numpy(np.ascontiguousarray(text_vectors, dtype=np.float32)),
        category=torch.from_numpy(vocab.lookup("categories", [news.categories[c] for c in news.category])),
        subcategory=torch.from_numpy(vocab.lookup("subcategories", [news.subcategories[c] for c in news.subcategory])),
        entities=torch.from_numpy(entity_rows))


def history_matrix(behaviors: Behaviors, impressions: np.ndarray, max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, H) news rows of each impression's latest `max_history` clicks (oldest first) and the mask."""
    ends = behaviors.history_offsets[impressions + 1]
    lengths = np.minimum(ends - behaviors.history_offsets[impressions], max_history)  # (B,)
    columns = np.arange(max_history)
    mask = columns[None, :] < lengths[:, None]  # (B, H)
    positions = np.where(mask, (ends - lengths)[:, None] + columns[None, :], 0)
    rows = np.where(mask, behaviors.history[np.minimum(positions, max(len(behaviors.history) - 1, 0))]
                    if len(behaviors.history) else 0, 0)
    return rows.astype(np.int64), mask


def user_rows(dataset: MindDataset, behaviors: Behaviors, vocab: Vocabulary) -> np.ndarray:
    """(I,) vocabulary row of each impression's user (0 = unknown)."""
    return vocab.lookup("users", [dataset.users[u] for u in behaviors.user_index])
