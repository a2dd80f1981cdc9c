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
from newsrec.pipeline.demo_data import TEXT_PARTS, config_for, generate, news_texts, plant
from newsrec.pipeline.mind import read_mind


@pytest.fixture(scope="module")
def order():
    return plant(config_for("tiny", 0, "probe-order"))


P = world_probes.ProbeParameters()


def test_every_user_moves_late_from_the_old_topic_to_the_new(order):
    news, users = order.news, order.users
    old, new_topic = users.planted["old"], users.planted["new"]
    late = order.config.history_days - P.late_days
    for u, clicks in enumerate(users.history):
        topics, days = news.topic[clicks], news.day[clicks]
        assert set(topics.tolist()) <= {old[u], new_topic[u]}
        new = topics == new_topic[u]
        assert new[-1] and (days[new] >= late).all() and (days[~new] < late).all()  # B is the latest part
        assert list(np.flatnonzero(new)) == list(range(len(clicks) - new.sum(), len(clicks)))  # ... all of it
    assert (news.markers == world_probes.NO_MARKER).all()  # no words planted in this probe


def test_the_bounds_order_oracle_premise_and_mean(order):
    truth = world_probes.planted_truth("probe-order", order.news, order.users, order.train, order.dev)
    bounds = truth["bounds"]
    oracle, premise = bounds["oracle"]["auc"], bounds["premise bound (history estimable)"]["auc"]
    mean = bounds["mean bound (history estimable)"]["auc"]
    assert oracle > premise > mean + 0.01  # the premise is worth something a mean of the history cannot reach
    assert bounds["attainable gain (AUC)"] == pytest.approx(premise - mean)
    assert truth["probe"]["parameters"]["late_share"] == P.late_share


def test_the_order_feature_reads_the_latest_clicks_only(order):
    """Moving a click from the bulk of a history to its end changes the premise feature, not the mean's."""
    news, users = order.news, order.users
    u = next(u for u in order.dev.user.tolist() if len(users.history[u]) > 2 * P.recent)
    before = world_probes.history_features("probe-order", news, users, order.dev, premise=True)
    history = list(users.history)
    history[u] = np.concatenate([history[u][P.recent:], history[u][:P.recent]])  # the old clicks last
    moved = world_probes.ProbeUsers(users.activity, history, users.ids, users.planted)
    after = world_probes.history_features("probe-order", news, moved, order.dev, premise=True)
    rows = np.repeat(order.dev.user, np.diff(order.dev.offsets)) == u
    assert rows.any()
    assert np.allclose(before[rows, :2], after[rows, :2]) and not np.allclose(before[rows, 2], after[rows, 2])


def test_pairs_are_planted_across_clicks_never_in_one(tmp_path):
    pairs = plant(config_for("tiny", 0, "probe-pairs"))
    news, users = pairs.news, pairs.users
    for u, clicks in enumerate(users.history):
        marks = news.markers[clicks]
        a, b = users.planted["first"][u], users.planted["second"][u]
        has_a, has_b = (marks == a).any(axis=1), (marks == b).any(axis=1)
        assert not (has_a & has_b).any() and has_a.sum() >= P.clicks_per_part and has_b.sum() >= P.clicks_per_part
        assert set(marks[marks != world_probes.NO_MARKER].tolist()) == {a, b}  # the history's only words
    truth = world_probes.planted_truth("probe-pairs", news, users, pairs.train, pairs.dev)["bounds"]
    assert truth["attainable gain (AUC)"] > 0.03  # the pair is worth more than its words one by one
    titles = [t[0] for t in news_texts(pairs)]
    marked = int(np.flatnonzero(news.markers[:, 1] != world_probes.NO_MARKER)[0])
    assert titles[marked].endswith(f"{world_probes.MARKERS[news.markers[marked, 0]]} and "
                                   f"{world_probes.MARKERS[news.markers[marked, 1]]}")


def test_the_pair_scores_above_its_words_alone_and_a_mean_cannot_order_them():
    """The planted logit: both words +premise_weight, one of them lone_weight; a score linear in the history's
    word frequencies gives the pair twice what one word gets, so it cannot put the pair first and one word last."""
    world = plant(config_for("tiny", 0, "probe-pairs"))
    users, news = world.users, world.news
    a, b = users.planted["first"][0], users.planted["second"][0]
    pair = next(n for n in range(len(news.ids)) if set(news.markers[n].tolist()) == {a, b})
    alone = next(n for n in range(len(news.ids)) if news.markers[n].tolist() == [a, world_probes.NO_MARKER])
    scores = world_probes.logits("probe-pairs", news, users, np.array([0]), np.array([0, 0]), np.array([pair, alone]))
    appeal = P.click_bias + P.appeal_weight * news.quality[[pair, alone]]
    assert list(scores - appeal) == pytest.approx([P.premise_weight, P.lone_weight])


