"""Rank profile live (time in ranking): schemas/news.sd, feed/ranking.py and the fixture the Java test evaluates in
Vespa's container (vespa-app/.../LiveProfileTest.java) agree, and the contract server ranks with it at the time the
query sets (ranking.properties.vespa.now)."""
from __future__ import annotations

import json
import re
import time

import httpx
import numpy as np
import pytest

from live_profile_fixture import FIXTURE, fixture
from newsrec.contract_server import ContractServer
from newsrec.feed import profiles, ranking
from newsrec.feed.schema import SCHEMA_DIR, load_schemas


def stored() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_the_fixture_holds_what_feed_ranking_computes():
    """Regenerated from feed/ranking.py, the fixture is the file (`python3 tests/live_profile_fixture.py` rewrites
    it): the Java test's expected values cannot drift from Python's."""
    regenerated, saved = fixture(), stored()
    assert len(saved["rows"]) == 6 and saved["tolerance"] == regenerated["tolerance"]
    for new, old in zip(regenerated["rows"], saved["rows"], strict=True):
        assert {k: v for k, v in new.items() if k != "expected"} == {k: v for k, v in old.items() if k != "expected"}
        assert new["expected"] == pytest.approx(old["expected"], rel=1e-12, abs=1e-15), old["name"]


def test_the_fixture_is_realistic():
    """The origin and half-life a service uses, `now` days later in MIND's week, the counters sums of event weights
    (each impression worth exp(rate (t - origin)): at most that of an impression at `now`)."""
    for row in stored()["rows"]:
        query, attributes = row["query"], row["attributes"]
        assert query["decay_origin"] == 1573000000
        assert query["decay_rate"] * 3600 in (pytest.approx(np.log(2) / 6), pytest.approx(np.log(2) / 24))
        assert 1 <= (row["now"] - query["decay_origin"]) / 86400 <= 8
        most = row["impressions"] * ranking.event_weight(row["now"], query["decay_origin"], query["decay_rate"])
        assert 0 <= attributes["clicks_decayed"] <= attributes["impressions_decayed"] <= most
        assert (attributes["impressions_decayed"] > 0) == (row["impressions"] > 0)


def test_the_stand_ins_math_is_the_fixtures():
    """feed/profiles.py `with_derived` (what the embedded index and the contract server rank with) gives the fixture's
    values from the features Vespa would have: the live attributes, `now` and the query's inputs."""
    for row in stored()["rows"]:
        query, attributes = row["query"], row["attributes"]
        features = {"ranking_score": ranking.ranking_score(np.array([attributes["embedding"]]),
                                                           np.array(query["user_ranking"])),
                    "now": np.array([float(row["now"])]),
                    **{f"attribute({name})": np.array([float(attributes[name])])
                       for name in ("clicks_decayed", "impressions_decayed", "published", "appeal")}}
        derived = profiles.with_derived(features, {k: v for k, v in query.items() if k != "user_ranking"})
        for name in ("ranking_score", "live_ctr", "age_hours", "live_score"):
            assert derived[name][0] == pytest.approx(row["expected"][name], rel=1e-12), (row["name"], name)


def _expressions(profile: str) -> dict[str, str]:
    text = re.sub(r"#[^\n]*", "", (SCHEMA_DIR / "news.sd").read_text(encoding="utf-8"))
    body = text[text.index(f"rank-profile {profile} "):]
    body = body[:body.index("rank-profile", 1)]
    return {m.group(1): " ".join(m.group(2).split())
            for m in re.finditer(r"function\s+(\w+)\(\)\s*\{\s*expression:\s*([^\n]+)", body)}


@pytest.mark.parametrize("name, function", [("live_decay", ranking.decay), ("live_ctr", ranking.live_ctr),
                                            ("age_hours", ranking.age_hours), ("live_score", ranking.live_score)])
def test_each_live_function_in_the_schema_is_the_one_feed_ranking_documents(name: str, function):
    """The schema's expression, its constants written as feed/ranking.py's numbers, is the one the docstring of the
    Python function quotes."""
    expression = _expressions("live")[name]
    expression = (expression.replace("constant(ctr_prior_clicks)", f"{ranking.CTR_PRIOR_CLICKS:g}")
                  .replace("constant(ctr_prior_impressions)", f"{ranking.CTR_PRIOR_IMPRESSIONS:g}"))
    assert expression in " ".join(function.__doc__.split())


