from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from newsrec.pipeline import demo_vocab
from newsrec.pipeline.baselines import evaluate_baselines
from newsrec.pipeline.demo_data import config_for, generate
from newsrec.pipeline.mind import read_mind


def test_generation_is_deterministic(tmp_path: Path, tiny_demo: Path):
    generate(tmp_path / "again", config_for("tiny", 0))
    for name in ("train/news.tsv", "train/behaviors.tsv", "dev/behaviors.tsv", "dev/click_probabilities.txt"):
        assert (tmp_path / "again" / name).read_bytes() == (tiny_demo / name).read_bytes()
    generate(tmp_path / "other", config_for("tiny", 1))
    assert (tmp_path / "other/dev/behaviors.tsv").read_bytes() != (tiny_demo / "dev/behaviors.tsv").read_bytes()


def test_output_is_valid_mind_with_the_promised_properties(tiny_demo: Path):
    dataset = read_mind(tiny_demo)  # the strict reader accepts it
    train, dev = dataset.splits["train"], dataset.splits["dev"]
    for split in (train, dev):
        clicks = np.add.reduceat(split.labels, split.candidate_offsets[:-1])
        assert clicks.min() >= 1, "every impression has at least one click"
        assert (np.diff(split.history_offsets) == 0).any(), "some users have an empty history"
        assert 0.02 < split.labels.mean() < 0.12
    assert train.time.max() < dev.time.min(), "dev comes after train"
    unseen = np.setdiff1d(np.unique(dev.candidates), np.unique(train.candidates))
    assert len(unseen) / len(np.unique(dev.candidates)) > 0.6, "most dev candidates are cold"
    assert set(dataset.news.categories) <= {t.category for t in demo_vocab.TOPICS}
    assert sum(1 for e in dataset.news.title_entities if e) > len(dataset.news) / 3


def test_histories_hold_only_clicks_from_before_the_log(tiny_demo: Path):
    dataset = read_mind(tiny_demo)
    train, dev = dataset.splits["train"], dataset.splits["dev"]
    assert not np.isin(dev.history, dev.candidates).any()  # dev candidates are new: no one clicked them before
    train_day = train.time // 86_400 - train.time.min() // 86_400
    first_day_rows = np.isin(train.impression_of_candidate(), np.flatnonzero(train_day == 0))
    seen_before = np.isin(train.candidates, train.history)  # only news from the day before the log
    assert not seen_before[~first_day_rows].any()


def test_baselines_order_oracle_over_popularity_over_random(tiny_demo: Path):
    results = {r.name: r.metrics for r in evaluate_baselines(read_mind(tiny_demo))}
    assert abs(results["random"].auc - 0.5) < 0.05
    assert results["oracle"].auc > results["popularity"].auc + 0.1
    assert results["oracle"].auc > 0.7


def test_planted_summary(tiny_demo: Path):
    summary = json.loads((tiny_demo / "planted.json").read_text())
    assert summary["config"]["seed"] == 0 and summary["dev_impressions"] == 800
    assert summary["dev_candidates_unseen_in_train"] > 0.6


def test_titles_read_like_topic_headlines(tiny_demo: Path):
    news = read_mind(tiny_demo).news
    assert all(5 <= len(title.split()) <= 20 for title in news.title)
    assert len(set(news.title)) > 0.8 * len(news)


def test_vocabulary_is_read_from_the_package_data_files(tmp_path: Path):
    topics_file = resources.files("newsrec.pipeline").joinpath("data", demo_vocab.TOPICS_FILE)
    assert topics_file.is_file()
    topics = json.loads(topics_file.read_text(encoding="utf-8"))
    assert json.loads(json.dumps([asdict(t) for t in demo_vocab.TOPICS])) == topics  # tuples become lists
    first = demo_vocab.TOPICS[0]
    assert isinstance(first.subjects, tuple) and first.entities[0] == tuple(topics[0]["entities"][0])
    topics[1]["entities"][0][1] = "X"  # not one of P/O/G/E
    bad = tmp_path / "bad_topics.json"
    bad.write_text(json.dumps(topics), encoding="utf-8")
    with pytest.raises(demo_vocab.VocabularyFileError, match=r"bad_topics\.json: topic 1 .*'entities'"):
        demo_vocab.load_topics(bad)
