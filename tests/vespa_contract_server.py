"""A local stand-in for Vespa's HTTP API (document/v1 and /search/), strict about the contract.

It speaks HTTP/1.1 and h2c (prior-knowledge HTTP/2: hypercorn serving an ASGI app does both), checks
every document against `schemas/*.sd` (feed.schema), answers /search/ with Vespa's response shape and
the rank profiles' math for the queries newsrec sends (UserProfileSearcher emulation included), records
every request, counts acknowledged puts per document id, and injects faults on demand:

    with ContractServer() as server:
        server.inject("id:news:news::N1", [429, 503, "timeout"])   # N1's first three attempts fail
        server.inject(r"^/search/", [500])                          # next query gets a 500

Stand-ins (documented, not Vespa): text score = number of query-term occurrences in title + abstract
(for bm25 / nativeRank); nearestNeighbor is exact; tensors are kept as float64; JSON even when the
client asks for CBOR. Run as a script (`python tests/vespa_contract_server.py --port 8080`) it serves
in the foreground; `GET /_contract/stats` gives request count and the server's own busy time.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import re
import socket
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from hypercorn.asyncio import serve
from hypercorn.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from feed.schema import (SCHEMA_DIR, Schema, SchemaMismatchError, check_document,  # noqa: E402
                         check_query_inputs, load_schemas, tensor_size)

_DOC_PATH = re.compile(r"^/document/v1/([^/]+)/([^/]+)/docid/([^/]+)$")
_SELECT = re.compile(r"^\s*select\s+\*\s+from\s+(\w+)\s+where\s+(.+?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_NN = re.compile(r"^\{([^}]*)\}\s*nearestNeighbor\(\s*(\w+)\s*,\s*(\w+)\s*\)$")
_ANNOTATION = re.compile(r"^\s*(targetHits|totalTargetHits|hnsw\.exploreAdditionalHits|approximate|label)\s*:\s*"
                         r"(\d+|true|false|\"\w+\")\s*$")
_CONTAINS = re.compile(r'^(\w+)\s+contains\s+"([^"\\]*)"$')
_NOT = re.compile(r"^!\s*\((.+)\)$")
_IN = re.compile(r'^(\w+)\s+in\s*\(\s*("[^"\\]*"(?:\s*,\s*"[^"\\]*")*)\s*\)$')
_USER_INPUT = re.compile(r"^userInput\(\s*@(\w+)\s*\)$")
_QUERY_INPUT = re.compile(r"^(?:input|ranking\.features|rankfeature)\.query\((\w+)\)$")
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FIELD_LINE = re.compile(r"^\s*field\s+(\w+)\s+type\s+(.+?)\s*\{\s*$", re.MULTILINE)
_SUMMARY = re.compile(r"field\s+(\w+)\s+type\s+[^{]+\{\s*indexing:([^\n]*)")
_ORDER_BY = re.compile(r"^(.*?)\s+order\s+by\s+(\w+(?:\s+(?:asc|desc))?(?:\s*,\s*\w+(?:\s+(?:asc|desc))?)*)$",
                       re.IGNORECASE | re.DOTALL)
_GROUPING = re.compile(r"^all\(\s*group\((\w+)\)\s*(?:max\((\d+)\)\s*)?(order\(-count\(\)\)\s*)?"
                       r"each\(\s*output\(\s*count\(\)\s*\)\s*\)\s*\)$")
NN_PROFILES = ("recall", "recommendation", "recommendation_with_global_category_ctr")
MATCH_FEATURES = {
    "recall": ("closeness(field,embedding)", "distance(field,embedding)"),
    "recommendation": ("closeness(field,embedding)", "ranking_score", "ctr", "recommendation_score"),
    "popularity": ("nativeRank", "ctr"),
    "bm25": ("text_score",),
    "personalized_search": ("text_score", "ranking_score", "personalized_score"),
    "recommendation_with_global_category_ctr": ("nearest_neighbor", "category_ctr"),
}
MAX_HITS = 400
RERANK_COUNT = 100
FAULT_MESSAGES = {429: "Rejecting execution due to overload: too many operations in flight",
                  500: "Internal server error (injected)", 502: "Bad gateway (injected)",
                  503: "Service unavailable: no content node available (injected)",
                  400: "Injected bad request", 507: "Insufficient storage (injected)"}


class ApiError(Exception):
    """A request that Vespa would refuse: HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Recorded:
    method: str
    path: str  # raw (url-encoded) path
    params: dict
    body: object  # parsed JSON, or None
    http_version: str
    headers: dict
    status: int = 0
    held_s: float = 0.0  # time a "timeout" fault held the response
    fault: object = None  # the injected fault this request got (status 0: the client left before the answer)


