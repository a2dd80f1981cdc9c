"""Model inputs from a MIND dataset: news feature tensors, history matrices, batches.

Categorical values become vocabulary rows (`pipeline.vocabulary`; 0 = unknown).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from newsrec.pipeline.mind import Behaviors, MindDataset, NewsTable
from newsrec.pipeline.models.contract import Batch, NewsFeatures, NewsInputs
from newsrec.pipeline.text_encoder import load_tokenizer, news_text_vectors
from newsrec.pipeline.vocabulary import Vocabulary

MAX_ENTITIES = 4


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


def news_tokens(news: NewsTable, tokenizer, max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2, T) token ids and attention masks of title and abstract (fine-tuning mode); empty -> all-0 mask."""
    parts = []
    for texts in (news.title, news.abstract):
        encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_tokens,
                            return_tensors="pt")
        empty = torch.tensor([not t for t in texts])
        parts.append((encoded["input_ids"], encoded["attention_mask"].masked_fill(empty[:, None], 0)))
    return torch.stack([parts[0][0], parts[1][0]], 1), torch.stack([parts[0][1], parts[1][1]], 1)


def model_news_features(news: NewsTable, vocab: Vocabulary, text_config, inputs: NewsInputs,
                        device: torch.device, cache_dir=None, progress: bool = False) -> NewsFeatures:
    """The features a model reads (`NewsRecModel.news_inputs`): cached LM vectors and/or token ids."""

    if inputs.text_vectors:
        text = news_text_vectors(news.title, news.abstract, text_config, device, cache_dir, progress)
    else:
        text = np.zeros((len(news), 2, 0), dtype=np.float32)
    features = news_features(news, vocab, text)
    if not inputs.tokens:
        return features
    tokenizer = load_tokenizer(text_config.model)
    tokens, mask = news_tokens(news, tokenizer, max(text_config.title_tokens, text_config.abstract_tokens))
    return replace(features, tokens=tokens, token_mask=mask)


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


def make_batch(features: NewsFeatures, behaviors: Behaviors, impressions: np.ndarray, candidates: np.ndarray,
               user_rows: np.ndarray, max_history: int, device: torch.device) -> Batch:
    """A `Batch` of impressions (B,) with candidate news rows (B, C): the distinct news it touches are
    gathered once, candidates and histories re-indexed into them; `user_rows` are the impressions' users."""
    history, mask = history_matrix(behaviors, impressions, max_history)
    unique, inverse = np.unique(np.concatenate([candidates.ravel(), history[mask]]), return_inverse=True)
    local_history = np.zeros_like(history)
    local_history[mask] = inverse[candidates.size:]
    return Batch(news=features.select(torch.from_numpy(unique)).to(device),
                 candidates=torch.from_numpy(inverse[:candidates.size].reshape(candidates.shape)).to(device),
                 history=torch.from_numpy(local_history).to(device), history_mask=torch.from_numpy(mask).to(device),
                 user_index=torch.from_numpy(user_rows).to(device))


def clicked_sets(behaviors: Behaviors, impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, news rows) of the clicked candidates of each impression."""
    impressions = np.asarray(impressions, dtype=np.int64)
    starts = behaviors.candidate_offsets[impressions]
    lengths = behaviors.candidate_offsets[impressions + 1] - starts
    rows = spans(starts, lengths)
    clicked = behaviors.labels[rows] == 1
    counts = np.bincount(np.repeat(np.arange(len(impressions)), lengths)[clicked], minlength=len(impressions))
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), behaviors.candidates[rows[clicked]]


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions starts[i] .. starts[i] + lengths[i] - 1 of every span, concatenated (CSR rows)."""
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(lengths.sum())
