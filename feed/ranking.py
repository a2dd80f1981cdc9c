"""The rank profiles of schemas/news.sd as numpy functions: the one copy of their math.

Both stand-ins for Vespa's ranking compute relevance through these functions: the embedded default
index (feed/local_backend.py) and the HTTP contract server (newsrec/contract_server/). Each function
takes the per-document feature arrays of N matched news, shape (N,), and names the profile expression
it mirrors. What feeds them (nearest-neighbour search, text scores) is the caller's business.

Pure functions: no I/O, no state. The dtype follows the inputs (float32 vectors give float32 scores),
so a caller keeps its precision.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

RERANK_COUNT = 100  # the recommendation profile's second-phase total-rerank-count: feed/funnel.py's recall budget
POPULARITY_CTR_WEIGHT = 100  # popularity's first phase: nativeRank + 100 * ctr
CTR_PRIOR_CLICKS = 1.0  # base's constants: the smoothed CTR starts from 1 click ...
CTR_PRIOR_IMPRESSIONS = 25.0  # ... in 25 impressions (a prior CTR of 4%, MIND's, worth 25 impressions)


def ctr(clicks: np.ndarray, impressions: np.ndarray) -> np.ndarray:
    """base's `ctr`, smoothed towards the prior: (clicks + 1) / (impressions + 25). (N,), (N,) -> (N,) float64.
    One click in one impression (0.077) no longer outranks 40 in 400 (0.096); never shown: 0.04."""
    clicks = np.asarray(clicks, dtype=np.float64)
    impressions = np.asarray(impressions, dtype=np.float64)
    return (clicks + CTR_PRIOR_CLICKS) / (np.maximum(impressions, 0.0) + CTR_PRIOR_IMPRESSIONS)


def euclidean_distance(embeddings: np.ndarray, query: np.ndarray) -> np.ndarray:
    """`distance(field, embedding)` for `distance-metric: euclidean`: sqrt(sum((q - d)^2)).
    embeddings (N, D), query (D,) -> (N,)."""
    return np.sqrt(((embeddings - query) ** 2).sum(axis=1))


def closeness(distance: np.ndarray) -> np.ndarray:
    """`closeness(field, embedding)` for the euclidean metric: 1 / (1 + distance). (N,) -> (N,)."""
    return 1.0 / (1.0 + distance)


def ranking_score(embeddings: np.ndarray, user_ranking: np.ndarray) -> np.ndarray:
    """base's `ranking_score`: sum(query(user_ranking) * attribute(embedding)).
    embeddings (N, D), user_ranking (D,) -> (N,). The user's MIPS coordinate is 0, so the item's adds nothing."""
    return embeddings @ user_ranking


def recommendation_score(ranking_score: np.ndarray, ctr: np.ndarray, popularity_weight: float) -> np.ndarray:
    """recommendation's `recommendation_score`: ranking_score + query(popularity_weight) * ctr. (N,) -> (N,)."""
    return ranking_score + popularity_weight * ctr


def recommendation(closeness: np.ndarray, recommendation_score: np.ndarray,
                   rerank_count: int = RERANK_COUNT) -> tuple[np.ndarray, np.ndarray]:
    """The recommendation profile: first phase closeness(field, embedding); second phase
    recommendation_score on the best `rerank_count` by first phase (earlier rows win ties).

    Returns (relevance (N,), order (N,)): the re-ranked documents get their second-phase score, the
    others keep their closeness; `order` lists the re-ranked ones first (by second phase, ties in
    first-phase order), then the rest by first phase."""
    first_phase_order = np.argsort(-closeness, kind="stable")
    reranked, rest = first_phase_order[:rerank_count], first_phase_order[rerank_count:]
    relevance = closeness.astype(np.result_type(closeness, recommendation_score))  # a copy
    relevance[reranked] = recommendation_score[reranked]
    order = np.concatenate([reranked[np.argsort(-relevance[reranked], kind="stable")], rest])
    return relevance, order


