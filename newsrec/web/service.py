"""What the web page shows, as plain JSON-ready dicts, over either backend (feed/backend.py): a reader's history,
their recommendations with each phase's score and why each is where it is, BM25 search (personalized when a reader
is chosen) with matches per category, the popular news, the categories. The pages (newsrec/web/app.py) and the JSON
endpoints beside them both call this; every input is checked here, and a bad one raises `WebInputError` with the
HTTP status it maps to. Only the rank profiles the index can serve are offered (`backend.rank_profiles()`).

Each recommendation carries the scores of the funnel that produced it (the rank profiles' match-features):
- recall: closeness(field,embedding) = 1 / (1 + distance) of the HNSW search (first phase);
- second phase: ranking_score = the user's ranking vector · the news embedding (profiles `recommendation`, `unbert`);
- category CTR: the CTR of the news item's category (profile `recommendation_with_global_category_ctr`, whose only
  phase is closeness × category CTR);
- global phase: the cross-encoder's score (profile `unbert`; the hits past its budget N rescaled below);
- CTR prior: (clicks + 1) / (impressions + 25), the popularity profile's smoothed CTR (feed/ranking.py);
- relevance: the profile's final score, the order of the list.
What decides each hit's place is named (`decided_by`) and said in words (`explanation`); `columns` lists the scores
the profile has, what each means, and the decimals that tell adjacent hits apart.
"""
from __future__ import annotations

import functools
import math
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from newsrec.feed import ranking as expressions
from newsrec.feed.backend import Hit
from newsrec.pipeline.visible import visible_fields
from newsrec.feed.funnel import DEFAULT as DEFAULT_BUDGETS
from newsrec.feed.profiles import CLOSENESS, DEFAULT_RECOMMENDATION, PROFILES, RERANKER
from newsrec.feed.queries import MAX_HITS, RECOMMEND_PROFILES, check_filter_values, safe_value
from newsrec.feed.vespa_backend import VespaBackend
from newsrec.pipeline.errors import NewsrecError

MAX_QUERY_CHARS = 200
HISTORY_SHOWN = 10
SAMPLE_USERS = 12
CLOSENESS_FEATURES = ("closeness(field,embedding)", "nearest_neighbor")
MIN_DECIMALS, MAX_DECIMALS = 4, 8
RECALL_BUDGET = DEFAULT_BUDGETS.recall  # R: the candidates the second phase re-ranks (the page asks the default)
RERANK_BUDGET = DEFAULT_BUDGETS.global_rerank  # N: the hits the cross-encoder re-scores (unbert's rerank-count)


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
    ranking: str = DEFAULT_RECOMMENDATION


def parse_request(params: dict[str, str]) -> Request:
    """The request's query parameters (user, category, q, sort, hits, ranking), checked; empty ones are absent.
    Whether the index serves the ranking is the Service's question (`Service.require_served`)."""
    value = {name: (params.get(name) or "").strip() or None for name in ("user", "category", "q", "sort", "hits",
                                                                         "ranking")}
    return Request(user=_checked_id("user id", value["user"]), category=_checked_id("category", value["category"]),
                   text=_checked_text(value["q"]), sort=_checked_choice("sort", value["sort"], ("date",)),
                   hits=_checked_hits(value["hits"]),
                   ranking=_checked_choice("ranking", value["ranking"], RECOMMEND_PROFILES) or DEFAULT_RECOMMENDATION)


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
    if re.fullmatch(r"[0-9]{1,6}", value) is None or not 1 <= int(value) <= MAX_HITS:  # not str.isdigit: '²'
        raise WebInputError(f"hits {value[:20]!r}: a whole number from 1 to {MAX_HITS}")
    return int(value)


def missing_for(ranking: str, is_vespa: bool) -> tuple[str, str]:
    """(what an index lacks to serve `ranking`: its row's `needs` in feed/profiles.py, how to get it)."""
    profile = PROFILES[ranking]
    if profile.global_phase != "reranker":
        return profile.needs or "this rank profile", "deploy the application of this newsrec version"
    if is_vespa:
        return (f"{profile.needs} (its application package has no rank profile {ranking})",
                "deploy a package built with `newsrec app build --reranker DIR` (DIR: an UNBERT checkpoint) and feed "
                "with the same --reranker")
    return profile.needs, "feed it with `newsrec-feed MIND_DIR --reranker DIR` (DIR: an UNBERT checkpoint)"


