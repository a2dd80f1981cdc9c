"""The document/v1 API: put (POST), partial update (PUT), get, remove and visit, checked against the schemas.

URL `/document/v1/<namespace>/<doctype>/docid/<url-encoded id>`; document id `id:<ns>:<doctype>::<id>`.
As Vespa: an update or remove of a missing document is a 200, a GET of one a 404; an unknown field or a
value not of the field's type is a 400 whose message names the field.
"""
from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from urllib.parse import unquote

from newsrec.feed.schema import Schema, SchemaMismatchError, check_document, tensor_size
from newsrec.feed.selection import ConditionError, parse_condition
from newsrec.contract_server.protocol import ApiError, Recorded

_DOC_PATH = re.compile(r"/document/v1/([^/]+)/([^/]+)/docid/([^/]+)")  # matched in full
_VISIT_PATH = re.compile(r"/document/v1/([^/]+)/([^/]+)/docid/?")  # matched in full: visit one namespace and type
MAX_VISIT_COUNT = 1024  # Vespa caps wantedDocumentCount at 1024
_MAPPED_TENSOR = re.compile(r"tensor<\w+>\(\w+\{\}\)")
_REFERENCE = re.compile(r"reference<(\w+)>")
_UPDATE_OPERATIONS = {"assign", "increment", "decrement"}


def document_id(path: str) -> str | None:
    """The full document id a document/v1 path names, or None for another path."""
    match = _DOC_PATH.fullmatch(path)
    return f"id:{match.group(1)}:{match.group(2)}::{unquote(match.group(3))}" if match else None


class DocumentApi:
    """document/v1 over the shared store: `documents` (full id -> fields) and `put_counts` (full id ->
    acknowledged puts), both guarded by `lock`."""

    def __init__(self, schemas: dict[str, Schema], documents: dict[str, dict], put_counts: Counter,
                 lock: threading.Lock):
        self.schemas = schemas
        self.documents = documents
        self.put_counts = put_counts
        self.lock = lock

    def handle(self, record: Recorded) -> tuple[int, dict]:
        visit = _VISIT_PATH.fullmatch(record.path)
        if visit and record.method == "GET":
            return self._visit(visit.group(1), visit.group(2), record)
        match = _DOC_PATH.fullmatch(record.path)
        if not match:
            raise ApiError(400, f"Unsupported document/v1 path {record.path!r} "
                                "(expected /document/v1/<namespace>/<doctype>/docid/<url-encoded id>)")
        doctype = match.group(2)
        if doctype not in self.schemas:
            raise ApiError(400, f"Document type {doctype} does not exist")
        handler = {"POST": self._put, "PUT": self._update, "GET": self._get, "DELETE": self._remove}.get(record.method)
        if handler is None:
            raise ApiError(405, f"'{record.method}' not allowed at '{record.path}'")
        return handler(self.schemas[doctype], document_id(record.path), record)

    def _put(self, schema: Schema, doc_id: str, record: Recorded) -> tuple[int, dict]:
        fields = _fields_of(record.body, doc_id)
        check_fields(schema, doc_id, fields)
        with self.lock:
            self.documents[doc_id] = json.loads(json.dumps(fields))
            self.put_counts[doc_id] += 1
        return 200, {"pathId": record.path, "id": doc_id}

    def _update(self, schema: Schema, doc_id: str, record: Recorded) -> tuple[int, dict]:
        """A partial update: assign, increment, decrement (others 400). Without a condition an update of a missing
        document is a 200 that changes nothing (Vespa's answer); with one it is a 412. A condition (the request's
        `condition` parameter, or the body's, as `vespa feed` sends it) is a document type or one comparison of a
        field with an integer (feed/selection.py; others 400), evaluated with the update under one lock, as
        Vespa's test-and-set: 412 TEST_AND_SET_CONDITION_FAILED when it does not hold, nothing applied."""
        updates = _fields_of(record.body, doc_id)
        for name, operation in updates.items():
            if not isinstance(operation, dict) or set(operation) - _UPDATE_OPERATIONS or len(operation) != 1:
                raise ApiError(400, f"Error in document '{doc_id}': field '{name}': unsupported update {operation!r} "
                                    f"(the contract server applies {', '.join(sorted(_UPDATE_OPERATIONS))})")
        check_fields(schema, doc_id, {name: next(iter(operation.values())) for name, operation in updates.items()})
        text = record.params.get("condition", record.body.get("condition") if isinstance(record.body, dict) else None)
        try:
            condition = parse_condition(text, schema.name)
        except ConditionError as error:
            raise ApiError(400, f"Error in document '{doc_id}': {error}") from None
        with self.lock:
            if doc_id not in self.documents and record.params.get("create") != "true":
                if condition is not None:
                    raise ApiError(412, f"Conditional operation rejected since document '{doc_id}' does not exist")
                return 200, {"pathId": record.path, "id": doc_id}  # Vespa: update of a missing doc is a 200
            if condition is not None and not condition.holds(self.documents.get(doc_id, {})):
                raise ApiError(412, f"ReturnCode(TEST_AND_SET_CONDITION_FAILED, Condition did not match document "
                                    f"'{doc_id}': {condition})")
            target = self.documents.setdefault(doc_id, {})
            target.update(_updated(target, updates, doc_id))
        return 200, {"pathId": record.path, "id": doc_id}

    def _get(self, schema: Schema, doc_id: str, record: Recorded) -> tuple[int, dict]:
        fields = self.documents.get(doc_id)
        if fields is None:
            return 404, {"pathId": record.path, "id": doc_id}
        return 200, {"pathId": record.path, "id": doc_id, "fields": render_fields(schema, fields)}

    def _visit(self, namespace: str, doctype: str, record: Recorded) -> tuple[int, dict]:
        """A visit of one namespace and document type: up to wantedDocumentCount documents (default 1, at most
        1,024) in id order, with a continuation token while more remain; fieldSet [all]/[document], [id] or
        <doctype>:<field,...>."""
        if doctype not in self.schemas:
            raise ApiError(400, f"Document type {doctype} does not exist")
        wanted = _visit_integer(record.params.get("wantedDocumentCount", "1"), "wantedDocumentCount")
        start = _visit_integer(record.params.get("continuation", "0"), "continuation")
        keep = _field_set(self.schemas[doctype], doctype, record.params.get("fieldSet", "[document]"))
        prefix = f"id:{namespace}:{doctype}::"
        with self.lock:
            ids = sorted(doc_id for doc_id in self.documents if doc_id.startswith(prefix))
            page = [(doc_id, dict(self.documents[doc_id])) for doc_id in ids[start:start + min(wanted, MAX_VISIT_COUNT)]]
        documents = [{"id": doc_id, "fields": render_fields(self.schemas[doctype], {k: v for k, v in fields.items()
                                                                                    if keep is None or k in keep})}
                     for doc_id, fields in page]
        body = {"pathId": record.path, "documents": documents, "documentCount": len(documents)}
        if start + len(page) < len(ids):
            body["continuation"] = str(start + len(page))
        return 200, body

    def _remove(self, schema: Schema, doc_id: str, record: Recorded) -> tuple[int, dict]:
        with self.lock:
            self.documents.pop(doc_id, None)
        return 200, {"pathId": record.path, "id": doc_id}


