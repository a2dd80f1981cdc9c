"""Reading MIND (`mind/{train,dev[,test]}/{news.tsv,behaviors.tsv}`) into compact columnar tables.

Behaviours are stored as CSR arrays (offsets + int32 news indices + int8 labels), so MIND-large
(2.2M impressions, 83.5M candidate rows) fits comfortably in memory: about 5 bytes per candidate
row and 4 bytes per history entry. News ids are resolved against the union of every split's
news.tsv, so a history or candidate id that no news.tsv defines is an error with its file and line.

Bad input raises `MindFormatError` naming file and line. With `on_error="skip"` the bad row is
left out instead, counted by reason in `ReadReport`, and the report is shown to the user.

    >>> dataset = read_mind("mind/")                                   # doctest: +SKIP
    >>> dataset.splits["dev"].num_impressions                          # doctest: +SKIP
    73152
"""
from __future__ import annotations

import calendar
import json
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.errors import MindFormatError

REQUIRED_SPLITS = ("train", "dev")
OPTIONAL_SPLITS = ("test",)
NEWS_COLUMNS = ("NewsID", "Category", "SubCategory", "Title", "Abstract", "URL",
                "TitleEntities", "AbstractEntities")
BEHAVIOR_COLUMNS = ("ImpressionID", "UserID", "Time", "History", "Impressions")
UNLABELLED = -1
_TIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)")
_LABEL_SUFFIXES = frozenset(("-0", "-1"))


@dataclass
class ReadReport:
    """Rows left out under `on_error="skip"`, counted by reason, with the first messages."""

    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 10

    def record(self, error: MindFormatError, reason: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(error))

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        if not self.total_skipped:
            return "no rows skipped"
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        return f"skipped {self.total_skipped} bad rows ({reasons}); first: " + "; ".join(self.examples[:3])


@dataclass(frozen=True, eq=False)
class NewsTable:
    """Every news item of every split's news.tsv; row i is news index i."""

    ids: list[str]
    index: dict[str, int]
    category: np.ndarray  # (N,) int32 into categories
    subcategory: np.ndarray  # (N,) int32 into subcategories
    categories: list[str]
    subcategories: list[str]
    title: list[str]
    abstract: list[str]
    url: list[str]
    title_entities: list[list[dict]]
    abstract_entities: list[list[dict]]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class Behaviors:
    """One split's behaviors.tsv as CSR arrays; impression i owns candidates[candidate_offsets[i]:...]."""

    split: str
    path: str
    impression_ids: np.ndarray  # (I,) int64, as written in the file
    user_index: np.ndarray  # (I,) int32 into MindDataset.users
    time: np.ndarray  # (I,) int64 seconds since the epoch (the file's clock, no time zone)
    history_offsets: np.ndarray  # (I + 1,) int64
    history: np.ndarray  # (sum of history lengths,) int32 news indices, oldest first
    candidate_offsets: np.ndarray  # (I + 1,) int64
    candidates: np.ndarray  # (C,) int32 news indices, in the file's order
    labels: np.ndarray  # (C,) int8: 1 clicked, 0 not clicked, -1 unlabelled (MIND test)

    @property
    def num_impressions(self) -> int:
        return len(self.impression_ids)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels) == 0 or self.labels.min() >= 0)

    def history_of(self, impression: int) -> np.ndarray:
        return self.history[self.history_offsets[impression]:self.history_offsets[impression + 1]]

    def candidates_of(self, impression: int) -> np.ndarray:
        return self.candidates[self.candidate_offsets[impression]:self.candidate_offsets[impression + 1]]

    def labels_of(self, impression: int) -> np.ndarray:
        return self.labels[self.candidate_offsets[impression]:self.candidate_offsets[impression + 1]]

    def impression_of_candidate(self) -> np.ndarray:
        """(C,) int64: the impression row each candidate row belongs to."""
        return np.repeat(np.arange(self.num_impressions), np.diff(self.candidate_offsets))


