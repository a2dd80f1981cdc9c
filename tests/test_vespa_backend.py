"""Contract tests of VespaBackend against the local Vespa stand-in (newsrec/contract_server/).

Every request our code sends is checked by the server against Vespa's documented API and
schemas/*.sd; the server also injects 429 / 5xx / timeouts / 400 to test retries and accounting.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from newsrec.feed.backend import BackendError, FeedReport
from newsrec.feed.documents import category_ctr_document, news_document, user_document
from newsrec.feed.queries import MAX_LISTED, QueryError
from newsrec.feed.vespa_backend import VespaBackend, parse_document_id, write_jsonl
from newsrec.contract_server import ContractServer

MODES = ("async", "sync")
HTTP_VERSION = {"async": "2", "sync": "1.1"}
CATEGORIES = ("sports", "news", "finance")


def vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(64)] + [0.0]


def news_docs(count: int, start: int = 0) -> list[dict]:
    return [news_document(f"N{i}", CATEGORIES[i % 3], "sub", f"Story {i} about hawks" if i % 2 else f"Story {i}",
                          "An abstract.", f"https://x/{i}", 20191101, i % 7, 10, vector(i))
            for i in range(start, start + count)]


def users() -> list[dict]:
    return [user_document("U1", vector(1001), vector(1002), ["N0", "N3"]),
            user_document("U2", vector(1003), vector(1004), [])]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


@pytest.fixture(scope="module")
def server():
    with ContractServer(hold_s=1.5) as running:
        yield running


@pytest.fixture
def vespa(server):
    server.app.reset()
    return server


SHORT_TIMEOUT = {"timeout_s": 0.5}  # only where a client timeout is the point: a loaded CI runner answers late


def make_backend(server: ContractServer, mode: str = "async", **options) -> VespaBackend:
    """A client timeout no fault-free request reaches even on a loaded machine, so retries count only faults."""
    settings = {"timeout_s": 5.0, "backoff_s": 0.05, "max_backoff_s": 0.2, **options}
    return VespaBackend(server.url, mode=mode, **settings)


def requests_for(server: ContractServer, doc_id: str) -> list:
    namespace, doctype, local_id = parse_document_id(doc_id)
    path = f"/document/v1/{namespace}/{doctype}/docid/{quote(local_id)}"
    return [r for r in server.requests if r.path == path]


def feed(backend: VespaBackend, documents: list[dict], doctype: str, **options) -> FeedReport:
    report = FeedReport()
    backend.feed(documents, doctype, report, **options)
    return report


# ----------------------------------------------------------------------------- feeding

@pytest.mark.parametrize("mode", MODES)
def test_feed_sends_every_document_as_vespa_expects(vespa, mode):
    news, people, ctr = news_docs(30), users(), [category_ctr_document({"sports": 0.05, "news": 0.02})]
    backend = make_backend(vespa, mode)
    for documents, doctype in ((news, "news"), (people, "user"), (ctr, "category_ctr")):
        report = feed(backend, documents, doctype)
        assert (report.sent, report.ok, report.failed, report.retries) == (len(documents), len(documents), [], 0)
    for document in news + people + ctr:
        (request,) = requests_for(vespa, document["id"])
        assert (request.method, request.http_version, request.status) == ("POST", HTTP_VERSION[mode], 200)
        assert request.params == {"timeout": "10s"}  # server-side timeout: twice the client's 5 s, both modes
        assert request.body == {"fields": document["fields"]}  # gzip-compressed above 1 KiB: decoded by the server
        assert vespa.documents[document["id"]] == document["fields"]
    assert vespa.documents["id:news:news::N1"]["embedding"] == {"values": vector(1)}
    assert vespa.documents["id:news:category_ctr::global"]["ctrs"] == {"cells": {"news": 0.02, "sports": 0.05}}
    assert set(vespa.put_counts.values()) == {1}


def test_feed_url_encodes_document_ids(vespa):
    document = news_document("N#1 x", "news", "sub", "t", "a", "u", 20191101, 1, 2, vector(5))
    assert feed(make_backend(vespa), [document], "news").ok == 1
    assert [r.path for r in vespa.requests] == ["/document/v1/news/news/docid/N%231%20x"]
    assert "id:news:news::N#1 x" in vespa.documents


@pytest.mark.parametrize("mode", MODES)
def test_retryable_faults_are_retried_and_nothing_is_lost(vespa, mode):
    documents = news_docs(12)
    faults = {"id:news:news::N1": [429, 429], "id:news:news::N2": [503], "id:news:news::N3": [500, 502],
              "id:news:news::N4": ["timeout"]}
    for doc_id, plan in faults.items():
        vespa.inject(doc_id, plan)
    report = feed(make_backend(vespa, mode), documents, "news")
    assert (report.sent, report.ok, report.failed, report.retries) == (12, 12, [], 6)
    assert report.success
    for doc_id, plan in faults.items():
        assert [r.fault or r.status for r in requests_for(vespa, doc_id)] == plan + [200]
    assert sorted(vespa.put_counts) == sorted(d["id"] for d in documents)
    assert set(vespa.put_counts.values()) == {1}


@pytest.mark.parametrize("mode", MODES)
def test_bad_request_is_reported_with_id_and_vespa_message_not_retried(vespa, mode):
    documents = news_docs(5)
    documents[3]["fields"]["colour"] = "red"  # not in schemas/news.sd
    vespa.inject("id:news:news::N1", [400])
    report = feed(make_backend(vespa, mode), documents, "news")
    assert not report.success
    assert (report.sent, report.ok, report.retries) == (5, 3, 0)
    failed = dict((doc_id, (status, message)) for doc_id, status, message in report.failed)
    assert failed["id:news:news::N1"] == (400, "Injected bad request")
    assert failed["id:news:news::N3"][0] == 400
    assert "No field 'colour' in the structure of type 'news'" in failed["id:news:news::N3"][1]
    assert len(requests_for(vespa, "id:news:news::N1")) == len(requests_for(vespa, "id:news:news::N3")) == 1
    assert "FAILED id:news:news::N3: HTTP 400" in report.summary()


@pytest.mark.parametrize("mode", MODES)
def test_5xx_beyond_max_attempts_fails_with_its_status(vespa, mode):
    vespa.inject("id:news:news::N2", [503] * 10)
    report = feed(make_backend(vespa, mode, max_attempts=3), news_docs(4), "news")
    assert report.failed == [("id:news:news::N2", 503, "Service unavailable: no content node available (injected)")]
    assert (report.ok, report.retries) == (3, 2)
    assert [r.status for r in requests_for(vespa, "id:news:news::N2")] == [503, 503, 503]


@pytest.mark.parametrize("mode", MODES)
def test_persistent_timeouts_fail_as_timeouts(vespa, mode):
    """Both modes: the client's own timeout (0.5 s, pyvespa's 599) comes before the server-side one (1 s); the
    document is looked up before it is reported failed."""
    vespa.inject("id:news:news::N1", ["timeout", "timeout"])
    report = feed(make_backend(vespa, mode, max_attempts=2, **SHORT_TIMEOUT), news_docs(2)[1:], "news")
    ((doc_id, status, message),) = report.failed
    assert (doc_id, report.ok, report.retries) == ("id:news:news::N1", 0, 1)
    assert (status, message) == (599, "Exception during feed_data_point: "
                                      "timed out after 0.5 s waiting for the response headers")
    assert [r.method for r in requests_for(vespa, doc_id)] == ["POST", "POST", "GET"]


@pytest.mark.parametrize("mode", MODES)
def test_unreachable_vespa_fails_every_document_as_transport_error(mode):
    from newsrec.contract_server.server import free_port

    backend = VespaBackend(f"http://127.0.0.1:{free_port()}", mode=mode, max_attempts=2, backoff_s=0.01)
    report = feed(backend, news_docs(3), "news")
    assert (report.sent, report.ok, report.retries) == (3, 0, 3)
    assert {(status, doc_id) for doc_id, status, _ in report.failed} == {(599, f"id:news:news::N{i}") for i in range(3)}


def interrupted(documents: list[dict], after: int, error: BaseException):
    yield from documents[:after]
    raise error


@pytest.mark.parametrize("mode", MODES)
def test_interrupt_and_resume_feeds_each_document_exactly_once(vespa, mode, tmp_path):
    documents, journal = news_docs(20), tmp_path / "news.journal"
    backend = make_backend(vespa, mode)
    vespa.inject("id:news:news::N5", [503])  # in flight when the source fails: finished before re-raising
    first = FeedReport()
    with pytest.raises(OSError, match="disk gone"):
        backend.feed(interrupted(documents, 7, OSError("disk gone")), "news", first, journal=journal)
    assert (first.sent, first.ok, first.retries, first.failed) == (7, 7, 1, [])
    assert sorted(journal.read_text().split()) == sorted(f"N{i}" for i in range(7))
    second = FeedReport()
    backend.feed(documents, "news", second, journal=journal)
    assert (second.already_fed, second.sent, second.ok) == (7, 13, 13)
    assert sorted(vespa.put_counts) == sorted(d["id"] for d in documents)
    assert set(vespa.put_counts.values()) == {1}
    assert sorted(journal.read_text().split()) == sorted(f"N{i}" for i in range(20))


def test_keyboard_interrupt_from_the_source_then_resume(vespa, tmp_path):
    documents, journal = news_docs(10), tmp_path / "news.journal"
    backend = make_backend(vespa)
    with pytest.raises(KeyboardInterrupt):
        backend.feed(interrupted(documents, 4, KeyboardInterrupt()), "news", FeedReport(), journal=journal)
    report = feed(backend, documents, "news", journal=journal)
    assert (report.already_fed, report.ok) == (4, 6)
    assert dict(vespa.put_counts) == {d["id"]: 1 for d in documents}


def test_a_torn_last_journal_line_does_not_count(vespa, tmp_path):
    journal = tmp_path / "news.journal"
    journal.write_text("N0\nN1")  # killed while writing "N1x...": N1 was not acknowledged for sure
    report = feed(make_backend(vespa), news_docs(3), "news", journal=journal)
    assert (report.already_fed, report.ok) == (1, 2)
    text = journal.read_text()
    assert text.endswith("\n") and sorted(text.split("\n")[:-1]) == ["N0", "N1", "N2"]


def test_ids_of_another_doctype_or_namespace_are_refused(vespa):
    backend = make_backend(vespa)
    with pytest.raises(BackendError, match="id:news:user::U1: expected namespace 'news' and doctype 'news'"):
        feed(backend, news_docs(2) + users(), "news")
    assert len(vespa.documents) == 2  # the ones before were fed and accounted
    other = {"id": "id:other:news::N9", "fields": news_docs(1)[0]["fields"]}
    with pytest.raises(BackendError, match="id:other:news::N9"):
        feed(backend, [other], "news")
    with pytest.raises(BackendError, match="bad document id 'N9'"):
        feed(backend, [{"id": "N9", "fields": {}}], "news")
    with pytest.raises(BackendError, match="'/' in a document id"):
        feed(backend, [{"id": "id:news:news::a/b", "fields": {}}], "news")


# ----------------------------------------------------------------------------- secrets

def self_signed(tmp_path: Path) -> tuple[Path, Path, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "newsrec-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_text(key_pem)
    return tmp_path / "cert.pem", tmp_path / "key.pem", key_pem


def exercise(backend: VespaBackend, server: ContractServer) -> list[str]:
    """Feeds (one bad document), queries (one failing), returns every text a user could see."""
    texts = [backend.description, repr(backend), str(backend.__dict__)]
    server.inject("id:news:news::N1", [400])
    server.inject("id:news:news::N2", [503])
    for mode in MODES:
        report = feed(backend, news_docs(3), "news", mode=mode)
        texts.append(report.summary())
    server.inject(r"^/search/", [500])
    with pytest.raises(BackendError) as error:
        backend.search("hawks")
    texts.append(str(error.value))
    with pytest.raises(BackendError) as error:
        backend.search("hawks", user_id="U404")
    texts.append(str(error.value))
    return texts


def client_logs(caplog) -> str:
    """Log records of this process except the contract server's thread (its hpack decoder logs headers)."""
    return "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if r.threadName != "vespa-contract")


