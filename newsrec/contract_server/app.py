"""The ASGI application: routing, the data-plane token, fault injection and the request record.

The application package has two container clusters (vespa-app services.xml): "query" serves /search/ and the reader
handler, "feed" serves /document/v1/. One app serves both ("both", the default), or one cluster's paths only
(`ClusterView`, for a server per cluster over the same documents); a path the cluster does not bind is a 404.

Every request is recorded (`requests`); faults injected with `inject` are served before the API sees
the request; `GET /_contract/stats` gives request count, the server's own busy time and document count.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
import time
from collections import Counter, deque
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from newsrec.feed.queries import READER_PATH
from newsrec.feed.schema import SCHEMA_DIR
from newsrec.contract_server.documents import DocumentApi, document_id
from newsrec.contract_server.protocol import ApiError, Recorded
from newsrec.contract_server.readers import ReaderApi
from newsrec.contract_server.schemas import fields_indexed_as, load_full_schemas
from newsrec.contract_server.search import SearchApi

FAULT_MESSAGES = {429: "Rejecting execution due to overload: too many operations in flight",
                  500: "Internal server error (injected)", 502: "Bad gateway (injected)",
                  503: "Service unavailable: no content node available (injected)",
                  400: "Injected bad request", 507: "Insufficient storage (injected)"}
# the paths each container cluster binds (prefixes); "both": one cluster with everything, as a single container
CLUSTER_PATHS = {"both": ("/document/v1/", "/search/", READER_PATH), "query": ("/search/", READER_PATH),
                 "feed": ("/document/v1/",)}


class VespaContractApp:
    """ASGI application: the state (documents, faults, records) and the two APIs."""

    def __init__(self, schema_dir: str | Path = SCHEMA_DIR, hold_s: float = 3.0, token: str | None = None):
        self.schemas = load_full_schemas(schema_dir)
        self.summary_fields = fields_indexed_as(Path(schema_dir) / "news.sd", "summary")
        self.attributes = fields_indexed_as(Path(schema_dir) / "news.sd", "attribute")
        self.hold_s = hold_s
        self.token = token
        self.documents: dict[str, dict] = {}  # full id -> fields
        self.put_counts: Counter = Counter()  # full id -> acknowledged puts
        self.requests: list[Recorded] = []
        self.faults: list[tuple[str, deque]] = []
        self.busy_s = 0.0  # time spent handling requests (fault holds excluded)
        self.lock = threading.Lock()
        self.document_api = DocumentApi(self.schemas, self.documents, self.put_counts, self.lock)
        self.search_api = SearchApi(self.schemas["news"], self.documents, self.attributes, self.summary_fields)
        self.reader_api = ReaderApi(self.documents)

    def inject(self, target: str, faults: list) -> None:
        """Next requests matching `target` (a full document id, or a regex on the path) get `faults` in order:
        an HTTP status (429, 503, 500, 400, ...); "timeout" (held until the request's own `timeout`, at most
        hold_s, then Vespa's 504); "hang" (held hold_s whatever the request asked, then 504, nothing stored:
        a stuck node); "slow" (the request is applied, e.g. the document stored, and the answer held hold_s:
        a client that gives up first does not know it was stored)."""
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
        await self.serve(scope, receive, send, "both")

    async def serve(self, scope, receive, send, cluster: str) -> None:
        """One request to `cluster` (a key of CLUSTER_PATHS)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        raw = await _read_body(receive)
        started = time.perf_counter()
        record = self._record(scope, raw)
        status, body = await self._respond(record, cluster)
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

    async def _respond(self, record: Recorded, cluster: str = "both") -> tuple[int, dict]:
        path = record.path
        try:
            if self.token is not None and record.headers.get("authorization") != f"Bearer {self.token}":
                raise ApiError(403, "Missing or wrong data plane token")
            if path != "/_contract/stats" and not path.startswith(CLUSTER_PATHS[cluster]):
                return 404, {"message": f"No handler for {path} in container cluster {cluster}"}
            fault = self._next_fault(path)
            if fault is not None:
                return await self._fault(record, fault)
            return self._route(record)
        except ApiError as error:
            return error.status, _error_body(path, error)

    def _route(self, record: Recorded) -> tuple[int, dict]:
        path = record.path
        if path == "/_contract/stats":
            return 200, {"requests": len(self.requests), "busy_s": self.busy_s, "documents": len(self.documents)}
        if path.startswith("/document/v1/"):
            return self.document_api.handle(record)
        if path == "/search/":
            return 200, self.search_api.search(record)
        if path.startswith(READER_PATH):
            return self.reader_api.handle(record)
        return 404, {"message": f"No handler for {path}"}

    def _next_fault(self, path: str):
        doc_id = document_id(path)
        with self.lock:
            for target, faults in self.faults:
                hit = (target == doc_id) if target.startswith("id:") else re.search(target, unquote(path))
                if hit and faults:
                    return faults.popleft()
        return None

    async def _fault(self, record: Recorded, fault) -> tuple[int, dict]:
        record.fault = fault
        if fault == "slow":
            answer = self._route(record)
            await self._hold(record, self.hold_s)
            return answer
        if fault in ("timeout", "hang"):
            asked = _seconds(record.params.get("timeout")) if fault == "timeout" else None
            held = min(self.hold_s, asked or self.hold_s)
            await self._hold(record, held)
            raise ApiError(504, f"Request timeout after {held:g}s (injected)")
        raise ApiError(int(fault), FAULT_MESSAGES.get(int(fault), f"Injected HTTP {fault}"))

    @staticmethod
    async def _hold(record: Recorded, seconds: float) -> None:
        record.held_s = seconds
        await asyncio.sleep(seconds)


class ClusterView:
    """The ASGI app of one container cluster ("query" or "feed") of `app`: its paths, the app's documents."""

    def __init__(self, app: VespaContractApp, cluster: str):
        if cluster not in CLUSTER_PATHS:
            raise ValueError(f"container cluster {cluster!r}: one of {', '.join(CLUSTER_PATHS)}")
        self.app = app
        self.cluster = cluster

    async def __call__(self, scope, receive, send) -> None:
        await self.app.serve(scope, receive, send, self.cluster)


def _error_body(path: str, error: ApiError) -> dict:
    """/search/ errors in root.errors (code 4 for a bad request), document/v1 errors as {pathId, message}."""
    if path == "/search/":
        return {"root": {"id": "toplevel", "relevance": 1.0, "fields": {"totalCount": 0},
                         "errors": [{"code": 4 if error.status == 400 else error.status,
                                     "summary": "Error", "message": error.message}]}}
    return {"pathId": path, "message": error.message}


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