@dataclass(frozen=True, eq=False)
class MindDataset:
    root: str
    news: NewsTable
    users: list[str]
    splits: dict[str, Behaviors]
    report: ReadReport


def read_mind(root: str | Path, on_error: str = "raise", progress: bool = False,
              splits: tuple[str, ...] | None = None) -> MindDataset:
    """Read a MIND directory: train and dev are required, test is read when its folder exists."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    root_path = Path(root)
    if not root_path.is_dir():
        raise MindFormatError(root_path, None, "MIND directory not found (expected train/ and dev/ inside)")
    wanted = splits or REQUIRED_SPLITS + tuple(s for s in OPTIONAL_SPLITS if (root_path / s).is_dir())
    report = ReadReport()
    news = read_news([root_path / s / "news.tsv" for s in wanted], report, on_error == "skip", progress)
    users: dict[str, int] = {}
    behaviors = {s: read_behaviors(root_path / s / "behaviors.tsv", s, news.index, users, report,
                                   on_error == "skip", progress) for s in wanted}
    return MindDataset(str(root_path), news, list(users), behaviors, report)


# ----------------------------------------------------------------------------------------- lines

def _lines(path: Path, progress: bool) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without its newline); blank lines carry no data and are passed over."""
    if not path.is_file():
        raise MindFormatError(path, None, "file not found")
    if path.stat().st_size == 0:
        raise MindFormatError(path, None, "file is empty")
    bar = _progress_bar(path, progress)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if bar is not None:
                bar.update(len(raw))
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise MindFormatError(path, number, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} "
                                                    f"at column {error.start + 1})") from None
            if line.strip():
                yield number, line
    if bar is not None:
        bar.close()


def _progress_bar(path: Path, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"reading {path}", disable=None,
                mininterval=1.0)


def _columns(path: Path, number: int, line: str, names: tuple[str, ...]) -> list[str]:
    columns = line.split("\t")
    if len(columns) != len(names):
        raise MindFormatError(path, number, f"expected {len(names)} tab-separated columns "
                                            f"({', '.join(names)}), found {len(columns)}")
    return columns


# ------------------------------------------------------------------------------------------ news

@dataclass
class _NewsBuilder:
    table: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "ids", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities")})
    index: dict[str, int] = field(default_factory=dict)

    def add(self, columns: list[str], title_entities: list, abstract_entities: list) -> None:
        self.index[columns[0]] = len(self.index)
        for key, value in zip(("ids", "category", "subcategory", "title", "abstract", "url"), columns):
            self.table[key].append(value)
        self.table["title_entities"].append(title_entities)
        self.table["abstract_entities"].append(abstract_entities)

    def build(self) -> NewsTable:
        categories, category_codes = _encode(self.table["category"])
        subcategories, subcategory_codes = _encode(self.table["subcategory"])
        t = self.table
        return NewsTable(t["ids"], self.index, category_codes, subcategory_codes, categories, subcategories,
                         t["title"], t["abstract"], t["url"], t["title_entities"], t["abstract_entities"])


def _encode(values: list[str]) -> tuple[list[str], np.ndarray]:
    vocabulary = sorted(set(values))
    position = {value: i for i, value in enumerate(vocabulary)}
    return vocabulary, np.fromiter((position[v] for v in values), dtype=np.int32, count=len(values))


def read_news(paths: list[Path], report: ReadReport, skip: bool = False, progress: bool = False) -> NewsTable:
    """Union of several news.tsv files; an id repeated in a later file (train and dev overlap) is kept once."""
    builder = _NewsBuilder()
    for path in paths:
        first_line: dict[str, int] = {}
        for number, line in _lines(path, progress):
            try:
                parsed = _parse_news_line(path, number, line, first_line)
            except MindFormatError as error:
                if not skip:
                    raise
                report.record(error, "bad news rows")
                continue
            first_line[parsed[0][0]] = number
            if parsed[0][0] not in builder.index:
                builder.add(*parsed)
    return builder.build()