def test_token_never_appears_in_description_repr_logs_or_errors(tmp_path, caplog, capfd):
    token = "vespa_cloud_SECRET_TOKEN_0123456789"
    caplog.set_level(logging.DEBUG)
    with ContractServer(token=token) as secured:
        backend = make_backend(secured, token=token)
        texts = exercise(backend, secured)
        assert {r.headers.get("authorization") for r in secured.requests} == {f"Bearer {token}"}
        assert {r.status for r in secured.requests} >= {200, 400, 503, 500, 404}
        rejected = make_backend(secured, token="wrong-token-WRONGSECRET")
        with pytest.raises(BackendError, match="HTTP 403") as error:
            rejected.search("hawks")
        texts.append(str(error.value))
    captured = capfd.readouterr()
    for text in texts + [client_logs(caplog), captured.out, captured.err]:
        assert token not in text and "WRONGSECRET" not in text
    assert backend.description == f"Vespa at {secured.url}"


def test_mtls_key_contents_never_appear(vespa, tmp_path, caplog, capfd):
    cert, key, key_pem = self_signed(tmp_path)
    caplog.set_level(logging.DEBUG)
    backend = make_backend(vespa, cert=str(cert), key=str(key))
    texts = exercise(backend, vespa)
    assert str(cert) in repr(backend)
    captured = capfd.readouterr()
    secret_line = key_pem.splitlines()[1]
    for text in texts + [client_logs(caplog), captured.out, captured.err]:
        assert secret_line not in text


