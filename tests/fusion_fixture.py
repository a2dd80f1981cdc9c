"""The cases of the Java test that runs Vespa's own global-phase normalizers
(vespa-app/src/test/java/com/yahoo/search/ranking/NormalizerParityTest.java) with what feed/reranking.py computes.

    python tests/fusion_fixture.py   # rewrites vespa-app/src/test/resources/fusion.json (tests/test_unbert.py checks
                                     # it still holds what Python computes)

Cases: scores of a global phase's hits (1 to 25 of them, the profile's N is 20 by default), drawn at the scales the
two-tower and the cross-encoder give, with ties, all equal, one hit, and a value beyond float's range (which
normalize_linear leaves out of its min and max).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from newsrec.feed.reranking import normalize_linear, reciprocal_rank

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "vespa-app" / "src" / "test" / "resources" / "fusion.json"


def cases() -> list[dict]:
    rng = np.random.default_rng(32)
    inputs = [rng.normal(0.0, scale, size).tolist() for scale, size in ((0.1, 20), (3.0, 10), (1.0, 25), (50.0, 5))]
    inputs += [[1.0, 2.0, 2.0, 0.5, 2.0], [0.7] * 6, [-3.25], [1.0, 3.5e38, -2.0, 0.0]]
    return [{"values": v, "normalize_linear": normalize_linear(np.array(v)).tolist(),
             "reciprocal_rank": reciprocal_rank(np.array(v)).tolist()} for v in inputs]


def write() -> None:
    FIXTURE.write_text(json.dumps({"cases": cases()}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write()
