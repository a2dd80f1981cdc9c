"""`newsrec replay` (feed/replay.py): causal, equal to its offline computation, resumable after a crash with the
same figures and counters, each impression counted once."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.feed.live import DecayConfig
from newsrec.feed.replay import ReplayConfig, ReplayError, build_stream
from newsrec.feed.replay_job import offline_terms, run_replay
from newsrec.pipeline.appeal import AppealModel
from newsrec.pipeline.mind import read_mind

CONFIG = ReplayConfig(max_scored=150, checkpoint_every=400)


class Crash(Exception):
    pass


def copy_index(fed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fed, tmp_path / "index"))


def test_the_replay_equals_its_offline_computation(tiny_demo, trained, fed, tmp_path):
    result = CliRunner().invoke(main, ["replay", str(tiny_demo), "--model", str(trained), "--index",
                                       str(copy_index(fed, tmp_path)), "--state", str(tmp_path / "state"),
                                       "--max-impressions", "150"])
    assert result.exit_code == 0, result.output
    assert "streaming (causal)" in result.output and "dev: 150 impressions" in result.output
    line = next(line for line in result.output.splitlines() if line.startswith("offline check"))
    term, metric = (float(part.split()[-1]) for part in line.split(","))
    assert term <= 1e-6 and metric <= 1e-6, line


def test_a_crashed_replay_resumes_to_the_same_figures_counting_each_impression_once(tiny_demo, trained, fed,
                                                                                   tmp_path, monkeypatch):
    whole = run_replay(str(tiny_demo), str(trained), str(copy_index(fed, tmp_path / "a")), str(tmp_path / "a/state"),
                       CONFIG, log=lambda _: None)
    index = copy_index(fed, tmp_path / "b")
    # every update durable at once (as Vespa's acknowledged ones): the counters run ahead of the replay's checkpoint
    from newsrec.feed.local_backend import LocalBackend
    monkeypatch.setattr(LocalBackend, "live_session", _durable_updates)

    def crash(i):
        if i == 1000:
            raise Crash
    with pytest.raises(Crash):
        run_replay(str(tiny_demo), str(trained), str(index), str(tmp_path / "b/state"), CONFIG, log=lambda _: None,
                   on_impression=crash)
    resumed = run_replay(str(tiny_demo), str(trained), str(index), str(tmp_path / "b/state"), CONFIG,
                         log=lambda _: None)
    assert resumed["already_applied_on_resume"] > 0  # impressions 801..1001 were resent and refused
    assert resumed["metrics"] == whole["metrics"] and resumed["recall@100"] == whole["recall@100"]
    a, b = (LocalBackend(p) for p in (tmp_path / "a/index", index))
    for name in ("clicks", "impressions", "clicks_decayed", "published"):
        assert np.array_equal(a.live_column(name), b.live_column(name)), name


def _durable_updates(self):
    from contextlib import nullcontext
    return nullcontext(self)


def test_a_feature_at_t_uses_nothing_after_t(tiny_demo, trained):
    """Flip the labels of a later impression and move its time later still: every earlier term is unchanged."""
    from newsrec.feed.replay_job import Encoder
    from newsrec.feed.replay import Users
    from newsrec.pipeline.encoding import encode_dataset

    dataset = read_mind(tiny_demo)
    encoded = encode_dataset(str(trained), dataset)
    stream = build_stream(dataset, "dev", CONFIG.fit_hours)
    config = replace(CONFIG, decay=DecayConfig(origin=float(stream.time[0])))
    vectors = encoded.news_matrix.double().numpy()
    appeal = AppealModel(np.ones(vectors.shape[1]) * 0.01, 0.0, 0.0, 1)
    earlier = np.arange(stream.start, stream.start + 60)
    before = offline_terms(stream, vectors, Users(Encoder(encoded)), earlier, config, appeal)
    later = stream.start + 100
    rows = stream.candidates_of(later)
    moved = replace(stream, labels=stream.labels.copy(), time=stream.time.copy())
    moved.labels[rows] = 1 - moved.labels[rows]
    moved.time[later] += 3600
    after = offline_terms(moved, vectors, Users(Encoder(encoded)), earlier, config, appeal)
    # equal but for the rounding of the vectorised cumulative sums over the other news (< 1e-12)
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-12)
    shown_later = set(stream.candidates[rows].tolist())
    after_it = next(j for j in range(later + 1, len(stream))
                    if shown_later & set(stream.candidates[stream.candidates_of(j)].tolist()))
    seen = [offline_terms(s, vectors, Users(Encoder(encoded)), np.array([after_it]), config, appeal)
            for s in (stream, moved)]
    assert not np.allclose(seen[0][:, 1], seen[1][:, 1])  # a later impression does see it: the check can fail


def test_a_state_of_another_stream_is_refused(tiny_demo, trained, fed, tmp_path):
    state = tmp_path / "state"
    run_replay(str(tiny_demo), str(trained), str(copy_index(fed, tmp_path)), str(state),
               replace(CONFIG, max_scored=20), log=lambda _: None)
    with pytest.raises(ReplayError, match="another stream or configuration"):
        run_replay(str(tiny_demo), str(trained), str(tmp_path / "index"), str(state),
                   replace(CONFIG, max_scored=20, window_hours=12.0), log=lambda _: None)
