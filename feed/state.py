"""The feed's metadata (Φ, counts, news ids) in `<dir>/meta.json`, shared by both backends, and the atomic
file replacement every durable write of the feed goes through (`write_atomically`).

For the embedded index the state that counts is the one inside its committed generation
(`LocalBackend.state`, feed/index_store.py); `<index>/meta.json` is a copy of it, refreshed at each commit.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from newsrec.feed.backend import BackendError


class StateLockedError(BackendError):
    """Another feed holds the writer lock (of an embedded index, or of a Vespa feed's state directory)."""


def read_state(directory: str | Path) -> dict:
    path = Path(directory) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(directory: str | Path, values: dict) -> None:
    """Merge `values` into `<directory>/meta.json`, atomically: a reader sees the old file or the new one, never a
    torn one, and a crash leaves one of the two."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    merged = {**read_state(directory), **values}
    write_atomically(Path(directory) / "meta.json", (json.dumps(merged, indent=1) + "\n").encode())


def write_atomically(path: Path, data: bytes, on_step: Callable[[str], None] | None = None) -> None:
    """Replace `path` by `data`: a temporary file in the same directory, fsynced, renamed over `path`
    (os.replace, atomic on POSIX), then the directory fsynced so that the rename survives a crash.
    `on_step` (tests) is called with a step name before each of those four actions."""
    step = on_step or (lambda name: None)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    step(f"write {temporary.name}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        step(f"fsync {temporary.name}")
        os.fsync(handle.fileno())
    step(f"rename {path.name}")
    os.replace(temporary, path)
    step(f"fsync {path.parent.name or path.parent}/")
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (new, renamed or removed files) durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def exclusive(directory: Path, timeout_s: float, error: type[BackendError] = StateLockedError) -> Iterator[None]:
    """Hold `<directory>/.lock` (fcntl.flock): wait up to `timeout_s` for another writer, then `error` saying who
    holds it. The kernel releases it when the holder exits, however it exits (kill -9 included)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+", encoding="utf-8") as handle:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                raise error(f"another feed is writing {directory} ({_holder(handle)} has held its lock for the "
                            f"{timeout_s:g} s this feed waited); let it finish, then feed again")
            time.sleep(0.05)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "a process"


class DirectoryState:
    """The feed's state of a Vespa (or JSONL) feed: meta.json in its state directory. Φ is recorded before the first
    document (an interrupted feed leaves it describing what may be at the endpoint), the news actually fed after
    the last."""

    def __init__(self, directory: Path):
        self.directory = directory

    def state(self) -> dict:
        return read_state(self.directory)

    def begin(self, values: dict) -> None:
        write_state(self.directory, {**values, "complete": False})

    def finish(self, values: dict) -> None:
        if values:
            write_state(self.directory, {**values, "complete": True})


@contextmanager
def directory_state(directory: Path, lock_timeout_s: float) -> Iterator[DirectoryState]:
    """The state directory's feed state under its writer lock (a second feed waits, then refuses)."""
    with exclusive(directory, lock_timeout_s):
        yield DirectoryState(directory)
