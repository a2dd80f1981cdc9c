"""The /search/ API: a YQL query (or a user id) in, Vespa's result shape out.

The matched news are the news documents passing the YQL filters, containing a query term when the YQL
has userInput(@param), and the targetHits nearest when it has nearestNeighbor; scoring.py ranks them.
`user_id` runs the application's UserProfileSearcher, emulated (see `SearchApi._user_profile`), with its
funnel: totalTargetHits = max(10 × recall_budget, recall_exploration, hits + offset), the second phase
re-ranking the best recall_budget (the query profile's defaults: feed/funnel.py); recall_exploration, unless the
request sets it, is base(N) of the exploration law for the N news held (the searcher counts them). The `now` rank feature (the
live profile's time) is the query's ranking.properties.vespa.now (alias rankproperty.vespa.now), else the
server's clock (scoring.py `rank_now`). As in the
application (NewsOnlySearcher), only schema news is searchable: a query naming another schema in its YQL or
its sources / restrict parameters is a 400, and the user lookup matches user_id exactly, case included.
"""
from __future__ import annotations

import re
from collections import Counter

from newsrec.feed import exploration, funnel
from newsrec.feed.profiles import DEFAULT_RECOMMENDATION, FALLBACK, LEARNED, PROFILES
from newsrec.feed.queries import CALLER_FIELDS, VESPA_RERANK_COUNTS
from newsrec.feed.reranking import MAX_RERANK_BUDGET
from newsrec.feed.schema import Schema, SchemaMismatchError, check_query_inputs
from newsrec.contract_server.protocol import ApiError, Recorded
from newsrec.contract_server.scoring import NN_PROFILES, News, Ranked, nearest, rank, rank_now, text_score
from newsrec.contract_server.yql import Parsed, parse_yql, query_inputs, refuse_private_sources

MAX_HITS = 400
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # matched in full, as Java's Matcher.matches
USER_FALLBACKS = ("error", FALLBACK)


def doc_type(doc_id: str) -> str:
    """`id:news:user::U1` -> "user"."""
    return doc_id.split(":")[2]


def find_user(documents: dict[str, dict], user_id: str) -> dict | None:
    """The user whose user_id equals `user_id` exactly (`u1` never finds `U1`), with both vectors."""
    for doc_id, fields in list(documents.items()):
        if (doc_type(doc_id) == "user" and fields.get("user_id") == user_id
                and "recall_embedding" in fields and "ranking_embedding" in fields):
            return fields
    return None


