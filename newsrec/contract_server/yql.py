"""The query language newsrec sends, parsed strictly: the YQL shapes it uses and the ranking inputs.

YQL: `select * from news where <clauses joined by and> [order by a desc, b] [| grouping]`, the clauses
being `true`, `[{grammar: "linguistics"}]userInput(@param)`, `{totalTargetHits: n, ...}nearestNeighbor(field, tensor)`
(or targetHits: n per content node; this server is one node, so it exposes max(minTargetHits, totalTargetHits)),
`f contains "v"`, `f in ("v", ...)`, a numeric attribute compared with an integer (`published > 1573000000`: a
document without a value does not match, as an unset attribute) and `!(clause)`. Anything else is a 400, as Vespa would refuse
or misread it. `from sources *` (narrowed to news) and `from sources news` are accepted too; a source
other than news is refused as the application's NewsOnlySearcher refuses it (`refuse_private_sources`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from newsrec.feed.queries import parse_mapped_tensor
from newsrec.feed.schema import Schema
from newsrec.contract_server.protocol import ApiError

_SELECT = re.compile(r"^\s*select\s+\*\s+from\s+(sources\s+\*|sources\s+\w+(?:\s*,\s*\w+)*|\w+)\s+where\s+(.+?)\s*;?\s*$",
                     re.IGNORECASE | re.DOTALL)
_NN = re.compile(r"^\{([^}]*)\}\s*nearestNeighbor\(\s*(\w+)\s*,\s*(\w+)\s*\)$")
_ANNOTATION = re.compile(r"^\s*(targetHits|totalTargetHits|minTargetHits|hnsw\.exploreAdditionalHits|approximate|label)\s*:\s*"
                         r"(\d+|true|false|\"\w+\")\s*$")
_CONTAINS = re.compile(r'^(\w+)\s+contains\s+"([^"\\]*)"$')
_NOT = re.compile(r"^!\s*\((.+)\)$")
_RANGE = re.compile(r"^(\w+)\s*(<=|>=|<|>|=)\s*(-?\d+)$")
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "=": lambda a, b: a == b}
NUMERIC_TYPES = ("int", "long", "float", "double")
_IN = re.compile(r'^(\w+)\s+in\s*\(\s*("[^"\\]*"(?:\s*,\s*"[^"\\]*")*)\s*\)$')
_USER_INPUT = re.compile(r"^(?:\{\s*grammar\s*:\s*(\"\w+\"|'\w+')\s*\})?userInput\(\s*@(\w+)\s*\)$")
GRAMMARS = ("linguistics", "all", "any", "weakAnd", "tokenize", "phrase", "web")
_QUERY_INPUT = re.compile(r"^(?:input|ranking\.features|rankfeature)\.query\((\w+)\)$")
_ORDER_BY = re.compile(r"^(.*?)\s+order\s+by\s+(\w+(?:\s+(?:asc|desc))?(?:\s*,\s*\w+(?:\s+(?:asc|desc))?)*)$",
                       re.IGNORECASE | re.DOTALL)
_GROUPING = re.compile(r"^all\(\s*group\((\w+)\)\s*(?:max\((\d+)\)\s*)?(order\(-count\(\)\)\s*)?"
                       r"each\(\s*output\(\s*count\(\)\s*\)\s*\)\s*\)$")
TEXT_FIELDS = ("title", "abstract")  # indexed text (token match); other strings are attributes (match: word)

Predicate = Callable[[dict], bool]  # on a document's fields


@dataclass
class Parsed:
    """A YQL query reduced to what the rank profiles need."""

    nearest: tuple[int, str, str] | None = None  # (targetHits, field, query tensor name)
    text_param: str | None = None
    grammar: str | None = None  # userInput's grammar annotation (newsrec sends "linguistics": words, no syntax)
    filters: list[Predicate] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # [(attribute, descending)] from `order by`
    grouping: tuple[str, int, bool] | None = None  # (attribute, max groups or 0, ordered by -count())
    every_source: bool = False  # `from sources *`: Vespa then clears the sources parameter
    fields: list[str] = field(default_factory=list)  # the fields the conditions name (nearestNeighbor's included)


def parse_yql(yql: str, schema: Schema, attributes: set | None = None) -> Parsed:
    """The YQL shapes newsrec sends: clauses joined by `and`, an optional `order by` on attributes and an
    optional grouping `| all(group(f) max(n) order(-count()) each(output(count())))`; anything else is a 400."""
    selection, _, grouping = yql.partition("|")
    match = _SELECT.match(selection)
    if not match:
        raise ApiError(400, f"Could not instantiate query from YQL: cannot parse {yql!r}")
    sources = yql_sources(match.group(1))
    refuse_private_sources(sources, schema.name)
    parsed = Parsed(every_source=not sources)
    where = match.group(2)
    if order := _ORDER_BY.match(where):
        where = order.group(1)
        parsed.order = [_order_item(item, schema, attributes) for item in order.group(2).split(",")]
    for clause in re.split(r"\s+and\s+", where):
        _parse_clause(clause.strip(), schema, parsed)
    if grouping.strip():
        parsed.grouping = _grouping(grouping.strip(), schema, attributes)
    return parsed


def yql_sources(source: str) -> set[str]:
    """The schemas a YQL `from` names: `news` -> {"news"}, `sources a, b` -> {"a", "b"}, `sources *` -> none."""
    listed = re.match(r"sources\s+(.+)$", source, re.IGNORECASE | re.DOTALL)
    if not listed:
        return {source}
    names = listed.group(1).strip()
    return set() if names == "*" else {name.strip() for name in names.split(",")}


def refuse_private_sources(named: set[str], public: str) -> None:
    """NewsOnlySearcher (vespa-app), emulated: naming any schema or source but the public one is a 400."""
    private = sorted(named - {public})
    if private:
        raise ApiError(400, f"Only schema '{public}' can be searched; not {', '.join(private)} "
                            "(user profiles are private: give user_id to get recommendations)")


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


def _parse_clause(clause: str, schema: Schema, parsed: Parsed) -> None:
    if clause == "true":
        return
    if m := _USER_INPUT.match(clause):
        parsed.text_param, parsed.grammar = m.group(2), m.group(1) and m.group(1)[1:-1]
        if parsed.grammar is not None and parsed.grammar not in GRAMMARS:
            raise ApiError(400, f"userInput: unknown grammar {parsed.grammar!r}")
    elif m := _NN.match(clause):
        if not schema.fields.get(m.group(2), "").startswith("tensor<"):
            raise ApiError(400, f"nearestNeighbor: {m.group(2)!r} is not a tensor field")
        parsed.nearest = (_target_hits(m.group(1)), m.group(2), m.group(3))
        parsed.fields.append(m.group(2))
    elif m := _NOT.match(clause):
        inner = Parsed()
        _parse_clause(m.group(1).strip(), schema, inner)
        parsed.fields.extend(inner.fields)
        parsed.filters.append(lambda doc, predicates=inner.filters: not all(p(doc) for p in predicates))
    elif m := _CONTAINS.match(clause):
        parsed.filters.append(_contains(schema, m.group(1), m.group(2)))
        parsed.fields.append(m.group(1))
    elif m := _RANGE.match(clause):
        if _field_type(schema, m.group(1)) not in NUMERIC_TYPES:
            raise ApiError(400, f"Could not instantiate query from YQL: '{m.group(1)}' is not a numeric field")
        compare, bound = _COMPARE[m.group(2)], int(m.group(3))
        parsed.filters.append(lambda doc, name=m.group(1): doc.get(name) is not None and compare(doc[name], bound))
        parsed.fields.append(m.group(1))
    elif m := _IN.match(clause):
        _field_type(schema, m.group(1))
        allowed = set(re.findall(r'"([^"]*)"', m.group(2)))
        parsed.filters.append(lambda doc, name=m.group(1): doc.get(name) in allowed)
        parsed.fields.append(m.group(1))
    else:
        raise ApiError(400, f"Could not instantiate query from YQL: unsupported clause {clause!r}")


def _target_hits(annotations: str) -> int:
    """The hits this (one-node) server exposes to ranking: targetHits, else max(minTargetHits (default 100),
    totalTargetHits) as Vespa resolves it for a node holding all the documents (hnsw.exploreAdditionalHits and
    approximate only change an HNSW search; this server searches exactly)."""
    values = {}
    for annotation in annotations.split(","):
        match = _ANNOTATION.match(annotation)
        if not match:
            raise ApiError(400, f"nearestNeighbor: unknown or malformed annotation {annotation.strip()!r}")
        values[match.group(1)] = match.group(2)
    if "targetHits" in values:
        return int(values["targetHits"])
    if "totalTargetHits" not in values:
        raise ApiError(400, "nearestNeighbor: targetHits or totalTargetHits is required")
    return max(int(values.get("minTargetHits", 100)), int(values["totalTargetHits"]))


def _field_type(schema: Schema, name: str) -> str:
    if name not in schema.fields:
        raise ApiError(400, f"Field '{name}' does not exist in schema '{schema.name}'")
    return schema.fields[name]


def _contains(schema: Schema, name: str, value: str) -> Predicate:
    if _field_type(schema, name) not in ("string", "array<string>"):
        raise ApiError(400, f"Field '{name}' cannot be searched with contains")
    if name in TEXT_FIELDS:  # indexed text: token match
        return lambda doc: value.lower() in re.findall(r"\w+", str(doc.get(name, "")).lower())
    return lambda doc: str(doc.get(name, "")).lower() == value.lower()  # attribute, match: word


# ----------------------------------------------------------------------------- ranking inputs

def query_inputs(params: dict) -> dict[str, list[float] | float]:
    """The ranking inputs of a query, by name: `input.query(x)`, `ranking.features.query(x)` and
    `rankfeature.query(x)` are aliases."""
    return {m.group(1): query_tensor(m.group(1), value) for key, value in params.items()
            if (m := _QUERY_INPUT.match(key))}


def query_tensor(name: str, value) -> list[float] | float | dict[str, float]:
    """Query tensors as Vespa accepts them: JSON array, its string form, or {"values": [...]}; a one-dimension
    mapped tensor in the literal form {{dim:"label"}:value,...} (feed/queries.py mapped_tensor) as {label: value}."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            cells = parse_mapped_tensor(value)
            if cells is None:
                raise ApiError(400, f"Could not set 'ranking.features.query({name})' to '{value}'") from None
            return cells
    if isinstance(value, dict) and "values" in value:
        value = value["values"]
    elif value == {}:
        return {}  # the empty tensor literal
    if isinstance(value, bool) or not isinstance(value, (list, int, float)):
        raise ApiError(400, f"Expected 'query({name})' to be a tensor, but it is {value!r}")
    return [float(v) for v in value] if isinstance(value, list) else float(value)
