"""The rank profiles, in one table: what each is, how it retrieves, its phases and what their scores mean, the
query inputs it needs, what the index must hold to serve it, its match-features, and its math.

Everything that names a profile reads this table: the query bodies (feed/queries.py), both serving backends (the
embedded index, feed/local_backend.py, and the contract server's stand-in for Vespa,
newsrec/contract_server/scoring.py), the command line's `--ranking` choices and the web page's explanations.
tests/test_profiles.py checks it against schemas/ (each profile there, its inputs declared, its match-features
the schema's) and against the application's UserProfileSearcher (its nearest-neighbour profiles).

A profile's math is a function of the features of the matched news, each an (N,) array named as the rank
features Vespa computes (`Features`), returning (relevance (N,), order (N,)): the profile's scores and the
order of the hits. The functions are feed/ranking.py's, the one copy of the profiles' expressions.

Adding a profile: write it in schemas/news.sd (or a file of schemas/news/ packaged with what it needs), add its row
here with its math (in feed/ranking.py when it is new), and nothing else; docs/architecture.md has an example.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from newsrec.feed import ranking

Features = Mapping[str, np.ndarray]  # rank feature name -> (N,) values of the matched news
Ranked = tuple[np.ndarray, np.ndarray]  # (relevance (N,), order (N,))

NEAREST_NEIGHBOR = "nearest neighbours of the user's recall vector"  # retrievals
TEXT = "the words of the query (BM25 over title and abstract)"
EVERY_NEWS = "every news item (filters aside)"

CLOSENESS = "closeness(field,embedding)"


@dataclass(frozen=True)
class Phase:
    """One phase of a profile: the feature holding its score, a short label and what the score means."""

    feature: str
    label: str
    meaning: str


@dataclass(frozen=True)
class RankProfile:
    """A rank profile of schemas/: see the module docstring."""

    name: str
    description: str  # a sentence for people (the web page, --help)
    retrieval: str  # NEAREST_NEIGHBOR, TEXT or EVERY_NEWS
    inputs: tuple[str, ...]  # the query(...) inputs a query must send (the searcher sends the user's)
    phases: tuple[Phase, ...]  # in the order they run
    decides: str  # the feature whose score orders the hits (the last phase's; "relevance" for the profile's own)
    match_features: tuple[str, ...]  # as the schema lists them
    rank: Callable[[Features, int], Ranked]  # (features, second-phase rerank count) -> (relevance, order)
    recommends: bool = False  # served as a user's recommendations (`newsrec recommend --ranking`, the web page)
    needs: str | None = None  # what the index must hold beyond news and users to serve it
    schema_file: str = "news.sd"  # where in schemas/ (a file of schemas/news/ is packaged only with what it needs)
    second_phase_rerank: bool = False  # the second phase re-ranks the recall budget (ranking.secondPhase.*)
    global_phase: str | None = None  # a model the global phase runs over the best N ("reranker"), if any
    properties: tuple[str, ...] = ()  # rank properties a query must send (ranking.properties.<name>), e.g. NOW

    @property
    def nearest_neighbor(self) -> bool:
        return self.retrieval == NEAREST_NEIGHBOR


def by_relevance(relevance: np.ndarray) -> Ranked:
    """A one-phase profile: the hits by their score, best first (ties in the order given)."""
    return relevance, np.argsort(-relevance, kind="stable")


RECALL_PHASE = Phase(CLOSENESS, "recall closeness",
                     "first phase: 1 / (1 + distance) between the reader's recall vector and the news vector; the "
                     "nearest-neighbour search finds the candidates by it (1 = the same vector, smaller = farther)")
SECOND_PHASE = Phase("ranking_score", "ranking vector · news vector",
                     "second phase: the reader's ranking vector · the news vector (ranking_score); it re-orders the "
                     "best candidates by recall closeness, the recall budget (higher = nearer what the reader clicked)")
CATEGORY_CTR = Phase("category_ctr", "category CTR",
                     "the click-through rate of the news item's category in the training impressions")
CLOSENESS_BY_CTR = Phase("relevance", "closeness × category CTR",
                         "the profile's only phase: recall closeness × category CTR, so near news of often-clicked "
                         "categories come first")
CROSS_ENCODER = Phase("global_phase", "cross-encoder",
                      "global phase: a cross-encoder (UNBERT) reads the title together with the reader's clicked "
                      "titles; over the best N by the second phase its score and the second phase's are each "
                      "normalized from 0 (lowest of the N) to 1 (highest) and added; the hits below keep the "
                      "second-phase order, their scores rescaled beneath")
POPULARITY_PHASE = Phase("relevance", "100 × CTR prior",
                         "nativeRank (0 without query text) + 100 × the smoothed CTR, (clicks + 1) / (impressions + "
                         "25): a news item shown rarely counts as the average 4% until its clicks say otherwise")
TEXT_PHASE = Phase("text_score", "BM25", "bm25(title) + bm25(abstract): how well the words match")
PERSONALIZED_PHASE = Phase("personalized_score", "BM25 + ranking vector · news vector",
                           "text_score + personalization_weight × the reader's ranking vector · the news vector")
LIVE_PHASE = Phase("live_score", "live score",
                   "second phase at the impression's time `now`: w_user × the reader's ranking vector · the news "
                   "vector + w_ctr × log(the decayed smoothed CTR) + w_recency × log(1 + the hours since the news "
                   "item was first seen) + w_appeal × its content appeal; it re-orders the best candidates by recall "
                   "closeness, the recall budget")
LEARNED_PHASE = Phase("learned_score", "learned score",
                      "second phase at the impression's time: a learned ranker's score (LightGBM trees; P(click) for "
                      "a binary ranker) over the live terms and the features of feed/ranking.py LEARNED_FEATURES")

LEARNED_INPUTS = ("user_recall", "user_ranking", "decay_origin", "decay_rate", "category_ctrs", "user_categories",
                  "user_entities", "history_length")  # what a query of learned_features and learned sends
NOW = "vespa.now"  # the rank property the `now` rank feature reads (whole epoch seconds; schemas/news.sd, live)
LIVE_ATTRIBUTES = ("attribute(clicks_decayed)", "attribute(impressions_decayed)", "attribute(published)",
                   "attribute(appeal)")  # the live profile's document features (0 in a document without them)
DECAY_DEFAULTS = {"decay_origin": 0.0, "decay_rate": 0.0}  # the live profile's decay inputs' schema defaults


def _recommendation(features: Features, rerank_count: int) -> Ranked:
    return ranking.recommendation(features[CLOSENESS], features["recommendation_score"], rerank_count)


def _live(features: Features, rerank_count: int) -> Ranked:
    return ranking.recommendation(features[CLOSENESS], features["live_score"], rerank_count)


def _learned(features: Features, rerank_count: int) -> Ranked:
    return ranking.recommendation(features[CLOSENESS], features["learned_score"], rerank_count)


PROFILES: dict[str, RankProfile] = {profile.name: profile for profile in (
    RankProfile("recall", "the nearest neighbours of the reader's recall vector, by closeness alone",
                NEAREST_NEIGHBOR, ("user_recall",), (RECALL_PHASE,), CLOSENESS,
                (CLOSENESS, "distance(field,embedding)"), lambda f, r: by_relevance(f[CLOSENESS])),
    RankProfile("recommendation", "the reader's nearest news by the recall vector, the best re-ranked by the "
                "ranking vector (the funnel)", NEAREST_NEIGHBOR, ("user_recall", "user_ranking"),
                (RECALL_PHASE, SECOND_PHASE), "ranking_score",
                (CLOSENESS, "ranking_score", "ctr", "recommendation_score"), _recommendation, recommends=True,
                second_phase_rerank=True),
    RankProfile("recommendation_with_global_category_ctr", "the reader's nearest news, ordered by closeness × "
                "the CTR of their category (from the global category_ctr document)", NEAREST_NEIGHBOR,
                ("user_recall",), (RECALL_PHASE, CATEGORY_CTR, CLOSENESS_BY_CTR), "relevance",
                ("nearest_neighbor", "category_ctr"),
                lambda f, r: by_relevance(ranking.recommendation_with_global_category_ctr(f[CLOSENESS],
                                                                                          f["category_ctr"])),
                recommends=True, needs="the global category_ctr document"),
    RankProfile("unbert", "the recommendation funnel, its best N re-scored by the UNBERT cross-encoder fused with the "
                "two-tower score",
                NEAREST_NEIGHBOR, ("user_recall", "user_ranking", "history_tokens"),
                (RECALL_PHASE, SECOND_PHASE, CROSS_ENCODER), "global_phase",
                (CLOSENESS, "ranking_score", "recommendation_score"), _recommendation, recommends=True,
                needs="a re-ranker: the cross-encoder's model (unbert.onnx) and the title and history tokens it "
                      "reads", schema_file="news/unbert.profile", second_phase_rerank=True, global_phase="reranker"),
    RankProfile("live", "the recommendation funnel re-ranked at the impression's time: the reader's ranking "
                "vector · the news vector, the decayed CTR, the news item's age and its content appeal, weighted",
                NEAREST_NEIGHBOR, ("user_recall", "user_ranking", "decay_origin", "decay_rate"),
                (RECALL_PHASE, LIVE_PHASE), "live_score",
                (CLOSENESS, "ranking_score", "live_ctr", "age_hours", "attribute(appeal)", "live_score"), _live,
                recommends=True, needs="the live fields (publication time, decayed counters, appeal), written as "
                                       "the impressions stream is replayed", second_phase_rerank=True,
                properties=(NOW,)),
    RankProfile("learned_features", "the live profile, with the features a learned ranker reads as match-features "
                "(the live terms, recall closeness, impressions, category CTR, category and entity matches with the "
                "history, its length)", NEAREST_NEIGHBOR, LEARNED_INPUTS, (RECALL_PHASE, LIVE_PHASE), "live_score",
                (CLOSENESS, *ranking.LEARNED_FEATURES, "live_score"), _live,
                needs="the live fields and the news' entities", second_phase_rerank=True, properties=(NOW,)),
    RankProfile("learned", "the live funnel re-ranked by a learned ranker (LightGBM trees over learned_features' "
                "features)", NEAREST_NEIGHBOR, LEARNED_INPUTS, (RECALL_PHASE, LEARNED_PHASE), "learned_score",
                (CLOSENESS, *ranking.LEARNED_FEATURES, "live_score", "learned_score"), _learned,
                needs="a learned ranker (newsrec train-ranker) and the live fields", schema_file="news/learned.profile",
                second_phase_rerank=True, properties=(NOW,)),
    RankProfile("popularity", "the most clicked news: 100 × the smoothed CTR (plus nativeRank with text)",
                EVERY_NEWS, (), (POPULARITY_PHASE,), "relevance", ("nativeRank", "ctr"),
                lambda f, r: by_relevance(ranking.popularity(f["nativeRank"], f["ctr"]))),
    RankProfile("bm25", "BM25 over title and abstract", TEXT, (), (TEXT_PHASE,), "text_score",
                ("bm25(title)", "bm25(abstract)", "text_score"), lambda f, r: by_relevance(f["text_score"])),
    RankProfile("personalized_search", "BM25 plus the reader's ranking vector · the news vector", TEXT,
                ("user_ranking",), (PERSONALIZED_PHASE,), "personalized_score",
                ("text_score", "ranking_score", "personalized_score"),
                lambda f, r: by_relevance(f["personalized_score"])),
)}
ABSTRACT = ("base",)  # profiles of the schema that only others inherit from (never queried)

RECALL = "recall"  # the recall vectors' retrieval alone (ANN checks)
DEFAULT_RECOMMENDATION = "recommendation"
LIVE = "live"  # time in ranking: the impression's `now`, decayed counters, age and appeal (feed/ranking.py)
LEARNED = "learned"  # the live funnel with a learned ranker (pipeline/learned_ranker.py) as its second phase
FEATURE_LOG = "learned_features"  # the live funnel, the learned ranker's features as match-features (logging)
RERANKER = "unbert"  # the profile whose global phase runs the re-ranker (feed/reranking.py)
POPULARITY = "popularity"
TEXT_SEARCH = "bm25"
PERSONALIZED_SEARCH = "personalized_search"
FALLBACK = POPULARITY  # what an unknown reader gets instead of a nearest-neighbour profile


class UnknownProfileError(ValueError):
    """A profile name the table does not have (feed.queries turns it into a QueryError for users)."""


def profile(name: str) -> RankProfile:
    if name not in PROFILES:
        raise UnknownProfileError(f"unknown rank profile {name!r}; the profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def recommendation_profiles() -> tuple[str, ...]:
    """The profiles served as recommendations, in the table's order (the default first)."""
    return tuple(name for name, row in PROFILES.items() if row.recommends)


