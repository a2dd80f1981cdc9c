"""Feeding Vespa's document/v1 with per-document accounting, through pyvespa's async client.

Each document is its own small state machine, and documents never wait for each other: a put that
gets 429 / 5xx / a transport error (pyvespa's 599: timeout, connection reset) is retried after a
jittered exponential backoff while the other documents keep flowing, up to `max_attempts`. There is
no retry round whose slowest request holds everybody up. Each request has a client-side timeout
(`timeout_s`) below the server-side one sent as document/v1's `timeout` parameter, so a hung node
costs a document `timeout_s`, never minutes. A put that timed out at any attempt (client side, or
Vespa's 504) may still have been applied, so before such a document is reported failed it is looked
up (GET, retried): found as sent, it counts as fed; unknown, the failure says so. When the endpoint
stops answering altogether (`give_up_after` attempts in a row fail with timeouts or transport errors,
whatever the documents), the feed stops taking documents, finishes those in flight and raises:
`--resume` continues later. Only acknowledged (or so verified) documents are appended to the resume
journal (one local id per line, flushed). A Ctrl-C cancels the requests in flight: they are not
journaled, and a resumed feed sends them again.

    run = FeedRun(report, journal_file, FeedPolicy(timeout_s=10))
    asyncio.run(feed_all(session, pending_documents(documents, "news", "news", done, report), run, "news", "news"))
"""
from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

from newsrec.feed.backend import BackendError, FeedReport
from newsrec.feed.live import SEQUENCE_FIELD

TRANSPORT_ERROR = 599  # pyvespa's status for an exception (timeout, connection reset) during an operation
_DOCUMENT_ID = re.compile(r"id:([^:]+):([^:]+):([^:]*):(.+)")  # matched in full


@dataclass(frozen=True)
class FeedPolicy:
    max_attempts: int = 5  # per document, the first one included
    backoff_s: float = 0.5  # first retry after about this long, doubling per attempt (jittered)
    max_backoff_s: float = 8.0
    timeout_s: float = 10.0  # client side, per request
    concurrency: int = 64  # documents in flight
    give_up_after: int = 200  # attempts in a row failing with timeouts / transport errors: the endpoint is gone

    @property
    def server_timeout_s(self) -> float:
        """document/v1's `timeout`: twice the client's, so the client always gives up first and then verifies."""
        return 2 * self.timeout_s

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass
class Pending:
    doc_id: str  # full id, for the report
    local_id: str  # what pyvespa puts in the path
    fields: dict


def parse_document_id(doc_id: str) -> tuple[str, str, str]:
    """`id:news:news::N1` -> ("news", "news", "N1"); only ids without a key/value part (`::`)."""
    match = _DOCUMENT_ID.fullmatch(doc_id) if isinstance(doc_id, str) else None
    if not match or match.group(3):
        raise BackendError(f"bad document id {doc_id!r}: expected id:<namespace>:<doctype>::<id>")
    return match.group(1), match.group(2), match.group(4)


def pending_documents(documents: Iterable[dict], namespace: str, doctype: str, done: set[str],
                      report: FeedReport) -> Iterator[Pending]:
    """The documents still to send: checked ids of this namespace and type, those in `done` skipped (counted)."""
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
        yield Pending(document["id"], local_id, document["fields"])


def one_line(text: str, limit: int = 200) -> str:
    """An error body that is not Vespa's JSON (a proxy's HTML page, a stack trace) as one short line: an HTML
    page's title, else its text without tags, whitespace collapsed, cut at `limit` characters."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    text = " ".join((title.group(1) if title else re.sub(r"<[^>]*>", " ", text)).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def vespa_message(body) -> str:
    """Vespa's message from a document/v1 or /search/ error body (or pyvespa's stand-in for an exception); any
    other body as one line."""
    if not isinstance(body, dict):
        return one_line(str(body))
    errors = (body.get("root") or {}).get("errors")
    if errors:
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
    if "Exception" in body:
        return f"{body.get('message', 'exception')}: {body['Exception']}"
    return one_line(str(body.get("message") or json.dumps(body)), 500)


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


def timed_out(status: int) -> bool:
    """The request may have been applied without the client hearing of it."""
    return status in (TRANSPORT_ERROR, 504)


class EndpointGoneError(BackendError):
    """The endpoint stopped answering in the middle of a feed."""


# ----------------------------------------------------------------------------------- the journal

def read_journal(journal: Path) -> set[str]:
    """Local ids acknowledged in earlier runs; an unterminated last line (killed mid-write) does not count."""
    if not journal.exists():
        return set()
    lines = journal.read_text(encoding="utf-8").split("\n")[:-1]  # after the last newline: incomplete or empty
    return {line for line in lines if line}


def open_journal(journal: Path) -> IO[str]:
    """Open for appending, first cutting a torn last line (it would otherwise join the next id)."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    if journal.exists():
        content = journal.read_bytes()
        if content and not content.endswith(b"\n"):
            journal.write_bytes(content[:content.rfind(b"\n") + 1])
    return open(journal, "a", encoding="utf-8")


