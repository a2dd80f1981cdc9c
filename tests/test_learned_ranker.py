"""The learned ranker (pipeline/learned_ranker.py, feed/ranker_job.py, rank profile learned): features logged
causally by the replay, trained on the days before the split and validated on the last, self-describing, served by
the embedded index as a new generation (nothing re-fed), refused over another model's features, and the same trees
Vespa evaluates (the Java test's fixture holds LightGBM's predictions)."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.feed import ranking
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.replay import ReplayConfig, read_log
from newsrec.feed.replay_job import run_replay
from newsrec.pipeline.learned_ranker import (HEADER_FILE, MODEL_FILE, Ranker, RankerConfig, RankerError,
                                             RankerMismatchError, train_ranker, validation_start)

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "vespa-app" / "src" / "test" / "resources" / "ranker"
PROFILE = ROOT / "schemas" / "news" / "learned.profile"
LOGGED = ReplayConfig(log_hours=120, checkpoint_every=1_000, max_scored=100)


def test_the_java_tests_fixture_holds_lightgbms_predictions():
    fixture = json.loads((RESOURCES / "cases.json").read_text())
    assert fixture["features"] == list(ranking.LEARNED_FEATURES)
    for objective in ("binary", "lambdarank"):
        ranker = Ranker.load(RESOURCES / objective)
        x = np.array([[case["values"][name] for name in ranking.LEARNED_FEATURES] for case in fixture["cases"]])
        assert ranker.predict(x) == pytest.approx([case[objective] for case in fixture["cases"]], abs=1e-12)
        assert ranker.vespa_json()["objective"].startswith(objective)


def test_every_feature_is_a_function_of_the_learned_profiles_and_a_match_feature():
    """Vespa maps a LightGBM feature name to the rank feature of that name: each must be a function of
    learned_features (news.sd), which learned (schemas/news/learned.profile) inherits, and a match-feature of both."""
    from newsrec.feed.profiles import PROFILES

    news = (ROOT / "schemas" / "news.sd").read_text()
    block = news[news.index("rank-profile learned_features"):news.index("rank-profile popularity")]
    functions = set(re.findall(r"function (\w+)\(\)", block)) | {"ranking_score"}  # base's
    assert set(ranking.LEARNED_FEATURES) <= functions
    for name in ("learned_features", "learned"):
        assert set(ranking.LEARNED_FEATURES) <= set(PROFILES[name].match_features)
    assert 'lightgbm("ranker.json")' in PROFILE.read_text() and "inherits learned_features" in PROFILE.read_text()


def test_training_validates_on_the_last_day_and_writes_a_self_describing_ranker(tmp_path):
    rng = np.random.default_rng(0)
    rows = 4_000
    x = rng.normal(size=(rows, len(ranking.LEARNED_FEATURES)))
    labels = (rng.random(rows) < 1 / (1 + np.exp(-(x[:, 0] - 2)))).astype(float)
    impression = np.arange(rows) // 20
    time = 1573257600 + impression * 1_000  # 200 impressions over 2.3 days
    start = validation_start(time)
    assert time[start] // 86_400 == time[-1] // 86_400 and time[start - 1] // 86_400 < time[-1] // 86_400
    ranker = train_ranker(x, labels, impression, time, ranking.LEARNED_FEATURES, RankerConfig(rounds=20), "v1")
    header = ranker.save(tmp_path / "ranker") and json.loads((tmp_path / "ranker" / HEADER_FILE).read_text())
    assert header["features"] == list(ranking.LEARNED_FEATURES) and header["model_version"] == "v1"
    assert header["rows"] == {"train": start, "validation": rows - start} and len(header["data_sha256"]) == 64
    assert header["lightgbm"] and header["validation_auc"] > 0.6
    loaded = Ranker.load(tmp_path / "ranker")
    assert np.array_equal(loaded.predict(x[:50]), ranker.predict(x[:50]))
    assert np.all((loaded.predict(x) > 0) & (loaded.predict(x) < 1))  # binary: P(click)
    (tmp_path / "ranker" / MODEL_FILE).write_text((tmp_path / "ranker" / MODEL_FILE).read_text() + "\n")
    with pytest.raises(RankerError, match="SHA-256"):
        Ranker.load(tmp_path / "ranker")
    with pytest.raises(RankerError, match="two days"):
        train_ranker(x[:100], labels[:100], impression[:100], time[:100] * 0 + 1573257600,
                     ranking.LEARNED_FEATURES, RankerConfig(rounds=5), "v1")


@pytest.fixture(scope="module")
def logged(tiny_demo, trained, fed, tmp_path_factory) -> dict:
    """A replay of tiny that logs five days before dev (100 dev impressions), and rankers trained on its log."""
    root = tmp_path_factory.mktemp("learned")
    index = Path(shutil.copytree(fed, root / "index"))
    run_replay(str(tiny_demo), str(trained), str(index), str(root / "state"), LOGGED, log=lambda _: None)
    model = Path(shutil.copytree(trained, root / "model"))
    result = CliRunner().invoke(main, ["train-ranker", str(root / "state"), "--model", str(model), "--index",
                                       str(index), "--json"])
    assert result.exit_code == 0, result.output
    return {"root": root, "index": index, "model": model, "header": json.loads(result.output[result.output.index("{"):])}


def test_the_log_holds_every_feature_and_a_later_click_changes_no_earlier_row(tiny_demo, trained, fed, logged,
                                                                            tmp_path):
    saved, log = read_log(logged["root"] / "state")
    assert log["terms"].shape[1] == len(ranking.LEARNED_FEATURES) and np.all(np.isfinite(log["terms"]))
    assert (log["impression"] < saved["fingerprint"]["start"]).sum() > 5_000  # five days of training rows
    # move a later click: flip the labels of an impression in the middle of the log, replay again
    mind = Path(shutil.copytree(tiny_demo, tmp_path / "mind"))
    train = mind / "train" / "behaviors.tsv"
    lines = train.read_text().splitlines()
    middle = sorted(range(len(lines)), key=lambda i: lines[i].split("\t")[2])[len(lines) // 2]
    fields = lines[middle].split("\t")
    fields[4] = " ".join(c[:-1] + ("0" if c.endswith("1") else "1") for c in fields[4].split())
    lines[middle] = "\t".join(fields)
    train.write_text("\n".join(lines) + "\n")
    run_replay(str(mind), str(trained), str(shutil.copytree(fed, tmp_path / "index")), str(tmp_path / "state"),
               LOGGED, log=lambda _: None)
    _, moved = read_log(tmp_path / "state")
    changed = np.flatnonzero(np.any(moved["terms"] != log["terms"], axis=1))
    assert len(changed) > 0  # the flip is seen later, and never before the flipped impression's time
    flipped_at = datetime.strptime(fields[2], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=timezone.utc).timestamp()
    assert moved["time"][changed].min() >= flipped_at


def test_the_ranker_is_installed_as_a_new_generation_and_served_as_trained(tiny_demo, trained, logged, tmp_path):
    index = LocalBackend(logged["index"])
    assert index.state["ranker"]["model_version"] == logged["header"]["model_version"]
    assert logged["header"]["features"] == list(ranking.LEARNED_FEATURES)
    served = run_replay(str(tiny_demo), str(trained), str(logged["index"]), str(tmp_path / "state"),
                        replace(LOGGED, learned=True, log_hours=24.0), log=lambda _: None)
    check = served["offline_check"]
    assert check["max_metric_difference"] == 0.0  # served scores = LightGBM's predict over the logged features
    _, log = read_log(tmp_path / "state")
    ranker = Ranker.load(logged["model"] / "ranker")
    dev = log["impression"] >= served_start(log, served)
    assert np.allclose(log["served"][dev], ranker.predict(log["terms"][dev]), rtol=0, atol=1e-12)


def served_start(log: dict, report: dict) -> int:
    impressions = np.unique(log["impression"])
    return int(impressions[-report["impressions"]])


def test_a_ranker_of_another_model_is_refused_by_name(logged, tmp_path):
    index_dir = Path(shutil.copytree(logged["index"], tmp_path / "index"))
    other = Path(shutil.copytree(logged["model"] / "ranker", tmp_path / "other"))
    header = json.loads((other / HEADER_FILE).read_text())
    header["model_version"] = "0123456789abcdef"
    (other / HEADER_FILE).write_text(json.dumps(header))
    index = LocalBackend(index_dir)
    before = index.state
    with pytest.raises(RankerMismatchError, match="0123456789abcdef"):
        index.install_ranker(other)
    assert LocalBackend(index_dir).state == before  # nothing committed


def test_the_learned_profile_without_a_ranker_says_how_to_get_one(fed):
    with pytest.raises(RankerError, match="train-ranker"):
        LocalBackend(fed).ranker()


def test_installing_a_ranker_keeps_documents_graph_and_counters(logged, tmp_path):
    index_dir = Path(shutil.copytree(logged["index"], tmp_path / "index"))
    index = LocalBackend(index_dir)
    counters = index.live_column("impressions_decayed").copy()
    news = index.news_count
    generation = index.install_ranker(logged["model"] / "ranker")
    reopened = LocalBackend(index_dir)
    assert reopened.state["ranker"]["objective"] == "binary" and generation
    assert reopened.news_count == news and np.array_equal(reopened.live_column("impressions_decayed"), counters)



def test_the_java_tests_feature_fixture_holds_what_python_computes():
    """vespa-app/src/test/resources/ranker/features.json: rank profile learned_features' functions on raw inputs,
    as feed/ranking.py computes them (the Java test evaluates them in the container)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixture", ROOT / "tests" / "learned_ranker_fixture.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    assert json.loads((RESOURCES / "features.json").read_text()) == json.loads(json.dumps(fixture.feature_cases()))


