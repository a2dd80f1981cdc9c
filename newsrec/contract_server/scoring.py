"""Ranking the matched news: the rank profiles' math from feed/ranking.py over the server's stand-ins.

Stand-ins (documented, not Vespa): text score = number of query-term occurrences in title + abstract
(for bm25, and nativeRank = text / (1 + text)); nearestNeighbor is exact (every pre-filtered document's
distance, no HNSW graph); tensors are float64. Hits are sorted by relevance, ties by document id.
"""
from __future__ import annotations

import re
import time

import numpy as np

from newsrec.feed import ranking as expressions
from newsrec.feed.profiles import CLOSENESS, LIVE_ATTRIBUTES, NOW, PROFILES, nearest_neighbor_profiles, with_derived

NN_PROFILES = nearest_neighbor_profiles()  # feed/profiles.py: the table
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
    distance = expressions.euclidean_distance(embeddings, np.asarray(query, dtype=np.float64))  # (N,)
    best = np.argsort(-expressions.closeness(distance), kind="stable")[:target_hits]
    return [news[i] for i in best]


def rank(profile: str, news: list[News], inputs: dict, terms: list[str], category_ctrs: dict,
         rerank_count: int = expressions.RERANK_COUNT, now: int | None = None) -> list[Ranked]:
    """The matched news ranked by `profile` (its row of feed/profiles.py), best first (ties by document id), with
    its match-features; a second phase re-ranks the best `rerank_count` (its total-rerank-count). A profile the
    table does not have ranks by `default` (nativeRank). `now`: the rank feature's value (the query's vespa.now
    rank property), else the server's clock."""
    news = sorted(news, key=lambda item: item[0])
    if not news:
        return []
    values = features([fields for _, fields in news], inputs, terms, category_ctrs, now)
    row = PROFILES.get(profile)
    scores = row.rank(values, rerank_count)[0] if row else values["nativeRank"]
    wanted = row.match_features if row else ()
    ranked = [(float(scores[i]), doc_id, fields, {name: float(values[name][i]) for name in wanted if name in values})
              for i, (doc_id, fields) in enumerate(news)]
    ranked.sort(key=lambda hit: (-hit[0], hit[1]))
    return ranked


def features(fields: list[dict], inputs: dict, terms: list[str], category_ctrs: dict,
             now: int | None = None) -> dict[str, np.ndarray]:
    """The rank features of N news documents, each an (N,) array, with the schema's functions of them
    (feed/profiles.py `with_derived`). closeness is 0 (distance inf) without query(user_recall), ranking_score 0
    without query(user_ranking); the live attributes are 0 in a document without them (Vespa: NaN, see
    schemas/news.sd); `now` is the server's clock (whole seconds) unless given."""
    embeddings = np.array([f["embedding"]["values"] for f in fields], dtype=np.float64)  # (N, D)
    recall, ranking = inputs.get("user_recall"), inputs.get("user_ranking")
    distance = (expressions.euclidean_distance(embeddings, np.asarray(recall, dtype=np.float64)) if recall
                else np.full(len(fields), np.inf))
    ranking_score = (expressions.ranking_score(embeddings, np.asarray(ranking, dtype=np.float64)) if ranking
                     else np.zeros(len(fields)))
    text = np.array([text_score(terms, f) for f in fields], dtype=np.float64)
    categories = [(f.get("category"),) for f in fields]
    return with_derived({
        "recall_closeness": expressions.closeness(distance),
        "live_category_ctr": expressions.label_match(categories, inputs.get("category_ctrs") or {}),
        "category_match": expressions.label_match(categories, inputs.get("user_categories") or {}),
        "entity_match": expressions.label_match((f.get("entities") or () for f in fields),
                                                inputs.get("user_entities") or {}),
        "log_history_length": np.full(len(fields), np.log1p(float(inputs.get("history_length", 0.0)))),
        "text_score": text, "ranking_score": ranking_score,
        "ctr": expressions.ctr([f.get("clicks", 0) for f in fields], [f.get("impressions", 0) for f in fields]),
        CLOSENESS: expressions.closeness(distance), "distance(field,embedding)": distance,
        "category_ctr": expressions.category_ctr((f.get("category") for f in fields), category_ctrs),
        "now": np.full(len(fields), float(int(time.time()) if now is None else now)),
        **{feature: np.array([float(f.get(feature[len("attribute("):-1]) or 0) for f in fields], dtype=np.float64)
           for feature in LIVE_ATTRIBUTES},
    }, inputs)


def rank_now(params: dict) -> int | None:
    """The query's `vespa.now` rank property (ranking.properties.vespa.now, alias rankproperty.vespa.now), as the
    content node reads it: atoll, the leading whole number (0 for none); None when the query has none."""
    for key, value in params.items():
        prefix, _, name = key.partition(".")
        named = key == f"ranking.properties.{NOW}" or (prefix.lower() == "rankproperty" and name == NOW)
        if named and value is not None and str(value) != "":
            match = re.match(r"\s*[+-]?\d+", str(value))
            return int(match.group(0)) if match else 0
    return None
