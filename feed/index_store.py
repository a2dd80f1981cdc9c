"""Generations of the embedded index on disk: every feed writes a new generation and switches to it atomically,
readers open one generation, a writer lock keeps feeds apart, and damage is detected, never served.

An index directory (feed/local_backend.py decides what the files hold):

    CURRENT        {"generation": "g000007", "manifest_sha256": ...}: the one committed generation
    g000007/       its files, and MANIFEST.json (written last): every file's size and sha256, and the meta
    g000006/       the previous generation, kept for readers that opened it; older ones are removed
    .lock          the writer lock (fcntl.flock), held for a whole transaction
    meta.json      a copy of the current generation's meta, for `feed.state.read_state`

A commit writes and fsyncs every file of the new generation, then its manifest, fsyncs the generation's
directory and the index directory, and only then replaces CURRENT (temporary file, fsync, os.replace, fsync
of the directory). A crash at any of those steps leaves CURRENT naming a complete generation, or no CURRENT at
all on a first feed; a generation directory that CURRENT does not name is never read, and the next commit
removes it. A reader checks CURRENT's manifest checksum, then every file's size and sha256 on the very bytes it
parses: a torn or damaged index raises IndexDamagedError naming the file, and nothing of it is served.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from newsrec.feed.backend import BackendError
from newsrec.feed.state import exclusive, fsync_directory, write_atomically, write_state

POINTER = "CURRENT"
MANIFEST = "MANIFEST.json"
FORMAT = 1
GENERATION_NAME = re.compile(r"g\d{6,}")
OPEN_ATTEMPTS = 3  # a reader whose generation is removed under it (two commits while it reads) reads CURRENT again
REBUILD = "re-run newsrec-feed to rebuild it"


class IndexDamagedError(BackendError):
    """A committed generation whose manifest or files are missing or do not match: never served."""


class IndexFormatError(BackendError):
    """An index directory in the layout of an older newsrec (files without generations): not read."""


class IndexLockedError(BackendError):
    """Another feed holds the writer lock of the index for longer than this writer waits."""


@dataclass(frozen=True)
class Generation:
    """One committed generation as a reader opened it (name None: nothing was ever committed)."""

    name: str | None = None
    pointer: str | None = None  # the text of CURRENT that named it: identifies the commit
    entries: dict[str, dict] = field(default_factory=dict)  # file name -> {"bytes": size, "sha256": hex}
    meta: dict = field(default_factory=dict)  # the feed's state stored with it (Φ, news ids, counts, ...)


class IndexStore:
    """The generations of one index directory. `on_step` (tests only) is called with a step name before every
    file write, fsync, rename and removal of a commit, so that a test can kill the writer at each one."""

    def __init__(self, directory: str | Path, lock_timeout: float = 60.0,
                 on_step: Callable[[str], None] | None = None):
        self.directory = Path(directory)
        self.lock_timeout = lock_timeout
        self._step = on_step or (lambda name: None)

    # ------------------------------------------------------------------------------- reading

    def pointer(self) -> str | None:
        """The text of CURRENT (None before the first commit)."""
        try:
            return (self.directory / POINTER).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def read(self) -> tuple[Generation, dict[str, bytes]]:
        """The current generation and its files' verified contents; (Generation(), {}) before the first commit."""
        for _ in range(OPEN_ATTEMPTS):
            pointer = self.pointer()
            if pointer is None:
                return Generation(), {}
            try:
                return self._read_generation(pointer)
            except FileNotFoundError as missing:
                if self.pointer() == pointer:  # not a commit that moved on: a file of the generation is gone
                    raise IndexDamagedError(f"{missing.filename} is missing from the index's current generation; "
                                            f"{REBUILD}") from None
        raise IndexDamagedError(f"{self.directory}: the index changed {OPEN_ATTEMPTS} times while it was being "
                                "read; try again")

    def _read_generation(self, pointer: str) -> tuple[Generation, dict[str, bytes]]:
        record = self._parse(self.directory / POINTER, pointer.encode())
        name = record.get("generation")
        if not isinstance(name, str) or not GENERATION_NAME.fullmatch(name):
            raise IndexDamagedError(f"{self.directory / POINTER} names no generation; {REBUILD}")
        manifest_path = self.directory / name / MANIFEST
        manifest_bytes = manifest_path.read_bytes()
        _verify(manifest_path, manifest_bytes, {"bytes": len(manifest_bytes), "sha256": record.get("manifest_sha256")})
        manifest = self._parse(manifest_path, manifest_bytes)
        entries = manifest.get("files", {})
        files = {}
        for file_name, entry in entries.items():
            files[file_name] = (self.directory / name / file_name).read_bytes()
            _verify(self.directory / name / file_name, files[file_name], entry)
        return Generation(name, pointer, entries, manifest.get("meta", {})), files

    @staticmethod
    def _parse(path: Path, data: bytes) -> dict:
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise IndexDamagedError(f"{path} is damaged ({error}); {REBUILD}") from None
        if not isinstance(record, dict) or record.get("format", FORMAT) != FORMAT:
            raise IndexDamagedError(f"{path} is not a format-{FORMAT} index record; {REBUILD}")
        return record

    # ------------------------------------------------------------------------------- writing

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writer lock: wait up to `lock_timeout` seconds for another writer, then IndexLockedError.
        The kernel releases it when the holder exits, however it exits (kill -9 included)."""
        with exclusive(self.directory, self.lock_timeout, IndexLockedError):
            yield

    def commit(self, base: Generation, written: dict[str, bytes], carried: list[str], meta: dict) -> Generation:
        """Write a new generation: the `written` files, the `carried` ones taken unchanged from `base` (a hard
        link, or a copy), `meta`; switch CURRENT to it; remove every generation but it and `base`. Hold the lock."""
        name = self._next_name()
        path = self.directory / name
        self._step(f"create {name}/")
        path.mkdir()
        entries = {file_name: self._write(path / file_name, data) for file_name, data in written.items()}
        entries.update({file_name: self._carry(base, file_name, path) for file_name in carried})
        manifest = (json.dumps({"format": FORMAT, "generation": name, "files": entries, "meta": meta}, indent=1)
                    + "\n").encode()
        self._write(path / MANIFEST, manifest)
        self._step("fsync generation/")
        fsync_directory(path)
        self._step("fsync index/")
        fsync_directory(self.directory)  # the new generation's entry is durable before CURRENT names it
        pointer = json.dumps({"format": FORMAT, "generation": name,
                              "manifest_sha256": hashlib.sha256(manifest).hexdigest()}) + "\n"
        write_atomically(self.directory / POINTER, pointer.encode(), self._step)
        self._remove_all_but({name, base.name})
        self._step("write meta.json")
        write_state(self.directory, meta)
        return Generation(name, pointer, entries, meta)

    def _next_name(self) -> str:
        numbers = [int(entry.name[1:]) for entry in self.directory.iterdir() if GENERATION_NAME.fullmatch(entry.name)]
        return f"g{max(numbers, default=0) + 1:06d}"

    def _write(self, path: Path, data: bytes) -> dict:
        self._step(f"write {path.name}")
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            self._step(f"fsync {path.name}")
            os.fsync(handle.fileno())
        return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def _carry(self, base: Generation, file_name: str, path: Path) -> dict:
        self._step(f"link {file_name}")
        source = self.directory / str(base.name) / file_name
        try:
            os.link(source, path / file_name)
        except FileNotFoundError:
            raise IndexDamagedError(f"{source} is missing from the index's current generation; {REBUILD}") from None
        except OSError:  # a file system without hard links: copy
            self._write(path / file_name, source.read_bytes())
        return base.entries[file_name]

    def _remove_all_but(self, keep: set[str | None]) -> None:
        """Older generations, and what crashed writers left (generations never committed, temporary files)."""
        for entry in sorted(self.directory.iterdir()):
            if GENERATION_NAME.fullmatch(entry.name) and entry.name not in keep:
                self._step(f"remove {entry.name}/")
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(f".{POINTER}.") and entry.name.endswith(".tmp"):
                self._step(f"remove {entry.name}")
                entry.unlink(missing_ok=True)


def _verify(path: Path, data: bytes, entry: dict) -> None:
    """`data` (read from `path`) has the size and sha256 that `entry` (from the manifest or CURRENT) records."""
    if len(data) != entry.get("bytes"):
        raise IndexDamagedError(f"{path} is damaged: {len(data)} bytes where the index's manifest records "
                                f"{entry.get('bytes')}; {REBUILD}")
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise IndexDamagedError(f"{path} is damaged: its sha256 checksum differs from the one the index's "
                                f"manifest records; {REBUILD}")
