"""The embedded index's users in columns (feed/user_table.py): a mapping with Vespa's put semantics, its files."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from newsrec.feed.backend import BackendError
from newsrec.feed.local_backend import _read_documents
from newsrec.feed.user_table import UserTable


def fields(seed: int, read: list[str], tokens: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    out = {"user_id": f"U{seed}", "recall_embedding": {"values": rng.random(5).tolist()},
           "ranking_embedding": {"values": rng.random(5).tolist()}, "has_read_items": read}
    if tokens:
        out["history_tokens"] = {"values": [float(seed)] * 3}
    return out


def filled() -> tuple[UserTable, dict]:
    table, expected = UserTable(), {}
    for seed in range(3000):  # past the first growth of the columns
        expected[f"U{seed}"] = fields(seed, [f"N{seed % 7}", f"N{seed % 11}"], tokens=seed % 2 == 0)
        table[f"U{seed}"] = expected[f"U{seed}"]
    return table, expected


def same(table: UserTable, expected: dict) -> None:
    assert len(table) == len(expected) and list(table) == list(expected)
    for user_id, want in expected.items():
        got = table[user_id]
        assert set(got) == set(want) and got["has_read_items"] == want["has_read_items"]
        for name in ("recall_embedding", "ranking_embedding", "history_tokens"):
            if name in want:
                np.testing.assert_allclose(got[name]["values"], want[name]["values"], rtol=1e-6)


def test_documents_read_back_as_put_and_a_put_replaces_the_whole_document():
    table, expected = filled()
    same(table, expected)
    expected["U4"] = table["U4"] = {**fields(99, ["N1"]), "user_id": "U4"}  # no history_tokens: the field is gone
    assert "history_tokens" not in table["U4"] and table["U4"]["has_read_items"] == ["N1"]
    same(table, expected)
    assert "U9999" not in table and table.get("U9999") is None and table.vector("U9999", "recall_embedding") is None


def test_the_files_round_trip_and_a_copy_is_independent():
    table, expected = filled()
    copy = table.copy()
    copy["U1"] = {**fields(1, []), "has_read_items": ["N5"]}
    loaded = UserTable.from_files(dict(table.files()))
    same(loaded, expected)
    assert copy["U1"]["has_read_items"] == ["N5"] and table["U1"]["has_read_items"] == expected["U1"]["has_read_items"]
    loaded["U2"] = {"user_id": "U2", "has_read_items": ["N0", "N3"], **{k: v for k, v in fields(2, []).items()
                                                                         if k.endswith("embedding")}}
    again = UserTable.from_files(dict(loaded.files()))  # a put after loading, folded into the read-news columns
    assert again["U2"]["has_read_items"] == ["N0", "N3"] and again["U3"]["has_read_items"] == ["N3", "N3"]


def test_a_tensor_of_another_width_or_an_unknown_field_is_refused():
    table, _ = filled()
    with pytest.raises(BackendError, match="U5: recall_embedding has 4 values where the index holds 5"):
        table["U5"] = {**fields(5, []), "recall_embedding": {"values": [0.0] * 4}}
    with pytest.raises(BackendError, match="no field 'age'"):
        table["U5"] = {**fields(5, []), "age": 3}
    with pytest.raises(BackendError, match="user_id 'U6' differs"):
        table["U5"] = fields(6, [])


def test_users_of_the_older_one_file_layout_are_read_into_columns():
    rows = [{"id": "U1", "fields": {"user_id": "U1", "has_read_items": ["N1", "N2"]}},
            {"id": "U2", "fields": {"user_id": "U2", "has_read_items": []}}]
    files = {"user.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()}
    for name, values in (("recall_embedding", [[1, 2], [3, 4]]), ("ranking_embedding", [[5, 6], [7, 8]])):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(values, dtype=np.float32))
        files[f"user.{name}.npy"] = buffer.getvalue()
    users = _read_documents(files)["user"]
    assert isinstance(users, UserTable) and users["U1"]["has_read_items"] == ["N1", "N2"]
    assert users["U2"]["ranking_embedding"]["values"] == [7.0, 8.0] and list(users) == ["U1", "U2"]