class SearchApi:
    """/search/ over the shared document store (full id -> fields; news, users and the category_ctr parent)."""

    def __init__(self, schema: Schema, documents: dict[str, dict], attributes: set[str], summary_fields: set[str]):
        self.schema = schema  # news
        self.documents = documents
        self.attributes = attributes
        self.summary_fields = summary_fields
        # the application package without what schemas/news/ holds (the re-ranker's profile is packaged only with
        # its model, and the server has no cross-encoder); Vespa's built-in profiles besides
        self.profiles = {name for name in schema.profiles
                         if name not in PROFILES or PROFILES[name].schema_file == "news.sd"} | {"default", "unranked"}

    def search(self, record: Recorded) -> dict:
        params = _parameters(record)
        hits, offset = int(params.get("hits", 10)), int(params.get("offset", 0))
        if hits > MAX_HITS:
            raise ApiError(400, f"{hits} hits requested, configured limit: {MAX_HITS}")
        profile = params.get("ranking", params.get("ranking.profile", "default"))
        inputs = query_inputs(params)
        parsed = parse_yql(params["yql"], self.schema, self.attributes) if params.get("yql") else None
        refuse_private_sources(_named_sources(params, parsed), self.schema.name)
        rerank = min(_integer(params, "ranking.secondPhase.totalRerankCount", funnel.DEFAULT.recall, 1, 1 << 31),
                     funnel.MAX_RECALL_BUDGET)  # UserProfileSearcher cuts Vespa's counts to the funnel's bounds
        fallback = None
        if "user_id" in params:
            profile, parsed, rerank, fallback = self._user_profile(params, profile, parsed, inputs, hits + offset)
        if parsed is None:
            raise ApiError(400, "No query: give yql (or user_id)")
        if profile not in self.profiles:  # Vespa's container, checked on 8.700's in-process container
            raise ApiError(400, f"schema '{self.schema.name}' does not contain requested rank profile '{profile}'")
        if profile == LEARNED:
            raise ApiError(400, f"rank profile '{profile}': this contract server does not evaluate lightgbm() "
                                "(Vespa does; the embedded index serves it with LightGBM's predict)")
        self._check_inputs(profile, inputs, parsed)
        if parsed.text_param and parsed.text_param not in params:
            raise ApiError(400, f"userInput(@{parsed.text_param}): parameter '{parsed.text_param}' is not given")
        terms = re.findall(r"\w+", str(params.get(parsed.text_param, "")).lower()) if parsed.text_param else []
        ranked = rank(profile, self._matched(parsed, inputs, terms), inputs, terms, self._category_ctrs(), rerank,
                      rank_now(params))
        ranked = _sorted(ranked, parsed.order)
        result = _result(ranked, hits, offset, self.summary_fields)
        if fallback is not None:  # UserProfileSearcher's root field: the popular news stand in
            result["root"]["fields"]["fallback"] = fallback
        if parsed.grouping:
            result["root"]["children"].append(_group_root(ranked, *parsed.grouping))
        return result

    def _check_inputs(self, profile: str, inputs: dict, parsed: Parsed) -> None:
        try:
            check_query_inputs(self.schema, profile, inputs)
        except SchemaMismatchError as error:
            raise ApiError(400, str(error))
        if parsed.nearest and parsed.nearest[2] not in inputs:
            raise ApiError(400, f"nearestNeighbor: query tensor 'query({parsed.nearest[2]})' is not given")
        if profile in NN_PROFILES and not parsed.nearest:
            raise ApiError(400, f"rank profile {profile!r} uses closeness(field, embedding): needs nearestNeighbor")

    def _user_profile(self, params: dict, profile: str, parsed: Parsed | None, inputs: dict,
                      hits_and_offset: int) -> tuple[str, Parsed, int, str | None]:
        """UserProfileSearcher (vespa-app/src/main/java/.../UserProfileSearcher.java), emulated: the user's
        two vectors become the query inputs, nearestNeighbor(embedding, user_recall) with the funnel's
        totalTargetHits is added for the nearest-neighbour profiles, the user's read news are excluded.
        Returns (profile, parsed, the second phase's rerank count: the recall budget, the fallback: "popularity" for
        an unknown user with user_fallback=popularity, else None)."""
        user_id, fallback = str(params["user_id"]), params.get("user_fallback", "error")
        sent = next((name for name in VESPA_RERANK_COUNTS if name in params), None)
        if sent is not None:
            sent = "ranking.secondPhase.rerankCount" if sent == "ranking.rerankCount" else sent  # Vespa's alias
            raise ApiError(400, f"{sent} is set by this searcher on a personalized query: use recall_budget (1 to "
                                f"{funnel.MAX_RECALL_BUDGET}) or rerank_budget (1 to {MAX_RERANK_BUDGET})")
        budget = _integer(params, "recall_budget", funnel.DEFAULT.recall, 1, funnel.MAX_RECALL_BUDGET)
        base = (_integer(params, "recall_exploration", 0, 1, funnel.MAX_EXPLORATION)
                if "recall_exploration" in params else None)  # None: follow the corpus
        if not _USER_ID.fullmatch(user_id):
            raise ApiError(400, "Invalid user_id: expected 1 to 64 characters from [A-Za-z0-9_-]")
        if fallback not in USER_FALLBACKS:
            raise ApiError(400, "user_fallback must be 'error' or 'popularity'")
        singling = next((name for name in (parsed.fields if parsed else ()) if name not in CALLER_FIELDS), None)
        if singling is not None:  # before the lookup: no answer depends on the user's history or existence
            raise ApiError(400, f"A query with user_id takes conditions on {', '.join(CALLER_FIELDS)} and the text "
                                f"only, not '{singling}': a condition that singles news out would tell which of them "
                                "the user has read")
        user = find_user(self.documents, user_id)
        parsed = parsed or Parsed()
        if user is None:
            if fallback == "error":
                raise ApiError(404, f"Unknown user_id '{user_id}' (or no embeddings)")
            return (FALLBACK if profile in ("default", *NN_PROFILES) else profile), parsed, budget, FALLBACK
        profile = DEFAULT_RECOMMENDATION if profile == "default" else profile
        if profile in NN_PROFILES:
            if base is None:  # the searcher counts the news (at most once a minute; here at once) and takes base(N)
                base = exploration.base_exploration(max(1, sum(doc_type(d) == "news" for d in list(self.documents))))
            explored = max(exploration.PER_HIT * budget, base, hits_and_offset)
            parsed.nearest = (explored, "embedding", "user_recall")
        elif not parsed.filters and not parsed.text_param:
            raise ApiError(400, f"Rank profile '{profile}' needs a query (yql or query) besides user_id")
        read = set(user.get("has_read_items", []))
        parsed.filters.append(lambda doc: doc.get("news_id") not in read)
        inputs["user_recall"] = user["recall_embedding"]["values"]
        inputs["user_ranking"] = user["ranking_embedding"]["values"]
        return profile, parsed, budget, None

    def _matched(self, parsed: Parsed, inputs: dict, terms: list[str]) -> list[News]:
        """The news passing the filters; with userInput, those with a query term (weakAnd-like, any term in
        title or abstract); with nearestNeighbor, the targetHits nearest of those (pre-filtered, exact)."""
        news = [(doc_id, f) for doc_id, f in list(self.documents.items()) if doc_type(doc_id) == "news"]
        matched = [(doc_id, f) for doc_id, f in news if all(p(f) for p in parsed.filters)]
        if parsed.text_param:
            matched = [(doc_id, f) for doc_id, f in matched if text_score(terms, f) > 0]
        if parsed.nearest:
            target_hits, field_name, tensor = parsed.nearest
            matched = nearest(matched, field_name, inputs[tensor], target_hits)
        return matched

    def _category_ctrs(self) -> dict:
        """The cells of the category_ctr parent's `ctrs` tensor (category -> CTR)."""
        for doc_id, fields in list(self.documents.items()):
            if doc_type(doc_id) == "category_ctr":
                return fields.get("ctrs", {}).get("cells", {})
        return {}


