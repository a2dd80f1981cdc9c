"""Ranking the matched news: the rank profiles' math from feed/ranking.py over the server's stand-ins.

Stand-ins (documented, not Vespa): text score = number of query-term occurrences in title + abstract
(for bm25, and nativeRank = text / (1 + text)); nearestNeighbor is exact (every pre-filtered document's
distance, no HNSW graph); tensors are float64. Hits are sorted by relevance, ties by document id.
"""
from __future__ import annotations

import re

import numpy as np

from feed import ranking as profiles

NN_PROFILES = ("recall", "recommendation", "recommendation_with_global_category_ctr")
MATCH_FEATURES = {
    "recall": ("closeness(field,embedding)", "distance(field,embedding)"),
    "recommendation": ("closeness(field,embedding)", "ranking_score", "ctr", "recommendation_score"),
    "popularity": ("nativeRank", "ctr"),
    "bm25": ("text_score",),
    "personalized_search": ("text_score", "ranking_score", "personalized_score"),
    "recommendation_with_global_category_ctr": ("nearest_neighbor", "category_ctr"),
}
News = tuple[str, dict]  # (full document id, fields)
Ranked = tuple[float, str, dict, dict]  # (relevance, full document id, fields, match-features)


def text_score(terms: list[str], fields: dict) -> float:
    """Stand-in for bm25(title) + bm25(abstract): occurrences of the query terms."""
    tokens = re.findall(r"\w+", f"{fields.get('title', '')} {fields.get('abstract', '')}".lower())
    return float(sum(tokens.count(term) for term in terms))


def nearest(news: list[News], field: str, query: list[float], target_hits: int) -> list[News]:
    """Exact nearestNeighbor: the `target_hits` news closest to `query` (ties in feed order)."""
    if not news:
        return []
    embeddings = np.array([fields[field]["values"] for _, fields in news], dtype=np.float64)  # (N, D)
    distance = profiles.euclidean_distance(embeddings, np.asarray(query, dtype=np.float64))  # (N,)
    best = np.argsort(-profiles.closeness(distance), kind="stable")[:target_hits]
    return [news[i] for i in best]


def rank(profile: str, news: list[News], inputs: dict, terms: list[str], category_ctrs: dict,
         rerank_count: int = profiles.RERANK_COUNT) -> list[Ranked]:
    """The matched news ranked by `profile`, best first (ties by document id), with its match-features;
    `recommendation`'s second phase re-ranks the best `rerank_count` (its total-rerank-count)."""
    news = sorted(news, key=lambda item: item[0])
    if not news:
        return []
    values = features([fields for _, fields in news], inputs, terms, category_ctrs)
    scores = relevance(profile, values, rerank_count)
    wanted = MATCH_FEATURES.get(profile, ())
    ranked = [(float(scores[i]), doc_id, fields, {name: float(values[name][i]) for name in wanted})
              for i, (doc_id, fields) in enumerate(news)]
    ranked.sort(key=lambda hit: (-hit[0], hit[1]))
    return ranked


def features(fields: list[dict], inputs: dict, terms: list[str], category_ctrs: dict) -> dict[str, np.ndarray]:
    """The rank features of N news documents, each an (N,) array. closeness is 0 (distance inf) without
    query(user_recall), ranking_score 0 without query(user_ranking)."""
    embeddings = np.array([f["embedding"]["values"] for f in fields], dtype=np.float64)  # (N, D)
    recall, ranking = inputs.get("user_recall"), inputs.get("user_ranking")
    distance = (profiles.euclidean_distance(embeddings, np.asarray(recall, dtype=np.float64)) if recall
                else np.full(len(fields), np.inf))
    ranking_score = (profiles.ranking_score(embeddings, np.asarray(ranking, dtype=np.float64)) if ranking
                     else np.zeros(len(fields)))
    text = np.array([text_score(terms, f) for f in fields], dtype=np.float64)
    ctr = profiles.ctr([f.get("clicks", 0) for f in fields], [f.get("impressions", 0) for f in fields])
    closeness = profiles.closeness(distance)
    return {
        "text_score": text, "ctr": ctr, "ranking_score": ranking_score, "nativeRank": text / (1 + text),
        "closeness(field,embedding)": closeness, "distance(field,embedding)": distance,
        "recommendation_score": profiles.recommendation_score(ranking_score, ctr, inputs.get("popularity_weight", 0.0)),
        "personalized_score": profiles.personalized_search(text, ranking_score,
                                                           inputs.get("personalization_weight", 1.0)),
        "nearest_neighbor": closeness,
        "category_ctr": profiles.category_ctr((f.get("category") for f in fields), category_ctrs),
    }


def relevance(profile: str, values: dict[str, np.ndarray], rerank_count: int = profiles.RERANK_COUNT) -> np.ndarray:
    """The profile's relevance from the features, (N,); an unknown profile falls back to `default` (nativeRank)."""
    closeness = values["closeness(field,embedding)"]
    if profile == "recommendation":  # documents in id order: ties for the rerank-count cut go to the lower id
        return profiles.recommendation(closeness, values["recommendation_score"], rerank_count)[0]
    return {
        "recall": closeness,
        "popularity": profiles.popularity(values["nativeRank"], values["ctr"]),
        "bm25": values["text_score"],
        "personalized_search": values["personalized_score"],
        "recommendation_with_global_category_ctr":
            profiles.recommendation_with_global_category_ctr(values["nearest_neighbor"], values["category_ctr"]),
    }.get(profile, values["nativeRank"])
