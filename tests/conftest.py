"""Shared fixtures: a hand-written MIND directory, and tiny generated data (made once per session)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ENTITY = json.dumps([{"Label": "Riverton Hawks", "Type": "O", "WikidataId": "Q90000001", "Confidence": 1.0,
                      "OccurrenceOffsets": [0], "SurfaceForms": ["Riverton Hawks"]}])
NEWS = [
    ["N1", "sports", "football_nfl", "Riverton Hawks win again", "A close game.", "https://x/1", ENTITY, "[]"],
    ["N2", "finance", "markets", "Stocks slide on earnings", "", "https://x/2", "[]", ""],
    ["N3", "news", "newsus", "Town council votes on budget", "The vote was close.", "https://x/3", "[]", "[]"],
    ["N4", "sports", "golf", "Golfer leads after first round", "Windy day.", "https://x/4", "[]", "[]"],
]
TRAIN = [
    ["1", "U1", "11/9/2019 9:05:58 AM", "N1 N3", "N2-0 N4-1"],
    ["2", "U2", "11/10/2019 3:12:01 PM", "", "N1-1 N2-0 N3-0"],
]
DEV = [["1", "U1", "11/15/2019 12:00:00 PM", "N1 N3 N4", "N2-1 N4-0"]]


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def mind_dir(tmp_path: Path) -> Path:
    """A valid four-news MIND directory; tests overwrite one file to make it bad."""
    root = tmp_path / "mind"
    for split, behaviors in (("train", TRAIN), ("dev", DEV)):
        write_tsv(root / split / "news.tsv", NEWS)
        write_tsv(root / split / "behaviors.tsv", behaviors)
    return root


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    from pipeline.demo_data import config_for, generate

    root = tmp_path_factory.mktemp("demo") / "mind"
    generate(root, config_for("tiny", 0))
    return root


@pytest.fixture(scope="session")
def trained(tiny_demo: Path, tmp_path_factory) -> Path:
    """A UniRec checkpoint trained for one epoch per stage on the tiny demo data, through the CLI."""
    from click.testing import CliRunner

    from pipeline.cli import main

    out = tmp_path_factory.mktemp("runs") / "unirec"
    result = CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(out), "--epochs", "1",
                                       "--recall-epochs", "1", "--batch-size", "64", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "valid_auc" in result.output and "recall epoch 1" in result.output
    return out
