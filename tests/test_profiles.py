"""The one table of rank profiles (feed/profiles.py) agrees with schemas/ and the application's searcher, and its
math orders hits as each profile says."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from newsrec.feed import profiles, ranking
from newsrec.feed.profiles import (ABSTRACT, CLOSENESS, NEAREST_NEIGHBOR, PROFILES, RERANKER, nearest_neighbor_profiles,
                                   recommendation_profiles, with_derived)
from newsrec.feed.schema import SCHEMA_DIR, load_schemas

SEARCHER = (Path(__file__).resolve().parent.parent / "vespa-app" / "src" / "main" / "java" / "ai" / "newsrec" / "vespa"
            / "UserProfileSearcher.java")


@pytest.fixture(scope="module")
def news():
    return load_schemas()["news"]


def test_the_table_has_every_profile_of_the_schema_and_no_other(news):
    assert set(PROFILES) | set(ABSTRACT) == set(news.profiles)


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_is_written_where_the_table_says(name: str):
    text = (SCHEMA_DIR / PROFILES[name].schema_file).read_text(encoding="utf-8")
    assert re.search(rf"^\s*rank-profile\s+{name}\b", text, re.MULTILINE)


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_declares_the_inputs_the_table_says_it_needs(name: str, news):
    assert set(PROFILES[name].inputs) <= set(news.profiles[name])


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_has_the_match_features_of_the_schema(name: str, news):
    assert PROFILES[name].match_features == news.match_features[name]


def test_the_searchers_nearest_neighbour_profiles_are_the_tables():
    """UserProfileSearcher adds nearestNeighbor(embedding, user_recall) for these (and falls back to popularity
    for an unknown user): its list must be the table's."""
    listed = re.search(r"NEAREST_NEIGHBOR_PROFILES =\s*Set\.of\(([^)]*)\)", SEARCHER.read_text(encoding="utf-8"))
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == set(nearest_neighbor_profiles())
    assert f'RERANKER_PROFILE = "{RERANKER}"' in SEARCHER.read_text(encoding="utf-8")


def test_recommendations_retrieve_by_nearest_neighbours_the_default_first():
    assert recommendation_profiles()[0] == profiles.DEFAULT_RECOMMENDATION
    assert all(PROFILES[name].retrieval == NEAREST_NEIGHBOR for name in recommendation_profiles())
    assert PROFILES[RERANKER].global_phase == "reranker" and PROFILES[RERANKER].needs


NOW = 1573257600  # 2019-11-09 00:00 UTC
ORIGIN, RATE = 1573000000.0, math.log(2) / (6 * 3600)  # the decayed counters' origin and 6-hour half-life


def toy_features(inputs: dict | None = None) -> dict[str, np.ndarray]:
    """Five news: closeness falls, ranking_score rises, CTRs and texts vary; the live attributes (decayed counts,
    publication times, appeal) at NOW."""
    weight = ranking.event_weight(NOW - 6 * 3600, ORIGIN, RATE)  # events one half-life before NOW
    features = with_derived({CLOSENESS: np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
                         "distance(field,embedding)": np.array([0.11, 0.25, 0.43, 0.67, 1.0]),
                         "ranking_score": np.array([0.1, 0.2, 0.3, 0.4, 0.5]),
                         "ctr": np.array([0.04, 0.10, 0.02, 0.08, 0.06]),
                         "category_ctr": np.array([0.05, 0.01, 0.05, 0.20, 0.05]),
                         "text_score": np.array([0.0, 2.0, 1.0, 0.0, 3.0]),
                         "now": np.full(5, float(NOW)),
                         "attribute(clicks_decayed)": weight * np.array([9.0, 0.0, 1.0, 3.0, 0.0]),
                         "attribute(impressions_decayed)": weight * np.array([20.0, 50.0, 30.0, 10.0, 0.0]),
                         "attribute(published)": NOW - 3600 * np.array([2.0, 30.0, 5.0, 80.0, 0.0]),
                         "attribute(appeal)": np.array([0.3, -0.2, 0.1, 0.0, 0.5])},
                        {"decay_origin": ORIGIN, "decay_rate": RATE, **(inputs or {})})
    # the learned profile's features (any values: its math orders by learned_score, here rising as ranking_score)
    features.update({name: np.linspace(0.1, 0.5, 5) for name in ranking.LEARNED_FEATURES if name not in features})
    return features | {"learned_score": features["ranking_score"].copy()}


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profiles_math_orders_by_the_score_it_decides_by(name: str):
    features = toy_features()
    relevance, order = PROFILES[name].rank(features, 3)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]
    assert set(PROFILES[name].match_features) - {"bm25(title)", "bm25(abstract)"} <= set(features)
    if PROFILES[name].second_phase_rerank:  # the best 3 by closeness, re-ranked by the second phase, then the rest
        assert order.tolist() == [2, 1, 0, 3, 4]
    else:
        assert np.all(np.diff(relevance[order]) <= 0)


def test_the_category_ctr_profile_is_closeness_times_the_category_ctr():
    relevance, order = PROFILES["recommendation_with_global_category_ctr"].rank(toy_features(), 3)
    assert relevance == pytest.approx([0.045, 0.008, 0.035, 0.12, 0.025]) and order.tolist() == [3, 0, 2, 4, 1]


def test_the_live_profile_is_the_funnel_re_ranked_by_live_score():
    """Default weights: live_score = ranking_score (the recommendation profile's order); with weights, the best 3 by
    closeness are re-ranked by feed/ranking.py's live_score, the decayed counts read at `now`."""
    features = toy_features()
    assert features["live_score"] == pytest.approx(features["ranking_score"])
    assert features["live_ctr"] == pytest.approx([(4.5 + 1) / (10 + 25), 1 / (25 + 25), (0.5 + 1) / (15 + 25),
                                                  (1.5 + 1) / (5 + 25), 1 / 25])  # halved: one half-life ago
    assert features["age_hours"] == pytest.approx([2, 30, 5, 80, 0])
    weights = {"w_user": 0.5, "w_ctr": 1.0, "w_recency": -0.3, "w_appeal": 2.0}
    features = toy_features(weights)
    expected = (0.5 * features["ranking_score"] + np.log(features["live_ctr"]) - 0.3 * np.log1p(features["age_hours"])
                + 2.0 * features["attribute(appeal)"])
    assert features["live_score"] == pytest.approx(expected)
    relevance, order = PROFILES[profiles.LIVE].rank(features, 3)
    best = sorted(range(3), key=lambda i: -expected[i])
    assert order.tolist() == best + [3, 4] and relevance[:3] == pytest.approx(expected[:3])
    assert PROFILES[profiles.LIVE].properties == (profiles.NOW,) == ("vespa.now",)