def _parse_news_line(path: Path, number: int, line: str, first_line: dict[str, int]):
    columns = _columns(path, number, line, NEWS_COLUMNS)
    news_id = columns[0]
    if not news_id or any(c.isspace() for c in news_id):
        raise MindFormatError(path, number, f"bad NewsID {news_id!r}: must be non-empty without spaces")
    if news_id in first_line:
        raise MindFormatError(path, number, f"duplicate NewsID {news_id} (first at line {first_line[news_id]})")
    if not columns[1] or not columns[3]:
        raise MindFormatError(path, number, f"news {news_id}: empty {'Category' if not columns[1] else 'Title'}")
    title_entities = _parse_entities(path, number, news_id, "TitleEntities", columns[6])
    abstract_entities = _parse_entities(path, number, news_id, "AbstractEntities", columns[7])
    return columns[:6], title_entities, abstract_entities


def _parse_entities(path: Path, number: int, news_id: str, column: str, text: str) -> list[dict]:
    if text in ("", "[]"):
        return []
    try:
        entities = json.loads(text)
    except json.JSONDecodeError as error:
        raise MindFormatError(path, number, f"news {news_id}: bad {column} JSON ({error.msg} at "
                                            f"character {error.pos + 1})") from None
    if not isinstance(entities, list) or not all(isinstance(e, dict) and "WikidataId" in e for e in entities):
        raise MindFormatError(path, number, f"news {news_id}: {column} must be a JSON list of "
                                            "objects with a WikidataId")
    return entities


# ------------------------------------------------------------------------------------- behaviors

@dataclass
class _BehaviorColumns:
    impression_ids: array = field(default_factory=lambda: array("q"))
    user_index: array = field(default_factory=lambda: array("i"))
    time: array = field(default_factory=lambda: array("q"))
    history_lengths: array = field(default_factory=lambda: array("q"))
    history: array = field(default_factory=lambda: array("i"))
    candidate_lengths: array = field(default_factory=lambda: array("q"))
    candidates: array = field(default_factory=lambda: array("i"))
    labels: array = field(default_factory=lambda: array("b"))

    def build(self, split: str, path: Path) -> Behaviors:
        def offsets(lengths: array) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(np.frombuffer(lengths, dtype=np.int64))]).astype(np.int64)

        def frozen(values: array, dtype) -> np.ndarray:
            return np.frombuffer(values, dtype=dtype).copy() if len(values) else np.zeros(0, dtype=dtype)

        return Behaviors(split, str(path), frozen(self.impression_ids, np.int64),
                         frozen(self.user_index, np.int32), frozen(self.time, np.int64),
                         offsets(self.history_lengths), frozen(self.history, np.int32),
                         offsets(self.candidate_lengths), frozen(self.candidates, np.int32),
                         frozen(self.labels, np.int8))


def read_behaviors(path: Path, split: str, news_index: dict[str, int], users: dict[str, int],
                   report: ReadReport, skip: bool = False, progress: bool = False) -> Behaviors:
    """One behaviors.tsv; train and dev must be labelled, test may be (MIND-large test is not)."""
    out = _BehaviorColumns()
    seen_impressions: dict[int, int] = {}
    file_labelled: bool | None = None if split in OPTIONAL_SPLITS else True
    for number, line in _lines(path, progress):
        try:
            row = _parse_behavior_line(path, number, line, news_index, file_labelled, seen_impressions)
        except MindFormatError as error:
            if not skip:
                raise
            report.record(error, f"bad {split} impressions")
            continue
        impression_id, user, seconds, history, candidates, labels = row
        file_labelled = labels is not None
        seen_impressions[impression_id] = number
        out.impression_ids.append(impression_id)
        out.user_index.append(users.setdefault(user, len(users)))
        out.time.append(seconds)
        out.history_lengths.append(len(history))
        out.history.extend(history)
        out.candidate_lengths.append(len(candidates))
        out.candidates.extend(candidates)
        out.labels.extend(labels if labels is not None else [UNLABELLED] * len(candidates))
    return out.build(split, path)


