"""base(N) of the exploration law (feed/exploration.py) on a grid of corpus sizes, for the Java law the Vespa
searcher uses (vespa-app/src/main/java/ai/newsrec/vespa/Exploration.java, checked by ExplorationTest).

    python tests/exploration_fixture.py   # rewrites tests/fixtures/exploration.json (tests/test_exploration.py
                                          # checks that the file holds what Python computes)
"""
from __future__ import annotations

import json
from pathlib import Path

from newsrec.feed.exploration import base_exploration

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "exploration.json"
SIZES = (1, 500, 9_999, 10_000, 10_001, 30_000, 49_000, 70_000, 99_999, 100_000, 100_001, 161_000, 500_000,
         999_999, 1_000_000, 1_000_001, 2_500_000, 10_000_000, 2_000_000_000)


def fixture() -> dict:
    return {"source": "feed/exploration.py base_exploration", "bases": [[n, base_exploration(n)] for n in SIZES]}


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(fixture(), indent=1) + "\n")
    print(f"wrote {FIXTURE}")
