"""Private users (issue #12) against the contract server, which emulates the Vespa application: from outside only
news are searchable (NewsOnlySearcher: another schema named is a 400, `sources *` is narrowed to news), and the
UserProfileSearcher's lookup matches user_id exactly, case included. vespa-app's UserPrivacyTest proves the same
contract on Vespa's in-process container."""
from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import news_document, user_document
from newsrec.feed.queries import CALLER_FIELDS, VESPA_RERANK_COUNTS
from newsrec.feed.vespa_backend import VespaBackend
from newsrec.contract_server import ContractServer
from newsrec.contract_server.yql import yql_sources

REFUSED = "Only schema 'news' can be searched; not user"
USER_YQL = "select * from user where true"
NEWS_COUNT = 12
ROOT = Path(__file__).resolve().parent.parent


def vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(64)] + [0.0]


@pytest.fixture(scope="module")
def server():
    with ContractServer(hold_s=1.0) as running:
        yield running


@pytest.fixture(scope="module")
def backend(server) -> VespaBackend:
    """News N0..N11 and one user, U1 (has read N0): no u1."""
    server.app.reset()
    client = VespaBackend(server.url, mode="sync", timeout_s=2.0)
    report = FeedReport()
    client.feed([news_document(f"N{i}", "sports" if i % 2 else "news", "sub", f"Story {i} about hawks",
                               "An abstract.", f"https://x/{i}", 20191101, i % 5, 10, vector(i))
                 for i in range(NEWS_COUNT)], "news", report)
    client.feed([user_document("U1", vector(101), vector(102), ["N0"])], "user", report)
    assert report.success, report.failed
    return client


def get(server: ContractServer, **params) -> tuple[int, dict]:
    return _send(Request(f"{server.url}/search/?{urlencode(params)}"))


def post(server: ContractServer, body: dict) -> tuple[int, dict]:
    return _send(Request(f"{server.url}/search/", data=json.dumps(body).encode(), method="POST",
                         headers={"Content-Type": "application/json"}))


def _send(request: Request) -> tuple[int, dict]:
    try:
        with urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


def message(body: dict) -> str:
    return " ".join(error["message"] for error in body["root"].get("errors", []))


def assert_no_user_document(body: dict) -> None:
    assert "id:news:user::" not in json.dumps(body)
    assert "has_read_items" not in json.dumps(body)


@pytest.mark.parametrize("params", [
    {"yql": USER_YQL},
    {"yql": USER_YQL, "user_id": "U1"},
    {"yql": "select * from sources news, user where true"},
    {"yql": "select * from news where true", "restrict": "user"},
    {"yql": "select * from news where true", "model.restrict": "news,user"},
    {"yql": "select * from news where true", "sources": "user"},
    {"yql": "select * from sources * where true", "restrict": "user"},
    {"user_id": "U1", "model.sources": "user"},
], ids=lambda params: " ".join(f"{k}={v}" for k, v in params.items()))
def test_a_query_naming_the_user_schema_is_refused(server, backend, params):
    status, body = get(server, **params)
    assert status == 400
    assert REFUSED in message(body)
    assert_no_user_document(body)


def test_a_posted_query_naming_the_user_schema_is_refused(server, backend):
    for body in ({"yql": USER_YQL, "hits": 400}, {"yql": "select * from news where true", "model": {"restrict": "user"}}):
        status, answer = post(server, body)
        assert status == 400, body
        assert REFUSED in message(answer)
        assert_no_user_document(answer)


def test_other_schemas_and_sources_are_refused_too(server, backend):
    status, body = get(server, yql="select * from category_ctr where true")
    assert (status, "not category_ctr" in message(body)) == (400, True)
    status, body = get(server, yql="select * from news where true", sources="mind")
    assert (status, "not mind" in message(body)) == (400, True)