# ----------------------------------------------------------------------------------- the feed

class FeedRun:
    """One feed() call: the report, the journal, and what stopped the source (re-raised at the end)."""

    def __init__(self, report: FeedReport, journal: IO[str] | None, policy: FeedPolicy, doctype: str = "",
                 endpoint: str = "the endpoint"):
        self.report = report
        self.journal = journal
        self.policy = policy
        self.interrupted: BaseException | None = None
        self.doctype = doctype
        self.endpoint = endpoint
        self.failing_in_a_row = 0  # attempts since the last answer that were timeouts or transport errors

    @property
    def endpoint_gone(self) -> bool:
        return isinstance(self.interrupted, EndpointGoneError)

    def heard(self, status: int, body) -> None:
        """Count attempts the endpoint did not answer; after `give_up_after` in a row, stop the feed."""
        if not timed_out(status):
            self.failing_in_a_row = 0
            return
        self.failing_in_a_row += 1
        if self.failing_in_a_row >= self.policy.give_up_after and self.interrupted is None:
            self.interrupted = EndpointGoneError(
                f"stopped feeding {self.doctype}: the last {self.failing_in_a_row} attempts to {self.endpoint} all "
                f"timed out or failed to connect ({vespa_message(body)}); {self.report.ok} documents were fed, the "
                f"ones not yet sent were not; feed again with --resume once the endpoint answers")

    def take(self, items: Iterator[Pending]) -> Pending | None:
        """The next document to send, or None when the source is exhausted or failed (the failure is kept)."""
        if self.interrupted is not None:
            return None
        try:
            item = next(items)
        except StopIteration:
            return None
        except (Exception, KeyboardInterrupt) as error:
            self.interrupted = error
            return None
        self.report.sent += 1
        return item

    def acknowledge(self, item: Pending) -> None:
        self.report.ok += 1
        if self.journal is not None:
            self.journal.write(item.local_id + "\n")
            self.journal.flush()


async def feed_all(session, items: Iterator[Pending], run: FeedRun, doctype: str, namespace: str) -> None:
    """Put every item, `run.policy.concurrency` at a time; returns when each ended acknowledged or failed."""
    async def worker() -> None:
        while (item := run.take(items)) is not None:
            await feed_one(session, item, run, doctype, namespace)

    await asyncio.gather(*(worker() for _ in range(run.policy.concurrency)))


async def feed_one(session, item: Pending, run: FeedRun, doctype: str, namespace: str) -> None:
    policy, maybe_applied = run.policy, False
    for attempt in range(1, policy.max_attempts + 1):
        status, body = await _put(session, item, doctype, namespace, policy)
        run.heard(status, body)
        if status == 200:
            run.acknowledge(item)
            return
        maybe_applied = maybe_applied or timed_out(status)
        if not retryable(status) or attempt == policy.max_attempts or run.endpoint_gone:
            break
        run.report.retries += 1
        await asyncio.sleep(policy.backoff(attempt))
    await _settle(session, item, run, doctype, namespace, (status, body), maybe_applied)


async def _settle(session, item: Pending, run: FeedRun, doctype: str, namespace: str, last: tuple[int, object],
                  maybe_applied: bool) -> None:
    """A document whose puts all failed: if one may have been applied, look it up before calling it failed."""
    status, body = last
    if run.endpoint_gone:
        verdict = None if maybe_applied else False  # no lookup either: the endpoint stopped answering
    else:
        verdict = await stored(session, item, doctype, namespace, run.policy) if maybe_applied else False
    if verdict is True:
        run.report.verified += 1  # the server applied a put the client did not hear back from
        run.acknowledge(item)
        return
    note = " (a put may have been applied: the lookup could not tell)" if verdict is None else ""
    run.report.failed.append((item.doc_id, status, vespa_message(body) + note))


async def _put(session, item: Pending, doctype: str, namespace: str, policy: FeedPolicy) -> tuple[int, object]:
    try:
        response = await session.feed_data_point(doctype, item.local_id, item.fields, namespace=namespace,
                                                 timeout=f"{policy.server_timeout_s:g}s")
    except Exception as error:  # pyvespa raises the client's exceptions (timeouts, resets) with NO_RETRY
        return TRANSPORT_ERROR, {"Exception": str(error), "message": "Exception during feed_data_point"}
    return response.status_code, response.json


