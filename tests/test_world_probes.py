"""Probe worlds (issue #34): each plants one premise on a neutral base; the premise holds in the data, the bounds
are what a history can reveal, and the world is reproducible."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.pipeline import world_probes
from newsrec.pipeline.demo_data import config_for, generate, plant
from newsrec.pipeline.mind import read_mind


@pytest.fixture(scope="module")
def order():
    return plant(config_for("tiny", 0, "probe-order"))


def test_every_user_moves_late_from_the_old_topic_to_the_new(order):
    probe, news, users = world_probes.ProbeOrder(), order.news, order.users
    late = order.config.history_days - probe.late_days
    for u, clicks in enumerate(users.history):
        topics, days = news.topic[clicks], news.day[clicks]
        assert set(topics.tolist()) == {users.old[u], users.new[u]} or set(topics.tolist()) == {users.new[u]}
        new = topics == users.new[u]
        assert new[-1] and (days[new] >= late).all() and (days[~new] < late).all()  # B is the latest part
        assert list(np.flatnonzero(new)) == list(range(len(clicks) - new.sum(), len(clicks)))  # ... all of it
    assert (users.interest[np.arange(len(users.ids)), users.new] == probe.new_weight).all()


def test_the_bounds_order_oracle_premise_and_mean(order):
    truth = world_probes.planted_truth(world_probes.ProbeOrder(), order.news, order.users, order.train, order.dev)
    bounds = truth["bounds"]
    oracle, premise = bounds["oracle"]["auc"], bounds["premise bound (history estimable)"]["auc"]
    mean = bounds["mean bound (history estimable)"]["auc"]
    assert oracle > premise > mean + 0.01  # the premise is worth something a mean of the history cannot reach
    assert bounds["attainable gain (AUC)"] == pytest.approx(premise - mean)
    assert truth["probe"]["parameters"]["late_share"] == world_probes.ProbeOrder().late_share


def test_the_order_feature_reads_the_latest_clicks_only(order):
    """Moving a click from the bulk of a history to its end changes the premise feature, not the mean's."""
    probe, news, users = world_probes.ProbeOrder(), order.news, order.users
    u = next(u for u in order.dev.user.tolist() if len(users.history[u]) > 2 * probe.recent)
    before = world_probes.history_features(probe, news, users, order.dev, premise=True)
    history = list(users.history)
    history[u] = np.concatenate([history[u][probe.recent:], history[u][:probe.recent]])  # the old clicks last
    moved = world_probes.ProbeUsers(users.interest, users.activity, history, users.ids, users.old, users.new)
    after = world_probes.history_features(probe, news, moved, order.dev, premise=True)
    rows = np.repeat(order.dev.user, np.diff(order.dev.offsets)) == u
    assert rows.any()
    assert np.allclose(before[rows, :2], after[rows, :2]) and not np.allclose(before[rows, 2], after[rows, 2])


def test_generated_probe_is_mind_format_and_reproducible(tmp_path):
    digests = []
    for run in ("a", "b"):
        summary = generate(tmp_path / run, config_for("tiny", 0, "probe-order"))
        digests.append(hashlib.sha256((tmp_path / run / "dev" / "behaviors.tsv").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    dataset = read_mind(tmp_path / "a")
    assert dataset.splits["dev"].labelled and summary["world"] == "probe-order"
    planted = json.loads((tmp_path / "a" / "planted.json").read_text())
    assert planted["probe"]["name"] == "probe-order" and "bounds" in planted


def test_demo_data_offers_the_probe_and_prints_its_bounds(tmp_path):
    result = CliRunner().invoke(main, ["demo-data", str(tmp_path / "p"), "--world", "probe-order"])
    assert result.exit_code == 0, result.output
    assert "premise bound (history estimable): AUC 0." in result.output and "attainable gain (AUC): +0.0" in result.output