def test_several_interests_score_the_best_interest_not_the_sum():
    world = plant(config_for("tiny", 0, "probe-max"))
    users, news = world.users, world.news
    first, second = users.planted["first"], users.planted["second"]
    assert (first < P.marker_words).all() and (second >= P.marker_words).all()
    assert all(len(set(row)) == P.interests for row in first.tolist())  # no word in two interests
    u = 0
    crossing = next(n for n in range(len(news.ids)) if news.markers[n, 0] == first[u, 0]
                    and news.markers[n, 1] == second[u, 1])
    full = next(n for n in range(len(news.ids)) if news.markers[n].tolist() == [first[u, 0], second[u, 0]])
    scores = world_probes.logits("probe-max", news, users, np.array([u]), np.array([0, 0]),
                                 np.array([crossing, full]))
    appeal = P.click_bias + P.appeal_weight * news.quality[[crossing, full]]
    assert list(scores - appeal) == pytest.approx([P.word_weight, 2 * P.word_weight])  # a crossing: one, not two
    truth = world_probes.planted_truth("probe-max", news, users, world.train, world.dev)["bounds"]
    assert truth["attainable gain (AUC)"] > 0.02


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


def test_a_matched_entity_counts_the_same_however_often_it_was_clicked():
    """probe-match: the followed story and an entity read once give the same logit; the mean's feature (the share
    of the history) tells them apart, the premise's (whether a click names it) does not."""
    world = plant(config_for("tiny", 0, "probe-match"))
    news, users = world.news, world.users
    entity = world_probes.entity_ids(news)
    assert world_probes.ENTITY_COLUMN == TEXT_PARTS.index("entity")
    u = 0
    clicked, counts = np.unique(entity[users.history[u]], return_counts=True)
    habit, once = clicked[np.argmax(counts)], clicked[np.argmin(counts)]
    assert counts.max() >= 2 * counts.min()
    candidates = np.array([np.flatnonzero(entity == e)[0] for e in (habit, once)]
                          + [np.flatnonzero(~np.isin(entity, clicked))[0]])
    scores = world_probes.logits("probe-match", news, users, np.array([u]), np.zeros(3, int), candidates)
    appeal = P.click_bias + P.appeal_weight * news.quality[candidates]
    assert list(scores - appeal) == pytest.approx([P.premise_weight, P.premise_weight, 0.0])
    truth = world_probes.planted_truth("probe-match", news, users, world.train, world.dev)["bounds"]
    assert truth["attainable gain (AUC)"] > 0.01


@pytest.mark.parametrize("name", world_probes.PROBES)
def test_the_premise_rows_are_the_rows_with_a_planted_user_part(name):
    world = plant(config_for("tiny", 0, name))
    dev = world.dev
    impression_of = np.repeat(np.arange(len(dev.day)), np.diff(dev.offsets))
    user_part = (world_probes.logits(name, world.news, world.users, dev.user, impression_of, dev.candidates)
                 - P.click_bias - P.appeal_weight * world.news.quality[dev.candidates])
    rows = world_probes.premise_rows(name, world.news, world.users, dev)
    assert 0 < rows.mean() < 1
    assert np.array_equal(rows, ~np.isclose(user_part, 0.0))


def test_the_premise_split_of_generated_data_and_its_metrics(tmp_path):
    from newsrec.pipeline.baselines import oracle_scores, premise_split
    from newsrec.pipeline.evaluation import evaluate_scores

    generate(tmp_path / "p", config_for("tiny", 0, "probe-pairs"))
    generate(tmp_path / "v3", config_for("tiny", 0, "v3"))
    dataset = read_mind(tmp_path / "p")
    rows = premise_split(tmp_path / "p", dataset)[world_probes.PREMISE_ROWS]
    assert len(rows) == len(dataset.splits["dev"].labels) and 0 < rows.mean() < 1
    assert premise_split(tmp_path / "v3", read_mind(tmp_path / "v3")) == {}
    oracle = evaluate_scores("oracle", dataset, "dev", oracle_scores(dataset, "dev"), row_splits={"premise": rows})
    assert oracle.splits["premise"].auc > 0.6  # on those rows the planted truth ranks by the premise
