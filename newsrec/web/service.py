"""What the web page shows, as plain JSON-ready dicts, over either backend (feed/backend.py): a reader's history,
their recommendations with each phase's score, BM25 search (personalized when a reader is chosen) with matches
per category, the popular news, the categories. The pages (newsrec/web/app.py) and the JSON endpoints beside them
both call this; every input is checked here, and a bad one raises `WebInputError` with the HTTP status it maps to.

Each recommendation carries the scores of the funnel that produced it (the rank profiles' match-features):
- recall: closeness(field,embedding) = 1 / (1 + distance) of the HNSW search (first phase);
- second phase: ranking_score = the user's ranking vector · the news embedding (profile `recommendation`);
- global phase: the cross-encoder's score (profile `unbert`; the hits past its budget N rescaled below);
- CTR prior: (clicks + 1) / (impressions + 25), the popularity profile's smoothed CTR (feed/ranking.py);
- relevance: the profile's final score, the order of the list.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from feed import ranking as profiles
from feed.backend import Hit
from feed.queries import MAX_HITS, RECOMMEND_PROFILES, check_filter_values, safe_value
from feed.vespa_backend import VespaBackend
from pipeline.errors import NewsrecError

MAX_QUERY_CHARS = 200
HISTORY_SHOWN = 10
SAMPLE_USERS = 12
CLOSENESS_FEATURES = ("closeness(field,embedding)", "nearest_neighbor")


class WebInputError(NewsrecError):
    """A request the page cannot answer as asked: `status` is the HTTP status of the JSON endpoint (400 malformed,
    404 unknown user); the message says what was wrong."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One page or API request, checked: every field is safe to pass to a backend."""

    user: str | None = None
    category: str | None = None
    text: str | None = None
    sort: str | None = None
    hits: int = 10
    ranking: str = "recommendation"


def parse_request(params: dict[str, str]) -> Request:
    """The request's query parameters (user, category, q, sort, hits, ranking), checked; empty ones are absent."""
    value = {name: (params.get(name) or "").strip() or None for name in ("user", "category", "q", "sort", "hits",
                                                                         "ranking")}
    return Request(user=_checked_id("user id", value["user"]), category=_checked_id("category", value["category"]),
                   text=_checked_text(value["q"]), sort=_checked_choice("sort", value["sort"], ("date",)),
                   hits=_checked_hits(value["hits"]),
                   ranking=_checked_choice("ranking", value["ranking"], RECOMMEND_PROFILES) or "recommendation")