def test_the_package_carries_the_rankers_model_version(tmp_path):
    """`newsrec app build --ranker DIR` writes the ranker's model version into the zip's default query profile,
    where RankerVersionSearcher reads it (the Java test refuses a query of another model with it)."""
    import zipfile

    from newsrec.feed.app import QUERY_PROFILE, AppBuildError, checked_ranker, with_ranker_version

    source = (ROOT / "vespa-app" / "src" / "main" / "application" / QUERY_PROFILE).read_text()
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w") as package:
        package.writestr(QUERY_PROFILE, source)
        package.writestr("services.xml", "<services/>")
    with_ranker_version(built, tmp_path / "out.zip", "abc123")
    with zipfile.ZipFile(tmp_path / "out.zip") as package:
        assert '"ranker_model_version" overridable="false">abc123</field>' in package.read(QUERY_PROFILE).decode()
        assert package.read("services.xml") == b"<services/>"
    with zipfile.ZipFile(built, "w") as package:
        package.writestr(QUERY_PROFILE, "<query-profile id='default'/>")
    with pytest.raises(AppBuildError, match="ranker_model_version"):
        with_ranker_version(built, tmp_path / "again.zip", "abc123")
    assert checked_ranker(RESOURCES / "binary").name == "lightgbm.json"
    stale = Path(shutil.copytree(RESOURCES / "binary", tmp_path / "stale"))
    header = json.loads((stale / HEADER_FILE).read_text())
    (stale / HEADER_FILE).write_text(json.dumps({**header, "features": ["x"] * len(header["features"])}))
    with pytest.raises(RankerError):
        checked_ranker(stale)
