"""World v2 of `newsrec demo-data`: each planted effect present and separable, the oracle decomposed, v1 kept."""
from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.pipeline import background, world_v2
from newsrec.pipeline.demo_data import SIZES, Planted, config_for, generate, plant
from newsrec.pipeline.metrics import ranking_metrics

WORLD = world_v2.WorldV2()


@functools.lru_cache(maxsize=1)
def planted() -> Planted:
    """tiny with more dev impressions: enough rows for the per-effect comparisons (~2 s)."""
    return plant(replace(SIZES["tiny"], dev_impressions=4_000))


def dev_parts(p: Planted) -> dict[str, np.ndarray]:
    return world_v2.chunked_components(WORLD, p.news, p.users, *world_v2.impression_rows(p.dev))


def auc_on(p: Planted, keep_impressions: np.ndarray, scores: np.ndarray) -> float:
    """AUC over the dev impressions where `keep_impressions` is True."""
    owner = np.repeat(np.arange(len(p.dev.day)), np.diff(p.dev.offsets))
    rows = keep_impressions[owner]
    offsets = np.concatenate([[0], np.cumsum(np.diff(p.dev.offsets)[keep_impressions])])
    return ranking_metrics(p.dev.labels[rows], scores[rows], offsets).auc


V2_TINY_DIGESTS = {"train/behaviors.tsv": "b069f9065234f5d3", "dev/news.tsv": "cc88741680df6e7f",
                   "dev/click_probabilities.txt": "fae3da4f6b160551", "planted.json": "32e359ae9794dd98"}


def digests(directory: Path, names=tuple(V2_TINY_DIGESTS)) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()[:16] for name in names}


def test_world_v1_is_kept_byte_for_byte(tmp_path: Path):
    """`--world v1` writes exactly what demo-data wrote before world v2 (tiny, seed 0)."""
    generate(tmp_path, config_for("tiny", 0, "v1"))
    assert digests(tmp_path, ("train/behaviors.tsv", "dev/news.tsv", "dev/click_probabilities.txt")) == {
        "train/behaviors.tsv": "d12027a9482b36cd", "dev/news.tsv": "06bed01eb0361bf1",
                       "dev/click_probabilities.txt": "139ef35099c6286a"}


def test_world_v2_is_kept_byte_for_byte(tmp_path: Path, monkeypatch):
    """World v2 (tiny, seed 0) as committed before any model ran on it: faster code must draw the same world
    and compute the same truth (planted.json holds the decomposition and the recall oracle). Here serially;
    the forked path below."""
    monkeypatch.setattr(background, "can_fork", lambda: False)
    generate(tmp_path, config_for("tiny", 0, "v2"))
    assert digests(tmp_path) == V2_TINY_DIGESTS


def test_the_truth_computed_in_a_forked_process_is_the_same(tmp_path: Path):
    """`newsrec demo-data` forks for the truth when it is the only thread (a fresh process is)."""
    script = ("import sys; from newsrec.pipeline.background import can_fork; from newsrec.pipeline.demo_data import config_for, "
              "generate; print(can_fork()); generate(sys.argv[1], config_for('tiny', 0, 'v2'))")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True"]
    assert digests(tmp_path) == V2_TINY_DIGESTS


def test_group_draws_are_those_of_one_categorical_over_the_whole_row():
    """`_Groups._group` skips the empty follow slots; the draws equal those of the full (1 + F) × T row."""
    p = planted()
    groups = world_v2._Groups(p.news, p.config.history_days)
    rng = np.random.default_rng(5)
    user = rng.integers(0, len(p.users.ids), 3_000)
    day, uniform = rng.integers(0, p.config.history_days, len(user)), rng.random(len(user))
    topical = np.exp(world_v2.topic_logits(p.users, user, day + 0.5))
    follows = p.users.follows[user]
    boost = np.where(follows >= 0, np.expm1(p.users.follow_weight[user]), 0.0)
    entity_mass = boost[:, :, None] * topical[:, None, :] * groups.entity_mass[day[:, None], np.maximum(follows, 0)]
    flat = np.concatenate([topical * groups.topic_mass[day], entity_mass.reshape(len(user), -1)], axis=1)
    cumulative = np.cumsum(flat, axis=1)
    expected = np.minimum((cumulative < (uniform * cumulative[:, -1])[:, None]).sum(axis=1), flat.shape[1] - 1)
    assert (follows >= 0).sum(axis=1).min() == 0 and (follows >= 0).sum(axis=1).max() >= 2
    assert np.array_equal(groups._group(p.users, user, day, uniform), expected)


