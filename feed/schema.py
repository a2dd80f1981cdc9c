"""Reading `schemas/*.sd`, the single source of truth for field names, types and dimensions.

Only what the Python side must agree with is read: document fields (name -> type), imported
fields, rank profiles with their `inputs` (following `inherits`). Vespa's own config model
validates the files as a whole (`mvn test` in vespa-app/); this module lets Python code check a
document or a query against them before anything is sent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

from newsrec.pipeline.errors import NewsrecError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
_FIELD = re.compile(r"^\s*field\s+(\w+)\s+type\s+(.+?)\s*\{\s*$", re.MULTILINE)
_PROFILE = re.compile(r"^\s*rank-profile\s+(\w+)(?:\s+inherits\s+([\w,\s]+?))?\s*\{", re.MULTILINE)
_CONSTANT = re.compile(r"^\s*(\w+)(?:\s+double)?\s*:\s*([-+0-9.eE]+)\s*$", re.MULTILINE)
_INPUT = re.compile(r"^\s*query\((\w+)\)\s+([^:\n]+?)\s*(?::\s*(\S+))?\s*$", re.MULTILINE)
_TENSOR = re.compile(r"tensor<(\w+)>\((\w+)\[(\d+)\]\)")
_MAPPED_TENSOR = re.compile(r"tensor<(\w+)>\((\w+)\{\}\)")


class SchemaMismatchError(NewsrecError):
    """A document or query that does not agree with the schemas in `schemas/`."""


@dataclass(frozen=True)
class Schema:
    name: str
    fields: dict[str, str]  # document field -> Vespa type, e.g. "tensor<float>(x[65])"
    profiles: dict[str, dict[str, str]]  # rank profile -> query input name -> type (inherited ones included)
    constants: dict[str, dict[str, float]] = dataclass_field(default_factory=dict)  # rank profile -> scalar constants
    match_features: dict[str, tuple[str, ...]] = dataclass_field(default_factory=dict)  # its own, else inherited

def load_schemas(directory: str | Path = SCHEMA_DIR) -> dict[str, Schema]:
    schemas = {}
    for path in sorted(Path(directory).glob("*.sd")):
        profiles = sorted((path.parent / path.stem).glob("*.profile"))  # rank profiles in files of their own
        schema = parse_schema("\n".join(p.read_text(encoding="utf-8") for p in [path, *profiles]))
        schemas[schema.name] = schema
    if not schemas:
        raise SchemaMismatchError(f"{directory}: no *.sd schema files")
    return schemas


def parse_schema(text: str) -> Schema:
    text = re.sub(r"#[^\n]*", "", text)
    name = re.search(r"^\s*schema\s+(\w+)", text, re.MULTILINE).group(1)
    fields = {m.group(1): " ".join(m.group(2).split()) for m in _FIELD.finditer(text)}
    bodies, parents = _profile_bodies(text)
    inputs = {p: {m.group(1): m.group(2).strip() for m in _INPUT.finditer(_block(b, "inputs"))}
              for p, b in bodies.items()}
    constants = {p: {m.group(1): float(m.group(2)) for m in _CONSTANT.finditer(_block(b, "constants"))}
                 for p, b in bodies.items()}
    features = {p: tuple("".join(line.split()) for line in _block(b, "match-features").splitlines() if line.strip())
                for p, b in bodies.items()}
    return Schema(name, fields, _inherited(inputs, parents), _inherited(constants, parents),
                  {p: _own_or_inherited(features, parents, p) for p in bodies})


def _own_or_inherited(own: dict[str, tuple], parents: dict[str, list[str]], profile: str) -> tuple:
    """A profile's match-features: its own block, else the first parent's that has one."""
    if own.get(profile):
        return own[profile]
    for parent in parents.get(profile, []):
        if found := _own_or_inherited(own, parents, parent):
            return found
    return ()


def _profile_bodies(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(rank profile -> its text up to the next profile, rank profile -> the profiles it inherits)."""
    bodies, parents = {}, {}
    matches = list(_PROFILE.finditer(text))
    for i, match in enumerate(matches):
        bodies[match.group(1)] = text[match.end():matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        parents[match.group(1)] = [p.strip() for p in (match.group(2) or "").split(",") if p.strip()]
    return bodies, parents


def _block(body: str, name: str) -> str:
    """The text inside `name { ... }` (braces of mapped tensor types, `category{}`, inside it kept)."""
    found = re.search(rf"\b{name}\s*\{{((?:[^{{}}]|\{{\}})*)\}}", body)
    return found.group(1) if found else ""


def _inherited(own: dict[str, dict], parents: dict[str, list[str]]) -> dict[str, dict]:
    """Each profile's entries with those of the profiles it inherits (its own win)."""
    def resolved(profile: str) -> dict:
        values = {}
        for parent in parents.get(profile, []):
            values.update(resolved(parent))
        values.update(own.get(profile, {}))
        return values

    return {profile: resolved(profile) for profile in own}


def tensor_size(vespa_type: str) -> int | None:
    """Size of a one-dimensional indexed tensor type (`tensor<float>(x[65])` -> 65), else None."""
    match = _TENSOR.fullmatch(vespa_type)
    return int(match.group(3)) if match else None


def check_document(schema: Schema, document: dict) -> None:
    """Every field exists in the schema, with a value of its type (tensor sizes checked)."""
    doc_id = document.get("id", "?")
    for field, value in document["fields"].items():
        if field not in schema.fields:
            raise SchemaMismatchError(f"document {doc_id}: field {field!r} is not in schema {schema.name!r} "
                                      f"(fields: {', '.join(sorted(schema.fields))})")
        _check_value(schema, doc_id, field, schema.fields[field], value)


def _check_value(schema: Schema, doc_id: str, field: str, vespa_type: str, value) -> None:
    size = tensor_size(vespa_type)
    expected = {"string": str, "int": int, "long": int, "float": (int, float), "double": (int, float),
                "array<string>": list}.get(vespa_type)
    if size is not None:
        values = value.get("values") if isinstance(value, dict) else None
        if not isinstance(values, list) or len(values) != size:
            got = len(values) if isinstance(values, list) else type(value).__name__
            raise SchemaMismatchError(f"document {doc_id}: field {field!r} is {vespa_type} in schema "
                                      f"{schema.name!r}; got {got} values")
    elif _MAPPED_TENSOR.fullmatch(vespa_type):
        cells = value.get("cells") if isinstance(value, dict) else None
        if not isinstance(cells, dict) or not all(isinstance(v, (int, float)) for v in cells.values()):
            raise SchemaMismatchError(f"document {doc_id}: field {field!r} is {vespa_type} in schema "
                                      f"{schema.name!r}; expected {{\"cells\": {{label: number}}}}")
    elif expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
        raise SchemaMismatchError(f"document {doc_id}: field {field!r} is {vespa_type} in schema "
                                  f"{schema.name!r}; got {type(value).__name__}")
    elif vespa_type == "array<string>" and not all(isinstance(v, str) for v in value):
        raise SchemaMismatchError(f"document {doc_id}: field {field!r} must hold strings")


def check_query_inputs(schema: Schema, profile: str, inputs: dict[str, list[float] | float]) -> None:
    """Every `query(name)` a request sends is declared by the profile, tensors with the right size."""
    if profile not in schema.profiles:
        raise SchemaMismatchError(f"rank profile {profile!r} is not in schema {schema.name!r} "
                                  "(Vespa refuses it: 400, the schema does not contain the requested rank profile)")
    declared = schema.profiles[profile]
    for name, value in inputs.items():
        if name not in declared:
            raise SchemaMismatchError(f"query({name}) is not declared in rank profile {profile!r}")
        size = tensor_size(declared[name])
        if size is not None and (not isinstance(value, list) or len(value) != size):
            raise SchemaMismatchError(f"query({name}) is {declared[name]} in profile {profile!r}; "
                                      f"got {len(value) if isinstance(value, list) else value!r}")
