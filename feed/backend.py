"""The two interfaces of an index, each implemented by Vespa (feed/vespa_backend.py) and the embedded default index
(feed/local_backend.py): `FeedTarget`, where the main job writes (a JSONL file for `vespa feed` is one too), and
`SearchBackend`, what serving asks. Their value types: `Hit`, `Recommendations`, `FeedReport`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ContextManager, Iterable, Protocol

from newsrec.feed.profiles import DEFAULT_RECOMMENDATION
from newsrec.pipeline.errors import NewsrecError


class BackendError(NewsrecError):
    """A backend request that failed (the message names the document or query and the server's reason)."""


@dataclass(frozen=True)
class Hit:
    news_id: str
    relevance: float
    fields: dict  # summary fields (title, category, ...) and `matchfeatures` where the backend has them


@dataclass(frozen=True)
class Recommendations:
    """A page of recommendations, and whether it is the user's own: `fallback` is "popularity" when the user is not
    in the index (or has no vectors) and the popular news stand in, None otherwise. Never a silent stand-in: the
    command line says so on stderr, in --json and in its exit status."""

    user_id: str
    hits: list[Hit]
    fallback: str | None = None




@dataclass
class FeedReport:
    """Per-document accounting of one feed: nothing is swallowed; any failure makes the command exit non-zero."""

    sent: int = 0  # documents attempted in this run (each once, however many retries)
    ok: int = 0
    already_fed: int = 0  # skipped by --resume: acknowledged in an earlier run (journal checked: every id at the endpoint, a sample field by field)
    retries: int = 0  # extra attempts after 429 / 5xx / timeouts
    verified: int = 0  # of `ok`: a last attempt timed out, and a GET found the document stored as sent
    failed: list[tuple[str, int, str]] = field(default_factory=list)  # (document id, HTTP status, message)

    @property
    def success(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = (f"sent {self.sent}, ok {self.ok}, failed {len(self.failed)}, retries {self.retries}"
                + (f" ({self.verified} ok after a timeout, found stored)" if self.verified else "")
                + (f", {self.already_fed} already fed (resume)" if self.already_fed else ""))
        for doc_id, status, message in self.failed[:20]:
            text += f"\n  FAILED {doc_id}: HTTP {status}: {message}"
        if len(self.failed) > 20:
            text += f"\n  ... and {len(self.failed) - 20} more"
        return text


UPDATE_OPERATIONS = ("assign", "increment", "decrement")  # of Vespa's document JSON update format, supported here


class FeedState(Protocol):
    """A feed's state (Φ, the news fed, the model) where the target keeps it, under the target's writer lock."""

    directory: Path

    def state(self) -> dict:
        """What earlier feeds recorded ({} before the first)."""

    def begin(self, values: dict) -> None:
        """Before the first document: what this feed may leave behind if it is interrupted."""

    def finish(self, values: dict) -> None:
        """After the last document: what this feed did ({}: nothing to record)."""


class FeedTarget(Protocol):
    """Where the main job writes (feed/job.py): Vespa, the embedded default index, or a JSONL file for `vespa feed`.
    `run_feed` asks these, and never which kind of target it has."""

    description: str  # e.g. "Vespa at https://..." or "embedded default index in ./newsrec-index (not Vespa)"
    resumable: bool  # documents are acknowledged one by one, so an interrupted feed can resume (journals)
    location: str  # what the feed's identity names: the endpoint, the index directory or the file

    def preflight(self) -> None:
        """Before any document: a target that cannot take the feed fails here, with nothing written."""

    def feed_state(self, directory: Path, lock_timeout_s: float = 60.0) -> ContextManager[FeedState]:
        """The feed's state under the writer lock: a second feed of the same target waits, then refuses."""

    def feed(self, documents: Iterable[dict], doctype: str, report: FeedReport, journal: Path | None = None) -> None:
        """Write documents `{"id": "id:news:<doctype>::<id>", "fields": {...}}`, accounting each in `report`;
        with a journal, acknowledged ids are appended to it and ids already in it are skipped (resume)."""

    def update(self, updates: Iterable[dict], doctype: str, report: FeedReport) -> None:
        """Partial updates in Vespa's document JSON update format, `{"update": "id:news:<doctype>::<id>", "fields":
        {"clicks": {"increment": 1}, "title": {"assign": "..."}}}` (UPDATE_OPERATIONS), each accounted in
        `report`; an update of a document not held fails (Vespa: 412, the feed asks for the document to exist)."""

    def install_reranker(self, onnx: bytes, source: str) -> str | None:
        """Inside `feed_state`: make the re-ranker's ONNX model serve the global phase, or say (the returned note)
        what the user must do for it."""


class SearchBackend(Protocol):
    """What the serving side asks of an index: Vespa (feed/vespa_backend.py) or the embedded default index
    (feed/local_backend.py); tests/test_conformance.py runs the same tests on both."""

    description: str

    def recommend(self, user_id: str, hits: int = 10, filters: dict[str, str] | None = None,
                  ranking: str = DEFAULT_RECOMMENDATION, offset: int = 0, recall_budget: int | None = None,
                  rerank_budget: int | None = None) -> Recommendations:
        """Nearest neighbours of the user's recall vector, read news excluded, ranked by `ranking`:
        recommendation (the best `recall_budget` re-ranked by u_ra · r: feed/funnel.py) or
        recommendation_with_global_category_ctr (closeness × the category's CTR); the page of `hits` at `offset`,
        from the same candidates whatever the page. An unknown user gets the popular news, marked as the fallback
        (`Recommendations.fallback`); a malformed user id is a QueryError."""

    def rank_profiles(self) -> tuple[str, ...]:
        """The recommendation profiles (of feed.queries.RECOMMEND_PROFILES) this index can serve: unbert only where
        a re-ranker is installed (the embedded index) or packaged (Vespa)."""

    def search(self, text: str | None, hits: int = 10, user_id: str | None = None,
               filters: dict[str, str] | None = None, sort: str | None = None) -> list[Hit]:
        """BM25 over title and abstract (every news item without text); personalized with the user's ranking
        vector when a user is given; sort="date": newest first."""

    def popular(self, hits: int = 10, filters: dict[str, str] | None = None, offset: int = 0) -> list[Hit]:
        """The popularity profile over every news item: relevance 100 · the smoothed CTR, (clicks + 1) / (impressions
        + 25) (feed/ranking.py)."""

    def group_counts(self, field: str, text: str | None = None,
                     filters: dict[str, str] | None = None) -> list[tuple[str, int]]:
        """(value, matches) per value of `field` over the news matching text and filters, most first."""

    def ranking_scores(self, ranking_vector: list[float], news_ids: list[str]) -> list[float]:
        """u_ra · r for the given news (the `ranking_score` of the rank profiles), in the order given."""

    def nearest_news(self, query_vector: list[float], k: int) -> list[str]:
        """Ids of the k news nearest to a transformed query vector (the `recall` profile's retrieval)."""

    def user_ids(self, limit: int = 20) -> list[str]:
        """Up to `limit` ids of the users held (the web page's sample readers)."""

    def read_items(self, user_id: str) -> list[str] | None:
        """The user's has_read_items, oldest first; None for a user not held."""

    def news(self, news_ids: list[str]) -> list[Hit]:
        """The news documents with these ids, in the order given; ids not held are left out."""