class Service:
    """The page's questions over one backend. Backend calls are serialized by a lock: the embedded index's
    searches are not meant for concurrent callers, and a demo page needs no more."""

    def __init__(self, backend):
        self.backend = backend
        self.is_vespa = isinstance(backend, VespaBackend)
        self._lock = threading.Lock()
        self._profiles: tuple[str, ...] | None = None

    @property
    def description(self) -> str:
        return self.backend.description

    @contextmanager
    def _serving(self):
        """The backend, alone, at its newest generation: the embedded index follows each feed's commit (Vespa
        needs nothing: its answers are always current)."""
        with self._lock:
            follow = getattr(self.backend, "follow", None)
            if follow is not None and follow():
                self._profiles = None  # a new generation may serve other profiles (a re-ranker, a ranker)
            yield

    def profiles(self) -> tuple[str, ...]:
        """The recommendation profiles the index can serve, asked of the backend once."""
        with self._serving():
            if self._profiles is None:
                self._profiles = tuple(self.backend.rank_profiles())
            return self._profiles

    def unserved(self) -> dict[str, str]:
        """Profile -> what the index lacks to serve it, for the known profiles it cannot serve."""
        return {name: missing_for(name, self.is_vespa)[0] for name in RECOMMEND_PROFILES
                if name not in self.profiles()}

    def require_served(self, ranking: str) -> None:
        """A known profile the index cannot serve -> WebInputError 400 naming the index, what it lacks, the remedy."""
        if ranking not in self.profiles():
            lacks, remedy = missing_for(ranking, self.is_vespa)
            raise WebInputError(f"ranking {ranking}: {self.description} cannot serve it: it lacks {lacks}. "
                                f"To get it, {remedy}.")

    def users(self, limit: int = SAMPLE_USERS) -> list[str]:
        with self._serving():
            return self.backend.user_ids(limit)

    def history(self, user: str) -> dict:
        """The user's latest reads, newest first; unknown user -> WebInputError 404."""
        with self._serving():
            read = self.backend.read_items(user)
            if read is None:
                raise self._unknown(user)
            latest = list(reversed(read[-HISTORY_SHOWN:]))
            return {"user": user, "read": len(read), "latest": [news_row(hit) for hit in self.backend.news(latest)]}

    def recommendations(self, request: Request) -> dict:
        """The user's recommendations under request.ranking, each with why it is where it is; an unknown user (the
        backend's popularity fallback) -> WebInputError 404 (the page shows the fallback instead, see `page`)."""
        if request.user is None:
            raise WebInputError("recommendations need a user (parameter user)")
        self.require_served(request.ranking)
        filters = self._filters(request)
        with self._serving():
            page = self.backend.recommend(request.user, request.hits, filters, request.ranking)
            if page.fallback is not None:  # the popular news stood in
                raise self._unknown(request.user)
            self._check_empty(page.hits, filters)
        return {"user": request.user, "ranking": request.ranking, "category": request.category,
                **explained(request.ranking, [recommendation_row(hit, request.ranking) for hit in page.hits])}

    def search(self, request: Request) -> dict:
        """BM25 over title and abstract (every news item without text), personalized for request.user when given;
        with the matches per category of the same query."""
        filters = self._filters(request)
        with self._serving():
            if request.user is not None and self.backend.read_items(request.user) is None:
                raise self._unknown(request.user)
            hits = self.backend.search(request.text, request.hits, request.user, filters, request.sort)
            self._check_empty(hits, filters)
            groups = self.backend.group_counts("category", request.text, filters)
        rows = [search_row(hit) for hit in hits]
        return {"text": request.text, "user": request.user, "sort": request.sort, "category": request.category,
                "hits": rows, "decimals": column_decimals(rows, ("relevance", "text_score", "second_phase")),
                "categories": [{"category": name, "matches": count} for name, count in groups]}

    def popular(self, request: Request) -> dict:
        filters = self._filters(request)
        with self._serving():
            hits = self.backend.popular(request.hits, filters)
            self._check_empty(hits, filters)
        rows = [news_row(hit, score=hit.relevance) for hit in hits]
        return {"category": request.category, "hits": rows, "decimals": column_decimals(rows, ("score",))}

    def categories(self) -> list[dict]:
        with self._serving():
            return [{"category": name, "news": count} for name, count in self.backend.group_counts("category")]

    def _unknown(self, user: str) -> WebInputError:
        """The one message for a user the index has no recommendations for (the page shows it once)."""
        return WebInputError(f"unknown user {user!r}: not in {self.description}", status=404)

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
    """What the page and the JSON show of a news item: its text without control and bidi characters."""
    fields = visible_fields(hit.fields)
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
        "global_phase": hit.relevance if ranking == RERANKER else None,
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
    return float(expressions.ctr(np.array([clicks]), np.array([impressions]))[0])


