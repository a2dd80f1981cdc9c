"""`newsrec serve` at the HTTP level: the page and its JSON endpoints over the embedded index and over Vespa's
HTTP API (the contract server); bad input is a message on the page and a 4xx from the API; the page offers only
the rank profiles the index serves and says, with scores that tell adjacent hits apart, why each hit is where it is."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.queries import MAX_HITS
from newsrec.cli import feed_main
from newsrec.web.app import ReaderAccess, create_app
from newsrec.web.service import date_text, decimals, missing_for, ordinal


@pytest.fixture(scope="module")
def backend(fed: Path) -> LocalBackend:
    return LocalBackend(fed)


@pytest.fixture(scope="module")
def client(backend: LocalBackend) -> TestClient:
    return TestClient(create_app(backend))


@pytest.fixture(scope="module")
def reader(backend: LocalBackend) -> str:
    """A user with a history of at least three news."""
    return next(u for u in backend.user_ids(10_000) if len(backend.read_items(u)) >= 3)


def test_the_page_says_it_is_not_vespa_and_lists_readers_and_popular_news(client: TestClient, backend):
    page = client.get("/")
    assert page.status_code == 200
    assert "not Vespa" in page.text and str(backend.directory) in page.text
    assert all(f"?user={user}" in page.text for user in backend.user_ids(12))
    popular = client.get("/api/popular", params={"hits": 5}).json()["hits"]
    assert [h["news_id"] for h in popular] == [h.news_id for h in backend.popular(5)]
    assert all(f'data-news-id="{h["news_id"]}"' in page.text for h in popular)


def test_a_readers_history_is_their_latest_reads_newest_first(client: TestClient, backend, reader: str):
    body = client.get(f"/api/users/{reader}").json()
    read = backend.read_items(reader)
    assert body["read"] == len(read)
    assert [h["news_id"] for h in body["latest"]] == list(reversed(read[-10:]))
    assert body["latest"][0]["title"] == backend.docs["news"][read[-1]]["title"]


def test_recommendations_carry_each_phases_score(client: TestClient, backend, reader: str):
    body = client.get("/api/recommend", params={"user": reader, "hits": 8}).json()
    expected = backend.recommend(reader, 8).hits
    assert [h["news_id"] for h in body["hits"]] == [h.news_id for h in expected]
    assert not set(backend.read_items(reader)) & {h["news_id"] for h in body["hits"]}
    for row, hit in zip(body["hits"], expected):
        scores, features = row["scores"], hit.fields["matchfeatures"]
        assert scores["recall_closeness"] == pytest.approx(features["closeness(field,embedding)"])
        assert scores["second_phase"] == pytest.approx(features["ranking_score"])
        assert scores["global_phase"] is None  # the re-ranking profile is off
        news = backend.docs["news"][row["news_id"]]
        assert scores["ctr_prior"] == pytest.approx((news["clicks"] + 1) / (news["impressions"] + 25))
    page = client.get("/", params={"user": reader, "hits": 8})
    assert page.status_code == 200 and 'id="recommendations"' in page.text
    assert all(f'data-news-id="{h.news_id}"' in page.text for h in expected)


def test_the_category_filter_changes_the_recommendations(client: TestClient, reader: str):
    everything = client.get("/api/recommend", params={"user": reader, "hits": 20}).json()["hits"]
    shown = {h["category"] for h in everything}
    category = next(c["category"] for c in client.get("/api/categories").json()["categories"]
                    if c["category"] not in shown)
    filtered = client.get("/api/recommend", params={"user": reader, "hits": 20, "category": category}).json()["hits"]
    assert filtered and {h["category"] for h in filtered} == {category}
    assert not {h["news_id"] for h in filtered} & {h["news_id"] for h in everything}
    page = client.get("/", params={"user": reader, "category": category}).text
    assert page.count(f'data-category="{category}"') == page.count('data-category="')


def test_search_with_matches_per_category_personalized_and_by_date(client: TestClient, backend, reader: str):
    word = backend.docs["news"][next(iter(backend.docs["news"]))]["title"].split()[0]
    body = client.get("/api/search", params={"q": word, "hits": 5}).json()
    assert body["hits"] and sum(c["matches"] for c in body["categories"]) >= len(body["hits"])
    assert [h["news_id"] for h in body["hits"]] == [h.news_id for h in backend.search(word, 5)]
    mine = client.get("/api/search", params={"q": word, "hits": 5, "user": reader}).json()["hits"]
    assert [h["news_id"] for h in mine] == [h.news_id for h in backend.search(word, 5, reader)]
    for row in mine:  # personalized_search = text_score + 1 · ranking_score, both shown
        assert row["relevance"] == pytest.approx(row["scores"]["text_score"] + row["scores"]["second_phase"], abs=1e-4)
    dated = client.get("/api/search", params={"sort": "date", "hits": 20}).json()["hits"]
    assert [h["date"] for h in dated] == sorted((h["date"] for h in dated), reverse=True)
    page = client.get("/", params={"q": word})
    assert page.status_code == 200 and 'id="search-results"' in page.text and 'id="category-matches"' in page.text


def test_an_unknown_reader_is_a_404_from_the_api_and_the_fallback_on_the_page(client: TestClient):
    for path in ("/api/recommend?user=U_nobody", "/api/users/U_nobody", "/api/search?q=news&user=U_nobody"):
        answer = client.get(path)
        assert answer.status_code == 404 and "unknown user 'U_nobody'" in answer.json()["error"], path
    page = client.get("/", params={"user": "U_nobody"})
    assert page.status_code == 404
    assert 'id="fallback"' in page.text and "unknown user" in page.text and 'id="popular"' in page.text


@pytest.mark.parametrize("params, words", [
    ({"user": "<script>alert(1)</script>"}, "user id"),
    ({"user": "U1", "hits": str(MAX_HITS + 1)}, f"1 to {MAX_HITS}"),
    ({"user": "U1", "hits": "ten"}, "whole number"),
    ({"user": "U1", "hits": "\u00b2"}, "whole number"),  # str.isdigit() is true, int() fails
    ({"user": "U1", "hits": "9" * 5000}, "whole number"),  # beyond int()'s 4,300 digits
    ({"user": "U1", "ranking": "secret"}, "use one of"),
    ({"q": "x" * 201}, "at most 200"),
    ({"user": "U1", "category": "no-such-category"}, "does not exist"),
])
def test_bad_input_is_a_400_with_a_message_on_the_page_too(client: TestClient, reader: str, params, words):
    params = {k: (reader if v == "U1" else v) for k, v in params.items()}
    endpoint = "/api/search" if "q" in params else "/api/recommend"
    answer = client.get(endpoint, params=params)
    assert answer.status_code == 400 and words in answer.json()["error"]
    page = client.get("/", params=params)
    assert page.status_code == 400 and 'role="alert"' in page.text and words in page.text
    assert "<script>alert" not in page.text  # escaped, never echoed as markup


def test_the_page_over_vespa_says_vespa_and_lists_its_users(tiny_demo: Path, trained: Path, tmp_path: Path):
    from newsrec.feed.vespa_backend import VespaBackend
    from newsrec.contract_server import ContractServer
    from newsrec.pipeline.mind import read_mind

    with ContractServer(hold_s=1.5) as server:
        result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", server.url,
                                                "--state", str(tmp_path / "state")])
        assert result.exit_code == 0, result.output
        with VespaBackend(server.url) as vespa:
            client = TestClient(create_app(vespa))
            users = client.get("/api/users", params={"limit": 5}).json()["users"]
            assert len(users) == 5 and set(users) <= set(read_mind(tiny_demo).users)
            reader = next(u for u in users if vespa.read_items(u))
            page = client.get("/", params={"user": reader})
            assert page.status_code == 200 and "Vespa at" in page.text and "not Vespa" not in page.text
            hits = client.get("/api/recommend", params={"user": reader}).json()["hits"]
            assert hits and all(h["scores"]["recall_closeness"] is not None for h in hits)
            assert "unbert" not in vespa.rank_profiles()  # the contract server has no re-ranker
            refused = client.get("/api/recommend", params={"user": reader, "ranking": "unbert"})
            assert refused.status_code == 400 and vespa.description in refused.json()["error"]
            assert "newsrec app build --reranker DIR" in refused.json()["error"]
            history = client.get(f"/api/users/{reader}").json()["latest"]
            assert [h["news_id"] for h in history] == list(reversed(vespa.read_items(reader)[-10:]))


def test_serve_is_a_command_and_refuses_an_empty_index(tmp_path: Path):
    from newsrec.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--endpoint" in result.output and "--port" in result.output
    empty = CliRunner().invoke(main, ["serve", "--index", str(tmp_path / "none"), "--port", "0"])
    assert empty.exit_code == 1 and "holds no news" in empty.output and "newsrec-feed" in empty.output


def ranking_options(page: str) -> list[str]:
    select = page[page.index('<select id="ranking"'):]
    return re.findall(r'<option value="([^"]*)"', select[:select.index("</select>")])


def printed_deciding_scores(page: str) -> list[str]:
    """The text of each recommended hit's cell marked as deciding its place, in page order."""
    table = page[page.index('id="recommendations"'):]
    rows = table[:table.index("</table>")].split('<tr class="hit"')[1:]
    return [re.search(r'<td class="num decides"[^>]*>([^<]*)</td>', row).group(1).strip() for row in rows]