def test_description_drops_user_info_from_the_url():
    backend = VespaBackend("http://alice:hunter2@127.0.0.1:8080/")
    assert backend.description == "Vespa at http://127.0.0.1:8080"
    assert "hunter2" not in repr(backend)


# ----------------------------------------------------------------------------- queries

@pytest.fixture
def fed(vespa):
    backend = make_backend(vespa)
    feed(backend, news_docs(30), "news")
    feed(backend, users(), "user")
    feed(backend, [category_ctr_document({"sports": 0.05})], "category_ctr")
    vespa.app.requests.clear()
    return backend


def euclidean(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def test_recommend_known_user_excludes_read_keeps_filter_ranks_by_profile(vespa, fed):
    page = fed.recommend("U1", hits=4, filters={"category": "news"})
    hits = page.hits
    assert page.fallback is None
    news = {d["fields"]["news_id"]: d["fields"] for d in news_docs(30)}
    candidates = [n for n, f in news.items() if f["category"] == "news" and n not in ("N0", "N3")]
    # the recall budget (100) holds every candidate: all are re-ranked by the ranking vector, not just the page
    expected = sorted(candidates, key=lambda n: -dot(vector(1002), news[n]["embedding"]["values"]))[:4]
    assert [h.news_id for h in hits] == expected
    assert [h.relevance for h in hits] == pytest.approx(
        [dot(vector(1002), news[n]["embedding"]["values"]) for n in expected])
    (request,) = vespa.requests
    assert (request.method, request.path, request.http_version) == ("GET", "/search/", "1.1")
    assert request.params == {"user_id": "U1", "hits": "4", "user_fallback": "popularity",
                              "yql": 'select * from news where true and category contains "news"'}
    assert hits[0].fields["title"] == news[expected[0]]["title"]


def test_recommend_unknown_user_gets_popularity_marked_as_the_fallback(vespa, fed):
    page = fed.recommend("U404", hits=5)
    hits = page.hits
    assert page.fallback == "popularity" and page.user_id == "U404"  # the server's root.fields.fallback
    ctrs = [(h.fields["clicks"] + 1) / (h.fields["impressions"] + 25) for h in hits]  # smoothed: the schema's prior
    assert ctrs == sorted(ctrs, reverse=True)
    assert [h.relevance for h in hits] == pytest.approx([100 * c for c in ctrs])
    assert ctrs[0] == max((d["fields"]["clicks"] + 1) / 35 for d in news_docs(30))


def test_recommend_with_bad_user_id_is_refused_before_sending(vespa, fed):
    with pytest.raises(QueryError):
        fed.recommend('U1" or true')
    assert vespa.requests == []


def test_search_without_user_is_bm25(vespa, fed):
    hits = fed.search("hawks", hits=50, filters={"category": "sports"})
    assert hits and all("hawks" in h.fields["title"].lower() and h.fields["category"] == "sports" for h in hits)
    (request,) = vespa.requests
    assert (request.method, request.body["ranking"], request.body["query"]) == ("POST", "bm25", "hawks")


def test_search_with_user_personalizes_with_the_ranking_embedding(vespa, fed):
    hits = fed.search("hawks", hits=50, user_id="U2")
    get, query = vespa.requests
    assert (get.method, get.path, get.status) == ("GET", "/newsrec/v1/user/U2", 200)  # the query cluster's handler
    assert query.body["ranking"] == "personalized_search"
    assert query.body["input.query(user_ranking)"] == pytest.approx(vector(1004))
    news = {d["fields"]["news_id"]: d["fields"] for d in news_docs(30)}
    expected = {n: 1 + dot(vector(1004), f["embedding"]["values"]) for n, f in news.items() if "hawks" in f["title"]}
    assert {h.news_id: h.relevance for h in hits} == pytest.approx(expected)
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)


