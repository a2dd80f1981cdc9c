"""The embedded index's user documents, held column by column: one float32 matrix per tensor field, the read
news as integer codes (CSR), the ids in a list. At MIND-large's 1M users that is ~0.6 GiB instead of ~6 GiB of
per-user Python dicts and float lists, and an index opens in seconds (a few `np.load`s, no per-user objects).

It behaves as a mapping user id -> the document's fields, as Vespa returns them (`{"values": [...]}` for a
tensor); a put replaces a whole document, as in Vespa. Files of a generation (feed/local_backend.py):

    user.ids.json                 ["U1", "U2", ...]: row order of every column
    user.<field>.npy              (U, width) float32 per tensor field; width 0 when no user has the field
    user.<field>.present.npy      (U,) bool: the user's document has the field (a put may leave one out)
    user.read_news.json           the distinct news ids of every has_read_items
    user.read_offsets.npy, user.read_codes.npy   CSR: row r read read_news[codes[offsets[r]:offsets[r + 1]]]
"""
from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Iterator

import numpy as np

from newsrec.feed.backend import BackendError

TENSOR_FIELDS = ("recall_embedding", "ranking_embedding", "history_tokens")
PLAIN_FIELDS = ("user_id", "has_read_items")
PREFIX = "user."


class UserTable(Mapping):
    """User id -> fields, stored in columns. `put` appends or replaces a row; `files()` / `from_files()` are
    the on-disk form."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._vectors = {name: np.zeros((0, 0), dtype=np.float32) for name in TENSOR_FIELDS}
        self._present = {name: np.zeros(0, dtype=bool) for name in TENSOR_FIELDS}
        self._news: list[str] = []  # distinct read news ids; codes index it
        self._code: dict[str, int] = {}
        self._read_offsets = np.zeros(1, dtype=np.int64)  # CSR over the first len(offsets) - 1 rows
        self._read_codes = np.zeros(0, dtype=np.int32)
        self._read_put: dict[int, np.ndarray] = {}  # rows put since the CSR was built: their codes

    # ------------------------------------------------------------------------------- the mapping

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._row

    def __getitem__(self, user_id: str) -> dict:
        row = self._row[user_id]
        fields = {"user_id": user_id}
        for name in TENSOR_FIELDS:
            if self._present[name][row]:
                fields[name] = {"values": self._vectors[name][row].tolist()}
        fields["has_read_items"] = self.read_items(row)
        return fields

    def vector(self, user_id: str, field: str) -> np.ndarray | None:
        """(width,) float32 view of one tensor field of a user; None when the user or the field is absent."""
        row = self._row.get(user_id)
        if row is None or not self._present[field][row]:
            return None
        return self._vectors[field][row]

    def read_items(self, row: int) -> list[str]:
        codes = self._read_put.get(row)
        if codes is None:
            codes = self._read_codes[self._read_offsets[row]:self._read_offsets[row + 1]]
        return [self._news[c] for c in codes.tolist()]

    # ------------------------------------------------------------------------------- writing

    def put(self, user_id: str, fields: dict) -> None:
        """Store a whole document (replacing the user's previous one); BackendError for a field the user
        schema does not hold or a tensor of another width than the table's."""
        unknown = set(fields) - set(TENSOR_FIELDS) - set(PLAIN_FIELDS)
        if unknown:
            raise BackendError(f"user {user_id}: no field {sorted(unknown)[0]!r} in a user document")
        if fields.get("user_id", user_id) != user_id:
            raise BackendError(f"user {user_id}: field user_id {fields['user_id']!r} differs from the document id")
        tensors = {name: self._tensor(user_id, name, fields[name]) for name in TENSOR_FIELDS if name in fields}
        row = self._row.get(user_id)
        if row is None:
            row = self._append(user_id)
        for name in TENSOR_FIELDS:
            self._present[name][row] = name in tensors
            if name in tensors:
                self._vectors[name][row] = tensors[name]
        self._read_put[row] = np.array([self._code_of(n) for n in fields.get("has_read_items", [])], dtype=np.int32)

    __setitem__ = put

    def _tensor(self, user_id: str, name: str, value) -> np.ndarray:
        values = np.asarray(value["values"] if isinstance(value, dict) else value, dtype=np.float32)
        width = self._vectors[name].shape[1]
        if values.ndim != 1 or (len(self) and self._present[name].any() and len(values) != width):
            raise BackendError(f"user {user_id}: {name} has {values.size} values where the index holds {width}")
        if values.shape[0] != width:
            self._vectors[name] = np.zeros((self._capacity(), len(values)), dtype=np.float32)
        return values

    def _capacity(self) -> int:
        return len(self._present[TENSOR_FIELDS[0]])

    def _append(self, user_id: str) -> int:
        row = len(self._ids)
        if row == self._capacity():  # grow every column (doubling: amortized O(1) per put)
            capacity = max(1024, 2 * row)
            for name in TENSOR_FIELDS:
                self._vectors[name] = _resized(self._vectors[name], capacity)
                self._present[name] = _resized(self._present[name], capacity)
        self._ids.append(user_id)
        self._row[user_id] = row
        return row

    def _code_of(self, news_id: str) -> int:
        code = self._code.get(news_id)
        if code is None:
            code = self._code[news_id] = len(self._news)
            self._news.append(news_id)
        return code

    def copy(self) -> "UserTable":
        """An independent table with the same documents (a transaction stages into a copy)."""
        self._compact()
        other = UserTable()
        other._ids, other._row = list(self._ids), dict(self._row)
        other._vectors = {name: v.copy() for name, v in self._vectors.items()}
        other._present = {name: p.copy() for name, p in self._present.items()}
        other._news, other._code = list(self._news), dict(self._code)
        other._read_offsets, other._read_codes = self._read_offsets, self._read_codes  # never written in place
        return other

    def _compact(self) -> None:
        """Fold the rows put since the last compaction into the CSR of read news."""
        if not self._read_put:
            return
        rows = len(self._ids)
        old = len(self._read_offsets) - 1
        lengths = np.zeros(rows, dtype=np.int64)
        lengths[:old] = np.diff(self._read_offsets)
        for row, codes in self._read_put.items():
            lengths[row] = len(codes)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        codes = np.empty(offsets[-1], dtype=np.int32)
        kept = np.ones(old, dtype=bool)
        kept[[r for r in self._read_put if r < old]] = False
        source = np.repeat(kept, np.diff(self._read_offsets))  # old codes of rows not put again
        target = np.repeat(np.concatenate([kept, np.zeros(rows - old, dtype=bool)]), lengths)
        codes[target] = self._read_codes[source]
        for row, put in self._read_put.items():
            codes[offsets[row]:offsets[row + 1]] = put
        self._read_offsets, self._read_codes, self._read_put = offsets, codes, {}

    # ------------------------------------------------------------------------------- files

    def files(self) -> list[tuple[str, bytes]]:
        """The table as the files of a generation (always the same names, so none is carried stale)."""
        self._compact()
        rows = len(self._ids)
        files = [(f"{PREFIX}ids.json", json.dumps(self._ids).encode("utf-8")),
                 (f"{PREFIX}read_news.json", json.dumps(self._news).encode("utf-8")),
                 (f"{PREFIX}read_offsets.npy", _npy(self._read_offsets)),
                 (f"{PREFIX}read_codes.npy", _npy(self._read_codes))]
        for name in TENSOR_FIELDS:
            files.append((f"{PREFIX}{name}.npy", _npy(self._vectors[name][:rows])))
            files.append((f"{PREFIX}{name}.present.npy", _npy(self._present[name][:rows])))
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "UserTable":
        table = cls()
        table._ids = json.loads(files[f"{PREFIX}ids.json"])
        table._row = {user_id: row for row, user_id in enumerate(table._ids)}
        table._news = json.loads(files[f"{PREFIX}read_news.json"])
        table._code = {news_id: code for code, news_id in enumerate(table._news)}
        table._read_offsets = np.load(io.BytesIO(files[f"{PREFIX}read_offsets.npy"]))
        table._read_codes = np.load(io.BytesIO(files[f"{PREFIX}read_codes.npy"]))
        for name in TENSOR_FIELDS:
            table._vectors[name] = np.load(io.BytesIO(files[f"{PREFIX}{name}.npy"]))
            table._present[name] = np.load(io.BytesIO(files[f"{PREFIX}{name}.present.npy"]))
        table._check_shapes()
        return table

    def _check_shapes(self) -> None:
        rows = len(self._ids)
        if len(self._row) != rows:
            raise ValueError("user ids repeat")
        if len(self._read_offsets) != rows + 1 or self._read_offsets[-1] != len(self._read_codes):
            raise ValueError("read offsets do not match the users")
        if len(self._read_codes) and (self._read_codes.min() < 0 or self._read_codes.max() >= len(self._news)):
            raise ValueError("read codes outside the read news")
        for name in TENSOR_FIELDS:
            if len(self._vectors[name]) != rows or len(self._present[name]) != rows:
                raise ValueError(f"{name} does not have one row per user")

    @staticmethod
    def holds(files: dict[str, bytes]) -> bool:
        return f"{PREFIX}ids.json" in files


def _resized(array: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    out[:len(array)] = array[:rows]
    return out


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()
