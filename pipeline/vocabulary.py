"""Vocabularies: the categories, subcategories, entities, users and news ids a model knows.

Built from the training data and saved in checkpoints; row 0 always means unknown (a category,
entity, user or news id the model never saw), so lookups of unseen values never fail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from newsrec.pipeline.mind import MindDataset


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