def _integer(params: dict, name: str, default: int, low: int, high: int) -> int:
    """An integer request parameter within [low, high]; otherwise a 400 as the container gives."""
    value = params.get(name, default)
    try:
        number = int(str(value))
    except ValueError:
        raise ApiError(400, f"Could not set '{name}' to '{value}': not an integer")
    if not low <= number <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}")
    return number


def _parameters(record: Recorded) -> dict:
    """GET: the URL parameters; POST: those updated by the JSON body."""
    params = dict(record.params)
    if record.method == "POST" and isinstance(record.body, dict):
        params.update(record.body)
    elif record.method not in ("GET", "POST"):
        raise ApiError(405, f"'{record.method}' not allowed at /search/")
    return params


def _named_sources(params: dict, parsed: Parsed | None) -> set[str]:
    """The schemas / sources named by the restrict and sources parameters (comma-separated lists; also a JSON
    body's {"model": {...}}). YQL `from sources *` clears the sources parameter, as Vespa's YQL parsing does."""
    model = params.get("model") if isinstance(params.get("model"), dict) else {}
    restrict = _names(params.get("restrict"), params.get("model.restrict"), model.get("restrict"))
    sources = _names(params.get("sources"), params.get("model.sources"), model.get("sources"))
    return restrict | (set() if parsed is not None and parsed.every_source else sources)


def _names(*values) -> set[str]:
    return {name.strip() for value in values if value for name in str(value).split(",") if name.strip()}


def _sorted(ranked: list[Ranked], order: list[tuple[str, bool]]) -> list[Ranked]:
    """`order by a desc, b asc`: a stable sort per key, least significant first."""
    for name, descending in reversed(order):
        ranked = sorted(ranked, key=lambda hit: hit[2].get(name), reverse=descending)
    return ranked


def _result(ranked: list[Ranked], hits: int, offset: int, summary_fields: set[str]) -> dict:
    """Vespa's result: root with totalCount and coverage, a child per hit with relevance and summary fields."""
    children = []
    for relevance, doc_id, fields, match_features in ranked[offset:offset + hits]:
        summary = {k: v for k, v in fields.items() if k in summary_fields}
        summary.update({"sddocname": "news", "documentid": doc_id, "matchfeatures": match_features})
        children.append({"id": doc_id, "relevance": relevance, "source": "mind", "fields": summary})
    return {"root": {"id": "toplevel", "relevance": 1.0, "fields": {"totalCount": len(ranked)},
                     "coverage": {"coverage": 100, "documents": len(ranked), "full": True, "nodes": 1,
                                  "results": 1, "resultsFull": 1},
                     "children": children}}


def _group_root(ranked: list[Ranked], name: str, max_groups: int, by_count: bool) -> dict:
    """Vespa's grouping result: group:root:0 -> grouplist:<name> -> group:<type>:<value> with fields.count()."""
    counts = Counter(fields.get(name) for _, _, fields, _ in ranked)
    values = sorted(counts, key=lambda v: (-counts[v], str(v))) if by_count else sorted(counts, key=str)
    kept = values[:max_groups] if max_groups else values
    groups = [{"id": f"group:{'string' if isinstance(v, str) else 'long'}:{v}",
               "relevance": (len(kept) - i) / len(kept), "value": str(v), "fields": {"count()": counts[v]}}
              for i, v in enumerate(kept)]
    group_list = {"id": f"grouplist:{name}", "relevance": 1.0, "label": name, "children": groups}
    return {"id": "group:root:0", "relevance": 1.0, "continuation": {"this": ""}, "children": [group_list]}
