from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsrec.pipeline.errors import LeaderboardFormatError
from newsrec.pipeline.leaderboard import score_files, scores_to_ranks, write_leaderboard_file
from newsrec.pipeline.metrics import ranking_metrics


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    return write(tmp_path / "truth.txt", "1 [1,0,0]\n2 [0,1]\n3 [0,0,1,1]\n")


def test_score_equals_metrics_of_inverse_ranks(tmp_path: Path, truth: Path):
    prediction = write(tmp_path / "p.txt", "2 [2,1]\n1 [1,3,2]\n3 [4,3,1,2]\n")  # any order of lines
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 1, 1])
    ranks = np.array([1, 3, 2, 2, 1, 4, 3, 1, 2])
    assert score_files(truth, prediction) == ranking_metrics(labels, 1.0 / ranks, np.array([0, 3, 5, 9]))
    assert score_files(truth, prediction).auc == 1.0


def test_round_trip_of_scores_to_ranks(tmp_path: Path, truth: Path):
    scores = np.array([0.2, 0.9, 0.1, 0.3, 0.4, 0.5, 0.1, 0.7, 0.0])
    offsets = np.array([0, 3, 5, 9])
    path = tmp_path / "p.txt"
    write_leaderboard_file(path, [1, 2, 3], offsets, scores_to_ranks(scores, offsets))
    assert path.read_text().splitlines()[0] == "1 [2,1,3]"
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 1, 1])
    assert score_files(truth, path) == ranking_metrics(labels, scores, offsets)


def test_tied_scores_become_ranks_by_the_documented_tie_rule(tmp_path: Path, truth: Path):
    scores = np.array([0.5, 0.5, 0.5, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1])
    offsets = np.array([0, 3, 5, 9])
    assert scores_to_ranks(scores, offsets).tolist() == [3, 2, 1, 2, 1, 4, 3, 2, 1]
    path = tmp_path / "p.txt"
    write_leaderboard_file(path, [1, 2, 3], offsets, scores_to_ranks(scores, offsets))
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 1, 1])
    from_file, from_scores = score_files(truth, path), ranking_metrics(labels, scores, offsets)
    assert (from_file.mrr, from_file.ndcg10) == (from_scores.mrr, from_scores.ndcg10)  # AUC counts ties 1/2


@pytest.mark.parametrize("text, message", [
    ("1 [1,2,3]\n2 [1,2]\n", "impression id 3 (truth line 3) has no prediction"),
    ("1 [1,2,3]\n2 [1,2]\n3 [1,2,3,4]\n9 [1]\n", ":4: impression id 9 is not in the truth file"),
    ("1 [1,2,3]\n2 [1,2,3]\n3 [1,2,3,4]\n", ":2: impression 2: 3 ranks for 2 candidates in the truth file"),
    ("1 [1,2,3]\n2 [1 2]\n", ":2: expected a JSON list after the impression id, got '[1 2]'"),
    ("1 [1,2,3]\n2\n", ":2: expected `ImpId [v1,v2,...]`"),
    ("1 [1,2,0]\n", ":1: ranks must be integers >= 1 (rank 1 = best)"),
    ("1 [1,2,1.5]\n", ":1: expected a non-empty list of integers"),
    ("1 [1,2,3]\n1 [1,2,3]\n", ":2: duplicate impression id 1 (first at line 1)"),
    ("", ": file is empty"),
])
def test_prediction_errors(tmp_path: Path, truth: Path, text: str, message: str):
    prediction = write(tmp_path / "p.txt", text)
    with pytest.raises(LeaderboardFormatError) as caught:
        score_files(truth, prediction)
    assert str(caught.value).startswith(str(prediction)) and message in str(caught.value)


def test_truth_errors(tmp_path: Path):
    truth = write(tmp_path / "t.txt", "1 [1,2]\n")
    with pytest.raises(LeaderboardFormatError, match=r"t.txt:1: truth labels must be 0 or 1"):
        score_files(truth, write(tmp_path / "p.txt", "1 [1,2]\n"))
    with pytest.raises(LeaderboardFormatError, match=r"missing.txt: file not found"):
        score_files(tmp_path / "missing.txt", truth)
