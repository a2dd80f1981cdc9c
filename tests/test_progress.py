"""Long steps report progress out of a terminal too: a line every 10 s or every 10% of a known total, and one at
the end; a bar only on a terminal."""
from __future__ import annotations

import io

from newsrec.pipeline.progress import LineProgress, progress_bar, tracked


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_tenth_of_a_known_total_after_two_quiet_seconds_and_at_the_end():
    stream, clock = io.StringIO(), Clock()
    reporter = LineProgress("encoding texts", total=100, unit="batch", stream=stream, clock=clock)
    for _ in range(100):
        clock.now += 0.05
        reporter.update(1)
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == [f"encoding texts: {n}/100 batch" for n in range(40, 100, 10)]
    assert lines[0].startswith("encoding texts: 40/100 batch (40%), 2.0 s, 20.0 batch/s")
    assert lines[-1] == "encoding texts: 100/100 batch (100%), 5.0 s, 20.0 batch/s (done)"


def test_a_quick_step_prints_nothing():
    stream, clock = io.StringIO(), Clock()
    with LineProgress("reading news.tsv", total=10, stream=stream, clock=clock) as reporter:
        for _ in range(10):
            clock.now += 0.1
            reporter.update(1)
    assert stream.getvalue() == ""


def test_a_line_every_ten_seconds_without_a_total():
    stream, clock = io.StringIO(), Clock()
    with LineProgress("ranking epoch 1", unit="batch", stream=stream, clock=clock) as reporter:
        for _ in range(60):
            clock.now += 1.0
            reporter.update(1)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"ranking epoch 1: {n} batch" for n in (10, 20, 30, 40, 50, 60,
                                                                                                 60)]
    assert lines[-1].endswith("(done)")


def test_bytes_are_shown_as_bytes():
    line = LineProgress("reading news.tsv", total=3 * 2 ** 20, unit="B", clock=Clock()).line(2.0)
    assert line == "reading news.tsv: 0 B/3.0 MiB (0%), 2.0 s"


def test_a_pipe_gets_lines_a_terminal_gets_a_bar_and_disabled_gets_nothing():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_bar("x", 10, stream=io.StringIO()), LineProgress)
    bar = progress_bar("x", 10, stream=Terminal())
    assert type(bar).__name__ == "tqdm"
    bar.close()
    assert progress_bar("x", 10, enabled=False) is None


def test_tracked_yields_every_item():
    stream = io.StringIO()
    assert list(tracked(range(5), "steps", total=5, stream=stream)) == [0, 1, 2, 3, 4]
    assert stream.getvalue() == ""  # done at once: quiet
    assert list(tracked(range(3), "off", enabled=False)) == [0, 1, 2]


def test_training_reports_progress_into_a_pipe(tiny_demo, tmp_path, monkeypatch):
    """CliRunner's stderr is not a terminal, as a pipe or a CI log: the steps report lines (made loud here: the
    tiny world's steps finish within the quiet seconds)."""
    from click.testing import CliRunner

    from newsrec.cli import main
    from newsrec.pipeline import progress

    monkeypatch.setattr(progress, "QUIET_S", 0.0)
    result = CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(tmp_path / "m"), "--model", "meanpool",
                                       "--epochs", "1", "--recall-epochs", "0", "--max-impressions", "200"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"reading {tiny_demo}/train/behaviors.tsv: ") for line in lines)
    assert any(line.startswith("encoding ") and " texts: " in line and line.endswith("(done)") for line in lines)
    assert any(line.startswith("ranking epoch 1: ") and " batch" in line for line in lines)
    assert "\r" not in result.stderr  # no bar