def _updated(fields: dict, updates: dict, doc_id: str) -> dict:
    """The new values of the updated fields (arithmetic on a number only: else a 400, nothing applied)."""
    values = {}
    for name, operation in updates.items():
        (kind, value), = operation.items()
        current = fields.get(name, 0)
        if kind != "assign" and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, current)):
            raise ApiError(400, f"Error in document '{doc_id}': field '{name}': {kind} needs a number")
        values[name] = value if kind == "assign" else current + value if kind == "increment" else current - value
    return values


def _visit_integer(value: str, name: str) -> int:
    if re.fullmatch(r"[0-9]{1,9}", value) is None:  # not str.isdigit, which takes '²' and any length
        raise ApiError(400, f"Invalid {name} {value[:40]!r}")
    return int(value)


def _field_set(schema: Schema, doctype: str, field_set: str) -> set[str] | None:
    """The fields a visit returns: None for all of them."""
    if field_set in ("[all]", "[document]"):
        return None
    if field_set == "[id]":
        return set()
    name, sep, fields = field_set.partition(":")
    wanted = set(fields.split(",")) if sep else set()
    if name != doctype or not wanted or wanted - set(schema.fields):
        raise ApiError(400, f"Invalid fieldSet {field_set!r} for document type {doctype}")
    return wanted


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


def _check_field_value(schema: Schema, doc_id: str, name: str, value) -> None:
    """feed.schema's check, plus what it leaves out: finite cells, mapped tensors, reference ids."""
    vespa_type = schema.fields[name]
    check_document(schema, {"id": doc_id, "fields": {name: value}})
    size = tensor_size(vespa_type)
    if size is not None and not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value["values"]):
        raise SchemaMismatchError(f"document {doc_id}: field {name!r}: tensor cells must be finite numbers")
    if _MAPPED_TENSOR.fullmatch(vespa_type):
        cells = value.get("cells") if isinstance(value, dict) else None
        if not isinstance(cells, dict) or not all(isinstance(v, (int, float)) for v in cells.values()):
            raise SchemaMismatchError(f"document {doc_id}: field {name!r} is {vespa_type}: "
                                      'expected {"cells": {"label": number, ...}}')
    reference = _REFERENCE.fullmatch(vespa_type)
    if reference and not (isinstance(value, str) and re.fullmatch(rf"id:[^:]+:{reference.group(1)}::.+", value)):
        raise SchemaMismatchError(f"document {doc_id}: field {name!r} must be a document id of type "
                                  f"{reference.group(1)!r}, got {value!r}")


def render_fields(schema: Schema, fields: dict) -> dict:
    """Fields as document/v1 GET renders them: tensors as {"type", "values"} or {"type", "cells"}."""
    rendered = {}
    for name, value in fields.items():
        if schema.fields[name].startswith("tensor<") and isinstance(value, dict):
            rendered[name] = {"type": schema.fields[name], **value}
        else:
            rendered[name] = value
    return rendered


def _fields_of(body, doc_id: str) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
        raise ApiError(400, f"Could not read document '{doc_id}': expected a JSON object with \"fields\"")
    unknown = set(body) - {"fields", "condition", "create"}
    if unknown:
        raise ApiError(400, f"Could not read document '{doc_id}': unexpected keys {sorted(unknown)}")
    return body["fields"]
