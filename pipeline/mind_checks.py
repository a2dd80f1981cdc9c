"""What the MIND reader (pipeline/mind.py) accepts, and the report of what it left out or repaired.

Every rule here exists because something downstream breaks or lies without it:

- Ids (NewsID, UserID) are 1-64 ASCII letters, digits, '_' or '-' (`ID_PATTERN`): what newsrec's queries
  (feed/queries.py) and the Vespa application's UserProfileSearcher accept, and safe inside a Vespa
  document id — no '/' (pyvespa puts the id in the URL path: the feed aborted mid-way), no whitespace,
  no control, zero-width or other format character, no byte-order mark (each would feed a phantom id
  that looks like a real one). Category and SubCategory follow the same rule, since filters and
  grouping send them as query values; SubCategory may be empty.
- ImpressionID: ASCII digits only (`str.isdigit` accepts '²') and at most 2**63 - 1 (stored as int64).
- Time: `M/D/YYYY h:mm:ss AM|PM` in ASCII digits (`\\d` alone accepts any script's digits), a real date.
- Text (Title, Abstract, URL): at most `TEXT_CAPS` characters and no control character (Unicode Cc: C0,
  DEL, C1 — terminals act on them). Without --skip-bad-rows either is an error naming file and line.
  With it the value is repaired — control characters removed, then cut to the cap — and counted as
  repaired, rather than the row dropped (which would make every impression naming the news bad too).
- Entity JSON (TitleEntities, AbstractEntities): at most `MAX_ENTITY_CHARS` characters, parsed without
  letting deep nesting escape as a RecursionError, at most `MAX_JSON_DEPTH` levels deep (measured on the
  text, without recursion), integers of at most 4300 digits, a list of objects each with a WikidataId.
- Lines: UTF-8, at most `MAX_LINE_BYTES`; a UTF-8 byte-order mark at the very start of a file is
  dropped (anywhere else it is a bad character); a line of nothing but spaces carries no data; a file
  without a single data row is an error.
- Bad rows under --skip-bad-rows: at most `--max-bad-rows` per file (`BadRowLimit`: N rows, or P% of the
  file's rows, or — the default — 10 rows or 1%, whichever is more); beyond it the read fails, naming
  the file, the count and the limit.

User-controlled text quoted in a message goes through `shown` (repr, cut to 60 characters), so an
error never prints a terminal escape or ten megabytes.
"""
from __future__ import annotations

import calendar
import functools
import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from newsrec.pipeline.errors import MindFormatError, OptionValueError, TooManyBadRowsError

MAX_ID_LENGTH = 64
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # matched in full; = feed/queries.py's _SAFE_VALUE (tested)
ID_RULE = "an id is 1-64 ASCII letters, digits, '_' or '-' (what Vespa document ids and newsrec's queries need)"
INT64_MAX = 2 ** 63 - 1
TEXT_CAPS = {"Title": 4_096, "Abstract": 65_536, "URL": 8_192}  # characters
MAX_ENTITY_CHARS = 1_000_000  # per entity column (MIND's largest are a few thousand)
MAX_JSON_DEPTH = 10  # MIND's entity JSON is 3 deep: list > object > list
MAX_LINE_BYTES = 16 * 2 ** 20
BOM = "\ufeff"
_TOO_DEEP = object()
_CONTROL_NAMES = {0x00: "NULL", 0x07: "BELL", 0x08: "BACKSPACE", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED",
                  0x0B: "LINE TABULATION", 0x0C: "FORM FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE", 0x7F: "DELETE",
                  0x85: "NEXT LINE", 0x9B: "CONTROL SEQUENCE INTRODUCER"}
_CATEGORY_NAMES = {"Cc": "(a control character)", "Cf": "(a format character)", "Co": "(a private-use character)",
                   "Cn": "(unassigned)", "Cs": "(a surrogate)"}
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)", re.ASCII)


