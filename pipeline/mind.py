"""Reading MIND (`mind/{train,dev[,test]}/{news.tsv,behaviors.tsv}`) into compact columnar tables.

Behaviours are stored as CSR arrays (offsets + int32 news indices + int8 labels), so MIND-large
(2.2M impressions, 83.5M candidate rows) fits comfortably in memory: about 5 bytes per candidate
row and 4 bytes per history entry. News ids are resolved against the union of every split's
news.tsv, so a history or candidate id that no news.tsv defines is an error with its file and line.
A news id in several news.tsv files must have the same row in each (else: an error naming both).

Bad input raises `MindFormatError` naming file and line; what is checked, and why, is in
pipeline/mind_checks.py. Options:
- `on_error="skip"` (`--skip-bad-rows`): a bad row is left out instead, and a text field with a control
  character or over its cap is repaired; both counted by reason in `ReadReport`, shown to the user.
  A file with more bad rows than `max_bad_rows` allows (`BadRowLimit`, default: 10 rows or 1% of
  the file, whichever is more) fails the read.
- `drop_unknown_ids=True` (`--drop-unknown-ids`, for sampled MIND files whose behaviours name news
  missing from their news.tsv): such history and candidate ids are left out and counted by kind; a
  labelled impression thereby left without a click or without a non-click, or any impression left
  without a candidate, is dropped and counted.
Whatever the options, a split (or the news) left without a single row is an error (`EmptySplitError`).

    >>> dataset = read_mind("mind/")                                   # doctest: +SKIP
    >>> dataset.splits["dev"].num_impressions                          # doctest: +SKIP
    73152
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from newsrec.pipeline.errors import EmptySplitError, MindFormatError
from newsrec.pipeline.mind_checks import (BOM, MAX_LINE_BYTES, BadRowLimit, ReadReport, check_id, check_label, check_text,
                                  id_text, impression_id, parse_entities, parse_time, shown, texts_fine)
from newsrec.pipeline.mind_layout import OPTIONAL_SPLITS, find_splits
from newsrec.pipeline.progress import progress_bar

__all__ = ["Behaviors", "MindDataset", "NewsTable", "ReadReport", "BadRowLimit", "read_mind", "parse_time"]

NEWS_COLUMNS = ("NewsID", "Category", "SubCategory", "Title", "Abstract", "URL",
                "TitleEntities", "AbstractEntities")
BEHAVIOR_COLUMNS = ("ImpressionID", "UserID", "Time", "History", "Impressions")
UNLABELLED = -1
_LABEL_SUFFIXES = frozenset(("-0", "-1"))
_UTF8_BOM = BOM.encode("utf-8")


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
    split_dirs: dict[str, str] = field(default_factory=dict)  # split -> the folder read (pipeline/mind_layout.py)
    layout_note: str | None = None  # how the folders differ from root/{train,dev,test}, for the user

    def split_dir(self, split: str) -> Path:
        return Path(self.split_dirs.get(split) or Path(self.root) / split)


@dataclass(frozen=True)
class _Reading:
    """How one `read_mind` call treats bad input, and its report."""

    report: ReadReport
    skip: bool
    limit: BadRowLimit
    drop_unknown_ids: bool
    progress: bool

    @property
    def repairs(self) -> ReadReport | None:
        """Where text repairs are counted; None: a text problem is an error."""
        return self.report if self.skip else None

    def skip_or_raise(self, error: MindFormatError, reason: str) -> None:
        if not self.skip:
            raise error
        self.report.record(error, reason)


def read_mind(root: str | Path, on_error: str = "raise", progress: bool = False,
              splits: tuple[str, ...] | None = None, max_bad_rows: BadRowLimit | str = BadRowLimit(),
              drop_unknown_ids: bool = False) -> MindDataset:
    """Read a MIND directory: train and dev are required, test is read when its folder exists. The split folders
    are found by `pipeline.mind_layout.find_splits` (the official zips unpacked as they come are accepted)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    limit = max_bad_rows if isinstance(max_bad_rows, BadRowLimit) else BadRowLimit.parse(max_bad_rows)
    layout = find_splits(root, splits)
    reading = _Reading(ReadReport(), on_error == "skip", limit, drop_unknown_ids, progress)
    news = read_news([folder / "news.tsv" for folder in layout.splits.values()], reading)
    users: dict[str, int] = {}
    behaviors = {s: read_behaviors(folder / "behaviors.tsv", s, news.index, users, reading)
                 for s, folder in layout.splits.items()}
    return MindDataset(str(layout.root), news, list(users), behaviors, reading.report,
                       {s: str(folder) for s, folder in layout.splits.items()}, layout.note)