def test_a_profile_the_index_cannot_serve_is_not_offered_and_a_400_naming_the_index(client: TestClient, backend,
                                                                                     reader: str):
    assert backend.rank_profiles() == ("recommendation", "recommendation_with_global_category_ctr", "live")  # no re-ranker
    page = client.get("/", params={"user": reader})
    assert ranking_options(page.text) == list(backend.rank_profiles())
    assert 'id="unserved"' in page.text and "Ranking unbert is not offered" in page.text
    answer = client.get("/api/recommend", params={"user": reader, "ranking": "unbert"})
    error = answer.json()["error"]
    assert answer.status_code == 400 and backend.description in error and "lacks a re-ranker" in error
    assert "newsrec-feed MIND_DIR --reranker DIR" in error and "use one of" not in error
    page = client.get("/", params={"user": reader, "ranking": "unbert"})
    assert page.status_code == 400 and 'role="alert"' in page.text
    assert "newsrec-feed MIND_DIR --reranker DIR" in page.text
    assert "newsrec app build --reranker DIR" in " ".join(missing_for("unbert", is_vespa=True))


@pytest.mark.parametrize("ranking, filtered, deciding", [
    ("recommendation", False, "second_phase"),
    ("recommendation_with_global_category_ctr", False, "relevance"),
    ("recommendation_with_global_category_ctr", True, "relevance"),  # one category: one category CTR for all
])
def test_the_deciding_score_differs_between_consecutive_hits_as_printed(client: TestClient, reader: str, ranking,
                                                                         filtered, deciding):
    params = {"user": reader, "ranking": ranking, "hits": 10}
    if filtered:
        params["category"] = client.get("/api/recommend", params=params).json()["hits"][0]["category"]
    body = client.get("/api/recommend", params=params).json()
    assert len(body["hits"]) >= 5 and body["decided_by"] == deciding
    assert [c["key"] for c in body["columns"] if c["decides"]] == [deciding]
    printed = printed_deciding_scores(client.get("/", params=params).text)
    assert len(printed) == len(body["hits"])
    assert all(a != b for a, b in zip(printed, printed[1:])), printed
    assert [float(v) for v in printed] == sorted((float(v) for v in printed), reverse=True)
    for position, (row, value) in enumerate(zip(body["hits"], printed), 1):
        assert row["decided_by"] == deciding
        assert row["explanation"].startswith(f"{ordinal(position)} by ") and value in row["explanation"]