def shown(text: str, limit: int = 60) -> str:
    """`text` as it may appear in a message: repr (escapes visible), at most `limit` characters of it."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def id_text(value: str) -> str:
    """An id in a message: as is when it is a valid id, else `shown`."""
    return value if ID_PATTERN.fullmatch(value) else shown(value)


def describe(character: str) -> str:
    """'/' -> "'/'"; '\\u200b' -> 'U+200B ZERO WIDTH SPACE'; '\\x1b' -> 'U+001B ESCAPE'."""
    if character.isascii() and character.isprintable() and not character.isspace():
        return repr(character)
    code = ord(character)
    name = unicodedata.name(character, None) or _CONTROL_NAMES.get(code) or \
        _CATEGORY_NAMES.get(unicodedata.category(character), "(unnamed)")
    return f"U+{code:04X} {name}"


def id_problem(value: str) -> str | None:
    """Why `value` is not a valid id, or None when it is one."""
    if ID_PATTERN.fullmatch(value):
        return None
    if not value:
        return "empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{len(value):,} characters, more than {MAX_ID_LENGTH}"
    position, character = next((i, c) for i, c in enumerate(value) if not ID_PATTERN.fullmatch(c))
    why = " (pyvespa puts the id in a URL path)" if character == "/" else ""
    return f"{describe(character)} at position {position + 1}{why}"


def check_id(path: Path, number: int, kind: str, value: str, context: str = "") -> str:
    problem = id_problem(value)
    if problem is not None:
        raise MindFormatError(path, number, f"{context}bad {kind} {shown(value)}: {problem}; {ID_RULE}")
    return value


def check_label(path: Path, number: int, news_id: str, kind: str, value: str, required: bool) -> str:
    """Category (required) and SubCategory (may be empty): the id rule, as filters send them as values."""
    if (not value and not required) or (len(value) <= MAX_ID_LENGTH and _valid_label(value)):
        return value
    if not value:
        raise MindFormatError(path, number, f"news {news_id}: empty {kind}")
    return check_id(path, number, kind, value, f"news {news_id}: ")


@functools.lru_cache(maxsize=4096)
def _valid_label(value: str) -> bool:
    """The id rule, remembered: MIND has a few hundred categories over 161,000 news rows."""
    return ID_PATTERN.fullmatch(value) is not None


def impression_id(path: Path, number: int, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise MindFormatError(path, number, f"ImpressionID must be a non-negative integer in ASCII digits, "
                                            f"got {shown(text)}")
    if len(text) > 19 or int(text) > INT64_MAX:
        raise MindFormatError(path, number, f"ImpressionID {shown(text, 30)} is out of range "
                                            f"(0 to {INT64_MAX}, a 64-bit integer)")
    return int(text)


def parse_time(path: Path, number: int, text: str) -> int:
    """`MM/DD/YYYY HH:MM:SS AM/PM` -> seconds since the epoch, read as UTC."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise MindFormatError(path, number, f"bad Time {shown(text)}: expected MM/DD/YYYY HH:MM:SS AM/PM")
    month, day, year, hour, minute, second = (int(g) for g in match.groups()[:6])
    valid = (year >= 1 and 1 <= month <= 12 and 1 <= hour <= 12 and minute < 60 and second < 60
             and 1 <= day <= calendar.monthrange(year, month)[1])
    if not valid:
        raise MindFormatError(path, number, f"bad Time {shown(text)}: no such date or time")
    hour = hour % 12 + (12 if match.group(7) == "PM" else 0)
    return calendar.timegm((year, month, day, hour, minute, second))


# ------------------------------------------------------------------------------------------ text

def texts_fine(title: str, abstract: str, url: str) -> bool:
    """The fast path of `check_text`: all three within their caps and free of control characters."""
    return (len(title) <= TEXT_CAPS["Title"] and len(abstract) <= TEXT_CAPS["Abstract"]
            and len(url) <= TEXT_CAPS["URL"] and _CONTROL.search(title + abstract + url) is None)


def check_text(path: Path, number: int, news_id: str, column: str, value: str,
               report: ReadReport | None) -> str:
    """`value` if acceptable; else an error (report None: strict) or the repaired value, counted in `report`."""
    cap = TEXT_CAPS[column]
    control = _CONTROL.search(value)
    if control is None and len(value) <= cap:
        return value
    where = f"{path}:{number}: news {news_id}: {column}"
    if control is not None:
        if report is None:
            raise MindFormatError(path, number, f"news {news_id}: {column} holds the control character "
                                                f"{describe(control.group())} at character {control.start() + 1} "
                                                "(--skip-bad-rows removes such characters, counted)")
        value = _CONTROL.sub("", value)
        report.repair(f"{column} control characters removed", f"{where} control characters removed")
    if len(value) > cap:
        if report is None:
            raise MindFormatError(path, number, f"news {news_id}: {column} is {len(value):,} characters, more "
                                                f"than the cap of {cap:,} (--skip-bad-rows cuts it, counted)")
        report.repair(f"{column} cut to {cap:,} characters", f"{where} cut from {len(value):,} to {cap:,} characters")
        value = value[:cap]
    return value


