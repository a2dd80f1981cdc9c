"""Request bodies for Vespa's /search/ API: recommendation, text search, and the user-profile searcher.

Values from users never go into YQL unchecked: filter values and user ids must match a strict
pattern in full, text goes through `{grammar: "linguistics"}userInput(@query)` as a parameter (tokenized as
the fields were, no query syntax: a search box's `news_id:N1` is two words, not a field query). Vectors
must have the schema's dimension (Vespa would zero-pad a short one silently). The funnel's budgets come
from feed/funnel.py.
"""
from __future__ import annotations

import difflib
import functools
import numbers
import re
from typing import Sequence

from newsrec.feed.funnel import DEFAULT, Budgets, budgets
from newsrec.feed.profiles import (DEFAULT_RECOMMENDATION, PERSONALIZED_SEARCH, POPULARITY, PROFILES, TEXT_SEARCH,
                                   RankProfile, nearest_neighbor_profiles, recommendation_profiles)
from newsrec.feed.reranking import require_rerank_budget
from newsrec.feed.schema import load_schemas, tensor_size
from newsrec.pipeline.errors import NewsrecError

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # matched in full: re.match("^...$") would accept "N1\n"
FILTER_FIELDS = ("category", "subcategory")
# The fields a query with user_id may name in its own conditions (UserProfileSearcher.CALLER_FIELDS): the filters,
# the day of publication and the text. Anything that singles news out (news_id, a publication second) would make
# the hits tell which news the reader has read, since those are excluded below the caller's conditions.
CALLER_FIELDS = (*FILTER_FIELDS, "date", "title", "abstract", "default")
# Vespa's own rerank counts: set by UserProfileSearcher on a query with user_id (refused from the request), cut to
# the funnel's bounds on other queries (vespa-app UserProfileSearcher.vespaRerankCount).
VESPA_RERANK_COUNTS = ("ranking.secondPhase.rerankCount", "ranking.secondPhase.totalRerankCount",
                       "ranking.globalPhase.rerankCount", "ranking.rerankCount", "ranking.keepRankCount",
                       "ranking.totalKeepRankCount")
MAX_OFFSET = 1000  # Vespa's default maxOffset
# The application's reader handler on the query cluster (vespa-app/.../UserHistoryHandler.java): GET READER_PATH + id
# gives one user's history and vectors, GET READER_PATH?hits=N up to MAX_LISTED user ids (never a visit of all users)
READER_PATH = "/newsrec/v1/user/"
MAX_LISTED = 100
USER_INPUT = '{grammar: "linguistics"}userInput(@query)'


class QueryError(NewsrecError):
    """A request that cannot be built safely (bad filter field or value, bad user id, hits < 1)."""


class UnknownFilterValueError(QueryError):
    """A filter on a value its field never takes (e.g. category 'sprots'): why a query found nothing."""


MAX_HITS = 400  # Vespa's default maxHits: a query asking for more is refused


def require_hits(hits: int) -> int:
    """`hits` as an int in 1..MAX_HITS (0 asks for nothing; a negative count would slice from the end; Vespa
    refuses more than maxHits)."""
    if isinstance(hits, bool) or not isinstance(hits, numbers.Real) or not 1 <= hits <= MAX_HITS or int(hits) != hits:
        raise QueryError(f"hits must be an integer from 1 to {MAX_HITS} (Vespa's default maxHits), got {hits!r}")
    return int(hits)


def require_offset(offset: int) -> int:
    """`offset` as an int in 0..MAX_OFFSET (Vespa refuses more)."""
    if isinstance(offset, bool) or not isinstance(offset, numbers.Integral) or not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"offset must be an integer from 0 to {MAX_OFFSET} (Vespa's default maxOffset), got {offset!r}")
    return int(offset)


def require_vector(name: str, vector: Sequence[float], size: int | None) -> list[float]:
    """`vector` as floats, refused unless it has `size` values (Vespa zero-pads a short query tensor silently)."""
    values = [float(v) for v in vector]
    if size is not None and len(values) != size:
        raise QueryError(f"query({name}) must have {size} values (the schema's tensor), got {len(values)}")
    return values


@functools.cache
def embedding_size() -> int | None:
    """The dimension of the news embedding in schemas/news.sd (query vectors must have it); read once, not on
    every query body."""

    return tensor_size(load_schemas()["news"].fields["embedding"])


def safe_value(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value):
        raise QueryError(f"bad {kind} {value!r}: use letters, digits, '_' or '-' (at most 64)")
    return value


_LABEL = re.compile(r"[^\"\\\x00-\x1f]{1,256}")
_MAPPED_CELL = re.compile(r'\{(\w+):"((?:[^"\\])*)"\}:([-+0-9.eEinfaINF]+)')