@dataclass
class _Parsed:
    """A YQL query reduced to what the rank profiles need."""

    nearest: tuple[int, str, str] | None = None  # (targetHits, field, query tensor name)
    text_param: str | None = None
    filters: list = field(default_factory=list)  # predicates on a document's fields
    order: list = field(default_factory=list)  # [(attribute, descending)] from `order by`
    grouping: tuple[str, int, bool] | None = None  # (attribute, max groups or 0, ordered by -count())


# ----------------------------------------------------------------------------- documents

def _check_field_value(schema: Schema, doc_id: str, name: str, value) -> None:
    vespa_type = schema.fields[name]
    check_document(schema, {"id": doc_id, "fields": {name: value}})
    size = tensor_size(vespa_type)
    if size is not None and not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value["values"]):
        raise SchemaMismatchError(f"document {doc_id}: field {name!r}: tensor cells must be finite numbers")
    if re.fullmatch(r"tensor<\w+>\(\w+\{\}\)", vespa_type):
        cells = value.get("cells") if isinstance(value, dict) else None
        if not isinstance(cells, dict) or not all(isinstance(v, (int, float)) for v in cells.values()):
            raise SchemaMismatchError(f"document {doc_id}: field {name!r} is {vespa_type}: "
                                      'expected {"cells": {"label": number, ...}}')
    reference = re.fullmatch(r"reference<(\w+)>", vespa_type)
    if reference and not (isinstance(value, str) and re.fullmatch(rf"id:[^:]+:{reference.group(1)}::.+", value)):
        raise SchemaMismatchError(f"document {doc_id}: field {name!r} must be a document id of type "
                                  f"{reference.group(1)!r}, got {value!r}")


def check_fields(schema: Schema, doc_id: str, fields: dict) -> None:
    """Vespa's put/update checks: every field exists in the document type, with a value of its type."""
    for name, value in fields.items():
        if name not in schema.fields:
            raise ApiError(400, f"Error in document '{doc_id}' - could not parse field '{name}' of type "
                                f"'{schema.name}': No field '{name}' in the structure of type '{schema.name}'")
        try:
            _check_field_value(schema, doc_id, name, value)
        except SchemaMismatchError as error:
            raise ApiError(400, f"Error in document '{doc_id}' - could not parse field '{name}': {error}")


def render_fields(schema: Schema, fields: dict) -> dict:
    """Fields as document/v1 GET renders them: tensors as {"type", "values"} or {"type", "cells"}."""
    rendered = {}
    for name, value in fields.items():
        if schema.fields[name].startswith("tensor<") and isinstance(value, dict):
            rendered[name] = {"type": schema.fields[name], **value}
        else:
            rendered[name] = value
    return rendered


# ----------------------------------------------------------------------------- ranking math

def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def closeness(a: list[float], b: list[float]) -> float:
    """Vespa's euclidean closeness: 1 / (1 + sqrt(sum (a - b)^2))."""
    return 1.0 / (1.0 + math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b))))


def text_score(terms: list[str], fields: dict) -> float:
    """Stand-in for bm25(title) + bm25(abstract): occurrences of the query terms."""
    tokens = re.findall(r"\w+", f"{fields.get('title', '')} {fields.get('abstract', '')}".lower())
    return float(sum(tokens.count(term) for term in terms))


def ctr(fields: dict) -> float:
    impressions = fields.get("impressions", 0)
    return fields.get("clicks", 0) / impressions if impressions > 0 else 0.0