def test_search_with_unknown_user_names_the_user(vespa, fed):
    with pytest.raises(BackendError, match="unknown user 'U404'"):
        fed.search("hawks", user_id="U404")


def test_ranking_scores_equal_the_dot_product_in_the_order_given(vespa):
    backend = make_backend(vespa)
    feed(backend, news_docs(250), "news")
    vespa.app.requests.clear()
    user = vector(77)
    ids = [f"N{i}" for i in random.Random(3).sample(range(250), 230)]
    scores = backend.ranking_scores(user, ids)
    assert scores == pytest.approx([dot(user, vector(int(n[1:]))) for n in ids])
    assert len(vespa.requests) == 2  # chunked: 200 + 30 ids
    assert all(r.body["ranking"] == "personalized_search" and "query" not in r.body for r in vespa.requests)
    assert vespa.requests[0].body["input.query(personalization_weight)"] == 1.0
    with pytest.raises(BackendError, match="1 news not in Vespa: N999"):
        backend.ranking_scores(user, ["N1", "N999"])
    with pytest.raises(QueryError):
        backend.ranking_scores(user, ['N1") or true or news_id in ("x'])


def test_recommend_body_is_accepted_and_ranked_by_the_recommendation_profile(vespa, fed):
    """feed.queries.recommend_body (nearestNeighbor with HNSW annotations, filters, exclusions) as Vespa sees it."""
    from vespa.application import Vespa
    from newsrec.feed.queries import recommend_body

    body = recommend_body(vector(1001), vector(1002), hits=3, filters={"category": "sports"}, exclude=["N1"])
    hits = Vespa(vespa.url).query(body=body).hits
    news = {d["fields"]["news_id"]: d["fields"] for d in news_docs(30)}
    candidates = [n for n, f in news.items() if f["category"] == "sports" and n != "N1"]
    # every candidate is within the recall budget: the page is the best 3 of all of them by the ranking vector
    assert [h["fields"]["news_id"] for h in hits] == sorted(
        candidates, key=lambda n: -dot(vector(1002), news[n]["embedding"]["values"]))[:3]
    assert body["ranking.secondPhase.totalRerankCount"] == 100 and '!(news_id in ("N1"))' in body["yql"]


