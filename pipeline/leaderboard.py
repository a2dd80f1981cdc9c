"""MIND leaderboard files: truth (`ImpId [l1,l2,...]`) and prediction (`ImpId [r1,r2,...]`, rank 1 = best).

Scoring follows the official scorer: the score of a candidate is 1 / rank, then `pipeline.metrics`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from newsrec.pipeline.errors import LeaderboardFormatError
from newsrec.pipeline.metrics import RankingMetrics, descending_order, ranking_metrics

MAX_VALUE = 2**31 - 1  # ranks and labels are small; larger is a broken file (and would overflow int64 arrays)


def _too_deep(text: str) -> bool:
    """A leaderboard row is a flat list: a nested one (e.g. 100,000 brackets deep) is refused before parsing."""
    return text.count("[", 1) > 0

@dataclass(frozen=True, eq=False)
class LeaderboardFile:
    path: str
    impression_ids: list[str]
    line_numbers: list[int]
    offsets: np.ndarray  # (I + 1,) int64
    values: np.ndarray  # (C,) int64


def read_leaderboard_file(path: str | Path, kind: str) -> LeaderboardFile:
    """Read a truth (`kind="truth"`, values 0/1) or prediction (`kind="prediction"`, ranks >= 1) file."""
    path = Path(path)
    if not path.is_file():
        raise LeaderboardFormatError(path, None, "file not found")
    ids, numbers, lengths, values, first_line = [], [], [0], [], {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = _decode(path, number, raw)
            if not line.strip():
                continue
            impression_id, row = _parse_line(path, number, line, kind)
            if impression_id in first_line:
                raise LeaderboardFormatError(path, number, f"duplicate impression id {impression_id} "
                                                           f"(first at line {first_line[impression_id]})")
            first_line[impression_id] = number
            ids.append(impression_id)
            numbers.append(number)
            lengths.append(len(row))
            values.extend(row)
    if not ids:
        raise LeaderboardFormatError(path, None, "file is empty")
    return LeaderboardFile(str(path), ids, numbers, np.cumsum(lengths, dtype=np.int64),
                           np.asarray(values, dtype=np.int64))


def _decode(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise LeaderboardFormatError(path, number, "not valid UTF-8") from None


def _parse_line(path: Path, number: int, line: str, kind: str) -> tuple[str, list[int]]:
    parts = line.strip().split(maxsplit=1)
    if len(parts) != 2:
        raise LeaderboardFormatError(path, number, "expected `ImpId [v1,v2,...]`")
    if not parts[1].startswith("[") or _too_deep(parts[1]):
        raise LeaderboardFormatError(path, number, f"expected a JSON list after the impression id, "
                                                   f"got {parts[1][:40]!r}")
    try:
        row = json.loads(parts[1])
    except (json.JSONDecodeError, ValueError):  # ValueError: an integer beyond Python's digit limit
        raise LeaderboardFormatError(path, number, f"expected a JSON list after the impression id, "
                                                   f"got {parts[1][:40]!r}") from None
    if not isinstance(row, list) or not row or not all(type(v) is int for v in row):
        raise LeaderboardFormatError(path, number, "expected a non-empty list of integers")
    if max(row) > MAX_VALUE:
        raise LeaderboardFormatError(path, number, f"value {str(max(row))[:20]} is too large (at most {MAX_VALUE})")
    if kind == "truth" and not all(v in (0, 1) for v in row):
        raise LeaderboardFormatError(path, number, "truth labels must be 0 or 1")
    if kind == "prediction" and min(row) < 1:
        raise LeaderboardFormatError(path, number, "ranks must be integers >= 1 (rank 1 = best)")
    return parts[0], row


def score_files(truth_path: str | Path, prediction_path: str | Path) -> RankingMetrics:
    """Score a prediction file against a truth file; every truth impression must be predicted exactly once."""
    truth = read_leaderboard_file(truth_path, "truth")
    prediction = read_leaderboard_file(prediction_path, "prediction")
    ranks = align(truth, prediction)
    return ranking_metrics(truth.values, 1.0 / ranks, truth.offsets)


def align(truth: LeaderboardFile, prediction: LeaderboardFile) -> np.ndarray:
    """The prediction's ranks in the truth file's impression order, checking ids and lengths."""
    row_of = {impression_id: i for i, impression_id in enumerate(prediction.impression_ids)}
    extra = set(row_of) - set(truth.impression_ids)
    if extra:
        first = min(extra, key=lambda i: row_of[i])
        raise LeaderboardFormatError(prediction.path, prediction.line_numbers[row_of[first]],
                                     f"impression id {first} is not in the truth file {truth.path} "
                                     f"({len(extra)} such ids)")
    pieces = []
    for i, impression_id in enumerate(truth.impression_ids):
        if impression_id not in row_of:
            raise LeaderboardFormatError(prediction.path, None, f"impression id {impression_id} (truth line "
                                                                f"{truth.line_numbers[i]}) has no prediction")
        j = row_of[impression_id]
        ranks = prediction.values[prediction.offsets[j]:prediction.offsets[j + 1]]
        expected = truth.offsets[i + 1] - truth.offsets[i]
        if len(ranks) != expected:
            raise LeaderboardFormatError(prediction.path, prediction.line_numbers[j],
                                         f"impression {impression_id}: {len(ranks)} ranks for {expected} "
                                         f"candidates in the truth file")
        pieces.append(ranks)
    return np.concatenate(pieces).astype(np.float64)


def write_leaderboard_file(path: str | Path, impression_ids, offsets: np.ndarray, values: np.ndarray) -> None:
    """Write `ImpId [v1,v2,...]` lines (the official format: no spaces inside the brackets)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for i, impression_id in enumerate(impression_ids):
            row = values[offsets[i]:offsets[i + 1]]
            handle.write(f"{impression_id} [{','.join(map(str, row.tolist()))}]\n")


def scores_to_ranks(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per impression, rank 1 = highest score; ties as in `pipeline.metrics` (later candidate first)."""
    order, rank = descending_order(np.asarray(scores, dtype=np.float64), np.asarray(offsets, dtype=np.int64))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = rank
    return ranks
