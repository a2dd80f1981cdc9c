"""The learned rankers the Java test of rank profile learned evaluates in Vespa's container
(vespa-app/src/test/java/ai/newsrec/vespa/LearnedRankerPackageTest.java), with the scores LightGBM's own predict
gives them.

    python tests/learned_ranker_fixture.py   # rewrites vespa-app/src/test/resources/ranker/ (with the project
                                             # installed; tests/test_learned_ranker.py checks it still holds what
                                             # Python computes)

Two rankers, binary and lambdarank, trained by pipeline/learned_ranker.py on 3,000 synthetic rows of the learned
profile's features (feed/ranking.py LEARNED_FEATURES) over two days, clicks drawn from a planted logit; then 40
cases: feature values drawn the same way, and each ranker's prediction (P(click) for binary: Vespa applies the
sigmoid the dump names; the raw score for lambdarank).

The rankers are small (8 trees of 6 leaves): Vespa's config model writes an expression longer than 8,192 characters
to a file the container reads by file distribution, which the in-process container of the Java tests resolves
against its working directory and does not find. A real ranker (hundreds of trees) is such a file: deployed to Vespa
it is distributed like the re-ranker's model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from newsrec.feed import ranking
from newsrec.pipeline.learned_ranker import OBJECTIVES, Ranker, RankerConfig, train_ranker

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "vespa-app" / "src" / "test" / "resources" / "ranker"
CASES = 40
MODEL_VERSION = "fixture0000000000"


def features(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Values in the ranges the replay logs: ranking scores, log CTRs, log ages, appeal, closeness, log counts,
    CTRs and shares."""
    columns = [rng.normal(0.0, 1.0, rows), np.log(rng.uniform(0.01, 0.2, rows)), np.log1p(rng.uniform(0, 48, rows)),
               rng.normal(-3.0, 0.5, rows), rng.uniform(0.2, 0.6, rows), np.log1p(rng.exponential(20, rows)),
               rng.uniform(0.02, 0.08, rows), rng.uniform(0, 0.5, rows), rng.uniform(0, 0.3, rows),
               np.log1p(rng.integers(0, 50, rows).astype(np.float64))]
    assert len(columns) == len(ranking.LEARNED_FEATURES)
    return np.column_stack(columns)


def train(objective: str) -> Ranker:
    rng = np.random.default_rng(7)
    rows, per_impression = 3_000, 20
    x = features(rng, rows)
    logit = -3 + 1.2 * x[:, 0] + 0.8 * (x[:, 1] + 3) - 0.4 * x[:, 2] + 2 * x[:, 7] + 2 * x[:, 8]
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    impression = np.arange(rows) // per_impression
    time = 1573257600 + impression * (2 * 86_400 // (rows // per_impression))  # two days, in order
    config = RankerConfig(objective=objective, num_leaves=6, rounds=8, early_stopping=8, min_data_in_leaf=20)
    return train_ranker(x, labels, impression, time, ranking.LEARNED_FEATURES, config, MODEL_VERSION,
                        source="tests/learned_ranker_fixture.py")


def cases(rankers: dict[str, Ranker]) -> dict:
    x = features(np.random.default_rng(11), CASES)
    return {"features": list(ranking.LEARNED_FEATURES), "tolerance": 1e-5,
            "cases": [{"values": dict(zip(ranking.LEARNED_FEATURES, map(float, row))),
                       **{objective: float(ranker.predict(row[None, :])[0]) for objective, ranker in rankers.items()}}
                      for row in x]}


ORIGIN, NOW = 1573000000.0, 1573257600
RATE = float(np.log(2) / (6 * 3600))


def feature_cases() -> dict:
    """Rank profile learned_features' functions on raw inputs (a news item's attributes, the query's tensors and
    numbers, `now`), with feed/ranking.py's values: the Java test evaluates each function in the container."""
    rng = np.random.default_rng(5)
    query = {"decay_origin": ORIGIN, "decay_rate": RATE, "history_length": 12.0,
             "category_ctrs": {"sports": 0.0625, "news": 0.03125, "finance": 0.046875},
             "user_categories": {"sports": 0.5, "news": 0.25}, "user_entities": {"Q1": 0.25, "Q7": 0.5}}
    rows = []
    for i, (category, entities) in enumerate((("sports", ["Q1"]), ("news", ["Q1", "Q7"]), ("weather", []),
                                              ("finance", ["Q9"]))):
        attributes = {"impressions_decayed": float(rng.integers(1, 60)) * 2.0 ** -3,
                      "clicks_decayed": float(rng.integers(0, 5)) * 2.0 ** -3, "published": NOW - 3600 * (i + 1) * 5,
                      "appeal": -3.0 + i * 0.25, "category": category, "entities": entities}
        closeness = 0.25 + i / 16
        ranking_score = 0.5 - i / 8
        live = ranking.live_terms(np.array([ranking_score]),
                                  ranking.live_ctr([attributes["clicks_decayed"]], [attributes["impressions_decayed"]],
                                                   NOW, ORIGIN, RATE),
                                  ranking.age_hours([attributes["published"]], NOW), np.array([attributes["appeal"]]))
        values = ranking.learned_features(
            live, [closeness], ranking.decayed_count([attributes["impressions_decayed"]], NOW, ORIGIN, RATE),
            ranking.label_match([(category,)], query["category_ctrs"]),
            ranking.label_match([(category,)], query["user_categories"]),
            ranking.label_match([entities], query["user_entities"]), int(query["history_length"]))[0]
        rows.append({"attributes": attributes, "closeness": closeness, "ranking_score": ranking_score,
                     "expected": dict(zip(ranking.LEARNED_FEATURES, map(float, values)))})
    return {"now": NOW, "query": query, "rows": rows, "tolerance": 1e-12}


def main() -> None:
    rankers = {objective: train(objective) for objective in OBJECTIVES}
    for objective, ranker in rankers.items():
        ranker.save(RESOURCES / objective)
    (RESOURCES / "cases.json").write_text(json.dumps(cases(rankers), indent=1) + "\n")
    (RESOURCES / "features.json").write_text(json.dumps(feature_cases(), indent=1) + "\n")
    print(f"wrote {RESOURCES}: {', '.join(OBJECTIVES)} rankers and {CASES} cases")


if __name__ == "__main__":
    main()