def nearest_neighbor_profiles() -> tuple[str, ...]:
    return tuple(name for name, row in PROFILES.items() if row.nearest_neighbor)


def with_derived(features: dict[str, np.ndarray], inputs: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """`features` (closeness, ranking_score, ctr, text_score, category_ctr, the live profile's `now` and
    LIVE_ATTRIBUTES where known) with the schema's derived functions added where their parts are there:
    recommendation_score, personalized_score, nearest_neighbor, nativeRank (the contract server's stand-in:
    text / (1 + text)), and live's live_ctr, age_hours and live_score (its decay inputs and weights from `inputs`,
    else the schema's defaults)."""
    inputs = inputs or {}
    derived = dict(features)
    if "now" in features:
        if "attribute(clicks_decayed)" in features and "attribute(impressions_decayed)" in features:
            derived["live_ctr"] = ranking.live_ctr(
                features["attribute(clicks_decayed)"], features["attribute(impressions_decayed)"], features["now"],
                inputs.get("decay_origin", DECAY_DEFAULTS["decay_origin"]),
                inputs.get("decay_rate", DECAY_DEFAULTS["decay_rate"]))
        if "attribute(published)" in features:
            derived["age_hours"] = ranking.age_hours(features["attribute(published)"], features["now"])
    if "live_ctr" in derived and "age_hours" in derived and "attribute(appeal)" in features:  # learned_features'
        derived.update({"log_live_ctr": np.log(derived["live_ctr"]), "log_age": np.log1p(derived["age_hours"]),
                        "appeal": features["attribute(appeal)"],
                        "log_impressions": np.log1p(ranking.decayed_count(
                            features["attribute(impressions_decayed)"], features["now"],
                            inputs.get("decay_origin", DECAY_DEFAULTS["decay_origin"]),
                            inputs.get("decay_rate", DECAY_DEFAULTS["decay_rate"])))})
    if all(name in derived for name in ("ranking_score", "live_ctr", "age_hours", "attribute(appeal)")):
        derived["live_score"] = ranking.live_score(derived["ranking_score"], derived["live_ctr"], derived["age_hours"],
                                                   derived["attribute(appeal)"],
                                                   {name: inputs[name] for name in ranking.LIVE_WEIGHTS if name in inputs})
    if "ranking_score" in features and "ctr" in features:
        derived["recommendation_score"] = ranking.recommendation_score(
            features["ranking_score"], features["ctr"], inputs.get("popularity_weight", 0.0))
    if "text_score" in features:
        derived.setdefault("nativeRank", features["text_score"] / (1 + features["text_score"]))
        if "ranking_score" in features:
            derived["personalized_score"] = ranking.personalized_search(
                features["text_score"], features["ranking_score"], inputs.get("personalization_weight", 1.0))
    if CLOSENESS in features:
        derived["nearest_neighbor"] = features[CLOSENESS]
    return derived
