"""What the server reads from schemas/*.sd beyond feed.schema: full field types, summary and attribute fields."""
from __future__ import annotations

import re
from pathlib import Path

from newsrec.feed.schema import Schema, load_schemas

_FIELD_LINE = re.compile(r"^\s*field\s+(\w+)\s+type\s+(.+?)\s*\{\s*$", re.MULTILINE)
_INDEXING = re.compile(r"field\s+(\w+)\s+type\s+[^{]+\{\s*indexing:([^\n]*)")


def load_full_schemas(schema_dir: str | Path) -> dict[str, Schema]:
    """feed.schema's schemas, with each type read to the last '{' of its line: feed.schema cuts a type at
    its first '{' (`tensor<float>(category{})` -> `tensor<float>(category`)."""
    fixed = {}
    for name, schema in load_schemas(schema_dir).items():
        text = (Path(schema_dir) / f"{name}.sd").read_text(encoding="utf-8")
        types = {m.group(1): m.group(2) for m in _FIELD_LINE.finditer(text)}
        fixed[name] = Schema(name, {f: types.get(f, t) for f, t in schema.fields.items()}, schema.profiles)
    return fixed


def fields_indexed_as(path: Path, target: str) -> set[str]:
    """Fields whose `indexing:` statement names `target` ("summary" or "attribute")."""
    return {m.group(1) for m in _INDEXING.finditer(path.read_text(encoding="utf-8")) if target in m.group(2)}
