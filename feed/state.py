"""The feed's metadata (Φ, counts, news ids) in `<dir>/meta.json`, shared by both backends."""
from __future__ import annotations

import json
from pathlib import Path


def read_state(directory: str | Path) -> dict:
    path = Path(directory) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(directory: str | Path, values: dict) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / "meta.json").write_text(json.dumps({**read_state(directory), **values}, indent=1) + "\n")