def test_nearest_news_is_the_recall_profile_over_nearest_neighbours(vespa, fed):
    """What `newsrec evaluate --backend vespa` measures its ANN recall with."""
    news = {d["fields"]["news_id"]: d["fields"] for d in news_docs(30)}
    query = vector(1001)
    expected = sorted(news, key=lambda n: euclidean(query, news[n]["embedding"]["values"]))[:5]
    assert fed.nearest_news(query, 5) == expected
    (request,) = vespa.requests
    assert request.body["ranking"] == "recall" and "input.query(user_ranking)" not in request.body
    assert "{totalTargetHits: 4000}nearestNeighbor(embedding, user_recall)" in request.body["yql"]  # the base


def test_a_query_the_schemas_do_not_declare_is_refused_before_sending(vespa, fed):
    with pytest.raises(QueryError, match=r"query\(user_recall\) must have 65 values \(the schema's tensor\), got 64"):
        fed.nearest_news(vector(1001)[:64], 5)  # D, not D + 1: the transform's coordinate is missing (Vespa pads)
    assert vespa.requests == []


def test_query_errors_carry_vespa_message(vespa, fed):
    vespa.inject(r"^/search/", [400, 503])
    with pytest.raises(BackendError, match=r"search 'hawks': HTTP 400: Injected bad request"):
        fed.search("hawks")
    with pytest.raises(BackendError, match=r"HTTP 503: Service unavailable"):
        fed.recommend("U1")