# ----------------------------------------------------------------------------------------- lines

def _lines(path: Path, reading: _Reading) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, raw line; None for a line over MAX_LINE_BYTES) of every data row, counted in the
    report; lines of nothing but spaces carry no data and are passed over; a leading UTF-8 BOM is dropped."""
    if not path.is_file():
        raise MindFormatError(path, None, "file not found")
    if path.stat().st_size == 0:
        raise MindFormatError(path, None, "file is empty")
    bar, rows, key, number = _progress_bar(path, reading.progress), reading.report.rows, str(path), 0
    with _open(path) as handle:
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if bar is not None:
                bar.update(len(raw))
            if number == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM):]
            if len(raw) > MAX_LINE_BYTES:
                while raw and not raw.endswith(b"\n"):  # pass over the rest of the over-long line
                    raw = handle.readline(MAX_LINE_BYTES)
                raw = None
            elif not raw.strip(b" \r\n"):
                continue
            rows[key] += 1
            yield number, raw
    if bar is not None:
        bar.close()


def _open(path: Path):
    try:
        return path.open("rb")
    except OSError as error:  # e.g. permission denied
        raise MindFormatError(path, None, f"cannot be read ({error.strerror or error})") from None


def _decode(path: Path, number: int, raw: bytes | None) -> str:
    if raw is None:
        raise MindFormatError(path, number, f"line longer than {MAX_LINE_BYTES // 2 ** 20} MiB")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise MindFormatError(path, number, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} "
                                            f"at column {error.start + 1})") from None


def _progress_bar(path: Path, enabled: bool):
    return progress_bar(f"reading {path}", path.stat().st_size, "B", enabled, unit_scale=True)


def _columns(path: Path, number: int, line: str, names: tuple[str, ...]) -> list[str]:
    columns = line.split("\t")
    if len(columns) != len(names):
        raise MindFormatError(path, number, f"expected {len(names)} tab-separated columns "
                                            f"({', '.join(names)}), found {len(columns)}")
    return columns


def _finish_file(path: Path, reading: _Reading, holds: str) -> None:
    """A file without a data row is an error; so are more bad rows than --max-bad-rows allows."""
    if not reading.report.rows[str(path)]:
        raise EmptySplitError(path, None, f"holds no {holds} (only blank lines)")
    reading.report.check_limit(path, reading.limit)


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


def read_news(paths: list[Path], reading: _Reading) -> NewsTable:
    """Union of several news.tsv files; an id repeated in a later file (train and dev overlap) must have the
    same row there, and is kept once."""
    builder = _NewsBuilder()
    defined: dict[str, tuple[str, int, int]] = {}  # news id -> (file, line, hash of its row) where last seen
    for path in paths:
        for number, raw in _lines(path, reading):
            try:
                parsed = _parse_news_line(path, number, _decode(path, number, raw), reading)
                repeated = _repeated(path, number, parsed[0][0], parsed[3], defined)
            except MindFormatError as error:
                reading.skip_or_raise(error, "bad news rows")
                continue
            if not repeated:
                builder.add(*parsed[:3])
        _finish_file(path, reading, "news")
    if not builder.index:
        raise EmptySplitError(paths[0], None, "no news left in any news.tsv: every row was a bad row")
    return builder.build()


def _repeated(path: Path, number: int, news_id: str, digest: int, defined: dict[str, tuple[str, int, int]]) -> bool:
    """True for a news id already read from another file with the same row; an error for a duplicate in one file
    or a different row in another file."""
    where = str(path)
    first = defined.get(news_id)
    defined[news_id] = (where, number, digest) if first is None or first[0] != where else first
    if first is None:
        return False
    if first[0] == where:
        raise MindFormatError(path, number, f"duplicate NewsID {news_id} (first at line {first[1]})")
    if first[2] != digest:
        raise MindFormatError(path, number, f"news {news_id} differs from its row at {first[0]}:{first[1]} "
                                            "(a news id must be the same news item in every news.tsv: same "
                                            "category, subcategory, title, abstract and URL)")
    return True


def _parse_news_line(path: Path, number: int, line: str, reading: _Reading):
    """([news id, category, subcategory, title, abstract, url], title entities, abstract entities, row hash)."""
    columns = _columns(path, number, line, NEWS_COLUMNS)
    news_id = check_id(path, number, "NewsID", columns[0])
    category = check_label(path, number, news_id, "Category", columns[1], required=True)
    subcategory = check_label(path, number, news_id, "SubCategory", columns[2], required=False)
    title_entities = parse_entities(path, number, news_id, "TitleEntities", columns[6])
    abstract_entities = parse_entities(path, number, news_id, "AbstractEntities", columns[7])
    title, abstract, url = columns[3:6]
    if not texts_fine(title, abstract, url):
        title, abstract, url = (check_text(path, number, news_id, name, value, reading.repairs)
                                for name, value in zip(NEWS_COLUMNS[3:6], columns[3:6]))
    if not title:
        raise MindFormatError(path, number, f"news {news_id}: empty Title")
    row = [news_id, category, subcategory, title, abstract, url]
    return row, title_entities, abstract_entities, hash(tuple(columns[1:6]))  # the item, not its entity tagging


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

    def add(self, row: _Row, user_index: int) -> None:
        self.impression_ids.append(row.impression_id)
        self.user_index.append(user_index)
        self.time.append(row.seconds)
        self.history_lengths.append(len(row.history))
        self.history.extend(row.history)
        self.candidate_lengths.append(len(row.candidates))
        self.candidates.extend(row.candidates)
        self.labels.extend(row.labels if row.labels is not None else [UNLABELLED] * len(row.candidates))

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
                   reading: _Reading) -> Behaviors:
    """One behaviors.tsv; train and dev must be labelled, test may be (MIND-large test is not)."""
    out = _BehaviorColumns()
    seen_impressions: dict[int, int] = {}
    file_labelled: bool | None = None if split in OPTIONAL_SPLITS else True
    for number, raw in _lines(path, reading):
        try:
            row = _parse_behavior_line(path, number, _decode(path, number, raw), news_index, file_labelled,
                                       seen_impressions, reading)
        except MindFormatError as error:
            reading.skip_or_raise(error, f"bad {split} impressions")
            continue
        seen_impressions[row.impression_id] = number
        if row.drop_reason is not None:
            reading.report.drop(row.drop_reason, 1, f"{path}:{number}: impression {row.impression_id} dropped: "
                                                    f"{row.drop_reason[len('impressions '):]}")
            continue
        file_labelled = row.labels is not None
        out.add(row, users.setdefault(row.user, len(users)))
    _finish_file(path, reading, "impression")
    if not out.impression_ids:
        raise EmptySplitError(path, None, f"split {split!r} has no impression left ({_accounting(path, reading)})")
    return out.build(split, path)


def _accounting(path: Path, reading: _Reading) -> str:
    report = reading.report
    dropped = sum(count for what, count in report.dropped.items() if what.startswith("impressions"))
    return (f"{report.rows[str(path)]} rows read, {report.bad_rows[str(path)]} skipped as bad rows"
            + (f", impressions dropped by --drop-unknown-ids so far: {dropped}" if reading.drop_unknown_ids else ""))


@dataclass(slots=True)
class _Row:
    impression_id: int
    user: str
    seconds: int
    history: list[int]
    candidates: list[int]
    labels: list[bool] | None  # None: unlabelled
    drop_reason: str | None = None  # --drop-unknown-ids: why the impression is left out


def _parse_behavior_line(path: Path, number: int, line: str, news_index: dict[str, int],
                         labelled: bool | None, seen: dict[int, int], reading: _Reading) -> _Row:
    impression, user, time_text, history_text, impressions_text = _columns(path, number, line, BEHAVIOR_COLUMNS)
    identifier = impression_id(path, number, impression)
    if identifier in seen:
        raise MindFormatError(path, number, f"duplicate ImpressionID {identifier} (first at line {seen[identifier]})")
    check_id(path, number, "UserID", user, f"impression {impression}: ")
    seconds = parse_time(path, number, time_text)
    history = _news_indices(path, number, impression, "History", _words(history_text), news_index, reading)
    tokens = _words(impressions_text)
    if not tokens:
        raise MindFormatError(path, number, f"impression {impression}: no candidates in Impressions")
    if labelled is None:
        labelled = tokens[0][-2:] in _LABEL_SUFFIXES
    if not labelled:
        candidates, labels = _unlabelled(path, number, impression, tokens, news_index, reading), None
    else:
        candidates, labels = _labelled(path, number, impression, tokens, news_index, reading)
    dropped = None if len(candidates) == len(tokens) else _drop_reason(tokens, candidates, labels)
    return _Row(identifier, user, seconds, history, candidates, labels, dropped)


def _words(text: str) -> list[str]:
    """Space-separated ids (only ' ': other whitespace and control characters stay in the id and fail it)."""
    words = text.split(" ")
    return [word for word in words if word] if "" in words else words


def _drop_reason(tokens: list[str], candidates: list[int], labels: list[bool] | None) -> str | None:
    """Why an impression whose unknown candidates were left out must go, or None to keep it."""
    if not candidates:
        return "impressions left without candidates"
    if labels is not None and not any(labels) and any(t.endswith("-1") for t in tokens):
        return "impressions left without a click"
    if labels is not None and all(labels) and any(t.endswith("-0") for t in tokens):
        return "impressions left without a non-click"
    return None


def _news_indices(path: Path, number: int, impression: str, column: str, ids: list[str],
                  news_index: dict[str, int], reading: _Reading) -> list[int]:
    try:
        return [news_index[i] for i in ids]
    except KeyError as error:
        unknown = error.args[0]
    if not reading.drop_unknown_ids:
        raise MindFormatError(path, number, f"impression {impression}: {column} news id {id_text(unknown)} is not "
                                            "in any news.tsv (--drop-unknown-ids leaves such ids out, counted)")
    known = [news_index[i] for i in ids if i in news_index]
    kind = "history" if column == "History" else "candidate"
    reading.report.drop(f"unknown {kind} ids", len(ids) - len(known),
                        f"{path}:{number}: impression {impression}: {column} news id {id_text(unknown)} left out")
    return known


def _labelled(path: Path, number: int, impression: str, tokens: list[str], news_index: dict[str, int],
              reading: _Reading) -> tuple[list[int], list[bool]]:
    if not {t[-2:] for t in tokens} <= _LABEL_SUFFIXES:
        bad = next(t for t in tokens if t[-2:] not in _LABEL_SUFFIXES)
        raise MindFormatError(path, number, f"impression {impression}: candidate {shown(bad)} has no -0/-1 "
                                            "label (required in a labelled split)")
    ids = [t[:-2] for t in tokens]
    if len(set(ids)) < len(set(tokens)):  # one news id with both labels
        both = next(i for i in ids if f"{i}-0" in tokens and f"{i}-1" in tokens)
        raise MindFormatError(path, number, f"impression {impression}: candidate {id_text(both)} is labelled both "
                                            "-0 and -1")
    candidates = _news_indices(path, number, impression, "Impressions", ids, news_index, reading)
    if len(candidates) == len(tokens):
        return candidates, [t[-1] == "1" for t in tokens]
    return candidates, [t[-1] == "1" for t, i in zip(tokens, ids) if i in news_index]


def _unlabelled(path: Path, number: int, impression: str, tokens: list[str], news_index: dict[str, int],
                reading: _Reading) -> list[int]:
    labelled_token = next((t for t in tokens if t[-2:] in _LABEL_SUFFIXES), None)
    if labelled_token is not None:
        raise MindFormatError(path, number, f"impression {impression}: candidate {shown(labelled_token)} carries "
                                            "a label, but this file's impressions are unlabelled")
    return _news_indices(path, number, impression, "Impressions", tokens, news_index, reading)


def entity_ids(news: NewsTable) -> list[tuple[str, ...]]:
    """Per news row, the distinct Wikidata ids of its title and abstract entities, sorted (the news document's
    `entities`; a learned ranker's entity match)."""
    out = []
    for title, abstract in zip(news.title_entities, news.abstract_entities):
        ids = {entity.get("WikidataId") for entity in (*title, *abstract) if isinstance(entity, dict)}
        out.append(tuple(sorted(i for i in ids if isinstance(i, str) and i)))
    return out