def category_ctr(categories: Iterable[str | None], ctrs: Mapping[str, float]) -> np.ndarray:
    """recommendation_with_global_category_ctr's `category_ctr`:
    sum(tensorFromLabels(attribute(category), category) * attribute(category_ctrs)), i.e. the parent's
    CTR cell for the news item's category, 0 for a category missing there. (N,) -> (N,) float64."""
    return np.array([float(ctrs.get(category, 0.0)) for category in categories], dtype=np.float64)


def recommendation_with_global_category_ctr(closeness: np.ndarray, category_ctr: np.ndarray) -> np.ndarray:
    """First phase nearest_neighbor * category_ctr, nearest_neighbor = closeness(field, embedding). (N,) -> (N,)."""
    return closeness * category_ctr


def popularity(native_rank: np.ndarray | float, ctr: np.ndarray) -> np.ndarray:
    """The popularity profile: nativeRank + 100 * ctr (nativeRank is 0 for a query without text). (N,) -> (N,)."""
    return native_rank + POPULARITY_CTR_WEIGHT * ctr


def personalized_search(text_score: np.ndarray, ranking_score: np.ndarray,
                        personalization_weight: float) -> np.ndarray:
    """personalized_search's `personalized_score`: text_score + query(personalization_weight) * ranking_score,
    text_score = bm25(title) + bm25(abstract). (N,) -> (N,)."""
    return text_score + personalization_weight * ranking_score


# ------------------------------------------------------------------------ the live profile (time in ranking)
# Counters decay exponentially without a read-modify-write: an event at time t adds exp(rate * (t - origin)) to
# the stored sum (a Vespa `increment`); at time `now` the sum times exp(rate * (origin - now)) is the decayed count
# sum(exp(-rate * (now - t))). `origin` is a fixed reference second (the service's decay origin), `rate` =
# ln 2 / half-life. Doubles hold it for 1,000 half-lives past the origin (exp(709) is the limit): a service
# re-bases (re-assigns every counter) long before that.

SECONDS_PER_HOUR = 3600.0


def decay(now: np.ndarray | float, origin: float, rate: float) -> np.ndarray:
    """live's `live_decay`: exp(query(decay_rate) * (query(decay_origin) - now)): the factor that turns stored sums
    into counts decayed to `now`."""
    return np.exp(rate * (origin - np.asarray(now, dtype=np.float64)))


def event_weight(time: np.ndarray | float, origin: float, rate: float) -> np.ndarray:
    """What one event at `time` adds to a stored decayed sum: exp(rate * (time - origin))."""
    return np.exp(rate * (np.asarray(time, dtype=np.float64) - origin))


def live_ctr(clicks_decayed: np.ndarray, impressions_decayed: np.ndarray, now, origin: float,
             rate: float) -> np.ndarray:
    """live's `live_ctr`: the decayed CTR smoothed towards base's prior,
    (attribute(clicks_decayed) * live_decay + 1) / (attribute(impressions_decayed) * live_decay + 25). (N,) -> (N,)."""
    factor = decay(now, origin, rate)
    return ((np.asarray(clicks_decayed, dtype=np.float64) * factor + CTR_PRIOR_CLICKS)
            / (np.asarray(impressions_decayed, dtype=np.float64) * factor + CTR_PRIOR_IMPRESSIONS))


def age_hours(published: np.ndarray, now) -> np.ndarray:
    """live's `age_hours`: max(0, now - attribute(published)) / 3600. (N,) -> (N,) float64."""
    return np.maximum(0.0, np.asarray(now, dtype=np.float64) - np.asarray(published, dtype=np.float64)) / SECONDS_PER_HOUR


LIVE_TERMS = ("ranking_score", "log_live_ctr", "log_age", "appeal")  # the live score's terms, in weight order
LIVE_WEIGHTS = ("w_user", "w_ctr", "w_recency", "w_appeal")  # their query(...) weights
LIVE_DEFAULTS = {"w_user": 1.0, "w_ctr": 0.0, "w_recency": 0.0, "w_appeal": 0.0}  # the schema's input defaults