def test_the_server_refuses_what_vespa_would_refuse(vespa):
    """The contract server is strict: an undeclared input, a wrong tensor size, a bad field is a 400."""
    from vespa.application import Vespa
    from vespa.exceptions import VespaError

    app = Vespa(vespa.url)
    bad_queries = {
        r"query\(nope\) is not declared in rank profile 'bm25'":
            {"yql": "select * from news where true", "ranking": "bm25", "input.query(nope)": [1.0]},
        r"query\(user_ranking\) is tensor<float>\(x\[65\]\)":
            {"yql": "select * from news where true", "ranking": "personalized_search",
             "input.query(user_ranking)": [1.0, 2.0]},
        r"schema 'news' does not contain requested rank profile 'nope'": {"yql": "select * from news where true", "ranking": "nope"},
        r"Field 'colour' does not exist": {"yql": 'select * from news where colour contains "red"'},
    }
    for message, body in bad_queries.items():
        with pytest.raises(VespaError, match=message):
            app.query(body=body)
    with pytest.raises(VespaError, match=r"field 'embedding' is tensor<float>\(x\[65\]\).*got 64 values"):
        app.feed_data_point("news", "N1", {"embedding": {"values": [1.0] * 64}}, namespace="news")
    with pytest.raises(VespaError, match=r"field 'embedding' is tensor<float>\(x\[65\]\).*got list"):
        app.feed_data_point("news", "N1", {"embedding": [1.0] * 65}, namespace="news")
    with pytest.raises(VespaError, match=r"expected \{\"cells\""):
        app.feed_data_point("category_ctr", "global", {"ctrs": {"sports": 0.1}}, namespace="news")
    assert app.get_data("news", "missing", namespace="news").status_code == 404
    assert vespa.documents == {}


def test_search_sorted_by_date_sends_order_by(vespa):
    backend = make_backend(vespa)
    documents = news_docs(6)
    for i, document in enumerate(documents):
        document["fields"]["date"] = 20191110 + i % 3
    feed(backend, documents, "news")
    vespa.app.requests.clear()
    hits = backend.search(None, hits=4, sort="date", filters={"category": "sports"})
    (request,) = vespa.requests
    assert request.body["yql"] == ('select * from news where true and category contains "sports" '
                                   "order by date desc, news_id asc")
    assert "query" not in request.body
    expected = sorted((d["fields"] for d in documents if d["fields"]["category"] == "sports"),
                      key=lambda f: (-f["date"], f["news_id"]))
    assert [h.news_id for h in hits] == [f["news_id"] for f in expected][:4]


def test_group_counts_read_vespa_grouping_result(vespa, fed):
    counts = fed.group_counts("category", "hawks")
    (request,) = vespa.requests
    assert request.body == {"yql": 'select * from news where {grammar: "linguistics"}userInput(@query) | '
                                   'all(group(category) max(50) order(-count()) each(output(count())))', "hits": 0, "ranking": "bm25",
                            "query": "hawks"}
    hawks = [d["fields"]["category"] for d in news_docs(30) if "hawks" in d["fields"]["title"]]
    assert dict(counts) == {c: hawks.count(c) for c in set(hawks)}
    assert [c for _, c in counts] == sorted((c for _, c in counts), reverse=True)


def test_grouping_response_has_vespa_shape(vespa, fed):
    from vespa.application import Vespa

    body = {"yql": "select * from news where true | all(group(category) max(2) order(-count()) "
                   "each(output(count())))", "hits": 0, "ranking": "bm25"}
    root = Vespa(vespa.url).query(body=body).json["root"]
    (group_root,) = root["children"]
    (group_list,) = group_root["children"]
    assert (group_root["id"], group_list["id"], group_list["label"]) == ("group:root:0", "grouplist:category",
                                                                         "category")
    assert [g["fields"]["count()"] for g in group_list["children"]] == [10, 10]
    assert group_list["children"][0]["id"] == f"group:string:{group_list['children'][0]['value']}"
    assert root["fields"]["totalCount"] == 30


def test_popular_and_the_category_ctr_profile(vespa, fed):
    hits = fed.popular(3)
    assert vespa.requests[-1].body == {"yql": "select * from news where true", "hits": 3, "ranking": "popularity"}
    assert [h.relevance for h in hits] == pytest.approx([20, 20, 20])  # 100 x (6 + 1) clicks / (10 + 25) impressions
    hits = fed.recommend("U1", hits=5, ranking="recommendation_with_global_category_ctr").hits
    assert vespa.requests[-1].params["ranking"] == "recommendation_with_global_category_ctr"
    assert hits and all(h.fields["category"] == "sports" for h in hits if h.relevance > 0)  # only sports has a CTR
    with pytest.raises(QueryError, match="unknown recommendation profile"):
        fed.recommend("U1", ranking="bm25")