def mapped_tensor(dimension: str, cells: dict[str, float]) -> str:
    """A one-dimension mapped query tensor in Vespa's literal form, `{{category:"sports"}:0.05,...}` (labels quoted;
    one with a quote, a backslash or a control character is refused)."""
    parts = []
    for label, value in cells.items():
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise QueryError(f"bad {dimension} label {label!r} in a query tensor")
        parts.append(f'{{{dimension}:"{label}"}}:{float(value)!r}')
    return "{" + ",".join(parts) + "}"


def parse_mapped_tensor(text: str) -> dict[str, float] | None:
    """The cells of `mapped_tensor`'s literal form ({label: value}), None for text of another form."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        return None
    body = inner[1:-1].strip()
    if not body:
        return {}
    cells, position = {}, 0
    for match in _MAPPED_CELL.finditer(body):
        if body[position:match.start()].strip(", ") != "":
            return None
        cells[match.group(2)] = float(match.group(3))
        position = match.end()
    return cells if body[position:].strip() == "" else None


def filter_clause(filters: dict[str, str]) -> str:
    clauses = []
    for field, value in sorted(filters.items()):
        if field not in FILTER_FIELDS:
            raise QueryError(f"cannot filter on {field!r}; filterable fields: {', '.join(FILTER_FIELDS)}")
        clauses.append(f'{field} contains "{safe_value(field, value)}"')
    return "".join(f" and {c}" for c in clauses)


def exclusion_clause(exclude: Sequence[str]) -> str:
    """` and !(news_id in ("N1", "N2"))`: one term however many news are excluded."""
    if not exclude:
        return ""
    return f' and !(news_id in ({", ".join(chr(34) + safe_value("news id", n) + chr(34) for n in exclude)}))'


def recommend_body(recall_vector: Sequence[float], ranking_vector: Sequence[float] | None = None, hits: int = 10,
                   filters: dict[str, str] | None = None, exclude: Sequence[str] = (),
                   ranking: str = DEFAULT_RECOMMENDATION, offset: int = 0, budgets: Budgets = DEFAULT,
                   corpus_size: int | None = None) -> dict:
    """nearestNeighbor over news with the user's recall vector, ranked by `ranking` (`recommendation`:
    re-ranked by the ranking vector; `recall`: by closeness alone, no ranking vector needed). The funnel of
    feed/funnel.py: totalTargetHits = E neighbours explored and ranked by closeness, the best R re-ranked."""
    size = embedding_size()
    explored = budgets.explored(require_hits(hits), require_offset(offset), corpus_size)
    yql = (f"select * from news where {{totalTargetHits: {explored}}}nearestNeighbor(embedding, user_recall)"
           f"{filter_clause(filters or {})}{exclusion_clause(exclude)}")
    body = {"yql": yql, "hits": int(hits), "ranking": ranking,
            "input.query(user_recall)": require_vector("user_recall", recall_vector, size)}
    if offset:
        body["offset"] = int(offset)
    if require_profile(ranking, recommending=False).second_phase_rerank:
        body["ranking.secondPhase.totalRerankCount"] = budgets.recall
    if ranking_vector is not None:
        body["input.query(user_ranking)"] = require_vector("user_ranking", ranking_vector, size)
    return body


SORT_FIELDS = ("date",)  # int attribute (yyyymmdd); newest first
RECOMMEND_PROFILES = recommendation_profiles()  # feed/profiles.py: the table


def require_sort(sort: str) -> str:
    if sort not in SORT_FIELDS:
        raise QueryError(f"cannot sort by {sort!r}; sortable fields: {', '.join(SORT_FIELDS)}")
    return sort


def require_group_field(field: str) -> str:
    if field not in FILTER_FIELDS:
        raise QueryError(f"cannot group by {field!r}; groupable fields: {', '.join(FILTER_FIELDS)}")
    return field


def require_profile(ranking: str, recommending: bool = True) -> RankProfile:
    """The table's row of a recommendation profile (with `recommending=False`: of any nearest-neighbour one)."""
    row = PROFILES.get(ranking)
    if row is None or not (row.recommends if recommending else row.nearest_neighbor):
        choices = RECOMMEND_PROFILES if recommending else nearest_neighbor_profiles()
        raise QueryError(f"unknown recommendation profile {ranking!r}; choose {' or '.join(choices)}")
    return row


def where_clause(text: str | None, filters: dict[str, str] | None) -> str:
    """The text as words (USER_INPUT) when there is text, else `true` (every news item), AND-ed with the filters."""
    return f"{USER_INPUT if text else 'true'}{filter_clause(filters or {})}"