def _checked_id(kind: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return safe_value(kind, value)
    except NewsrecError as error:
        raise WebInputError(str(error)) from None


def _checked_text(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_QUERY_CHARS:
        raise WebInputError(f"search text of {len(text)} characters: at most {MAX_QUERY_CHARS}")
    return text


def _checked_choice(name: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise WebInputError(f"{name} {value[:40]!r}: use one of {', '.join(choices)}")
    return value


def _checked_hits(value: str | None) -> int:
    if value is None:
        return 10
    if not value.isdigit() or not 1 <= int(value) <= MAX_HITS:
        raise WebInputError(f"hits {value[:20]!r}: a whole number from 1 to {MAX_HITS}")
    return int(value)


class Service:
    """The page's questions over one backend. Backend calls are serialized by a lock: the embedded index's
    searches are not meant for concurrent callers, and a demo page needs no more."""

    def __init__(self, backend):
        self.backend = backend
        self.is_vespa = isinstance(backend, VespaBackend)
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return self.backend.description

    def users(self, limit: int = SAMPLE_USERS) -> list[str]:
        with self._lock:
            return self.backend.user_ids(limit)

    def history(self, user: str) -> dict:
        """The user's latest reads, newest first; unknown user -> WebInputError 404."""
        with self._lock:
            read = self.backend.read_items(user)
            if read is None:
                raise WebInputError(f"unknown user {user!r}: not in {self.description}", status=404)
            latest = list(reversed(read[-HISTORY_SHOWN:]))
            return {"user": user, "read": len(read), "latest": [news_row(hit) for hit in self.backend.news(latest)]}

    def recommendations(self, request: Request) -> dict:
        """The user's recommendations under request.ranking; unknown user -> WebInputError 404 (the page shows the
        popularity fallback instead, see `page`)."""
        if request.user is None:
            raise WebInputError("recommendations need a user (parameter user)")
        filters = self._filters(request)
        with self._lock:
            if self.backend.read_items(request.user) is None:
                raise WebInputError(f"unknown user {request.user!r}: not in {self.description}", status=404)
            hits = self.backend.recommend(request.user, request.hits, filters, request.ranking)
            self._check_empty(hits, filters)
        return {"user": request.user, "ranking": request.ranking, "category": request.category,
                "hits": [recommendation_row(hit, request.ranking) for hit in hits]}

    def search(self, request: Request) -> dict:
        """BM25 over title and abstract (every news item without text), personalized for request.user when given;
        with the matches per category of the same query."""
        filters = self._filters(request)
        with self._lock:
            if request.user is not None and self.backend.read_items(request.user) is None:
                raise WebInputError(f"unknown user {request.user!r}: not in {self.description}", status=404)
            hits = self.backend.search(request.text, request.hits, request.user, filters, request.sort)
            self._check_empty(hits, filters)
            groups = self.backend.group_counts("category", request.text, filters)
        return {"text": request.text, "user": request.user, "sort": request.sort, "category": request.category,
                "hits": [search_row(hit) for hit in hits],
                "categories": [{"category": name, "matches": count} for name, count in groups]}

    def popular(self, request: Request) -> dict:
        filters = self._filters(request)
        with self._lock:
            hits = self.backend.popular(request.hits, filters)
            self._check_empty(hits, filters)
        return {"category": request.category, "hits": [news_row(hit, score=hit.relevance) for hit in hits]}

    def categories(self) -> list[dict]:
        with self._lock:
            return [{"category": name, "news": count} for name, count in self.backend.group_counts("category")]

    def _filters(self, request: Request) -> dict[str, str]:
        return {"category": request.category} if request.category else {}

    def _check_empty(self, hits: list[Hit], filters: dict[str, str]) -> None:
        """An empty filtered answer whose category does not exist is an error naming the categories there are."""
        if not hits and filters:
            try:
                check_filter_values(self.backend, filters)
            except NewsrecError as error:
                raise WebInputError(str(error)) from None


def news_row(hit: Hit, score: float | None = None) -> dict:
    fields = hit.fields
    row = {"news_id": hit.news_id, "title": fields.get("title", ""), "category": fields.get("category", ""),
           "subcategory": fields.get("subcategory", ""), "date": fields.get("date"), "url": fields.get("url", "")}
    if score is not None:
        row["score"] = score
    return row


def recommendation_row(hit: Hit, ranking: str) -> dict:
    features = hit.fields.get("matchfeatures") or {}
    closeness = next((features[name] for name in CLOSENESS_FEATURES if name in features), None)
    return {**news_row(hit), "relevance": hit.relevance, "scores": {
        "recall_closeness": _number(closeness),
        "second_phase": _number(features.get("ranking_score")),
        "global_phase": hit.relevance if ranking == "unbert" else None,
        "category_ctr": _number(features.get("category_ctr")),
        "ctr_prior": ctr_prior(hit)}}


def search_row(hit: Hit) -> dict:
    features = hit.fields.get("matchfeatures") or {}
    return {**news_row(hit), "relevance": hit.relevance, "scores": {
        "text_score": _number(features.get("text_score")), "second_phase": _number(features.get("ranking_score")),
        "ctr_prior": ctr_prior(hit)}}


def ctr_prior(hit: Hit) -> float | None:
    clicks, impressions = hit.fields.get("clicks"), hit.fields.get("impressions")
    if clicks is None or impressions is None:
        return None
    return float(profiles.ctr(np.array([clicks]), np.array([impressions]))[0])


def _number(value) -> float | None:
    return None if value is None else float(value)

