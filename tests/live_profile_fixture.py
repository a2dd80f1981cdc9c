"""The cases the Java test of rank profile live evaluates in Vespa's container
(vespa-app/src/test/java/ai/newsrec/vespa/LiveProfileTest.java), with the values feed/ranking.py gives them.

    python tests/live_profile_fixture.py   # rewrites tests/fixtures/live_profile.json (with the project installed;
                                           # tests/test_live_profile.py checks the file holds what Python computes)

Six news items scored at an impression's time `now` (MIND's week, November 2019), their decayed counters written as
feed/live.py writes them: each impression `h` hours before `now` added exp(rate * (t - origin)), t = now - h hours,
to impressions_decayed (and to clicks_decayed when clicked), with origin = 1573000000 (2019-11-06) and a 6-hour
half-life (one row: 24 hours). Vectors and the appeal are multiples of 2^-10, exact in the float attributes and the
tensor<float> cells.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from newsrec.feed import ranking

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "live_profile.json"
ORIGIN = 1573000000.0  # 2019-11-06 00:26:40 UTC: the decayed counters' reference second
HOUR = 3600
RATE_6H = math.log(2) / (6 * HOUR)
RATE_24H = math.log(2) / (24 * HOUR)
DIM = 65  # the schema's embedding: 64 + the MIPS coordinate
FITTED = {"w_user": 1.0, "w_ctr": 0.6, "w_recency": -0.25, "w_appeal": 0.4}  # weights as a fit might give them

# name, now, rate, weights, published (hours before now; None: never seen), appeal, impressions [(hours ago, clicked)]
ROWS = (
    ("fresh and clicked", 1573380000, RATE_6H, FITTED, 2.0, 0.8125,
     [(h / 10, h % 7 == 0) for h in range(1, 20)]),
    ("three days old, clicked when new", 1573466400, RATE_6H, FITTED, 60.0, 0.125,
     [(60 - h, h < 6 and h % 2 == 0) for h in range(0, 60, 3)]),
    ("never seen", 1573300000, RATE_6H, FITTED, None, 0.0, []),
    ("first seen after now (age 0)", 1573300000, RATE_6H, FITTED, -0.5, 0.25, []),
    ("default weights: ranking_score alone", 1573500000, RATE_6H, dict(ranking.LIVE_DEFAULTS), 30.0, -0.375,
     [(h, h % 4 == 1) for h in range(1, 30, 2)]),
    ("24-hour half-life, shown often, never clicked", 1573600000, RATE_24H,
     {"w_user": 0.5, "w_ctr": 1.25, "w_recency": -0.5, "w_appeal": 2.0}, 100.0, -0.5,
     [(h / 2, False) for h in range(0, 200, 5)]),
)


def grid(values: np.ndarray) -> list[float]:
    """Rounded to multiples of 2^-10: exact in float32."""
    return (np.round(values * 1024) / 1024).tolist()


def vectors(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Items [v, sqrt(M^2 - |v|^2)] and users [u, 0] (schemas/news.sd's MIPS transform), (6, 65) each; each user
    leans towards its item (u = 2 v + noise), so ranking scores are of the order of a model's, -1 to 3."""
    rng = np.random.default_rng(seed)
    items = np.array([grid(rng.normal(0, 0.12, DIM - 1)) for _ in ROWS])
    users = np.array([grid(2 * item + rng.normal(0, 0.25, DIM - 1)) for item in items])
    max_norm = math.ceil(float(np.linalg.norm(items, axis=1).max()) * 1024 + 1) / 1024
    mips = np.array(grid(np.sqrt(max_norm ** 2 - (items ** 2).sum(axis=1))))
    return np.column_stack([items, mips]), np.column_stack([users, np.zeros(len(ROWS))])


def expected(row: dict) -> dict[str, float]:
    """feed/ranking.py's values of the live profile's functions for one row."""
    query, attributes, now = row["query"], row["attributes"], row["now"]
    score = ranking.ranking_score(np.array([attributes["embedding"]]), np.array(query["user_ranking"]))
    ctr = ranking.live_ctr([attributes["clicks_decayed"]], [attributes["impressions_decayed"]], now,
                           query["decay_origin"], query["decay_rate"])
    age = ranking.age_hours([attributes["published"]], now)
    live = ranking.live_score(score, ctr, age, [attributes["appeal"]],
                              {name: query[name] for name in ranking.LIVE_WEIGHTS})
    return {"ranking_score": float(score[0]),
            "live_decay": float(ranking.decay(now, query["decay_origin"], query["decay_rate"])),
            "live_ctr": float(ctr[0]), "age_hours": float(age[0]), "live_score": float(live[0])}


def rows() -> list[dict]:
    """The rows without their expected values."""
    items, users = vectors()
    result = []
    for i, (name, now, rate, weights, published, appeal, impressions) in enumerate(ROWS):
        times = np.array([now - hours * HOUR for hours, _ in impressions], dtype=np.float64)
        weight = ranking.event_weight(times, ORIGIN, rate)
        clicked = np.array([bool(c) for _, c in impressions], dtype=bool)
        result.append({
            "name": name, "now": now,
            "query": {"decay_origin": ORIGIN, "decay_rate": rate, **weights, "user_ranking": users[i].tolist()},
            "attributes": {"clicks_decayed": float(weight[clicked].sum()) if len(times) else 0.0,
                           "impressions_decayed": float(weight.sum()) if len(times) else 0.0,
                           "published": 0 if published is None else int(now - published * HOUR),
                           "appeal": appeal, "embedding": items[i].tolist()},
            "clicks": int(clicked.sum()), "impressions": len(impressions)})
    return result


def fixture() -> dict:
    cases = rows()
    for row in cases:
        row["expected"] = expected(row)
    return {"about": __doc__.strip().splitlines()[0] + " Written by tests/live_profile_fixture.py.",
            "tolerance": 1e-5, "rows": cases}


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)}: {len(ROWS)} rows")