def live_terms(ranking_score: np.ndarray, live_ctr: np.ndarray, age_hours: np.ndarray,
               appeal: np.ndarray) -> np.ndarray:
    """The live score's terms (N, 4) in LIVE_TERMS order: ranking_score, log(live_ctr), log(1 + age_hours), appeal."""
    return np.stack([np.asarray(ranking_score, dtype=np.float64), np.log(live_ctr), np.log1p(age_hours),
                     np.asarray(appeal, dtype=np.float64)], axis=1)


def live_score(ranking_score: np.ndarray, live_ctr: np.ndarray, age_hours: np.ndarray, appeal: np.ndarray,
               weights: Mapping[str, float]) -> np.ndarray:
    """live's second phase `live_score`: query(w_user) * ranking_score + query(w_ctr) * log(live_ctr)
    + query(w_recency) * log(1 + age_hours) + query(w_appeal) * attribute(appeal). (N,) -> (N,) float64."""
    w = np.array([float(weights.get(name, LIVE_DEFAULTS[name])) for name in LIVE_WEIGHTS])
    return live_terms(ranking_score, live_ctr, age_hours, appeal) @ w


# --------------------------------------------------------------- the learned profile (a ranker over features)
# The features a learned ranker reads, in the order of its columns (schemas/news/learned.profile defines a
# function of each name; the embedded index and the contract server compute them here). The first four are the
# live profile's terms.

LEARNED_FEATURES = LIVE_TERMS + ("recall_closeness", "log_impressions", "live_category_ctr", "category_match",
                                 "entity_match", "log_history_length")


def decayed_count(stored: np.ndarray, now, origin: float, rate: float) -> np.ndarray:
    """A stored decayed sum as the count decayed to `now`: attribute(...) * live_decay. (N,) -> (N,)."""
    return np.asarray(stored, dtype=np.float64) * decay(now, origin, rate)


def smoothed_ctr(clicks: np.ndarray, impressions: np.ndarray) -> np.ndarray:
    """(clicks + 1) / (impressions + 25): base's prior, for counts already decayed."""
    return ((np.asarray(clicks, dtype=np.float64) + CTR_PRIOR_CLICKS)
            / (np.asarray(impressions, dtype=np.float64) + CTR_PRIOR_IMPRESSIONS))


def label_match(labels: Iterable[Iterable[str]], weights: Mapping[str, float]) -> np.ndarray:
    """sum(query(weights) * tensorFromLabels(attribute(field), dim)) per document: the sum of the weights of the
    document's distinct labels (0 for labels the query does not weigh). labels: one iterable per document;
    (N,) float64."""
    return np.array([sum(float(weights.get(label, 0.0)) for label in set(doc)) for doc in labels], dtype=np.float64)


def history_shares(labels_per_item: Iterable[Iterable[str]]) -> dict[str, float]:
    """The share of a history's items that carry each label (a label counted once per item): the user's
    query(user_categories) or query(user_entities). An empty history: {}."""
    items = [set(labels) for labels in labels_per_item]
    counts: dict[str, int] = {}
    for labels in items:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    return {label: count / len(items) for label, count in sorted(counts.items())}


def learned_features(live: np.ndarray, closeness: np.ndarray, impressions_now: np.ndarray,
                     category_ctr: np.ndarray, category_match: np.ndarray, entity_match: np.ndarray,
                     history_length: int) -> np.ndarray:
    """(N, len(LEARNED_FEATURES)): the live terms (N, 4) (`live_terms`), then closeness(field, embedding) of the
    recall vector, log(1 + decayed impressions at now), the candidate's category CTR, its category's and its
    entities' shares of the history, and log(1 + history length)."""
    n = len(live)
    return np.column_stack([np.asarray(live, dtype=np.float64).reshape(n, len(LIVE_TERMS)),
                            np.asarray(closeness, dtype=np.float64), np.log1p(impressions_now),
                            np.asarray(category_ctr, dtype=np.float64), np.asarray(category_match, dtype=np.float64),
                            np.asarray(entity_match, dtype=np.float64),
                            np.full(n, np.log1p(float(history_length)))])
