"""Named exceptions of the offline pipeline. Only the CLI turns them into messages and exit codes."""
from __future__ import annotations

from pathlib import Path


class NewsrecError(Exception):
    """Base class of every error newsrec reports to its users."""


class InputFileError(NewsrecError):
    """A problem in an input file, located by path and (when known) 1-based line number."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class MindFormatError(InputFileError):
    """A MIND news.tsv / behaviors.tsv file that does not follow the MIND format."""


class LeaderboardFormatError(InputFileError):
    """A leaderboard truth or prediction file (`ImpId [v1,v2,...]` lines) that cannot be scored."""


class TooManyBadRowsError(MindFormatError):
    """Under --skip-bad-rows, a file had more bad rows than --max-bad-rows allows."""


class EmptySplitError(MindFormatError):
    """A split (or every news.tsv) left without a single row after reading: nothing to train, score or feed."""


class OptionValueError(NewsrecError):
    """A setting given by the user that cannot be used (e.g. `--max-bad-rows lots`)."""