def test_the_server_refuses_sorting_and_grouping_vespa_would_refuse(vespa):
    from vespa.application import Vespa
    from vespa.exceptions import VespaError

    app = Vespa(vespa.url)
    with pytest.raises(VespaError, match="Cannot sort on field 'title': it is not an attribute"):
        app.query(body={"yql": "select * from news where true order by title desc"})
    with pytest.raises(VespaError, match="Cannot group on field 'abstract'"):
        app.query(body={"yql": "select * from news where true | all(group(abstract) each(output(count())))"})
    with pytest.raises(VespaError, match="Could not parse grouping"):
        app.query(body={"yql": "select * from news where true | all(group(category) each(output(sum(clicks))))"})


# ----------------------------------------------------------------------------- vespa feed (Go CLI) format

def test_write_jsonl_is_vespa_feed_format(tmp_path):
    documents = news_docs(3) + users() + [category_ctr_document({"sports": 0.05})]
    path = tmp_path / "feed.jsonl"
    assert write_jsonl(documents, path) == 6
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"put": d["id"], "fields": d["fields"]} for d in documents]


@pytest.mark.skipif(shutil.which("vespa") is None, reason="Vespa CLI not installed (pip install vespacli)")
def test_vespa_cli_feeds_write_jsonl_output(vespa, tmp_path):
    documents = news_docs(5) + users()
    path = tmp_path / "feed.jsonl"
    write_jsonl(documents[:5], path)
    with open(path, "a", encoding="utf-8") as out:  # one file, several doctypes: the CLI takes ids as they are
        out.writelines(json.dumps({"put": d["id"], "fields": d["fields"]}) + "\n" for d in documents[5:])
    result = subprocess.run(["vespa", "feed", "--target", vespa.url, str(path)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "VESPA_CLI_HOME": str(tmp_path / "cli")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["http.response.code.counts"] == {"200": 7}
    assert {d["id"]: d["fields"] for d in documents} == vespa.documents
    assert {r.http_version for r in vespa.requests if r.path.startswith("/document/v1/")} == {"2"}


# ----------------------------------------------------------------------------- live

@pytest.mark.live_vespa
@pytest.mark.skipif(not os.environ.get("NEWSREC_VESPA_URL"), reason="set NEWSREC_VESPA_URL to a deployed newsrec app")
def test_live_vespa_feed_two_documents_and_query():
    url = os.environ["NEWSREC_VESPA_URL"]
    backend = VespaBackend(url, cert=os.environ.get("NEWSREC_VESPA_CERT"), key=os.environ.get("NEWSREC_VESPA_KEY"),
                           token=os.environ.get("NEWSREC_VESPA_TOKEN"), feed_url=os.environ.get("NEWSREC_VESPA_FEED_URL"))
    documents = [news_document(f"NLIVETEST{i}", "news", "sub", f"Live test {i}", "", "u", 20191101, 1, 2, vector(i))
                 for i in range(2)]
    report = feed(backend, documents, "news")
    try:
        assert report.success and report.ok == 2, report.summary()
        user = vector(9)
        scores = backend.ranking_scores(user, ["NLIVETEST1", "NLIVETEST0"])
        assert scores == pytest.approx([dot(user, vector(1)), dot(user, vector(0))], rel=1e-4, abs=1e-4)
    finally:
        app = backend._feed_app
        for document in documents:
            app.delete_data(schema="news", data_id=parse_document_id(document["id"])[2], namespace="news")
        backend.close()


# ------------------------------------------------------------------ what the web page reads (newsrec serve)

def test_user_ids_are_one_bounded_query_of_the_reader_handler(vespa, fed):
    assert fed.user_ids(1) == ["U1"]
    assert fed.user_ids(10) == ["U1", "U2"]
    assert fed.user_ids(10_000) == ["U1", "U2"]  # asked for at most MAX_LISTED
    lists = [r for r in vespa.app.requests if r.path == "/newsrec/v1/user/"]
    assert [r.params["hits"] for r in lists] == ["1", "10", str(MAX_LISTED)]
    assert not [r for r in vespa.app.requests if r.path.startswith("/document/v1/news/user")]  # no visit, no GET


def test_split_clusters_queries_and_pages_never_touch_document_v1(server):
    """A query cluster without document-api and a feed cluster without search, over the same documents (the
    application's services.xml): the feed goes to one, every query and page read to the other."""
    server.app.reset()
    with ContractServer(cluster="query", sharing=server) as query, ContractServer(cluster="feed", sharing=server) as fd:
        backend = VespaBackend(query.url, feed_url=fd.url, timeout_s=5.0)
        backend.preflight()
        assert feed(backend, news_docs(30), "news").ok == 30 and feed(backend, users(), "user").ok == 2
        assert backend.stored_ids("user") == {"U1", "U2"}  # a visit, on the feed cluster
        assert backend.read_items("U1") == ["N0", "N3"] and backend.read_items("U9") is None
        assert backend.user_ids(5) == ["U1", "U2"]
        assert backend.recommend("U1", hits=3).hits and backend.search("hawks", user_id="U2")
        assert "feed_url='http://127.0.0.1:" in repr(backend)
        with pytest.raises(BackendError, match="without the reader handler"):  # the feed cluster has no handler
            VespaBackend(fd.url, timeout_s=5.0).read_items("U1")
        with VespaBackend(query.url, timeout_s=5.0) as one_url:  # document/v1 at the query URL: refused there
            with pytest.raises(BackendError, match="document/v1 answered HTTP 404"):
                one_url.preflight()


def test_visit_pages_follow_the_continuation_and_bad_parameters_are_400(vespa, fed):
    import httpx

    url = f"{vespa.url}/document/v1/news/news/docid"
    first = httpx.get(url, params={"wantedDocumentCount": 20}).json()
    rest = httpx.get(url, params={"wantedDocumentCount": 20, "continuation": first["continuation"]}).json()
    ids = [d["id"] for d in first["documents"] + rest["documents"]]
    assert len(ids) == len(set(ids)) == 30 and "continuation" not in rest
    assert httpx.get(url, params={"fieldSet": "news:nope"}).status_code == 400
    assert httpx.get(url, params={"wantedDocumentCount": "-1"}).status_code == 400


def test_read_items_and_news_by_id(vespa, fed):
    assert fed.read_items("U1") == ["N0", "N3"] and fed.read_items("U2") == []
    assert fed.read_items("U_nobody") is None
    hits = fed.news(["N5", "N_missing", "N2"])
    assert [h.news_id for h in hits] == ["N5", "N2"] and hits[0].fields["title"] == "Story 5 about hawks"
    with pytest.raises(QueryError):
        fed.news(['N1") or true or ("'])


def test_rank_profiles_are_those_the_application_serves(vespa, fed):
    """A package without a re-ranker has no profile unbert: Vespa's container refuses it (400), so it is not
    offered; the contract server answers as Vespa 8.700's container does."""
    assert fed.rank_profiles() == ("recommendation", "recommendation_with_global_category_ctr", "live")
    answer = httpx.get(f"{vespa.url}/search/", params={"yql": "select * from news where true", "ranking": "unbert"})
    assert answer.status_code == 400
    assert answer.json()["root"]["errors"][0]["message"] == \
        "schema 'news' does not contain requested rank profile 'unbert'"


def test_an_error_page_that_is_not_vespas_is_one_line():
    from newsrec.feed.vespa_feed import vespa_message

    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center>" \
           + "<hr>" * 500 + "</body></html>"
    assert vespa_message(page) == "502 Bad Gateway"
    assert vespa_message({"message": "<p>proxy\n\n  down</p>" + "x" * 900}).startswith("proxy down x")
    assert "\n" not in vespa_message("Traceback\n  line 1\n  line 2") and len(vespa_message("y" * 5000)) == 200


def test_a_redirect_is_reported_never_followed_with_the_token():
    """Issue #33: a 307 was followed silently, the token and the documents with it."""
    import http.server
    import threading

    from newsrec.contract_server.server import free_port

    seen = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        do_POST = do_PUT = do_GET

        def log_message(self, *args):
            pass

    target = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Elsewhere)

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_GET

        def log_message(self, *args):
            pass

    redirecting = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Redirecting)
    for server in (target, redirecting):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = VespaBackend(f"http://127.0.0.1:{redirecting.server_port}", token="secret-token-123456", mode="sync",
                               timeout_s=2.0, max_attempts=1)
        with pytest.raises(BackendError, match="307"):
            backend.popular(5)
        report = FeedReport()
        backend.feed(news_docs(2), "news", report)
        assert report.ok == 0 and [status for _, status, _ in report.failed] == [307, 307]
        assert seen == []
    finally:
        for server in (target, redirecting):
            server.shutdown()
