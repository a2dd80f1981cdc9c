"""The application's reader handler (vespa-app/.../UserHistoryHandler.java) on the query cluster, emulated:
GET /newsrec/v1/user/U1 gives one user's has_read_items and vectors (404 unknown, 400 malformed id); GET
/newsrec/v1/user/?hits=N up to N user ids (1 to MAX_LISTED, default 20), as one query of N hits would. The handler's
binding of ids to a verified identity (user_identity_header) is tested on the Java side only."""
from __future__ import annotations

from newsrec.feed.queries import MAX_LISTED, READER_PATH
from newsrec.contract_server.protocol import ApiError, Recorded
from newsrec.contract_server.search import _USER_ID, doc_type, find_user

DEFAULT_LISTED = 20


class ReaderApi:
    """Reads the shared document store (full id -> fields) one user at a time."""

    def __init__(self, documents: dict[str, dict]):
        self.documents = documents

    def handle(self, record: Recorded) -> tuple[int, dict]:
        if record.method != "GET":
            raise ApiError(405, "Only GET is supported")
        user_id = record.path.split("?", 1)[0][len(READER_PATH):]
        return 200, (self._user(user_id) if user_id else self._list(record.params.get("hits")))

    def _user(self, user_id: str) -> dict:
        if not _USER_ID.fullmatch(user_id):
            raise ApiError(400, "Invalid user id: expected 1 to 64 characters from [A-Za-z0-9_-]")
        fields = find_user(self.documents, user_id)
        if fields is None:
            raise ApiError(404, f"Unknown user id '{user_id}' (or no embeddings)")
        return {"user_id": user_id, "has_read_items": list(fields.get("has_read_items", [])),
                "recall_embedding": list(fields["recall_embedding"]["values"]),
                "ranking_embedding": list(fields["ranking_embedding"]["values"])}

    def _list(self, hits: str | None) -> dict:
        count = DEFAULT_LISTED if hits is None else int(hits) if hits.isascii() and hits.isdigit() and len(hits) <= 3 else -1
        if not 1 <= count <= MAX_LISTED:
            raise ApiError(400, f"hits must be an integer from 1 to {MAX_LISTED}")
        users = [fields.get("user_id") for doc_id, fields in list(self.documents.items()) if doc_type(doc_id) == "user"]
        return {"users": [u for u in users if u][:count]}