def _number(value) -> float | None:
    return None if value is None else float(value)


def date_text(value) -> str:
    """A yyyymmdd int (news.sd's `date`, e.g. 20191114) as 2019-11-14; anything else as it is, None as ""."""
    digits = "" if value is None else str(value)
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}" if len(digits) == 8 and digits.isdigit() else digits


def decimals(values: list[float | None]) -> int:
    """The fewest decimals, MIN_DECIMALS to MAX_DECIMALS, that print each pair of adjacent distinct values
    differently (None values left out)."""
    present = [value for value in values if value is not None]
    for places in range(MIN_DECIMALS, MAX_DECIMALS):
        if all(f"{a:.{places}f}" != f"{b:.{places}f}" for a, b in zip(present, present[1:]) if a != b):
            return places
    return MAX_DECIMALS


def score_of(row: dict, key: str) -> float | None:
    """The value of column `key` of a row: one of its scores, else a field of the row (relevance, score)."""
    scores = row.get("scores") or {}
    return scores[key] if key in scores else row.get(key)


def column_decimals(rows: list[dict], keys: tuple[str, ...]) -> dict[str, int]:
    return {key: decimals([score_of(row, key) for row in rows]) for key in keys}


SCORE_KEYS = {CLOSENESS: "recall_closeness", "ranking_score": "second_phase", "category_ctr": "category_ctr",
              "relevance": "relevance", "global_phase": "global_phase"}  # feed/profiles.py's features -> JSON keys


def explained(ranking: str, rows: list[dict]) -> dict:
    """The rows of a recommendation page with `decided_by` and `explanation` each; the profile's `order` in words,
    `decided_by` of the profile and its score `columns` (key, label, meaning, decides, decimals): all from the
    profile's row of feed/profiles.py."""
    profile = PROFILES[ranking]
    columns = [(SCORE_KEYS[phase.feature], phase) for phase in profile.phases]
    decides = SCORE_KEYS[profile.decides]
    places = column_decimals(rows, tuple(key for key, _ in columns))
    for position, row in enumerate(rows, 1):
        show = functools.partial(shown, row, places=places)
        row["decided_by"], row["explanation"] = explanation(profile, columns, position, show)
    return {"order": profile.description, "decided_by": decides, "hits": rows,
            "columns": [{"key": key, "label": phase.label, "meaning": phase.meaning, "decides": key == decides,
                         "decimals": places[key]} for key, phase in columns]}


def shown(row: dict, key: str, places: dict[str, int]) -> str:
    value = score_of(row, key)
    return "none" if value is None or not math.isfinite(value) else f"{value:.{places[key]}f}"


def explanation(profile, columns: list, position: int, show) -> tuple[str, str]:
    """(the score that put the hit at `position`, why in words): the global phase within its N, the second phase
    within the recall budget, else the profile's own score from its parts."""
    place = ordinal(position)
    found = f"found by recall at closeness {show('recall_closeness')}"
    second = f"ranking vector · news vector = {show('second_phase')}"
    if profile.global_phase and position <= RERANK_BUDGET:
        return "global_phase", (f"{place} by the global phase's score {show('global_phase')} (the cross-encoder's "
                                f"and the second phase's scores, each normalized over the best {RERANK_BUDGET}, "
                                f"added); second phase: {second}, {found}")
    if profile.global_phase:
        return "second_phase", (f"{place}: below the {RERANK_BUDGET} the cross-encoder re-scores, in second-phase "
                                f"order ({second}, {found}; rescaled to {show('global_phase')})")
    decides = SCORE_KEYS[profile.decides]
    label = next(phase.label for key, phase in columns if key == decides)
    if profile.second_phase_rerank and position <= RECALL_BUDGET:
        return decides, f"{place} by the second phase: {label} = {show(decides)}; {found}"
    if profile.second_phase_rerank:
        return "recall_closeness", (f"{place} by recall closeness {show('recall_closeness')}: past the "
                                    f"{RECALL_BUDGET} candidates the second phase re-orders")
    parts = ", ".join(f"{phase.label} {show(key)}" for key, phase in columns if key != decides)
    return decides, f"{place} by {label} = {show(decides)}" + (f" ({parts})" if parts else "")


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
