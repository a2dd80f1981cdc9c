from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
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
    assert set(table) == {"random", "popularity", "oracle", "oracle_decomposition", "recall_oracle"}  # world v2
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


# ------------------------------------------------------------------ issue #12: every bad input

READ_COMMANDS = ["inspect", "baselines", "train", "evaluate", "predict"]


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_every_command_that_reads_mind_has_the_read_options(command: str):
    result = CliRunner().invoke(main, [command, "--help"])
    assert all(option in result.output for option in ("--skip-bad-rows", "--max-bad-rows", "--drop-unknown-ids"))


def test_feed_has_the_read_options():
    result = CliRunner().invoke(feed_main, ["--help"])
    assert all(option in result.output for option in ("--skip-bad-rows", "--max-bad-rows", "--drop-unknown-ids"))


def test_max_bad_rows_reaches_the_reader(mind_dir: Path):
    with (mind_dir / "train" / "behaviors.tsv").open("a") as handle:
        handle.write("9\tU1\tnot a time\t\tN1-1\n")
    runner = CliRunner()
    strict = runner.invoke(main, ["inspect", str(mind_dir), "--skip-bad-rows", "--max-bad-rows", "0"])
    assert strict.exit_code == 1
    assert strict.output.startswith(f"Error: {mind_dir / 'train' / 'behaviors.tsv'}: 1 of 3 rows are bad, more than "
                                    "--max-bad-rows allows (0 rows); first: ")
    lenient = runner.invoke(main, ["inspect", str(mind_dir), "--skip-bad-rows", "--max-bad-rows", "40%"])
    assert lenient.exit_code == 0 and "skipped 1 bad rows (1 bad train impressions)" in lenient.output
    usage = runner.invoke(main, ["inspect", str(mind_dir), "--max-bad-rows", "1.5"])
    assert usage.exit_code == 2 and "Invalid value for '--max-bad-rows'" in usage.output


def test_drop_unknown_ids_is_reported_on_stderr(mind_dir: Path):
    (mind_dir / "dev" / "behaviors.tsv").write_text("1\tU1\t11/15/2019 12:00:00 PM\tN1 N404\tN2-1 N4-0\n")
    result = CliRunner().invoke(main, ["inspect", str(mind_dir), "--drop-unknown-ids"])
    assert result.exit_code == 0
    assert result.stderr.startswith(f"read {mind_dir}: dropped 1 unknown history ids (--drop-unknown-ids); first: ")
    strict = CliRunner().invoke(main, ["inspect", str(mind_dir)])
    assert strict.exit_code == 1 and "(--drop-unknown-ids leaves such ids out, counted)" in strict.output


def test_json_output_is_strict_json():
    from newsrec.cli.output import to_json

    assert to_json({"auc": float("nan"), "recall": [float("inf"), 0.5], "n": 3}) == \
        '{"auc": null, "recall": [null, 0.5], "n": 3}'


def test_terminal_text_keeps_lines_and_drops_escapes_and_invisible_characters():
    from newsrec.cli.output import terminal_text

    assert terminal_text("a\x1b[2Jb\tc\n\u200bd\u202ee\x9bf\x00") == "a[2Jb\tc\nde" + "f"


def test_error_messages_are_printed_without_control_characters(tmp_path: Path):
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "no\x1b[2Jwhere")])
    assert result.exit_code == 1 and "\x1b" not in result.output and "no[2Jwhere" in result.output


def _summary(failed: list):
    from newsrec.feed.backend import FeedReport
    from newsrec.feed.job import FeedSummary

    report = FeedReport(sent=2, ok=2 - len(failed), failed=failed)
    return FeedSummary("embedded default index", 2, 1, {"news": 2 - len(failed), "user": 1}, {"news": report}, "Φ",
                       False, "U1", {"total": 1.0})


def test_the_feed_suggests_a_user_only_after_a_successful_feed():
    from newsrec.feed.connect import Target
    from newsrec.cli.output import format_feed

    assert "try: newsrec recommend U1" in format_feed(_summary([]), Target())
    assert "try:" not in format_feed(_summary([("id:news:news::N2", 400, "bad")]), Target())


def test_the_suggestion_queries_what_was_fed():
    from newsrec.feed.connect import Target
    from newsrec.cli.output import format_feed

    assert format_feed(_summary([]), Target(endpoint="http://vespa:8080")).endswith(
        "try: newsrec recommend U1 --endpoint http://vespa:8080")
    assert format_feed(_summary([]), Target(index_dir="idx")).endswith("try: newsrec recommend U1 --index idx")
    assert "try:" not in format_feed(_summary([]), Target(jsonl="feed.jsonl"))  # nothing was indexed


def test_hits_below_one_are_usage_errors():
    for command in (["recommend", "U1"], ["search", "golf"], ["popular"]):
        result = CliRunner().invoke(main, [*command, "--hits", "0"])
        assert result.exit_code == 2 and "Invalid value for '--hits': 0 is not in the range 1<=x<=400." in result.output


def _help_texts() -> dict[str, str]:
    texts = {command: CliRunner().invoke(main, [*command.split(), "--help"]).output for command in COMMANDS + ["serve"]}
    texts["newsrec-feed"] = CliRunner().invoke(feed_main, ["--help"]).output
    texts["newsrec"] = CliRunner().invoke(main, ["--help"]).output
    return texts


def test_every_help_example_names_a_reader_of_the_quickstart_data(tiny_demo: Path):
    """The Quickstart's data is `demo-data --size tiny` at seed 0, as tiny_demo; a reader has a history."""
    from newsrec.pipeline.mind import read_mind

    dataset = read_mind(tiny_demo)
    readers = {dataset.users[u] for split in dataset.splits.values()
               for u in split.user_index[np.diff(split.history_offsets) > 0]}
    named = {command: set(re.findall(r"\bU\d+\b", text)) for command, text in _help_texts().items()}
    assert named["recommend"] and named["search"]
    for command, ids in named.items():
        assert ids <= readers, f"{command} --help names {sorted(ids - readers)}, not a reader of the tiny world"


def test_version():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"newsrec {version('newsrec')}\n"


def test_a_token_on_the_command_line_or_over_plain_http_is_warned_about(tmp_path: Path, monkeypatch):
    """Issue #33: `ps` shows a command line; plain http shows the token to the path. A file or the variable is
    quiet about the first; https about the second."""
    monkeypatch.delenv("NEWSREC_VESPA_TOKEN", raising=False)
    typed = CliRunner().invoke(main, ["popular", "--endpoint", "http://127.0.0.1:9", "--token", "t0ken-t0ken-t0ken"])
    assert "visible to every user in `ps`" in typed.output and "over plain http" in typed.output
    assert typed.exit_code == 1 and "t0ken-t0ken-t0ken" not in typed.output
    path = tmp_path / "token"
    path.write_text("t0ken-t0ken-t0ken\n")
    quiet = CliRunner().invoke(main, ["popular", "--endpoint", "https://127.0.0.1:9", "--token-file", str(path)])
    assert "warning" not in quiet.output and quiet.exit_code == 1
    monkeypatch.setenv("NEWSREC_VESPA_TOKEN", "t0ken-t0ken-t0ken")
    variable = CliRunner().invoke(main, ["popular", "--endpoint", "https://127.0.0.1:9"])
    assert "warning" not in variable.output and variable.exit_code == 1
    both = CliRunner().invoke(main, ["popular", "--endpoint", "https://127.0.0.1:9", "--token-file", str(path),
                                     "--token", "t0ken-t0ken-t0ken"])
    assert both.exit_code == 2 and "give the token once" in both.output