def test_v2_keeps_minds_statistics(tmp_path: Path):
    """(v3 is now the default: tests/test_world_v3.py asserts the same of it.)"""
    summary = generate(tmp_path, config_for("tiny", 0, "v2"))
    stats = summary["statistics"]
    assert summary["world"] == "v2" and 0.03 < summary["dev_ctr"] < 0.06
    assert summary["dev_candidates_unseen_in_train"] > 0.6
    assert 0 < stats["empty_history_share"] < 0.06 and 10 < stats["title_words_mean"] < 14
    assert (stats["categories"], stats["subcategories"]) == (14, 38)


def test_followed_entities_are_named_in_titles_and_entity_columns(tmp_path: Path):
    generate(tmp_path, config_for("tiny", 0))
    p = plant(config_for("tiny", 0))
    cross = [n for n in range(len(p.news.day)) if len(p.news.entities[p.news.entity[n]].topics) > 1]
    assert 0.25 < len(cross) / len(p.news.day) < 0.45  # cross-topic entities in ~35% of news
    rows = {line.split("\t")[0]: line.rstrip("\n").split("\t") for line in
            (tmp_path / "dev" / "news.tsv").read_text(encoding="utf-8").splitlines()}
    for n in cross:
        if p.news.ids[n] in rows:
            label = p.news.entities[p.news.entity[n]].label
            title, entities = rows[p.news.ids[n]][3], json.loads(rows[p.news.ids[n]][6])
            assert label in title and entities[0]["Label"] == label


def test_the_entity_component_beats_topic_only_for_users_who_follow_entities():
    p = planted()
    parts = dev_parts(p)
    owner = np.repeat(np.arange(len(p.dev.day)), np.diff(p.dev.offsets))
    touched = np.bincount(owner, weights=parts["entity"] > 0, minlength=len(p.dev.day)) > 0
    topic_only = parts["topic"] + parts["interests"] + parts["drift"]
    with_entities = topic_only + parts["entity"]
    assert touched.sum() > 100
    assert auc_on(p, touched, with_entities) > auc_on(p, touched, topic_only) + 0.03


def topic_profile_scores(p: Planted, clicks_of, keep: np.ndarray) -> np.ndarray:
    """Score each dev candidate by the share of its topic among `clicks_of(history)` of the impression's user."""
    topics = len(world_v2.demo_vocab.TOPICS)
    scores = np.zeros(len(p.dev.candidates))
    for i in np.flatnonzero(keep):
        clicks = clicks_of(p.users.history[p.dev.user[i]])
        profile = np.bincount(p.news.topic[clicks], minlength=topics) / max(len(clicks), 1)
        rows = slice(p.dev.offsets[i], p.dev.offsets[i + 1])
        scores[rows] = profile[p.news.topic[p.dev.candidates[rows]]]
    return scores


def test_an_oracle_of_the_latest_clicks_beats_one_of_the_oldest():
    """Drift: the topics of a user's 5 latest clicks predict dev clicks better than those of the 5 oldest."""
    p = planted()
    lengths = np.array([len(p.users.history[u]) for u in p.dev.user])
    keep = (lengths >= 10) & (p.users.drift_weight[p.dev.user] > 0)
    latest = auc_on(p, keep, topic_profile_scores(p, lambda h: h[-5:], keep))
    oldest = auc_on(p, keep, topic_profile_scores(p, lambda h: h[:5], keep))
    assert keep.sum() > 500 and latest > oldest + 0.02