def order_clause(sort: str | None) -> str:
    """` order by date desc, news_id asc` (news id breaks ties between news of the same day)."""
    if sort is None:
        return ""
    return f" order by {require_sort(sort)} desc, news_id asc"


def search_body(text: str | None, hits: int = 10, ranking_vector: Sequence[float] | None = None,
                filters: dict[str, str] | None = None, sort: str | None = None) -> dict:
    """BM25 over title and abstract (every news item when there is no text), newest first with sort="date";
    personalized with the user's ranking vector when given."""
    yql = f"select * from news where {where_clause(text, filters)}{order_clause(sort)}"
    body = {"yql": yql, "hits": require_hits(hits), "ranking": TEXT_SEARCH}
    if text:
        body["query"] = text
    if ranking_vector is not None:
        body["ranking"] = PERSONALIZED_SEARCH
        body["input.query(user_ranking)"] = require_vector("user_ranking", ranking_vector, embedding_size())
    return body


GROUP_LIMIT = 50  # groups a grouping request returns by default


def group_body(field: str, text: str | None = None, filters: dict[str, str] | None = None,
               max_groups: int = GROUP_LIMIT) -> dict:
    """Matches per value of `field`, most first: a grouping request with no hits."""
    require_group_field(field)
    grouping = f"all(group({field}) max({int(max_groups)}) order(-count()) each(output(count())))"
    body = {"yql": f"select * from news where {where_clause(text, filters)} | {grouping}", "hits": 0,
            "ranking": TEXT_SEARCH}
    if text:
        body["query"] = text
    return body


def popularity_body(hits: int = 10, filters: dict[str, str] | None = None, offset: int = 0) -> dict:
    """The popularity profile over every news item: with no text, nativeRank is 0 and relevance = 100 · the
    smoothed CTR."""
    body = {"yql": f"select * from news where {where_clause(None, filters)}", "hits": require_hits(hits),
            "ranking": POPULARITY}
    if require_offset(offset):
        body["offset"] = offset
    return body


def user_profile_params(user_id: str, hits: int = 10, filters: dict[str, str] | None = None,
                        fallback: str = "error", ranking: str = DEFAULT_RECOMMENDATION, offset: int = 0,
                        recall_budget: int | None = None, rerank_budget: int | None = None) -> dict:
    """Parameters for the application's UserProfileSearcher: `/search/?user_id=U123`; the recall budget is
    the application's default (its query profile, = feed/funnel.py's) unless given; `rerank_budget`: N, the
    hits the global phase of ranking unbert re-scores (the rank profile's rerank-count unless given)."""
    require_profile(ranking)
    params = {"user_id": safe_value("user id", user_id), "hits": require_hits(hits), "user_fallback": fallback}
    if require_offset(offset):
        params["offset"] = offset
    if recall_budget is not None:
        params["recall_budget"] = budgets(recall_budget).recall  # checked: 1..MAX_RECALL_BUDGET
    if rerank_budget is not None:

        params["rerank_budget"] = require_rerank_budget(rerank_budget)
    if ranking != DEFAULT_RECOMMENDATION:
        params["ranking"] = ranking
    if filters:
        params["yql"] = f"select * from news where true{filter_clause(filters)}"
    return params


def query_inputs(body: dict) -> dict:
    """The `query(name)` inputs a body sends: {"user_recall": [...], ...}."""
    return {key[len("input.query("):-1]: value for key, value in body.items() if key.startswith("input.query(")}


FIELD_PLURALS = {"category": "categories", "subcategory": "subcategories"}


def check_filter_values(backend, filters: dict[str, str] | None, shown: int = 20) -> None:
    """Raise `UnknownFilterValueError` for the first filter whose value no news item in `backend` has (compared
    as the filters match: case-insensitively), listing the values there are; call it when a filtered query
    found nothing, so that an empty answer is never a typo in disguise. Works with either backend (through
    `group_counts`); with Vespa, a value is only called unknown when the grouping listed every value."""

    for field, value in sorted((filters or {}).items()):
        values = sorted(name for name, _ in backend.group_counts(require_group_field(field)))
        if value.lower() in {name.lower() for name in values} or len(values) >= GROUP_LIMIT:
            continue
        close = difflib.get_close_matches(value.lower(), values, n=1)
        listed = ", ".join(values[:shown]) + (f", ... ({len(values)} in all)" if len(values) > shown else "")
        raise UnknownFilterValueError(f"{field} {value!r} does not exist ({FIELD_PLURALS.get(field, field)}: "
                                      f"{listed or 'none'})" + (f"; did you mean {close[0]!r}?" if close else ""))