def features(profile: str, fields: dict, inputs: dict, terms: list[str], category_ctrs: dict) -> dict:
    """The rank features of one news document; `score` is the profile's relevance."""
    embedding = fields["embedding"]["values"]
    ranking = inputs.get("user_ranking")
    recall = inputs.get("user_recall")
    values = {"text_score": text_score(terms, fields), "ctr": ctr(fields),
              "ranking_score": dot(ranking, embedding) if ranking else 0.0}
    values["closeness(field,embedding)"] = closeness(recall, embedding) if recall else 0.0
    values["distance(field,embedding)"] = 1 / values["closeness(field,embedding)"] - 1 if recall else math.inf
    values["nativeRank"] = values["text_score"] / (1 + values["text_score"])
    values["recommendation_score"] = values["ranking_score"] + inputs.get("popularity_weight", 0.0) * values["ctr"]
    values["personalized_score"] = (values["text_score"]
                                    + inputs.get("personalization_weight", 1.0) * values["ranking_score"])
    values["nearest_neighbor"] = values["closeness(field,embedding)"]
    values["category_ctr"] = float(category_ctrs.get(fields.get("category"), 0.0))
    values["score"] = {
        "recall": values["closeness(field,embedding)"],
        "recommendation": values["closeness(field,embedding)"],
        "popularity": values["nativeRank"] + 100 * values["ctr"],
        "bm25": values["text_score"],
        "personalized_search": values["personalized_score"],
        "recommendation_with_global_category_ctr": values["nearest_neighbor"] * values["category_ctr"],
    }.get(profile, values["nativeRank"])
    values["second_phase"] = values["recommendation_score"] if profile == "recommendation" else None
    return values


# ----------------------------------------------------------------------------- YQL

def parse_yql(yql: str, schema: Schema, attributes: set | None = None) -> _Parsed:
    """The YQL shapes newsrec sends: clauses joined by `and`, an optional `order by` on attributes and an
    optional grouping `| all(group(f) max(n) order(-count()) each(output(count())))`; anything else is a 400."""
    selection, _, grouping = yql.partition("|")
    match = _SELECT.match(selection)
    if not match:
        raise ApiError(400, f"Could not instantiate query from YQL: cannot parse {yql!r}")
    if match.group(1) != schema.name:
        raise ApiError(400, f"Unknown source {match.group(1)!r} (the contract server serves {schema.name!r})")
    parsed = _Parsed()
    where = match.group(2)
    if order := _ORDER_BY.match(where):
        where = order.group(1)
        parsed.order = [_order_item(item, schema, attributes) for item in order.group(2).split(",")]
    for clause in re.split(r"\s+and\s+", where):
        _parse_clause(clause.strip(), schema, parsed)
    if grouping.strip():
        parsed.grouping = _grouping(grouping.strip(), schema, attributes)
    return parsed


def _order_item(item: str, schema: Schema, attributes: set | None) -> tuple[str, bool]:
    name, *direction = item.split()
    _require_attribute(schema, name, attributes, "sort on")
    return name, bool(direction) and direction[0].lower() == "desc"


def _grouping(text: str, schema: Schema, attributes: set | None) -> tuple[str, int, bool]:
    match = _GROUPING.match(text)
    if not match:
        raise ApiError(400, f"Could not parse grouping {text!r} (the contract server knows "
                            "all(group(f) max(n) order(-count()) each(output(count()))))")
    _require_attribute(schema, match.group(1), attributes, "group on")
    return match.group(1), int(match.group(2) or 0), bool(match.group(3))


def _require_attribute(schema: Schema, name: str, attributes: set | None, what: str) -> None:
    _field_type(schema, name)
    if attributes is not None and name not in attributes:
        raise ApiError(400, f"Cannot {what} field '{name}': it is not an attribute")


