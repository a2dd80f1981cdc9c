from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsrec.cli import feed_main, main

COMMANDS = ["demo-data", "score", "baselines", "inspect", "train", "evaluate", "predict", "recommend", "search",
            "popular", "app build"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str):
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and f"newsrec {command}" in result.output


def test_feed_has_help_with_an_example():
    result = CliRunner().invoke(feed_main, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "newsrec-feed mind-demo" in result.output


def test_feed_reports_a_missing_mind_directory(tmp_path: Path):
    result = CliRunner().invoke(feed_main, [str(tmp_path / "nowhere"), "--index", str(tmp_path / "i")])
    assert result.exit_code == 1 and "MIND directory not found" in result.output


def test_baselines_write_predictions_that_score_identically(tmp_path: Path, tiny_demo: Path):
    runner = CliRunner()
    result = runner.invoke(main, ["baselines", str(tiny_demo), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert set(table) == {"random", "popularity", "oracle"}
    scored = runner.invoke(main, ["score", str(tiny_demo / "dev/truth.txt"), str(tmp_path / "oracle.txt"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["auc"] == pytest.approx(table["oracle"]["auc"], abs=1e-12)


def test_score_prints_a_table(tmp_path: Path):
    (tmp_path / "t.txt").write_text("1 [1,0]\n")
    (tmp_path / "p.txt").write_text("1 [1,2]\n")
    result = CliRunner().invoke(main, ["score", str(tmp_path / "t.txt"), str(tmp_path / "p.txt")])
    assert result.exit_code == 0
    assert result.output.splitlines()[2].split()[:5] == ["p.txt", "1.0000", "1.0000", "1.0000", "1.0000"]


def test_bad_input_is_one_clear_line_and_exit_1(tmp_path: Path):
    (tmp_path / "t.txt").write_text("1 [1,0]\n")
    (tmp_path / "p.txt").write_text("1 [1,2,3]\n")
    result = CliRunner().invoke(main, ["score", str(tmp_path / "t.txt"), str(tmp_path / "p.txt")])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'p.txt'}:1: impression 1: 3 ranks for 2 candidates in the truth file\n"


def test_inspect_reports_skips_when_asked(mind_dir: Path):
    with (mind_dir / "train" / "behaviors.tsv").open("a") as handle:
        handle.write("9\tU1\tnot a time\t\tN1-1\n")
    runner = CliRunner()
    strict = runner.invoke(main, ["inspect", str(mind_dir)])
    assert strict.exit_code == 1 and "behaviors.tsv:3: bad Time 'not a time'" in strict.output
    lenient = runner.invoke(main, ["inspect", str(mind_dir), "--skip-bad-rows"])
    assert lenient.exit_code == 0
    assert "skipped 1 bad rows (1 bad train impressions)" in lenient.output
    assert "train: 2 impressions (labelled)" in lenient.output


def test_demo_data_prints_the_oracle(tmp_path: Path):
    result = CliRunner().invoke(main, ["demo-data", str(tmp_path / "d"), "--size", "tiny"])
    assert result.exit_code == 0, result.output
    assert "oracle (dev)" in result.output and (tmp_path / "d/dev/truth.txt").is_file()
