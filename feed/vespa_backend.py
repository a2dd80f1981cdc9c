"""The Vespa backend: feed through pyvespa's document/v1 clients, query /search/ (issue #5).

Feeding is per-document accounted (FeedReport): pyvespa sends each round without retrying
(`NO_RETRY` async, `num_retries_429=0` sync) and reports through a trivial callback that only
appends to a queue; this module does the accounting, the bounded exponential-backoff retries of
429 / 5xx / transport errors (pyvespa's 599), and the resume journal (local ids of acknowledged
documents, one per line, flushed).

Example:
    backend = VespaBackend("http://127.0.0.1:8080")
    report = FeedReport()
    backend.feed(news_documents, "news", report, journal=Path("news.journal"))
    hits = backend.recommend("U123", hits=10, filters={"category": "sports"})
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpr
from requests.exceptions import HTTPError
from vespa.application import Vespa
from vespa.exceptions import VespaError
from vespa.retries import NO_RETRY

from feed.backend import BackendError, FeedReport, Hit
from feed.queries import (group_body, popularity_body, query_inputs, recommend_body, safe_value, search_body,
                          user_profile_params)
from feed.schema import SchemaMismatchError, check_query_inputs, load_schemas

log = logging.getLogger(__name__)

FEED_MODES = ("async", "sync")  # async: HTTP/2 (h2c on http://), feed_async_iterable; sync: HTTP/1.1, feed_iterable
RANKING_SCORE_CHUNK = 200  # news ids per ranking_scores query (Vespa's default maxHits is 400)
TRANSPORT_ERROR = 599  # pyvespa's status for an exception (timeout, connection reset) during a feed operation
_DOCUMENT_ID = re.compile(r"^id:([^:]+):([^:]+):([^:]*):(.+)$")


class _Vespa(Vespa):
    """pyvespa's client, with the async client's timeout set: feed_async_iterable does not expose it."""

    def __init__(self, url: str, client_timeout_s: float, **kwargs):
        super().__init__(url, **kwargs)
        self.client_timeout_s = client_timeout_s

    def asyncio(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.client_timeout_s)
        return super().asyncio(*args, **kwargs)


def parse_document_id(doc_id: str) -> tuple[str, str, str]:
    """`id:news:news::N1` -> ("news", "news", "N1"); only ids without a key/value part (`::`)."""
    match = _DOCUMENT_ID.match(doc_id) if isinstance(doc_id, str) else None
    if not match or match.group(3):
        raise BackendError(f"bad document id {doc_id!r}: expected id:<namespace>:<doctype>::<id>")
    return match.group(1), match.group(2), match.group(4)


def write_jsonl(documents: Iterable[dict], path: str | Path, append: bool = False) -> int:
    """Write documents as a `vespa feed` file (`{"put": "<full id>", "fields": {...}}` per line); returns the count."""
    count = 0
    with open(path, "a" if append else "w", encoding="utf-8") as out:
        for document in documents:
            parse_document_id(document["id"])
            out.write(json.dumps({"put": document["id"], "fields": document["fields"]}, ensure_ascii=False) + "\n")
            count += 1
    return count


class JsonlFeedFile:
    """A 'backend' that writes the feed to a JSONL file for `vespa feed` (the Go CLI) instead of sending it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.description = f"JSONL feed file {self.path} (send with: vespa feed {self.path})"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def feed(self, documents: Iterable[dict], doctype: str, report: FeedReport, journal: Path | None = None) -> None:
        written = write_jsonl(documents, self.path, append=True)
        report.sent += written
        report.ok += written