def _parse_clause(clause: str, schema: Schema, parsed: _Parsed) -> None:
    if clause == "true":
        return
    if m := _USER_INPUT.match(clause):
        parsed.text_param = m.group(1)
    elif m := _NN.match(clause):
        if not schema.fields.get(m.group(2), "").startswith("tensor<"):
            raise ApiError(400, f"nearestNeighbor: {m.group(2)!r} is not a tensor field")
        parsed.nearest = (_target_hits(m.group(1)), m.group(2), m.group(3))
    elif m := _NOT.match(clause):
        inner = _Parsed()
        _parse_clause(m.group(1).strip(), schema, inner)
        parsed.filters.append(lambda doc, predicates=inner.filters: not all(p(doc) for p in predicates))
    elif m := _CONTAINS.match(clause):
        parsed.filters.append(_contains(schema, m.group(1), m.group(2)))
    elif m := _IN.match(clause):
        _field_type(schema, m.group(1))
        allowed = set(re.findall(r'"([^"]*)"', m.group(2)))
        parsed.filters.append(lambda doc, name=m.group(1): doc.get(name) in allowed)
    else:
        raise ApiError(400, f"Could not instantiate query from YQL: unsupported clause {clause!r}")


def _target_hits(annotations: str) -> int:
    """targetHits from `{targetHits: 10, hnsw.exploreAdditionalHits: 90}` (the others only widen HNSW search)."""
    values = {}
    for annotation in annotations.split(","):
        match = _ANNOTATION.match(annotation)
        if not match:
            raise ApiError(400, f"nearestNeighbor: unknown or malformed annotation {annotation.strip()!r}")
        values[match.group(1)] = match.group(2)
    if "targetHits" not in values:
        raise ApiError(400, "nearestNeighbor: targetHits is required")
    return int(values["targetHits"])


def _field_type(schema: Schema, name: str) -> str:
    if name not in schema.fields:
        raise ApiError(400, f"Field '{name}' does not exist in schema '{schema.name}'")
    return schema.fields[name]


def _contains(schema: Schema, name: str, value: str):
    if _field_type(schema, name) not in ("string", "array<string>"):
        raise ApiError(400, f"Field '{name}' cannot be searched with contains")
    if name in ("title", "abstract"):  # indexed text: token match
        return lambda doc: value.lower() in re.findall(r"\w+", str(doc.get(name, "")).lower())
    return lambda doc: str(doc.get(name, "")).lower() == value.lower()  # attribute, match: word


