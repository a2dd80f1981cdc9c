"""Training data, the loop on tiny generated data, checkpoints, evaluation and prediction end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.pipeline.features import history_matrix
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.checkpoint import CheckpointError, load_checkpoint
from newsrec.pipeline.training import ranking_samples


def test_ranking_samples_pair_each_click_with_negatives_of_its_impression(mind_dir: Path):
    train = read_mind(mind_dir).splits["train"]
    impressions, candidates = ranking_samples(train, np.array([0, 1]), 3, np.random.default_rng(0))
    assert impressions.tolist() == [0, 1] and candidates.shape == (2, 4)
    for impression, row in zip(impressions, candidates):
        labels = dict(zip(train.candidates_of(impression).tolist(), train.labels_of(impression).tolist()))
        assert labels[row[0]] == 1 and all(labels[c] == 0 for c in row[1:])


def test_history_matrix_keeps_the_latest_clicks_and_masks_the_rest(mind_dir: Path):
    dev = read_mind(mind_dir).splits["dev"]  # history N1 N3 N4 -> rows 0 2 3
    rows, mask = history_matrix(dev, np.array([0]), 2)
    assert rows.tolist() == [[2, 3]] and mask.tolist() == [[True, True]]
    rows, mask = history_matrix(dev, np.array([0]), 5)
    assert rows[0, :3].tolist() == [0, 2, 3] and mask.tolist() == [[True, True, True, False, False]]


def test_checkpoint_describes_itself(trained: Path):
    checkpoint = load_checkpoint(trained)
    model, vocab = checkpoint.model, checkpoint.vocab
    assert checkpoint.kind == "unirec" and checkpoint.dim == 64 and checkpoint.max_history == 50  # as stored
    assert checkpoint.text.model == "default" and len(vocab.categories) > 5
    assert [s["stage"] for s in checkpoint.training["stages"]] == ["ranking", "recall"]
    assert model.config.news.dim == 64 and not model.training


@pytest.mark.slow
def test_training_is_reproducible(tiny_demo: Path, trained: Path, tmp_path: Path):
    CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(tmp_path / "again"), "--epochs", "1",
                              "--recall-epochs", "1", "--batch-size", "64", "--threads", "2"])
    first, second = load_checkpoint(trained).model.state_dict(), load_checkpoint(tmp_path / "again").model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_evaluate_and_predict_agree_with_the_scorer(tiny_demo: Path, trained: Path, tmp_path: Path):
    runner = CliRunner()
    evaluated = runner.invoke(main, ["evaluate", str(tiny_demo), "--model", str(trained), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.output)
    assert set(metrics["recall"]) == {"dev-day pool", "all news"}
    assert set(metrics["splits"]) == {"empty history", "non-empty history", "cold news", "warm news"}
    # learned something in one epoch: over 800 impressions one standard error of the mean AUC is about 0.01,
    # so 0.03 above the random scorer's AUC on the same impressions is about three of them (world v3 tiny: 0.547)
    assert metrics["ranking"]["auc"] > metrics["references"]["random"]["auc"] + 0.03
    prediction = tmp_path / "prediction.txt"
    assert runner.invoke(main, ["predict", str(tiny_demo), "--model", str(trained), "--out", str(prediction)]).exit_code == 0
    scored = runner.invoke(main, ["score", str(tiny_demo / "dev/truth.txt"), str(prediction), "--json"])
    assert json.loads(scored.output)["auc"] == pytest.approx(metrics["ranking"]["auc"], abs=1e-9)


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path, tiny_demo: Path):
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--model", str(tmp_path)])
    assert result.exit_code == 1 and "model.pt: not a newsrec checkpoint" in result.output
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