def test_the_profiles_inputs_and_their_defaults_are_pythons():
    text = re.sub(r"#[^\n]*", "", (SCHEMA_DIR / "news.sd").read_text(encoding="utf-8"))
    body = text[text.index("rank-profile live "):]
    inputs = re.search(r"inputs\s*\{([^}]*)\}", body).group(1)
    defaults = {m.group(1): float(m.group(2)) for m in re.finditer(r"query\((\w+)\)\s+double\s*:\s*(\S+)", inputs)}
    assert defaults == {**profiles.DECAY_DEFAULTS, **ranking.LIVE_DEFAULTS}
    assert set(load_schemas()["news"].profiles["live"]) == {"user_recall", "user_ranking", *defaults}
    second = re.search(r"second-phase\s*\{[^}]*total-rerank-count:\s*(\d+)", body)
    assert int(second.group(1)) == ranking.RERANK_COUNT


# ----------------------------------------------------------------------------- the contract server

@pytest.fixture(scope="module")
def server():
    with ContractServer(hold_s=1.0) as running:
        rows = stored()["rows"]
        for i, row in enumerate(rows):
            fields = {"news_id": f"N{i}", "embedding": {"values": row["attributes"]["embedding"]},
                      **{name: row["attributes"][name]
                         for name in ("published", "clicks_decayed", "impressions_decayed", "appeal")}}
            answer = httpx.post(f"{running.url}/document/v1/news/news/docid/N{i}", json={"fields": fields})
            assert answer.status_code == 200, answer.text
        bare = {"news_id": "N9", "embedding": {"values": rows[0]["attributes"]["embedding"]}}  # no live fields
        assert httpx.post(f"{running.url}/document/v1/news/news/docid/N9", json={"fields": bare}).status_code == 200
        yield running


def live_query(server, row: dict, **extra) -> dict[str, dict]:
    """Rank profile live over the fixture's news with the row's inputs; {news id: its hit}."""
    query = row["query"]
    params = {"yql": "select * from news where {totalTargetHits: 100}nearestNeighbor(embedding, user_recall)",
              "ranking": "live", "hits": 20, "input.query(user_recall)": json.dumps(query["user_ranking"]),
              "input.query(user_ranking)": json.dumps(query["user_ranking"]),
              **{f"input.query({name})": str(query[name])
                 for name in ("decay_origin", "decay_rate", *ranking.LIVE_WEIGHTS)}, **extra}
    answer = httpx.get(f"{server.url}/search/", params=params)
    assert answer.status_code == 200, answer.text
    return {hit["fields"]["news_id"]: hit for hit in answer.json()["root"]["children"]}


@pytest.mark.parametrize("i", range(6))
def test_the_contract_server_ranks_at_the_time_the_query_sets(server, i: int):
    row = stored()["rows"][i]
    hit = live_query(server, row, **{"ranking.properties.vespa.now": str(row["now"])})[f"N{i}"]
    features = hit["fields"]["matchfeatures"]
    assert set(features) == set(profiles.PROFILES[profiles.LIVE].match_features)
    for name in ("ranking_score", "live_ctr", "age_hours", "live_score"):
        assert features[name] == pytest.approx(row["expected"][name], rel=1e-9), name
    assert features["attribute(appeal)"] == row["attributes"]["appeal"]
    assert hit["relevance"] == pytest.approx(row["expected"]["live_score"], rel=1e-9)  # the second phase's


def test_the_alias_and_atoll_and_the_clock(server):
    row = stored()["rows"][1]
    aliased = live_query(server, row, **{"rankproperty.vespa.now": f"{row['now']}.9"})["N1"]  # atoll: whole seconds
    assert aliased["fields"]["matchfeatures"]["age_hours"] == pytest.approx(row["expected"]["age_hours"])
    before = time.time()
    clocked = live_query(server, row)["N1"]["fields"]["matchfeatures"]  # no vespa.now: the server's clock
    expected_age = (before - row["attributes"]["published"]) / 3600
    assert clocked["age_hours"] == pytest.approx(expected_age, abs=5 / 3600)


def test_a_news_item_without_live_fields_ranks_as_zeros(server):
    """The stand-ins read a missing live field as 0 (Vespa: NaN; the stream assigns 0 first, feed/live.py)."""
    row = stored()["rows"][0]
    features = live_query(server, row, **{"ranking.properties.vespa.now": str(row["now"])})["N9"]["fields"]["matchfeatures"]
    assert features["live_ctr"] == pytest.approx(ranking.CTR_PRIOR_CLICKS / ranking.CTR_PRIOR_IMPRESSIONS)
    assert features["age_hours"] == pytest.approx(row["now"] / 3600) and features["attribute(appeal)"] == 0
