"""Feeding Vespa without losing or stalling: resume only where the journal is true, a pre-flight check
before any document, and hung or slow requests that cost their own document a timeout, not the feed."""
from __future__ import annotations

import http.server
import shutil
import threading
import time
from pathlib import Path

import pytest

from feed.backend import BackendError, FeedReport
from feed.connect import Target
from feed.documents import news_document
from feed.job import FeedOptions, run_feed
from feed.journal import ResumeError
from feed.vespa_backend import VespaBackend
from newsrec.contract_server import ContractServer
from newsrec.contract_server.server import free_port
from support import DIM


@pytest.fixture
def server():
    with ContractServer(hold_s=3.0) as running:
        yield running


def quiet(line: str) -> None:
    pass


def feed_to(server: ContractServer, mind: Path, model: Path, state: Path, resume: bool = False):
    options = FeedOptions(model_dir=str(model), state_dir=str(state), resume=resume)
    return run_feed(str(mind), Target(endpoint=server.url), options, log=quiet)


def test_resume_refuses_another_endpoint(tiny_demo: Path, trained: Path, tmp_path: Path, server):
    assert feed_to(server, tiny_demo, trained, tmp_path / "state").success
    with ContractServer() as other:
        with pytest.raises(ResumeError, match=r"written for another endpoint \(endpoint http://127\.0\.0\.1:\d+ then"):
            feed_to(other, tiny_demo, trained, tmp_path / "state", resume=True)
        assert not other.put_counts  # nothing fed (and nothing skipped as if it were there)


def test_resume_refuses_a_wiped_deployment(tiny_demo: Path, trained: Path, tmp_path: Path, server):
    assert feed_to(server, tiny_demo, trained, tmp_path / "state").success
    server.app.reset()  # the deployment lost its data
    with pytest.raises(ResumeError, match="sampled category_ctr documents .* are not at Vespa at"):
        feed_to(server, tiny_demo, trained, tmp_path / "state", resume=True)


def test_resume_refuses_another_model_or_corpus(tiny_demo: Path, trained: Path, tmp_path: Path, server):
    assert feed_to(server, tiny_demo, trained, tmp_path / "state").success
    other_model = tmp_path / "runs" / "other"
    shutil.copytree(trained, other_model)
    with (other_model / "model.pt").open("ab") as handle:
        handle.write(b"\0")  # a different file: another model as far as the journal knows
    with pytest.raises(ResumeError, match="written for another model"):
        feed_to(server, tiny_demo, other_model, tmp_path / "state", resume=True)
    other_corpus = tmp_path / "mind"
    shutil.copytree(tiny_demo, other_corpus)
    with (other_corpus / "dev" / "behaviors.tsv").open("rb+") as handle:
        lines = handle.readlines()
        handle.seek(0)
        handle.writelines(lines[:-1])
        handle.truncate()
    with pytest.raises(ResumeError, match="written for another corpus"):
        feed_to(server, other_corpus, trained, tmp_path / "state", resume=True)


def test_a_resumed_feed_skips_only_what_the_same_feed_wrote(tiny_demo: Path, trained: Path, tmp_path: Path, server):
    first = feed_to(server, tiny_demo, trained, tmp_path / "state")
    again = feed_to(server, tiny_demo, trained, tmp_path / "state", resume=True)
    assert again.fed == first.fed and all(r.sent == 0 for r in again.reports.values())
    assert {d: r.already_fed for d, r in again.reports.items()} == {d: r.ok for d, r in first.reports.items()}