@pytest.mark.parametrize("params", [
    {"yql": "select * from sources * where true"},
    {"yql": "select * from sources * where true", "sources": "user"},  # YQL `sources *` clears the parameter
    {"yql": "select * from sources news where true", "sources": "news", "restrict": "news"},
])
def test_a_query_naming_no_other_schema_gets_news_only(server, backend, params):
    status, body = get(server, hits=400, ranking="popularity", **params)
    assert status == 200, message(body)
    children = body["root"]["children"]
    assert len(children) == NEWS_COUNT
    assert {child["fields"]["sddocname"] for child in children} == {"news"}
    assert_no_user_document(body)


def test_a_user_id_differing_only_in_case_is_an_unknown_user(server, backend):
    status, body = get(server, user_id="u1")
    assert status == 404
    assert "Unknown user_id 'u1'" in message(body)
    _, fallback = get(server, user_id="u1", user_fallback="popularity", hits=5)
    _, unknown = get(server, user_id="U404", user_fallback="popularity", hits=5)
    assert fallback["root"]["children"] == unknown["root"]["children"]  # popularity, not U1's profile
    status, known = get(server, user_id="U1", hits=5)
    assert status == 200 and known["root"]["children"] != unknown["root"]["children"]


def test_the_client_still_recommends_and_searches(backend):
    recommended = [hit.news_id for hit in backend.recommend("U1", hits=5).hits]
    assert len(recommended) == 5 and "N0" not in recommended  # U1's read news excluded: U1's profile used
    assert [hit.news_id for hit in backend.recommend("u1", hits=5).hits] == \
        [hit.news_id for hit in backend.recommend("U404", hits=5).hits]
    assert len(backend.search("hawks", hits=NEWS_COUNT, user_id="U1")) == NEWS_COUNT
    assert len(backend.popular(hits=3)) == 3


def test_yql_sources():
    assert yql_sources("news") == {"news"}
    assert yql_sources("sources news, user") == {"news", "user"}
    assert yql_sources("sources *") == set()


# ----------------------------------------------------------------- no history oracle, no inflated budgets (issue #33)

SEARCHER = ROOT / "vespa-app" / "src" / "main" / "java" / "ai" / "newsrec" / "vespa" / "UserProfileSearcher.java"


@pytest.mark.parametrize("where", [
    "news_id in (" + ", ".join(f'"N{i}"' for i in range(NEWS_COUNT)) + ")",  # U1 read N0: the missing one would say so
    'news_id contains "N0"', "published > 0", "clicks > 0",
    "!(news_id contains \"N3\")",
])
def test_a_condition_that_singles_news_out_is_refused_with_user_id(server, backend, where):
    for fallback in ("error", "popularity"):
        status, body = get(server, user_id="U1", user_fallback=fallback, hits=NEWS_COUNT,
                           yql=f"select * from news where {where}")
        assert status == 400 and "A query with user_id takes conditions on" in message(body), (where, body)
        assert not body["root"].get("children")
    status, unknown = get(server, user_id="U404", yql=f"select * from news where {where}")
    assert status == 400  # an unknown user gets the same answer: nothing tells which users exist either


def test_conditions_on_filters_day_and_text_still_work_with_user_id(server, backend):
    status, body = get(server, user_id="U1", hits=NEWS_COUNT,
                       yql='select * from news where category contains "sports" and date > 20191001')
    assert status == 200, message(body)
    assert {child["fields"]["category"] for child in body["root"]["children"]} == {"sports"}


@pytest.mark.parametrize("parameter", VESPA_RERANK_COUNTS)
def test_vespas_own_rerank_counts_are_refused_with_user_id(server, backend, parameter):
    status, body = get(server, user_id="U1", **{parameter: 1_000_000})
    assert status == 400 and "is set by this searcher on a personalized query" in message(body)


def test_the_python_lists_are_the_searchers():
    java = SEARCHER.read_text(encoding="utf-8")
    assert "CALLER_FIELDS = List.of(" + ", ".join(f'"{f}"' for f in CALLER_FIELDS) + ")" in java
    for parameter in VESPA_RERANK_COUNTS:
        assert f'"{parameter}"' in java or parameter == "ranking.rerankCount"  # Vespa's alias of the second phase's