def query_tensor(name: str, value) -> list[float] | float:
    """Query tensors as Vespa accepts them: JSON array, its string form, or {"values": [...]}."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ApiError(400, f"Could not set 'ranking.features.query({name})' to '{value}'")
    if isinstance(value, dict) and "values" in value:
        value = value["values"]
    if isinstance(value, bool) or not isinstance(value, (list, int, float)):
        raise ApiError(400, f"Expected 'query({name})' to be a tensor, but it is {value!r}")
    return [float(v) for v in value] if isinstance(value, list) else float(value)


# ----------------------------------------------------------------------------- the app

class VespaContractApp:
    """ASGI application: the state (documents, faults, records) and the two APIs."""

    def __init__(self, schema_dir: str | Path = SCHEMA_DIR, hold_s: float = 3.0, token: str | None = None):
        self.schemas = _with_full_types(load_schemas(schema_dir), Path(schema_dir))
        self.summary_fields = _summary_fields(Path(schema_dir) / "news.sd")
        self.attributes = _attribute_fields(Path(schema_dir) / "news.sd")
        self.hold_s = hold_s
        self.token = token
        self.documents: dict[str, dict] = {}  # full id -> fields
        self.put_counts: Counter = Counter()  # full id -> acknowledged puts
        self.requests: list[Recorded] = []
        self.faults: list[tuple[str, deque]] = []
        self.busy_s = 0.0  # time spent handling requests (fault holds excluded)
        self.lock = threading.Lock()

    def inject(self, target: str, faults: list) -> None:
        """Next requests matching `target` (a full document id, or a regex on the path) get `faults` in order:
        an HTTP status (429, 503, 500, 400, ...) or "timeout" (held past the client's timeout, then 504)."""
        with self.lock:
            self.faults.append((target, deque(faults)))

    def reset(self) -> None:
        with self.lock:
            self.documents.clear()
            self.put_counts.clear()
            self.requests.clear()
            self.faults.clear()
            self.busy_s = 0.0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        raw = await _read_body(receive)
        started = time.perf_counter()
        record = self._record(scope, raw)
        status, body = await self._respond(scope, record, raw)
        record.status = status
        payload = json.dumps(body).encode()
        with self.lock:  # handler time only: not the fault holds, not the transport
            self.busy_s += time.perf_counter() - started - record.held_s
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def _record(self, scope, raw: bytes) -> Recorded:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            body = json.loads(_decode(raw, headers)) if raw else None
        except (ValueError, OSError):
            body = raw
        record = Recorded(scope["method"], scope["raw_path"].decode(), dict(parse_qsl(scope["query_string"].decode())),
                          body, scope["http_version"], headers)
        with self.lock:
            self.requests.append(record)
        return record

    async def _respond(self, scope, record: Recorded, raw: bytes) -> tuple[int, dict]:
        path = record.path
        try:
            if self.token is not None and record.headers.get("authorization") != f"Bearer {self.token}":
                raise ApiError(403, "Missing or wrong data plane token")
            fault = self._next_fault(path)
            if fault is not None:
                return await self._fault(record, fault)
            if path == "/_contract/stats":
                return 200, {"requests": len(self.requests), "busy_s": self.busy_s, "documents": len(self.documents)}
            if path.startswith("/document/v1/"):
                return self._document(record, raw)
            if path == "/search/":
                return 200, self._search(record)
            return 404, {"message": f"No handler for {path}"}
        except ApiError as error:
            if path == "/search/":
                return error.status, {"root": {"id": "toplevel", "relevance": 1.0, "fields": {"totalCount": 0},
                                               "errors": [{"code": 4 if error.status == 400 else error.status,
                                                           "summary": "Error", "message": error.message}]}}
            return error.status, {"pathId": path, "message": error.message}

    def _next_fault(self, path: str):
        doc_id = _doc_id(path)
        with self.lock:
            for target, faults in self.faults:
                hit = (target == doc_id) if target.startswith("id:") else re.search(target, unquote(path))
                if hit and faults:
                    return faults.popleft()
        return None

    async def _fault(self, record: Recorded, fault) -> tuple[int, dict]:
        record.fault = fault
        if fault == "timeout":
            held = min(self.hold_s, _seconds(record.params.get("timeout")) or self.hold_s)
            record.held_s = held
            await asyncio.sleep(held)
            raise ApiError(504, f"Request timeout after {held:g}s (injected)")
        raise ApiError(int(fault), FAULT_MESSAGES.get(int(fault), f"Injected HTTP {fault}"))

    # ------------------------------------------------------------------------- document/v1

    def _document(self, record: Recorded, raw: bytes) -> tuple[int, dict]:
        match = _DOC_PATH.match(record.path)
        if not match:
            raise ApiError(400, f"Unsupported document/v1 path {record.path!r} "
                                "(expected /document/v1/<namespace>/<doctype>/docid/<url-encoded id>)")
        namespace, doctype, local_id = match.group(1), match.group(2), unquote(match.group(3))
        if doctype not in self.schemas:
            raise ApiError(400, f"Document type {doctype} does not exist")
        doc_id = f"id:{namespace}:{doctype}::{local_id}"
        handler = {"POST": self._put, "PUT": self._update, "GET": self._get, "DELETE": self._remove}.get(record.method)
        if handler is None:
            raise ApiError(405, f"'{record.method}' not allowed at '{record.path}'")
        return handler(self.schemas[doctype], doc_id, record, raw)

    def _put(self, schema: Schema, doc_id: str, record: Recorded, raw: bytes) -> tuple[int, dict]:
        fields = _fields_of(record.body, doc_id)
        check_fields(schema, doc_id, fields)
        with self.lock:
            self.documents[doc_id] = json.loads(json.dumps(fields))
            self.put_counts[doc_id] += 1
        return 200, {"pathId": record.path, "id": doc_id}

    def _update(self, schema: Schema, doc_id: str, record: Recorded, raw: bytes) -> tuple[int, dict]:
        updates = _fields_of(record.body, doc_id)
        values = {}
        for name, operation in updates.items():
            if not isinstance(operation, dict) or set(operation) - {"assign", "increment"} or len(operation) != 1:
                raise ApiError(400, f"Error in document '{doc_id}': field '{name}': unsupported update {operation!r}")
            values[name] = operation.get("assign", operation.get("increment"))
        check_fields(schema, doc_id, values)
        with self.lock:
            if doc_id not in self.documents and record.params.get("create") != "true":
                return 200, {"pathId": record.path, "id": doc_id}  # Vespa: update of a missing doc is a 200
            target = self.documents.setdefault(doc_id, {})
            for name, operation in updates.items():
                target[name] = (operation["assign"] if "assign" in operation
                                else target.get(name, 0) + operation["increment"])
        return 200, {"pathId": record.path, "id": doc_id}

    def _get(self, schema: Schema, doc_id: str, record: Recorded, raw: bytes) -> tuple[int, dict]:
        fields = self.documents.get(doc_id)
        if fields is None:
            return 404, {"pathId": record.path, "id": doc_id}
        return 200, {"pathId": record.path, "id": doc_id, "fields": render_fields(schema, fields)}

    def _remove(self, schema: Schema, doc_id: str, record: Recorded, raw: bytes) -> tuple[int, dict]:
        with self.lock:
            self.documents.pop(doc_id, None)
        return 200, {"pathId": record.path, "id": doc_id}

    # ------------------------------------------------------------------------- /search/

    def _search(self, record: Recorded) -> dict:
        params = dict(record.params)
        if record.method == "POST" and isinstance(record.body, dict):
            params.update(record.body)
        elif record.method not in ("GET", "POST"):
            raise ApiError(405, f"'{record.method}' not allowed at /search/")
        hits, offset = int(params.get("hits", 10)), int(params.get("offset", 0))
        if hits > MAX_HITS:
            raise ApiError(400, f"{hits} hits requested, configured limit: {MAX_HITS}")
        profile = params.get("ranking", params.get("ranking.profile", "default"))
        inputs = {m.group(1): query_tensor(m.group(1), v) for k, v in params.items() if (m := _QUERY_INPUT.match(k))}
        schema = self.schemas["news"]
        parsed = parse_yql(params["yql"], schema, self.attributes) if params.get("yql") else None
        if "user_id" in params:
            profile, parsed = self._user_profile(params, profile, parsed, inputs, hits + offset)
        if parsed is None:
            raise ApiError(400, "No query: give yql (or user_id)")
        self._check_inputs(schema, profile, inputs, parsed)
        if parsed.text_param and parsed.text_param not in params:
            raise ApiError(400, f"userInput(@{parsed.text_param}): parameter '{parsed.text_param}' is not given")
        terms = re.findall(r"\w+", str(params.get(parsed.text_param, "")).lower()) if parsed.text_param else []
        ranked = _sorted(self._rank(profile, parsed, inputs, terms), parsed.order)
        result = _result(ranked, hits, offset, profile, self.summary_fields)
        if parsed.grouping:
            result["root"]["children"].append(_group_root(ranked, *parsed.grouping))
        return result

    def _check_inputs(self, schema: Schema, profile: str, inputs: dict, parsed: _Parsed) -> None:
        try:
            check_query_inputs(schema, profile, inputs)
        except SchemaMismatchError as error:
            raise ApiError(400, str(error))
        if parsed.nearest and parsed.nearest[2] not in inputs:
            raise ApiError(400, f"nearestNeighbor: query tensor 'query({parsed.nearest[2]})' is not given")
        if profile in NN_PROFILES and not parsed.nearest:
            raise ApiError(400, f"rank profile {profile!r} uses closeness(field, embedding): needs nearestNeighbor")

    def _user_profile(self, params: dict, profile: str, parsed: _Parsed | None, inputs: dict,
                      target_hits: int) -> tuple[str, _Parsed]:
        """UserProfileSearcher (vespa-app/src/main/java/.../UserProfileSearcher.java), emulated."""
        user_id, fallback = str(params["user_id"]), params.get("user_fallback", "error")
        if not _USER_ID.match(user_id):
            raise ApiError(400, "Invalid user_id: expected 1 to 64 characters from [A-Za-z0-9_-]")
        if fallback not in ("error", "popularity"):
            raise ApiError(400, "user_fallback must be 'error' or 'popularity'")
        user = self._find_user(user_id)
        parsed = parsed or _Parsed()
        if user is None:
            if fallback == "error":
                raise ApiError(404, f"Unknown user_id '{user_id}' (or no embeddings)")
            return ("popularity" if profile in ("default", *NN_PROFILES) else profile), parsed
        profile = "recommendation" if profile == "default" else profile
        if profile in NN_PROFILES:
            parsed.nearest = (target_hits, "embedding", "user_recall")
        elif not parsed.filters and not parsed.text_param:
            raise ApiError(400, f"Rank profile '{profile}' needs a query (yql or query) besides user_id")
        read = set(user.get("has_read_items", []))
        parsed.filters.append(lambda doc: doc.get("news_id") not in read)
        inputs["user_recall"] = user["recall_embedding"]["values"]
        inputs["user_ranking"] = user["ranking_embedding"]["values"]
        return profile, parsed

    def _find_user(self, user_id: str) -> dict | None:
        for doc_id, fields in list(self.documents.items()):
            if (doc_id.split(":")[2] == "user" and fields.get("user_id") == user_id
                    and "recall_embedding" in fields and "ranking_embedding" in fields):
                return fields
        return None

    def _rank(self, profile: str, parsed: _Parsed, inputs: dict, terms: list[str]) -> list[tuple]:
        """(relevance, document id, fields, rank features), best first."""
        news = [(doc_id, f) for doc_id, f in list(self.documents.items()) if doc_id.split(":")[2] == "news"]
        matched = [(doc_id, f) for doc_id, f in news if all(p(f) for p in parsed.filters)]
        if parsed.text_param:  # userInput: weakAnd-like, any term in title or abstract
            matched = [(doc_id, f) for doc_id, f in matched if text_score(terms, f) > 0]
        if parsed.nearest:  # exact nearest neighbours among the pre-filtered documents
            target_hits, field_name, tensor = parsed.nearest
            vector = inputs[tensor]
            matched = sorted(matched, key=lambda d: -closeness(vector, d[1][field_name]["values"]))[:target_hits]
        category_ctrs = self._category_ctrs()
        scored = [(features(profile, f, inputs, terms, category_ctrs), doc_id, f) for doc_id, f in matched]
        scored.sort(key=lambda s: (-s[0]["score"], s[1]))
        for rank, (values, _, _) in enumerate(scored):
            if values["second_phase"] is not None and rank < RERANK_COUNT:
                values["score"] = values["second_phase"]
        ranked = [(values["score"], doc_id, f, values) for values, doc_id, f in scored]
        ranked.sort(key=lambda r: (-r[0], r[1]))
        return ranked

    def _category_ctrs(self) -> dict:
        for doc_id, fields in list(self.documents.items()):
            if doc_id.split(":")[2] == "category_ctr":
                return fields.get("ctrs", {}).get("cells", {})
        return {}


def _result(ranked: list, hits: int, offset: int, profile: str, summary_fields: set) -> dict:
    children = []
    for relevance, doc_id, fields, values in ranked[offset:offset + hits]:
        summary = {k: v for k, v in fields.items() if k in summary_fields}
        summary.update({"sddocname": "news", "documentid": doc_id,
                        "matchfeatures": {k: values[k] for k in MATCH_FEATURES.get(profile, ())}})
        children.append({"id": doc_id, "relevance": relevance, "source": "mind", "fields": summary})
    return {"root": {"id": "toplevel", "relevance": 1.0, "fields": {"totalCount": len(ranked)},
                     "coverage": {"coverage": 100, "documents": len(ranked), "full": True, "nodes": 1,
                                  "results": 1, "resultsFull": 1},
                     "children": children}}


def _sorted(ranked: list, order: list[tuple[str, bool]]) -> list:
    """`order by a desc, b asc`: a stable sort per key, least significant first."""
    for name, descending in reversed(order):
        ranked = sorted(ranked, key=lambda r: r[2].get(name), reverse=descending)
    return ranked


def _group_root(ranked: list, name: str, max_groups: int, by_count: bool) -> dict:
    """Vespa's grouping result: group:root:0 -> grouplist:<name> -> group:<type>:<value> with fields.count()."""
    counts = Counter(fields.get(name) for _, _, fields, _ in ranked)
    values = sorted(counts, key=lambda v: (-counts[v], str(v))) if by_count else sorted(counts, key=str)
    kept = values[:max_groups] if max_groups else values
    groups = [{"id": f"group:{'string' if isinstance(v, str) else 'long'}:{v}",
               "relevance": (len(kept) - i) / len(kept), "value": str(v), "fields": {"count()": counts[v]}}
              for i, v in enumerate(kept)]
    group_list = {"id": f"grouplist:{name}", "relevance": 1.0, "label": name, "children": groups}
    return {"id": "group:root:0", "relevance": 1.0, "continuation": {"this": ""}, "children": [group_list]}


def _attribute_fields(path: Path) -> set:
    return {m.group(1) for m in _SUMMARY.finditer(path.read_text(encoding="utf-8")) if "attribute" in m.group(2)}


def _fields_of(body, doc_id: str) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
        raise ApiError(400, f"Could not read document '{doc_id}': expected a JSON object with \"fields\"")
    unknown = set(body) - {"fields", "condition", "create"}
    if unknown:
        raise ApiError(400, f"Could not read document '{doc_id}': unexpected keys {sorted(unknown)}")
    return body["fields"]


def _with_full_types(schemas: dict[str, Schema], schema_dir: Path) -> dict[str, Schema]:
    """feed.schema cuts a type at its first '{' (`tensor<float>(category{})` -> `tensor<float>(category`):
    re-read the types to the last '{' of the line."""
    fixed = {}
    for name, schema in schemas.items():
        text = (schema_dir / f"{name}.sd").read_text(encoding="utf-8")
        types = {m.group(1): m.group(2) for m in _FIELD_LINE.finditer(text)}
        fixed[name] = Schema(name, {f: types.get(f, t) for f, t in schema.fields.items()}, schema.profiles)
    return fixed


def _summary_fields(path: Path) -> set:
    return {m.group(1) for m in _SUMMARY.finditer(path.read_text(encoding="utf-8")) if "summary" in m.group(2)}


def _doc_id(path: str) -> str | None:
    match = _DOC_PATH.match(path)
    return f"id:{match.group(1)}:{match.group(2)}::{unquote(match.group(3))}" if match else None


def _seconds(value: str | None) -> float | None:
    """Vespa's timeout parameter: "1.5", "1.5s" or "1500ms"."""
    if not value:
        return None
    match = re.fullmatch(r"([\d.]+)\s*(ms|s)?", value)
    return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1) if match else None