class NotVespa(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"<html>no such page</html>")

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def test_a_wrong_endpoint_fails_before_any_document(tiny_demo: Path, trained: Path, tmp_path: Path):
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotVespa)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        options = FeedOptions(model_dir=str(trained), state_dir=str(tmp_path / "state"))
        with pytest.raises(BackendError, match="pre-flight check of Vespa at .* document/v1 answered HTTP 404"):
            run_feed(str(tiny_demo), Target(endpoint=f"http://127.0.0.1:{web.server_port}"), options, log=quiet)
    finally:
        web.shutdown()
    with pytest.raises(BackendError, match=r"pre-flight check of Vespa at .*\(nothing was fed\): ConnectError"):
        VespaBackend(f"http://127.0.0.1:{free_port()}", timeout_s=0.5).preflight()
    assert not (tmp_path / "state" / "meta.json").exists()  # no Φ or news ids recorded for a feed that did not happen


def news(count: int) -> list[dict]:
    return [news_document(f"N{i}", "sports", "golf", f"Story {i}", "a", "u", 20191101, 1, 2, [0.01 * (i % 7)] * DIM)
            for i in range(count)]


def timed_feed(server: ContractServer, documents: list[dict]) -> tuple[float, FeedReport]:
    backend = VespaBackend(server.url, timeout_s=0.5, backoff_s=0.05, max_backoff_s=0.2, max_attempts=3)
    report = FeedReport()
    started = time.perf_counter()
    backend.feed(documents, "news", report)
    return time.perf_counter() - started, report


def test_hung_and_slow_requests_cost_their_document_not_the_feed(server):
    """2% of the documents hang once (no answer for 3 s), 2% are stored but answered after 3 s every time (the
    client gives up at 0.5 s, then finds them stored): exact accounting, within 3x the fault-free time."""
    documents = news(1000)
    clean_s, clean = timed_feed(server, documents)
    server.app.reset()
    hung, slow = documents[10::50], documents[35::50]
    for document in hung:
        server.inject(document["id"], ["hang"])
    for document in slow:
        server.inject(document["id"], ["slow"] * 3)
    faulty_s, report = timed_feed(server, documents)
    assert (clean.sent, clean.ok, clean.failed) == (1000, 1000, [])
    assert (report.sent, report.ok, report.failed, report.verified) == (1000, 1000, [], len(slow))
    assert report.retries >= len(hung) + 2 * len(slow)  # more when a loaded machine answers late
    assert sorted(server.documents) == sorted(d["id"] for d in documents)
    print(f"1000 documents: {clean_s:.2f}s fault-free, {faulty_s:.2f}s with {len(hung)} hung and {len(slow)} slow")
    assert faulty_s < 3 * clean_s


def test_a_feed_that_dies_partway_leaves_the_previous_embedded_index(tiny_demo: Path, trained: Path, tmp_path: Path,
                                                                      monkeypatch):
    """The whole feed is one generation of the embedded index: news, users and Φ commit together or not at all."""
    from feed import feeding
    from feed.local_backend import LocalBackend

    index = tmp_path / "index"
    options = FeedOptions(model_dir=str(trained))
    assert run_feed(str(tiny_demo), Target(index_dir=str(index)), options, log=quiet).success
    before = LocalBackend(index)
    user = next(u for u, f in before.docs["user"].items() if f["has_read_items"])
    answer, state = [h.news_id for h in before.recommend(user, 10)], before.state

    original_news, original_users = feeding.news_documents, feeding.user_documents

    def changed_news(corpus, transform):
        for document in original_news(corpus, transform):
            yield {**document, "fields": {**document["fields"], "title": "CHANGED"}}

    def dying_users(corpus, transform):
        for count, document in enumerate(original_users(corpus, transform)):
            if count == 100:
                raise OSError("killed while feeding users")
            yield document

    monkeypatch.setattr(feeding, "news_documents", changed_news)
    monkeypatch.setattr(feeding, "user_documents", dying_users)
    with pytest.raises(OSError, match="killed while feeding users"):
        run_feed(str(tiny_demo), Target(index_dir=str(index)), options, log=quiet)
    after = LocalBackend(index)
    assert [h.news_id for h in after.recommend(user, 10)] == answer and after.state == state
    assert not any(f["title"] == "CHANGED" for f in after.docs["news"].values())
