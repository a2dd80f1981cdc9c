"""Real-time popularity: per-news counters written by partial updates as impressions happen, never double-counted.

Impression number i of a stream (0-based) has two sequence numbers: 2i + 1 publishes the news it shows for the
first time (`{"published": {"assign": t}}`, before it is ranked), 2i + 2 counts its outcome, one partial update per
candidate in Vespa's document JSON update format:

    {"update": "id:news:news::N1", "condition": "news.live_seq < 18",
     "fields": {"impressions": {"increment": 1}, "clicks": {"increment": 1},
                "impressions_decayed": {"increment": w}, "clicks_decayed": {"increment": w},
                "live_seq": {"assign": 18}}}

with w = exp(rate · (t − origin)) (feed/ranking.py: the decayed counters need no read-modify-write). The condition makes the update
idempotent: the document's `live_seq` is the last impression applied to it, so an impression sent again (a
retry after a timeout, a replay resumed after a crash) fails the condition (Vespa: 412) and counts nothing. This
needs a document's updates applied in sequence order: one writer (the replay holds a lock) that finishes an
impression's updates before the next impression's (the candidates of one impression are distinct documents, so
those go in parallel).

`LiveStore` holds these fields for the embedded index: numpy columns beside the documents, updated in place
(atomically per update: condition checked, then every field), saved atomically (feed/state.py
`write_atomically`) when the writer checkpoints.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from newsrec.feed import ranking
from newsrec.feed.backend import FeedReport
from newsrec.feed.selection import ConditionError, parse_condition
from newsrec.feed.state import write_atomically

LIVE_FIELDS = {"published": np.int64, "clicks": np.int64, "impressions": np.int64, "clicks_decayed": np.float64,
               "impressions_decayed": np.float64, "live_seq": np.int64, "appeal": np.float64}
SEQUENCE_FIELD = "live_seq"
LIVE_FILE = "live.npz"


@dataclass(frozen=True)
class DecayConfig:
    """The decayed counters' half-life and reference second (the live profile's query(decay_rate) and
    query(decay_origin))."""

    half_life_hours: float = 6.0
    origin: float = 0.0  # epoch seconds; a service sets it once (the replay: its stream's first second)

    @property
    def rate(self) -> float:
        return math.log(2.0) / (self.half_life_hours * ranking.SECONDS_PER_HOUR)

    def inputs(self) -> dict[str, float]:
        return {"decay_origin": float(self.origin), "decay_rate": self.rate}


def sequence_numbers(impression: int) -> tuple[int, int]:
    """(publish, count): the two sequence numbers of the stream's impression number `impression` (0-based): its
    first sightings are published before it is ranked, its outcome counted after."""
    return 2 * impression + 1, 2 * impression + 2


def publish_updates(news_ids: Iterable[str], time: int, seq: int) -> list[dict]:
    """News seen for the first time at `time`: published then (before the impression that shows them is ranked)."""
    return [{"update": f"id:news:news::{news_id}", "condition": f"news.{SEQUENCE_FIELD} < {seq}",
             "fields": {"published": {"assign": int(time)}, SEQUENCE_FIELD: {"assign": seq}}} for news_id in news_ids]


def impression_updates(news_ids: list[str], labels: np.ndarray, time: int, seq: int,
                       decay: DecayConfig) -> list[dict]:
    """The updates one impression's outcome writes (module docstring): one per candidate, conditional on `seq`."""
    weight = float(ranking.event_weight(time, decay.origin, decay.rate))
    updates = []
    for news_id, label in zip(news_ids, labels.tolist()):
        fields = {"impressions": {"increment": 1}, "impressions_decayed": {"increment": weight},
                  SEQUENCE_FIELD: {"assign": seq}}
        if label:
            fields["clicks"] = {"increment": 1}
            fields["clicks_decayed"] = {"increment": weight}
        updates.append({"update": f"id:news:news::{news_id}", "condition": f"news.{SEQUENCE_FIELD} < {seq}",
                        "fields": fields})
    return updates


def reset_updates(news_ids: list[str], appeal: np.ndarray | None = None) -> Iterable[dict]:
    """Updates that start every news item's live fields afresh (a replay's start): nothing seen, no counts, sequence
    0; with `appeal`, each item's content appeal. Conditional on the document existing (Vespa would otherwise
    answer 200 to an update of a missing document, changing nothing)."""
    for row, news_id in enumerate(news_ids):
        fields = {name: {"assign": 0} for name in LIVE_FIELDS if name != "appeal"}
        if appeal is not None:
            fields["appeal"] = {"assign": float(appeal[row])}
        yield {"update": f"id:news:news::{news_id}", "condition": "news", "fields": fields}


def condition_refused(status: int, message: str) -> bool:
    """Whether a failed update was refused by its test-and-set condition (Vespa's 412
    TEST_AND_SET_CONDITION_FAILED; not the 412 of a missing document): for a sequence condition, already applied."""
    return status == 412 and "TEST_AND_SET_CONDITION_FAILED" in message


def is_live_update(update: dict) -> bool:
    """Whether an update touches only live fields with numeric values (the embedded index's fast path)."""
    fields = update.get("fields")
    return isinstance(fields, dict) and bool(fields) and all(name in LIVE_FIELDS for name in fields)


