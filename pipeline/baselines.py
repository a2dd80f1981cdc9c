"""Reference scorers, evaluated with the same metrics code as every model: random, popularity, oracle.

- random: uniform scores from a seeded generator (expected AUC 0.5);
- popularity: clicks a candidate received in *train* impressions strictly before the impression's
  time (no dev labels are used: no leakage);
- oracle: the planted true click probabilities of generated data (`demo-data`), the Bayes-optimal
  ranking; only available where `dev/click_probabilities.txt` exists.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from newsrec.pipeline import world_probes, world_v2
from newsrec.pipeline.demo_data import PROBABILITIES_FILE, DemoConfig, generate, plant, read_probabilities
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.leaderboard import scores_to_ranks, write_leaderboard_file
from newsrec.pipeline.metrics import RankingMetrics, ranking_metrics
from newsrec.pipeline.mind import Behaviors, MindDataset, read_mind


class MissingGroundTruthError(NewsrecError):
    """The oracle needs the planted click probabilities, which only generated data has."""


@dataclass(frozen=True)
class BaselineResult:
    name: str
    metrics: RankingMetrics
    scores: np.ndarray  # (C,) one score per candidate row of the evaluated split


def random_scores(behaviors: Behaviors, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(len(behaviors.candidates))


def popularity_scores(train: Behaviors, target: Behaviors) -> np.ndarray:
    """Number of train clicks on each candidate before the target impression's time."""
    clicked_rows = np.flatnonzero(train.labels == 1)
    click_news = train.candidates[clicked_rows].astype(np.int64)
    click_time = train.time[train.impression_of_candidate()[clicked_rows]]
    start = min(int(click_time.min(initial=0)), int(target.time.min(initial=0)))
    span = max(int(click_time.max(initial=0)), int(target.time.max(initial=0))) - start + 2
    click_keys = np.sort(click_news * span + (click_time - start))
    candidate_time = target.time[target.impression_of_candidate()] - start
    news = target.candidates.astype(np.int64)
    before = np.searchsorted(click_keys, news * span + candidate_time, side="left")  # clicks strictly earlier
    first = np.searchsorted(click_keys, news * span, side="left")
    return (before - first).astype(np.float64)


def oracle_scores(dataset: MindDataset, split: str) -> np.ndarray:
    """The planted click probability of every candidate row, checked against the split's impressions."""
    path = dataset.split_dir(split) / PROBABILITIES_FILE
    if not path.is_file():
        raise MissingGroundTruthError(f"{path}: no planted click probabilities; the oracle exists only for "
                                      "data made by `newsrec demo-data`")
    behaviors = dataset.splits[split]
    ids, offsets, probabilities = read_probabilities(path)
    expected = [str(i) for i in behaviors.impression_ids.tolist()]
    if ids != expected or not np.array_equal(offsets, behaviors.candidate_offsets):
        raise MissingGroundTruthError(f"{path}: does not match {behaviors.path} (impression ids or lengths "
                                      "differ); regenerate the data")
    return probabilities


def evaluate_baselines(dataset: MindDataset, split: str = "dev", seed: int = 0) -> list[BaselineResult]:
    """Random, popularity and (for generated data) oracle on a labelled split."""
    target = dataset.splits[split]
    scorers = {"random": lambda: random_scores(target, seed),
               "popularity": lambda: popularity_scores(dataset.splits["train"], target)}
    if (dataset.split_dir(split) / PROBABILITIES_FILE).is_file():
        scorers["oracle"] = lambda: oracle_scores(dataset, split)
    results = []
    for name, scorer in scorers.items():
        scores = scorer()
        results.append(BaselineResult(name, ranking_metrics(target.labels, scores, target.candidate_offsets), scores))
    return results


def reference_metrics(dataset: MindDataset, split: str = "dev", seed: int = 0) -> dict[str, RankingMetrics]:
    """Random and the oracle on a split with a planted truth (data made by `demo-data`): the floor and the ceiling
    a model's figures are read against; {} for real MIND."""
    if not (dataset.split_dir(split) / PROBABILITIES_FILE).is_file():
        return {}
    target = dataset.splits[split]
    return {name: ranking_metrics(target.labels, scores, target.candidate_offsets)
            for name, scores in (("random", random_scores(target, seed)), ("oracle", oracle_scores(dataset, split)))}