def test_multi_interest_users_planted_top_k_spans_several_topics():
    """The planted top 50 over all news (810 in tiny) of a user with 3+ further interests covers several of that user's
    topics; a single-interest user's covers one."""
    p = planted()
    time = np.full(1, p.config.history_days + p.config.train_days + 0.5)
    pool = np.arange(len(p.news.day))

    def own_topics_in_top(user: int) -> int:
        logits = world_v2.pool_logits(WORLD, p.news, p.users, np.array([user]), time, pool)[0]
        mine = {int(p.users.primary[user]), *(int(t) for t in p.users.interests[user] if t >= 0)}
        return len(mine & set(p.news.topic[np.argsort(-logits)[:50]].tolist()))

    further = (p.users.interests >= 0).sum(axis=1)
    multi = np.flatnonzero(further >= 3)[:40]
    single = np.flatnonzero((further == 0) & (p.users.drift_weight == 0) & (p.users.follows < 0).all(axis=1))[:40]
    spans = [own_topics_in_top(u) for u in multi]
    assert np.mean([s >= 3 for s in spans]) > 0.8
    assert {own_topics_in_top(u) for u in single} == {1}


def test_pool_logits_are_the_rows_logits():
    p = planted()
    user, item, time = (a[:50] for a in world_v2.impression_rows(p.dev))
    by_row = world_v2.logit(WORLD, p.news, p.users, user, item, time)
    by_pool = np.array([world_v2.pool_logits(WORLD, p.news, p.users, user[i:i + 1], time[i:i + 1], item[i:i + 1])[0, 0]
                        for i in range(50)])
    assert np.allclose(by_row, by_pool)


def test_the_decomposition_ends_at_the_planted_probability_and_each_effect_adds(tmp_path: Path):
    summary = generate(tmp_path, config_for("tiny", 0))
    cumulative = summary["oracle_decomposition"]["cumulative"]
    assert list(cumulative) == ["topic", "+ entity", "+ interests", "+ drift", "+ fresh", "+ wording",
                                "full (+ residual)"]
    aucs = [m["auc"] for m in cumulative.values()]
    assert aucs[-1] > aucs[0] + 0.1 and sum(b > a for a, b in zip(aucs, aucs[1:])) >= 5
    result = CliRunner().invoke(main, ["baselines", str(tmp_path), "--json"])
    table = json.loads(result.output)
    assert table["oracle"]["auc"] == pytest.approx(cumulative["full (+ residual)"]["auc"], abs=2e-3)
    assert table["oracle_decomposition"] == summary["oracle_decomposition"]


def test_the_recall_oracle_beats_chance_and_is_reported(tmp_path: Path):
    summary = generate(tmp_path, config_for("tiny", 0))
    recall, pool = summary["recall_oracle"], summary["dev_distinct_candidates"]
    assert recall["dev-day pool"][100] > 100 / pool and recall["all news"][100] > 3 * 100 / summary["news"]
    assert json.loads(CliRunner().invoke(main, ["baselines", str(tmp_path), "--json"]).output)["recall_oracle"]


def test_demo_data_world_option(tmp_path: Path):
    v1 = CliRunner().invoke(main, ["demo-data", str(tmp_path / "v1"), "--world", "v1"])
    v2 = CliRunner().invoke(main, ["demo-data", str(tmp_path / "v2"), "--world", "v2"])
    v3 = CliRunner().invoke(main, ["demo-data", str(tmp_path / "v3")])
    assert v1.exit_code == v2.exit_code == v3.exit_code == 0
    assert "world v1" in v1.output and "oracle: + entity" not in v1.output
    assert "world v2" in v2.output and "oracle: + entity" in v2.output and "recall oracle" in v2.output
    assert "world v3" in v3.output and "oracle: + entity" in v3.output and "recall oracle" in v3.output
    assert "0.0% of dev candidate rows shown before their publication" in v3.output
    bad = CliRunner().invoke(main, ["demo-data", str(tmp_path / "v4"), "--world", "v4"])
    assert bad.exit_code != 0 and "v4" in bad.output


def test_the_decomposition_of_a_sample_is_that_of_its_impressions():
    p = planted()
    whole = world_v2.decomposition(WORLD, p.news, p.users, p.dev)
    sampled = world_v2.decomposition(WORLD, p.news, p.users, p.dev, sample=1_000)
    assert sampled["cumulative"]["topic"]["impressions"] <= 1_000 < whole["cumulative"]["topic"]["impressions"]
    assert abs(sampled["cumulative"]["full (+ residual)"]["auc"] - whole["cumulative"]["full (+ residual)"]["auc"]) < 0.03
