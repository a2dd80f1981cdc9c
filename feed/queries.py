"""Request bodies for Vespa's /search/ API: recommendation, text search, and the user-profile searcher.

Values from users never go into YQL unchecked: filter values and user ids must match a strict
pattern, text goes through `userInput(@query)` as a parameter.
"""
from __future__ import annotations

import re
from typing import Sequence

from pipeline.errors import NewsrecError

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FILTER_FIELDS = ("category", "subcategory")
EXPLORE_ADDITIONAL_FACTOR = 19  # HNSW explores targetHits + 19 x targetHits (see bench/bench_ann.py)


class QueryError(NewsrecError):
    """A request that cannot be built safely (bad filter field or value, bad user id)."""


def safe_value(kind: str, value: str) -> str:
    if not _SAFE_VALUE.match(value):
        raise QueryError(f"bad {kind} {value!r}: use letters, digits, '_' or '-' (at most 64)")
    return value


def filter_clause(filters: dict[str, str]) -> str:
    clauses = []
    for field, value in sorted(filters.items()):
        if field not in FILTER_FIELDS:
            raise QueryError(f"cannot filter on {field!r}; filterable fields: {', '.join(FILTER_FIELDS)}")
        clauses.append(f'{field} contains "{safe_value(field, value)}"')
    return "".join(f" and {c}" for c in clauses)


def recommend_body(recall_vector: Sequence[float], ranking_vector: Sequence[float], hits: int = 10,
                   filters: dict[str, str] | None = None, exclude: Sequence[str] = ()) -> dict:
    """nearestNeighbor over news with the user's recall vector, ranked by `recommendation`."""
    exclusion = "".join(f' and !(news_id contains "{safe_value("news id", n)}")' for n in exclude)
    explore = EXPLORE_ADDITIONAL_FACTOR * int(hits)  # recall@100 >= 0.99 on MIPS-transformed vectors
    yql = (f"select * from news where {{targetHits: {int(hits)}, hnsw.exploreAdditionalHits: {explore}}}"
           f"nearestNeighbor(embedding, user_recall)"
           f"{filter_clause(filters or {})}{exclusion}")
    return {"yql": yql, "hits": int(hits), "ranking": "recommendation",
            "input.query(user_recall)": [float(v) for v in recall_vector],
            "input.query(user_ranking)": [float(v) for v in ranking_vector]}


def search_body(text: str, hits: int = 10, ranking_vector: Sequence[float] | None = None,
                filters: dict[str, str] | None = None) -> dict:
    """BM25 over title and abstract; personalized with the user's ranking vector when given."""
    yql = f"select * from news where userInput(@query){filter_clause(filters or {})}"
    body = {"yql": yql, "query": text, "hits": int(hits), "ranking": "bm25"}
    if ranking_vector is not None:
        body["ranking"] = "personalized_search"
        body["input.query(user_ranking)"] = [float(v) for v in ranking_vector]
    return body


def user_profile_params(user_id: str, hits: int = 10, filters: dict[str, str] | None = None,
                        fallback: str = "error") -> dict:
    """Parameters for the application's UserProfileSearcher: `/search/?user_id=U123`."""
    params = {"user_id": safe_value("user id", user_id), "hits": int(hits), "user_fallback": fallback}
    if filters:
        params["yql"] = f"select * from news where true{filter_clause(filters)}"
    return params


def query_inputs(body: dict) -> dict:
    """The `query(name)` inputs a body sends: {"user_recall": [...], ...}."""
    return {key[len("input.query("):-1]: value for key, value in body.items() if key.startswith("input.query(")}