def write_predictions(results: list[BaselineResult], target: Behaviors, out_dir: str | Path) -> list[Path]:
    """One leaderboard prediction file per baseline, `<out_dir>/<name>.txt`."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for result in results:
        path = Path(out_dir) / f"{result.name}.txt"
        write_leaderboard_file(path, target.impression_ids.tolist(), target.candidate_offsets,
                               scores_to_ranks(result.scores, target.candidate_offsets))
        paths.append(path)
    return paths


PLANTED_FILE = "planted.json"


def planted_summary(mind_dir: str | Path) -> dict | None:
    """The generator's `planted.json` of a generated dataset (None for real MIND data)."""
    path = Path(mind_dir) / PLANTED_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MissingGroundTruthError(f"{path}: unreadable ({error}); regenerate the data") from error


def planted_truth(summary: dict | None) -> dict:
    """The oracle decomposition and the recall oracle of a world-v2 `planted.json` ({} otherwise)."""
    return {key: summary[key] for key in ("oracle_decomposition", "recall_oracle") if summary and key in summary}


def decomposition_rows(summary: dict | None) -> list[tuple[str, RankingMetrics]]:
    """The oracle decomposition of a world-v2 `planted.json` as table rows: each component alone, then
    the components added one by one, ending with the full planted probability (empty for world v1)."""
    decomposition = (summary or {}).get("oracle_decomposition")
    if not decomposition:
        return []
    alone = [(f"oracle: {name} alone", RankingMetrics(**m)) for name, m in decomposition["alone"].items()]
    cumulative = [(f"oracle: {name}", RankingMetrics(**m)) for name, m in decomposition["cumulative"].items()]
    return alone + cumulative


ENTITY_SPLIT = "entity impressions"


def entity_split(mind_dir: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """For world-v2 and v3 data: (dev impressions where a candidate names an entity the user follows, the planted
    topic and entity components of every dev row), by planting the world of its `planted.json` again
    (deterministic); None for other data."""

    summary = planted_summary(mind_dir)
    if not summary or summary.get("world") not in ("v2", "v3"):
        return None
    planted = plant(DemoConfig(**summary["config"]))
    user, item, time = world_v2.impression_rows(planted.dev)
    parts = world_v2.components(world_v2.WorldV2(), planted.news, planted.users, user, item, time)
    return world_v2.entity_impressions(planted.news, planted.users, planted.dev), \
        {name: parts[name] for name in ("topic", "entity")}


def premise_split(mind_dir: str | Path, dataset: MindDataset) -> dict[str, np.ndarray]:
    """For probe-world data: {"premise rows": (C,) the dev candidate rows where the probe's premise decides}
    (`world_probes.premise_rows`), by planting the world again; {} for other data."""
    summary = planted_summary(mind_dir)
    if not summary or summary.get("world") not in world_probes.PROBES:
        return {}
    planted = plant(DemoConfig(**summary["config"]))
    dev = dataset.splits["dev"]
    if not np.array_equal(planted.dev.labels, dev.labels):
        raise MissingGroundTruthError(f"{mind_dir}: dev/behaviors.tsv is not the world its planted.json plants "
                                      "(edited or regenerated with another version?)")
    return {world_probes.PREMISE_ROWS: world_probes.premise_rows(summary["world"], planted.news, planted.users,
                                                                 planted.dev)}


def generate_with_oracle(out_dir: str | Path, config: DemoConfig) -> tuple[dict, RankingMetrics]:
    """Generate MIND-format data (`demo_data.generate`), read it back with every check on, and score the
    planted probabilities on dev: (generation summary, oracle dev metrics)."""
    summary = generate(out_dir, config)
    dataset = read_mind(out_dir)
    dev = dataset.splits["dev"]
    return summary, ranking_metrics(dev.labels, oracle_scores(dataset, "dev"), dev.candidate_offsets)