def _decode(raw: bytes, headers: dict) -> bytes:
    return gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# ----------------------------------------------------------------------------- serving

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(port: int) -> Config:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.errorlog = None
    config.accesslog = None
    config.graceful_timeout = 0.2
    config.h2_max_concurrent_streams = 256
    return config


class ContractServer:
    """The app served by hypercorn (HTTP/1.1 + h2c) on 127.0.0.1:<free port>, in a background thread."""

    def __init__(self, schema_dir: str | Path = SCHEMA_DIR, hold_s: float = 3.0, token: str | None = None):
        self.app = VespaContractApp(schema_dir, hold_s, token)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # state and fault plan, for assertions
    documents = property(lambda self: self.app.documents)
    put_counts = property(lambda self: self.app.put_counts)
    requests = property(lambda self: self.app.requests)

    def inject(self, target: str, faults: list) -> None:
        self.app.inject(target, faults)

    def start(self) -> ContractServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="vespa-contract")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("contract server did not start")
        _wait_listening(self.port)
        return self

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._loop.set_exception_handler(_quiet_cancellation)
        ready.set()
        self._loop.run_until_complete(serve(self.app, _config(self.port), shutdown_trigger=self._stop.wait))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Connections still open at shutdown are cancelled: not worth a traceback."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"contract server not listening on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--hold-s", type=float, default=3.0)
    args = parser.parse_args()
    app = VespaContractApp(hold_s=args.hold_s)
    print(f"listening on http://127.0.0.1:{args.port}", flush=True)
    asyncio.run(_serve_quietly(app, _config(args.port)))


async def _serve_quietly(app: VespaContractApp, config: Config) -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_cancellation)
    await serve(app, config)


if __name__ == "__main__":
    main()
