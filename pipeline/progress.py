"""Progress of long steps (reading, text encoding, training, embedding, feeding, evaluation) on stderr, in a
terminal and out of one.

In a terminal, a tqdm bar. Anywhere else (a pipe, a CI log, a service manager's journal), where a bar's carriage
returns would pile up on one line or be dropped, a plain line every `EVERY_S` seconds or every `EVERY_SHARE` of a
known total, whichever comes first, and one when the step ends: a long step is never silent. A step done within
`QUIET_S` seconds prints nothing (reading a small file is not worth ten lines).

    >>> for batch in tracked(batches, "encoding texts", total=len(batches), unit="batch"):   # doctest: +SKIP
    ...     encode(batch)
    encoding texts: 13/128 batch (10%), 4.1 s, 3.2 batch/s
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

from tqdm import tqdm

EVERY_S = 10.0
EVERY_SHARE = 0.1
QUIET_S = 2.0
Item = TypeVar("Item")


class LineProgress:
    """Progress as plain lines: at most one every `every_s` seconds, and one per `every_share` of `total` (when
    known); the last line at `close()`. `update(n)` counts n more units done."""

    def __init__(self, desc: str, total: float | None = None, unit: str = "it", stream: TextIO | None = None,
                 every_s: float = EVERY_S, every_share: float = EVERY_SHARE,
                 clock: Callable[[], float] = time.monotonic):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream, self.every_s, self.every_share, self.clock = stream, every_s, every_share, clock
        self.done = 0.0
        self.started = self.last_time = clock()
        self.last_step = 0  # the last multiple of every_share of the total reported
        self.lines = 0
        self.closed = False

    def update(self, n: float = 1) -> None:
        self.done += n
        if self.total and self.done >= self.total:
            return  # the line of `close()` says it
        now = self.clock()
        step = int(self.done / self.total / self.every_share + 1e-9) if self.total else 0
        if now - self.last_time >= self.every_s or (step > self.last_step and now - self.started >= QUIET_S):
            self._write(now)
            self.last_time, self.last_step = now, step

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        if self.lines or now - self.started >= QUIET_S:
            self._write(now, final=True)

    def line(self, now: float, final: bool = False) -> str:
        elapsed = now - self.started
        count = _amount(self.done, self.unit)
        if self.total:
            done = _amount(self.done, self.unit if self.unit == "B" else "")
            count = f"{done}/{_amount(self.total, self.unit)} ({self.done / self.total:.0%})"
        rate = f", {self.done / elapsed:,.1f} {self.unit}/s" if elapsed > 0 and self.done else ""
        return f"{self.desc}: {count}, {elapsed:.1f} s{rate}{' (done)' if final else ''}"

    def _write(self, now: float, final: bool = False) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.line(now, final) + "\n")
        stream.flush()
        self.lines += 1

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(desc: str, total: float | None = None, unit: str = "it", enabled: bool = True,
                 stream: TextIO | None = None, **tqdm_options):
    """A progress reporter with `update(n)` and `close()`: a tqdm bar when stderr is a terminal, `LineProgress`
    otherwise; None when not enabled (callers skip it)."""
    if not enabled:
        return None
    stream = stream or sys.stderr
    if _is_terminal(stream):

        return tqdm(total=total, desc=desc, unit=unit, file=stream, mininterval=2.0, **tqdm_options)
    return LineProgress(desc, total, unit, stream)


def tracked(iterable: Iterable[Item], desc: str, total: float | None = None, unit: str = "it",
             enabled: bool = True, stream: TextIO | None = None) -> Iterator[Item]:
    """The items of `iterable`, reporting one unit per item (see `progress_bar`)."""
    reporter = progress_bar(desc, total, unit, enabled, stream)
    if reporter is None:
        yield from iterable
        return
    try:
        for item in iterable:
            yield item
            reporter.update(1)
    finally:
        reporter.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _amount(value: float, unit: str) -> str:
    if unit == "B":
        return _bytes(value)
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{number} {unit}".rstrip()


def _bytes(value: float) -> str:
    for size, name in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if value >= size:
            return f"{value / size:.1f} {name}"
    return f"{value:.0f} B"