async def stored(session, item: Pending, doctype: str, namespace: str, policy: FeedPolicy) -> bool | None:
    """Whether Vespa holds exactly these fields for the document: True, False (absent or different), or None when
    it cannot tell (every lookup, retried like a put, timed out or failed)."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = await session.get_data(doctype, item.local_id, namespace=namespace)
        except Exception:
            response = None
        if response is not None and response.status_code in (200, 404):
            fields = response.json.get("fields") if isinstance(response.json, dict) else None
            return response.status_code == 200 and isinstance(fields, dict) and all(
                same_value(value, fields.get(name)) for name, value in item.fields.items())
        if attempt < policy.max_attempts:
            await asyncio.sleep(policy.backoff(attempt))
    return None


def same_value(sent, rendered) -> bool:
    """A fed value and its document/v1 rendering (tensors come back as {"type", "values"/"cells"})."""
    if isinstance(sent, dict) and isinstance(rendered, dict):
        return all(same_value(value, rendered.get(key)) for key, value in sent.items())
    if isinstance(sent, (int, float)) and isinstance(rendered, (int, float)) and not isinstance(sent, bool):
        return abs(float(sent) - float(rendered)) <= 1e-6 * max(1.0, abs(float(sent)))
    if isinstance(sent, list) and isinstance(rendered, list):
        return len(sent) == len(rendered) and all(same_value(a, b) for a, b in zip(sent, rendered))
    return sent == rendered


def is_sequenced(update: dict) -> bool:
    """An update conditional on the document's sequence field (feed/live.py): applying it twice counts once, so a
    timeout or a 5xx may be retried (an increment without it may not)."""
    return isinstance(update, dict) and str(update.get("condition", "")).replace(" ", "").startswith(
        f"news.{SEQUENCE_FIELD}<")


async def update_all(session, updates: Iterable[dict], report: FeedReport, doctype: str, namespace: str,
                     policy: FeedPolicy) -> None:
    """Partial updates, `policy.concurrency` at a time. Each asks for its document to exist (condition: the
    document type, or the update's own `condition`, such as feed/live.py's `news.live_seq < S`; Vespa answers 412
    otherwise, where an unconditional update of a missing document would be a silent no-op). An increment is not idempotent, so only a 429 (refused before it was applied) is retried; a
    timeout or 5xx is reported failed, saying it may have been applied. Updates of one document are sent one after
    the other, in the order given (a conditional sequence, feed/live.py, depends on it); others in parallel."""
    queue = iter(updates)
    documents: dict[str, asyncio.Lock] = {}

    async def worker() -> None:
        for update in queue:
            key = str(update.get("update")) if isinstance(update, dict) else ""
            async with documents.setdefault(key, asyncio.Lock()):  # asked before any await: in the order pulled
                await update_one(session, update, report, doctype, namespace, policy)

    await asyncio.gather(*(worker() for _ in range(policy.concurrency)))


async def update_one(session, update: dict, report: FeedReport, doctype: str, namespace: str,
                     policy: FeedPolicy) -> None:
    report.sent += 1
    try:
        doc_namespace, doc_type, local_id = parse_document_id(update.get("update") if isinstance(update, dict) else None)
        if (doc_namespace, doc_type) != (namespace, doctype) or not isinstance(update.get("fields"), dict):
            raise BackendError(f"expected {{\"update\": \"id:{namespace}:{doctype}::<id>\", \"fields\": {{...}}}}")
    except BackendError as error:
        report.failed.append((str(update.get("update", "?") if isinstance(update, dict) else update)[:80], 400,
                              str(error)))
        return
    idempotent = is_sequenced(update)
    uncertain = False  # an earlier attempt may have been applied (a timeout, a 5xx)
    for attempt in range(1, policy.max_attempts + 1):
        status, body = await _update(session, local_id, update["fields"], update.get("condition") or doctype,
                                     doctype, namespace, policy)
        again = status == 429 or (idempotent and retryable(status))
        if not again or attempt == policy.max_attempts:
            break
        uncertain |= status != 429
        report.retries += 1
        await asyncio.sleep(policy.backoff(attempt))
    if status == 200:
        report.ok += 1
        return
    if uncertain and status == 412 and "TEST_AND_SET_CONDITION_FAILED" in vespa_message(body):
        report.ok += 1  # a sequenced update refused after a timeout: the timed-out attempt was applied
        report.verified += 1
        return
    note = " (it may have been applied)" if timed_out(status) or status >= 500 else ""
    report.failed.append((update["update"], status, vespa_message(body) + note))


async def _update(session, local_id: str, fields: dict, condition: str, doctype: str, namespace: str,
                  policy: FeedPolicy) -> tuple[int, object]:
    try:
        response = await session.update_data(doctype, local_id, fields, auto_assign=False, namespace=namespace,
                                             condition=condition, timeout=f"{policy.server_timeout_s:g}s")
    except Exception as error:  # the client's exceptions (timeouts, resets), with NO_RETRY
        return TRANSPORT_ERROR, {"Exception": str(error), "message": "Exception during update_data"}
    return response.status_code, response.json
