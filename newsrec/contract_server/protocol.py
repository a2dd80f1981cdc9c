"""What both APIs share: the recorded request, and the refusal Vespa would answer."""
from __future__ import annotations

from dataclasses import dataclass


class ApiError(Exception):
    """A request that Vespa would refuse: HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Recorded:
    """One request as the server received it, with what it answered (for test assertions)."""

    method: str
    path: str  # raw (url-encoded) path
    params: dict
    body: object  # parsed JSON, or None
    http_version: str
    headers: dict
    status: int = 0
    held_s: float = 0.0  # time a "timeout" fault held the response
    fault: object = None  # the injected fault this request got (status 0: the client left before the answer)