class LiveStore:
    """The live fields of the embedded index's news, one numpy column each, rows in the index's news order."""

    def __init__(self, news_ids: list[str], columns: dict[str, np.ndarray]):
        self.news_ids = news_ids
        self.row = {news_id: i for i, news_id in enumerate(news_ids)}
        self.columns = columns

    @classmethod
    def from_documents(cls, news_ids: list[str], documents: list[dict]) -> "LiveStore":
        """The fields as the documents hold them (0 where a document has none)."""
        columns = {name: np.array([fields.get(name) or 0 for fields in documents], dtype=dtype)
                   for name, dtype in LIVE_FIELDS.items()}
        return cls(list(news_ids), columns)

    def carried_to(self, news_ids: list[str], documents: list[dict], put: set[str]) -> "LiveStore":
        """A store over `news_ids`: the documents' values for those just put (a put replaces the whole document,
        as in Vespa), this store's for the others it holds."""
        fresh = LiveStore.from_documents(news_ids, documents)
        rows = [(i, self.row[news_id]) for i, news_id in enumerate(news_ids) if news_id not in put and news_id in self.row]
        if rows:
            new, old = (np.array(side, dtype=np.int64) for side in zip(*rows))
            for name in LIVE_FIELDS:
                fresh.columns[name][new] = self.columns[name][old]
        return fresh

    def extended(self, news_ids: list[str], documents: list[dict]) -> "LiveStore":
        """A new store: these rows and the documents' fields appended (the others' values kept)."""
        more = LiveStore.from_documents(news_ids, documents)
        return LiveStore(self.news_ids + list(news_ids),
                         {name: np.concatenate([self.columns[name], more.columns[name]]) for name in LIVE_FIELDS})

    def apply(self, updates: Iterable[dict], report: FeedReport) -> int:
        """Apply live updates in order; each is atomic (its condition checked, then all its fields). A document
        not held or a condition that does not hold: 412; an unsupported condition, operation or value: 400.
        Returns the number applied."""
        applied = 0
        for update in updates:
            report.sent += 1
            document_id = str(update.get("update", "?"))
            row = self.row.get(document_id.rsplit("::", 1)[-1]) if document_id.startswith("id:news:news::") else None
            if row is None:
                report.failed.append((document_id, 412, f"document {document_id} does not exist (nothing updated)"))
                continue
            try:
                condition = parse_condition(update.get("condition"), "news")
                changes = self._changes(row, update["fields"], document_id)
                holds = condition is None or condition.holds(self._stored(condition.field, row))
            except (ConditionError, ValueError, TypeError, KeyError) as error:
                report.failed.append((document_id, 400, str(error)))
                continue
            if not holds:
                report.failed.append((document_id, 412, f"TEST_AND_SET_CONDITION_FAILED: condition {condition} not "
                                                        f"met by {document_id}"))
                continue
            for name, value in changes:
                self.columns[name][row] = value
            report.ok += 1
            applied += 1
        return applied

    def _stored(self, field: str | None, row: int) -> dict:
        if field is None:
            return {}
        if field not in self.columns:
            raise ValueError(f"condition on {field!r}: the embedded index evaluates conditions on live fields only")
        return {field: self.columns[field][row].item()}

    def _changes(self, row: int, fields: dict, document_id: str) -> list[tuple[str, float]]:
        changes = []
        for name, operation in fields.items():
            if name not in LIVE_FIELDS or not isinstance(operation, dict) or len(operation) != 1:
                raise ValueError(f"{document_id}: field {name!r}: expected one of assign/increment/decrement on a "
                                 f"live field ({', '.join(LIVE_FIELDS)})")
            (kind, value), = operation.items()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{document_id}: field {name!r}: {kind} needs a number, got {value!r}")
            current = self.columns[name][row]
            new = {"assign": value, "increment": current + value, "decrement": current - value}.get(kind)
            if new is None:
                raise ValueError(f"{document_id}: field {name!r}: unsupported operation {kind!r}")
            if LIVE_FIELDS[name] is np.int64 and float(new) != int(new):
                raise TypeError(f"{document_id}: field {name!r} is an integer field, got {value!r}")
            changes.append((name, new))
        return changes

    def to_bytes(self, generation: str | None) -> bytes:
        """The columns as an .npz, bound to the generation of the documents they belong to."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.columns, _meta=np.frombuffer(json.dumps(
            {"generation": generation, "news": len(self.news_ids), "first": self.news_ids[:1]}).encode(), np.uint8))
        return buffer.getvalue()

    def save(self, path: Path, generation: str | None) -> None:
        """Write the columns atomically (feed/state.py `write_atomically`)."""
        write_atomically(path, self.to_bytes(generation))

    @classmethod
    def from_bytes(cls, data: bytes | None, news_ids: list[str], generation: str | None = None,
                   bound: bool = False) -> "LiveStore | None":
        """The saved columns if they belong to these news (and, when `bound`, to this generation); else None."""
        if data is None:
            return None
        with np.load(io.BytesIO(data)) as saved:
            meta = json.loads(saved["_meta"].tobytes())
            if (bound and meta.get("generation") != generation) or meta.get("news") != len(news_ids) \
                    or meta.get("first") != list(news_ids[:1]):
                return None
            return cls(list(news_ids), {name: saved[name].astype(dtype) for name, dtype in LIVE_FIELDS.items()})

    @classmethod
    def load(cls, path: Path, news_ids: list[str], generation: str | None) -> "LiveStore | None":
        """The columns saved beside the index if they belong to this generation's news; None otherwise (a newer
        feed replaced the documents: its own copy of the columns holds)."""
        return cls.from_bytes(path.read_bytes() if path.exists() else None, news_ids, generation, bound=True)