def test_a_column_only_for_a_phase_the_profile_has(client: TestClient, reader: str):
    for ranking, keys in (("recommendation", ["recall_closeness", "second_phase"]),
                          ("recommendation_with_global_category_ctr", ["recall_closeness", "category_ctr",
                                                                       "relevance"])):
        body = client.get("/api/recommend", params={"user": reader, "ranking": ranking}).json()
        assert [c["key"] for c in body["columns"]] == keys and all(c["meaning"] for c in body["columns"])
        assert all(h["scores"]["global_phase"] is None for h in body["hits"])
        page = client.get("/", params={"user": reader, "ranking": ranking}).text
        assert 'data-key="global_phase"' not in page and "cross-encoder" not in page.split('id="legend"')[1]
        headers = re.findall(r'<th class="num[^"]*" data-key="([^"]+)"', page)
        assert headers == keys and 'id="legend"' in page


def test_dates_are_printed_as_dates_and_kept_as_ints_in_json(client: TestClient, reader: str):
    hits = client.get("/api/recommend", params={"user": reader}).json()["hits"]
    assert all(isinstance(h["date"], int) for h in hits)
    page = client.get("/", params={"user": reader}).text
    for date in {h["date"] for h in hits}:
        assert f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}" in page
        assert str(date) not in page
    assert date_text(20191114) == "2019-11-14" and date_text(None) == ""


def test_the_reader_placeholder_is_a_reader_of_the_index(client: TestClient, backend):
    placeholder = re.search(r'placeholder="user id, e\.g\. ([^"]+)"', client.get("/").text).group(1)
    assert placeholder == backend.user_ids(1)[0] and backend.read_items(placeholder) is not None