def parse_entities(path: Path, number: int, news_id: str, column: str, text: str) -> list[dict]:
    """TitleEntities / AbstractEntities: a JSON list of objects with a WikidataId, size and depth bounded."""
    if text in ("", "[]"):
        return []
    where = f"news {news_id}: {column}"
    if len(text) > MAX_ENTITY_CHARS:
        raise MindFormatError(path, number, f"{where} is {len(text):,} characters, more than the cap of "
                                            f"{MAX_ENTITY_CHARS:,}")
    try:
        entities = json.loads(text)
    except json.JSONDecodeError as error:
        raise MindFormatError(path, number, f"news {news_id}: bad {column} JSON ({error.msg} at "
                                            f"character {error.pos + 1})") from None
    except RecursionError:
        entities = _TOO_DEEP  # deeper than the interpreter's recursion limit: reported just below
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise MindFormatError(path, number, f"news {news_id}: bad {column} JSON "
                                            f"({str(error).split(':')[0]})") from None
    if entities is _TOO_DEEP or json_too_deep(text):
        raise MindFormatError(path, number, f"{where} JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(entities, list) or not all(isinstance(e, dict) and "WikidataId" in e for e in entities):
        raise MindFormatError(path, number, f"{where} must be a JSON list of objects with a WikidataId")
    return entities


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether valid JSON `text` nests more than `limit` levels, without recursion: strings removed, then one
    level of innermost `[]` / `{}` pairs peeled per round, at C speed."""
    if text.count("[") + text.count("{") <= limit:  # depth <= openers: most entity columns end here
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    for _ in range(limit):
        brackets = _INNERMOST.sub("", brackets)
    return bool(brackets)


# ------------------------------------------------------------------------------ skipping and limits

@dataclass(frozen=True)
class BadRowLimit:
    """`--max-bad-rows`: bad rows one file may have under --skip-bad-rows: `rows`, `percent` of the file's
    rows, or (the default) the larger of both. `BadRowLimit.parse("100")`, `BadRowLimit.parse("0.5%")`."""

    rows: int | None = 10
    percent: Fraction | None = Fraction(1)

    @classmethod
    def parse(cls, text: str) -> BadRowLimit:
        text = text.strip()
        if re.fullmatch(r"[0-9]{1,15}", text):
            return cls(int(text), None)
        match = re.fullmatch(r"([0-9]{1,3}(?:\.[0-9]{1,6})?)%", text)
        if match and Fraction(match.group(1)) <= 100:
            return cls(None, Fraction(match.group(1)))
        raise OptionValueError(f"--max-bad-rows {shown(text, 20)}: expected a number of rows (e.g. 100) or a "
                               "percentage of a file's rows up to 100% (e.g. 1%)")

    def allowed(self, rows_read: int) -> int:
        share = math.floor(rows_read * self.percent / 100) if self.percent is not None else 0
        return max(self.rows or 0, share)

    def __str__(self) -> str:
        parts = ([f"{self.rows} rows"] if self.rows is not None else []) + \
                ([f"{float(self.percent):g}% of the file's rows"] if self.percent is not None else [])
        return " or ".join(parts) + (", whichever is more" if len(parts) == 2 else "")


@dataclass
class ReadReport:
    """What reading left out or changed: bad rows skipped and text fields repaired (--skip-bad-rows),
    unknown news ids and impressions dropped (--drop-unknown-ids), each counted by reason; the rows read
    and bad rows per file (for `--max-bad-rows`); the first messages."""

    skipped: Counter = field(default_factory=Counter)  # reason -> bad rows left out
    examples: list[str] = field(default_factory=list)  # the first bad rows' messages
    repaired: Counter = field(default_factory=Counter)  # what -> text fields repaired
    dropped: Counter = field(default_factory=Counter)  # what -> ids or impressions left out
    notes: list[str] = field(default_factory=list)  # the first repair or drop of each kind
    rows: Counter = field(default_factory=Counter)  # file -> data rows read
    bad_rows: Counter = field(default_factory=Counter)  # file -> bad rows left out
    first_bad: dict[str, str] = field(default_factory=dict)  # file -> its first bad row's message
    max_examples: int = 10

    def record(self, error: MindFormatError, reason: str) -> None:
        self.skipped[reason] += 1
        self.bad_rows[error.path] += 1
        self.first_bad.setdefault(error.path, str(error))
        if len(self.examples) < self.max_examples:
            self.examples.append(str(error))

    def repair(self, what: str, message: str) -> None:
        self._note(self.repaired, what, message)
        self.repaired[what] += 1

    def drop(self, what: str, count: int, message: str) -> None:
        self._note(self.dropped, what, message)
        self.dropped[what] += count

    def _note(self, counter: Counter, what: str, message: str) -> None:
        if not counter[what] and len(self.notes) < self.max_examples:
            self.notes.append(message)

    def check_limit(self, path: Path, limit: BadRowLimit) -> None:
        """TooManyBadRowsError when `path` had more bad rows than `limit` allows for its size."""
        bad, rows = self.bad_rows[str(path)], self.rows[str(path)]
        if bad > limit.allowed(rows):
            raise TooManyBadRowsError(path, None, f"{bad} of {rows} rows are bad, more than --max-bad-rows "
                                                  f"allows ({limit}); first: {self.first_bad[str(path)]}")

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def empty(self) -> bool:
        return not (self.skipped or self.repaired or self.dropped)

    def summary(self) -> str:
        if self.empty:
            return "no rows skipped"
        parts = []
        if self.skipped:
            parts.append(f"skipped {self.total_skipped} bad rows ({_counts(self.skipped)})")
        if self.repaired:
            parts.append(f"repaired {sum(self.repaired.values())} text fields ({_counts(self.repaired)})")
        if self.dropped:
            parts.append(f"dropped {_counts(self.dropped)} (--drop-unknown-ids)")
        return "; ".join(parts) + "; first: " + "; ".join(self.examples[:3] + self.notes[:3])


def _counts(counter: Counter) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counter.items()))
