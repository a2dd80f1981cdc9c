"""Helpers shared by the tests (fixtures are in conftest.py): a hand-written four-news MIND corpus,
writing TSV files, and the serving dimension of the schemas."""
from __future__ import annotations

import json
from pathlib import Path

DIM = 65  # serving dimension D = 64, plus the Euclidean-transform coordinate (schemas/*.sd: x[65])

ENTITY = json.dumps([{"Label": "Riverton Hawks", "Type": "O", "WikidataId": "Q90000001", "Confidence": 1.0,
                      "OccurrenceOffsets": [0], "SurfaceForms": ["Riverton Hawks"]}])
NEWS = [
    ["N1", "sports", "football_nfl", "Riverton Hawks win again", "A close game.", "https://x/1", ENTITY, "[]"],
    ["N2", "finance", "markets", "Stocks slide on earnings", "", "https://x/2", "[]", ""],
    ["N3", "news", "newsus", "Town council votes on budget", "The vote was close.", "https://x/3", "[]", "[]"],
    ["N4", "sports", "golf", "Golfer leads after first round", "Windy day.", "https://x/4", "[]", "[]"],
]
TRAIN = [
    ["1", "U1", "11/9/2019 9:05:58 AM", "N1 N3", "N2-0 N4-1"],
    ["2", "U2", "11/10/2019 3:12:01 PM", "", "N1-1 N2-0 N3-0"],
]
DEV = [["1", "U1", "11/15/2019 12:00:00 PM", "N1 N3 N4", "N2-1 N4-0"]]


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return path