def test_decimals_grow_until_adjacent_distinct_values_print_differently():
    assert decimals([2.4305, 2.2408, None, 2.1803]) == 4
    assert decimals([0.2103414, 0.2103286, 0.2103286]) == 5
    assert decimals([0.011087428, 0.011086751]) == 7
    assert decimals([1e-12, 2e-12]) == 8  # at most 8
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


# ----------------------------------------------------------------- readers beyond loopback (issue #33)

TOKEN = "a-reader-token-of-32-characters!"


def test_beyond_loopback_without_a_token_no_reader_is_shown(backend, reader: str):
    closed = TestClient(create_app(backend, ReaderAccess(token=None, loopback=False)))
    for path in ("/api/users", f"/api/users/{reader}", f"/api/recommend?user={reader}",
                 f"/api/search?q=a&user={reader}"):
        answer = closed.get(path)
        assert answer.status_code == 403 and "reader pages are off" in answer.json()["error"], path
        assert reader not in answer.text
    page = closed.get("/", params={"user": reader})
    assert page.status_code == 403 and "reader pages are off" in page.text and 'id="popular"' in page.text
    home = closed.get("/")
    assert home.status_code == 200 and reader not in home.text
    assert closed.get("/api/search", params={"q": "news"}).status_code != 403  # search and popular stay open
    assert closed.get("/api/popular").status_code == 200


def test_with_a_token_readers_need_it(backend, reader: str):
    guarded = TestClient(create_app(backend, ReaderAccess(token=TOKEN, loopback=False)))
    assert guarded.get("/api/users").status_code == 403
    assert guarded.get("/api/users", headers={"Authorization": "Bearer wrong"}).status_code == 403
    answer = guarded.get("/api/users", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["users"]
    assert guarded.get("/", params={"user": reader}, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_serve_reads_the_token_from_a_file_or_the_environment_never_the_command_line(tmp_path, monkeypatch):
    import click

    from newsrec.cli.serving import READER_TOKEN, is_loopback, reader_token, serve

    assert not any(option.name == "reader_token" for option in serve.params)  # only a file or the environment
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert reader_token(str(path)) == TOKEN
    monkeypatch.setenv(READER_TOKEN, TOKEN)
    assert reader_token(None) == TOKEN
    monkeypatch.setenv(READER_TOKEN, "short")
    with pytest.raises(click.ClickException, match="at least 16"):
        reader_token(None)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_port_0_listens_on_a_real_port():
    from newsrec.cli.serving import bound_socket

    sock = bound_socket("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_a_running_page_follows_each_feed(fed: Path, tmp_path):
    import shutil

    from newsrec.feed.backend import FeedReport

    index = shutil.copytree(fed, tmp_path / "index")
    page = TestClient(create_app(LocalBackend(index)))
    assert page.get("/api/search", params={"q": "zebrafinch"}).json()["hits"] == []
    writer = LocalBackend(index)  # another process's feed: a new generation
    news_id, fields = next(iter(writer.docs["news"].items()))
    report = FeedReport()
    writer.feed([{"id": "id:news:news::NZEBRA", "fields": {**fields, "news_id": "NZEBRA", "title": "zebrafinch"}}],
                "news", report)
    assert report.success, report.failed
    hits = page.get("/api/search", params={"q": "zebrafinch"}).json()["hits"]
    assert [hit["news_id"] for hit in hits] == ["NZEBRA"]


def test_bidi_and_control_characters_of_a_title_reach_neither_the_page_nor_the_json(fed: Path, tmp_path):
    import shutil

    from newsrec.cli.output import format_hits
    from newsrec.feed.backend import FeedReport

    index = shutil.copytree(fed, tmp_path / "index")
    writer = LocalBackend(index)
    news_id, fields = next(iter(writer.docs["news"].items()))
    report = FeedReport()
    writer.feed([{"id": "id:news:news::NRLO", "fields": {**fields, "news_id": "NRLO",
                                                       "title": "quokka \u202egnp.exe\u200b\x1b[31m"}}], "news", report)
    assert report.success, report.failed
    page = TestClient(create_app(LocalBackend(index)))
    body = page.get("/api/search", params={"q": "quokka"})
    html = page.get("/", params={"q": "quokka"}).text
    hits = LocalBackend(index).search("quokka", 5)
    for shown in (body.text, json.dumps(body.json(), ensure_ascii=False), html, format_hits(hits, True),
                  format_hits(hits, False)):
        assert "\u202e" not in shown and "\\u202e" not in shown and "\u200b" not in shown and "\x1b" not in shown
    assert body.json()["hits"][0]["title"] == "quokka gnp.exe[31m"