def tensor_vector(value) -> list[float]:
    """A 1-d indexed tensor as Vespa renders it (`{"type", "values"}`, or the long `{"cells": [...]}` form)."""
    if isinstance(value, list):
        return [float(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("values"), list):
        return [float(v) for v in value["values"]]
    if isinstance(value, dict) and isinstance(value.get("cells"), list):
        cells = sorted(value["cells"], key=lambda c: int(next(iter(c["address"].values()))))
        return [float(c["value"]) for c in cells]
    raise BackendError(f"cannot read a vector from tensor {str(value)[:80]!r}")


def _message(body) -> str:
    """Vespa's message from a document/v1 or /search/ error body."""
    if not isinstance(body, dict):
        return str(body)[:500]
    errors = (body.get("root") or {}).get("errors")
    if errors:
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
    if "Exception" in body:  # pyvespa's stand-in response for an exception (status 599)
        return f"{body.get('message', 'exception')}: {body['Exception']}"
    return str(body.get("message") or json.dumps(body)[:500])


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _read_journal(journal: Path) -> set[str]:
    """Local ids acknowledged in earlier runs; an unterminated last line (killed mid-write) does not count."""
    if not journal.exists():
        return set()
    text = journal.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # the part after the last newline is incomplete (or empty)
    return {line for line in lines if line}


def _open_journal(journal: Path) -> IO[str]:
    """Open for appending, first cutting a torn last line (it would otherwise join the next id)."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    if journal.exists():
        content = journal.read_bytes()
        if content and not content.endswith(b"\n"):
            journal.write_bytes(content[:content.rfind(b"\n") + 1])
    return open(journal, "a", encoding="utf-8")


@dataclass
class _Pending:
    doc_id: str  # full id, for the report
    local_id: str  # what pyvespa puts in the path
    fields: dict
    attempts: int = 0


class _FeedRun:
    """Accounting of one feed() call: results from the callback queue, retries, journal, interruption."""

    def __init__(self, report: FeedReport, journal: IO[str] | None, max_attempts: int):
        self.report = report
        self.journal = journal
        self.max_attempts = max_attempts
        self.results: deque = deque()  # (local id, status, body), appended by the pyvespa callback only
        self.in_flight: dict[str, list[_Pending]] = {}
        self.retry: list[_Pending] = []
        self.interrupted: BaseException | None = None

    def callback(self, response, local_id: str) -> None:
        """Kept trivial: pyvespa prints and swallows exceptions raised in callbacks."""
        self.results.append((local_id, response.status_code, response.json))

    def stream(self, items: Iterator[_Pending]) -> Iterator[dict]:
        """What pyvespa consumes; stops (without raising) when the source fails, so in-flight ones finish."""
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except (Exception, KeyboardInterrupt) as error:
                self.interrupted = error
                return
            self.drain()
            item.attempts += 1
            if item.attempts == 1:
                self.report.sent += 1
            else:
                self.report.retries += 1
            self.in_flight.setdefault(item.local_id, []).append(item)
            yield {"id": item.local_id, "fields": item.fields}

    def drain(self) -> None:
        while self.results:
            local_id, status, body = self.results.popleft()
            queue = self.in_flight[local_id]
            item = queue.pop(0)
            if not queue:
                del self.in_flight[local_id]
            self._account(item, status, body)

    def _account(self, item: _Pending, status: int, body) -> None:
        if status == 200:
            self.report.ok += 1
            if self.journal is not None:
                self.journal.write(item.local_id + "\n")
                self.journal.flush()
        elif _retryable(status) and item.attempts < self.max_attempts:
            log.debug("document %s: HTTP %d, will retry (attempt %d)", item.doc_id, status, item.attempts)
            self.retry.append(item)
        else:
            self.report.failed.append((item.doc_id, status, _message(body)))

    def take_retries(self) -> Iterator[_Pending]:
        retry, self.retry = self.retry, []
        return iter(retry)


def _new_documents(documents: Iterable[dict], namespace: str, doctype: str, done: set[str],
                   report: FeedReport) -> Iterator[_Pending]:
    for document in documents:
        if not isinstance(document, dict) or not isinstance(document.get("fields"), dict):
            raise BackendError(f"not a document {{'id', 'fields'}}: {str(document)[:80]!r}")
        doc_namespace, doc_type, local_id = parse_document_id(document.get("id"))
        if (doc_namespace, doc_type) != (namespace, doctype):
            raise BackendError(f"document {document['id']}: expected namespace {namespace!r} and "
                               f"doctype {doctype!r} (id:{namespace}:{doctype}::<id>)")
        if "/" in local_id:  # pyvespa quotes ids with safe="/": the path would get an extra segment
            raise BackendError(f"document {document['id']}: '/' in a document id is not supported")
        if local_id in done:
            report.already_fed += 1
            continue
        yield _Pending(document["id"], local_id, document["fields"])


class VespaBackend:
    """Vespa over HTTP: pyvespa for document/v1 and /search/; mTLS (cert/key files) or token auth."""

    def __init__(self, url: str, cert: str | None = None, key: str | None = None, token: str | None = None,
                 namespace: str = "news", mode: str = "async", max_connections: int | None = None,
                 max_workers: int | None = None, max_attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, timeout_s: float = 30.0):
        if mode not in FEED_MODES:
            raise BackendError(f"feed mode {mode!r}: use one of {', '.join(FEED_MODES)}")
        if max_attempts < 1:
            raise BackendError("max_attempts must be at least 1")
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.mode = mode
        self.max_connections = max_connections
        self.max_workers = max_workers
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._auth = "token" if token else ("mTLS" if cert else "none")
        self._cert_path = cert
        self._app = _Vespa(self.url, client_timeout_s=timeout_s, cert=cert, key=key, vespa_cloud_secret_token=token)
        self._session: httpr.Client | None = None
        self._news_schema = load_schemas()["news"]

    @property
    def description(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
        return f"Vespa at {urlunsplit((parts.scheme, host, parts.path, '', ''))}"

    def __repr__(self) -> str:
        auth = f"mTLS cert={self._cert_path}" if self._auth == "mTLS" else self._auth
        return f"VespaBackend({self.description!r}, auth={auth}, namespace={self.namespace!r}, mode={self.mode!r})"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> VespaBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------- feeding

    def feed(self, documents: Iterable[dict], doctype: str, report: FeedReport, journal: Path | None = None,
             mode: str | None = None) -> None:
        """Put every document; 429 / 5xx / transport errors retried up to max_attempts, other 4xx reported.

        With `journal`, ids already in it are skipped (report.already_fed) and acknowledged ones are appended.
        If the documents iterator raises (or KeyboardInterrupt comes from it), documents in flight are still
        completed and journaled, then the exception is re-raised: a resumed run feeds each document once.
        """
        mode = mode or self.mode
        if mode not in FEED_MODES:
            raise BackendError(f"feed mode {mode!r}: use one of {', '.join(FEED_MODES)}")
        done = _read_journal(Path(journal)) if journal is not None else set()
        with (_open_journal(Path(journal)) if journal is not None else nullcontext()) as journal_file:
            run = _FeedRun(report, journal_file, self.max_attempts)
            items = _new_documents(documents, self.namespace, doctype, done, report)
            for attempt in range(1, self.max_attempts + 1):
                self._send(run.stream(items), doctype, run.callback, mode)
                run.drain()
                if not run.retry:
                    break
                self._back_off(attempt, len(run.retry))
                items = run.take_retries()
            assert not run.retry and not run.in_flight, "every document sent ends ok or failed"
        if run.interrupted is not None:
            raise run.interrupted

    def _back_off(self, attempt: int, count: int) -> None:
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        log.info("retrying %d documents in %.1fs (attempt %d of %d)", count, delay, attempt + 1, self.max_attempts)
        time.sleep(delay)

    def _send(self, stream: Iterator[dict], doctype: str, callback, mode: str) -> None:
        limits = {key: value for key, value in (("max_workers", self.max_workers),
                                                 ("max_connections", self.max_connections)) if value}
        if mode == "async":
            self._app.feed_async_iterable(stream, schema=doctype, namespace=self.namespace, callback=callback,
                                          docv1_retry_policy=NO_RETRY, **limits)
        else:  # pyvespa's sync client timeout is fixed (120 s): bound each operation server-side instead
            self._app.feed_iterable(stream, schema=doctype, namespace=self.namespace, callback=callback,
                                    num_retries_429=0, timeout=f"{self.timeout_s:g}s", **limits)

    # ------------------------------------------------------------------------- queries

    def recommend(self, user_id: str, hits: int = 10, filters: dict[str, str] | None = None,
                  ranking: str = "recommendation") -> list[Hit]:
        """GET /search/?user_id=...: the application's UserProfileSearcher (popularity for an unknown user)."""
        params = user_profile_params(user_id, hits, filters, fallback="popularity", ranking=ranking)
        try:
            response = self._client().get(self._app.search_end_point, params={k: str(v) for k, v in params.items()})
        except httpr.HTTPError as error:
            raise BackendError(f"recommend for user {user_id}: {self.description}: {type(error).__name__}: {error}")
        body = _json(response)
        if response.status_code != 200:
            raise BackendError(f"recommend for user {user_id}: HTTP {response.status_code}: {_message(body)}")
        return _hits(body)

    def search(self, text: str | None, hits: int = 10, user_id: str | None = None,
               filters: dict[str, str] | None = None, sort: str | None = None) -> list[Hit]:
        """BM25 over title and abstract; with a user, personalized by the user document's ranking_embedding."""
        ranking_vector = self._ranking_embedding(user_id) if user_id is not None else None
        return _hits(self._query(search_body(text, hits, ranking_vector, filters, sort), f"search {text!r}"))

    def popular(self, hits: int = 10, filters: dict[str, str] | None = None) -> list[Hit]:
        """The popularity profile over every news item (relevance 100 · CTR)."""
        return _hits(self._query(popularity_body(hits, filters), "popular"))

    def group_counts(self, field: str, text: str | None = None,
                     filters: dict[str, str] | None = None) -> list[tuple[str, int]]:
        """(value, matches) per value of `field`, most matches first: Vespa grouping."""
        return _group_counts(self._query(group_body(field, text, filters), f"group by {field}"))

    def nearest_news(self, query_vector: list[float], k: int) -> list[str]:
        """Ids of the k news nearest to a transformed query vector: nearestNeighbor with the `recall` profile."""
        return [hit.news_id for hit in _hits(self._query(recommend_body(query_vector, None, hits=k, ranking="recall"),
                                                         "nearest news"))]

    def ranking_scores(self, ranking_vector: list[float], news_ids: list[str]) -> list[float]:
        """u_ra · r per news id (relevance of personalized_search with no text and weight 1), in the given order."""
        for news_id in news_ids:
            safe_value("news id", news_id)
        scores: dict[str, float] = {}
        for start in range(0, len(news_ids), RANKING_SCORE_CHUNK):
            chunk = list(dict.fromkeys(news_ids[start:start + RANKING_SCORE_CHUNK]))
            for hit in _hits(self._query(_ranking_score_body(ranking_vector, chunk), "ranking_scores")):
                scores[hit.news_id] = hit.relevance
        missing = [news_id for news_id in news_ids if news_id not in scores]
        if missing:
            raise BackendError(f"ranking_scores: {len(missing)} news not in Vespa: {', '.join(missing[:10])}")
        return [scores[news_id] for news_id in news_ids]

    def _ranking_embedding(self, user_id: str) -> list[float]:
        safe_value("user id", user_id)
        try:
            with self._app.syncio(session=self._client(), num_retries_429=2) as sync:
                response = sync.get_data(schema="user", data_id=user_id, namespace=self.namespace)
        except (VespaError, HTTPError, httpr.HTTPError) as error:
            raise BackendError(f"get user {user_id}: {_error_text(error)}")
        if response.status_code == 404:
            raise BackendError(f"unknown user {user_id!r}: no document id:{self.namespace}:user::{user_id}")
        fields = response.json.get("fields", {})
        if "ranking_embedding" not in fields:
            raise BackendError(f"user {user_id!r} has no ranking_embedding")
        return tensor_vector(fields["ranking_embedding"])

    def _query(self, body: dict, what: str) -> dict:
        """POST /search/ with `body`, its query inputs first checked against the rank profile in schemas/."""
        try:
            check_query_inputs(self._news_schema, body["ranking"], query_inputs(body))
        except SchemaMismatchError as error:
            raise BackendError(f"{what}: {error}") from None
        try:
            with self._app.syncio(session=self._client(), num_retries_429=2) as sync:
                return sync.query(body=body).json
        except (VespaError, HTTPError, httpr.HTTPError) as error:
            raise BackendError(f"{what}: {_error_text(error)}")

    def _client(self) -> httpr.Client:
        """One HTTP/1.1 client for queries, with the same auth headers and mTLS as the feed clients."""
        if self._session is None:
            self._session = self._app.get_sync_session()
        return self._session


def _ranking_score_body(ranking_vector: list[float], news_ids: list[str]) -> dict:
    quoted = ", ".join(f'"{news_id}"' for news_id in news_ids)
    return {"yql": f"select * from news where news_id in ({quoted})", "hits": len(news_ids),
            "ranking": "personalized_search",
            "input.query(user_ranking)": [float(v) for v in ranking_vector],
            "input.query(personalization_weight)": 1.0}


def _error_text(error: Exception) -> str:
    """HTTP status and Vespa's root.errors[].message (or document/v1 message) from a pyvespa exception."""
    status = None
    for candidate in (error, error.__cause__):
        response = getattr(candidate, "response", None)
        if response is not None:
            status = response.status_code
    if isinstance(error, VespaError):
        detail = error.args[0] if error.args else ""
        messages = [e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in detail] \
            if isinstance(detail, list) else [str(detail)]
        return f"HTTP {status}: {'; '.join(messages)}"
    return f"{type(error).__name__}: {error}"


def _json(response) -> dict:
    try:
        return response.json()
    except (ValueError, RuntimeError):
        return {"message": response.text[:500]}


def _group_counts(body: dict) -> list[tuple[str, int]]:
    """The `count()` of each group in a grouping result: root -> group:root:0 -> grouplist:<field> -> groups."""
    counts = []
    for root in (body.get("root") or {}).get("children", []):
        if not str(root.get("id", "")).startswith("group:root"):
            continue
        for group_list in root.get("children", []):
            counts += [(str(group["value"]), int(group["fields"]["count()"]))
                       for group in group_list.get("children", [])]
    return counts


def _hits(body: dict) -> list[Hit]:
    hits = []
    for child in (body.get("root") or {}).get("children", []):
        if str(child.get("id", "")).startswith("group:"):
            continue
        fields = child.get("fields", {})
        if "news_id" not in fields:
            raise BackendError(f"hit {child.get('id')} has no news_id field (summary fields: {sorted(fields)})")
        hits.append(Hit(news_id=fields["news_id"], relevance=float(child["relevance"]), fields=fields))
    return hits