def _parse_behavior_line(path: Path, number: int, line: str, news_index: dict[str, int],
                         labelled: bool | None, seen: dict[int, int]):
    impression, user, time_text, history_text, impressions_text = _columns(path, number, line, BEHAVIOR_COLUMNS)
    impression_id = _impression_id(path, number, impression, seen)
    if not user or any(c.isspace() for c in user):
        raise MindFormatError(path, number, f"impression {impression}: bad UserID {user!r}")
    seconds = parse_time(path, number, time_text)
    history = _news_indices(path, number, impression, "History", history_text.split(), news_index)
    tokens = impressions_text.split()
    if not tokens:
        raise MindFormatError(path, number, f"impression {impression}: no candidates in Impressions")
    if labelled is None:
        labelled = tokens[0][-2:] in _LABEL_SUFFIXES
    if not labelled:
        return impression_id, user, seconds, history, _unlabelled(path, number, impression, tokens, news_index), None
    candidates, labels = _labelled(path, number, impression, tokens, news_index)
    return impression_id, user, seconds, history, candidates, labels


def _impression_id(path: Path, number: int, text: str, seen: dict[int, int]) -> int:
    if not text.isdigit():
        raise MindFormatError(path, number, f"ImpressionID must be a non-negative integer, got {text!r}")
    value = int(text)
    if value in seen:
        raise MindFormatError(path, number, f"duplicate ImpressionID {value} (first at line {seen[value]})")
    return value


def parse_time(path: Path, number: int, text: str) -> int:
    """`MM/DD/YYYY HH:MM:SS AM/PM` -> seconds since the epoch, read as UTC."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise MindFormatError(path, number, f"bad Time {text!r}: expected MM/DD/YYYY HH:MM:SS AM/PM")
    month, day, year, hour, minute, second = (int(g) for g in match.groups()[:6])
    valid = (1 <= month <= 12 and 1 <= hour <= 12 and minute < 60 and second < 60
             and 1 <= day <= calendar.monthrange(year, month)[1])
    if not valid:
        raise MindFormatError(path, number, f"bad Time {text!r}: no such date or time")
    hour = hour % 12 + (12 if match.group(7) == "PM" else 0)
    return calendar.timegm((year, month, day, hour, minute, second))


def _news_indices(path: Path, number: int, impression: str, column: str, ids: list[str],
                  news_index: dict[str, int]) -> list[int]:
    try:
        return [news_index[i] for i in ids]
    except KeyError as error:
        raise MindFormatError(path, number, f"impression {impression}: {column} news id {error.args[0]} "
                                            "is not in any news.tsv") from None


def _labelled(path: Path, number: int, impression: str, tokens: list[str], news_index: dict[str, int]):
    if not {t[-2:] for t in tokens} <= _LABEL_SUFFIXES:
        bad = next(t for t in tokens if t[-2:] not in _LABEL_SUFFIXES)
        raise MindFormatError(path, number, f"impression {impression}: candidate {bad!r} has no -0/-1 "
                                            "label (required in a labelled split)")
    candidates = _news_indices(path, number, impression, "Impressions", [t[:-2] for t in tokens], news_index)
    return candidates, [t[-1] == "1" for t in tokens]


def _unlabelled(path: Path, number: int, impression: str, tokens: list[str], news_index: dict[str, int]):
    labelled_token = next((t for t in tokens if t[-2:] in _LABEL_SUFFIXES), None)
    if labelled_token is not None:
        raise MindFormatError(path, number, f"impression {impression}: candidate {labelled_token!r} carries "
                                            "a label, but this file's impressions are unlabelled")
    return _news_indices(path, number, impression, "Impressions", tokens, news_index)
