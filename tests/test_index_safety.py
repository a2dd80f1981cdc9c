"""The embedded index under crashes, concurrent feeds and damage (feed/index_store.py): a writer killed at any
step leaves the previous generation, readers see one generation or the next (never a mix), a second writer
waits and then refuses clearly, and a damaged index is reported, never served."""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from index_workers import answer, corpus, feed_version

from newsrec.feed.backend import BackendError, FeedReport
from newsrec.feed.index_store import POINTER, IndexDamagedError, IndexFormatError, IndexLockedError
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.state import read_state, write_atomically, write_state

WORKERS = Path(__file__).with_name("index_workers.py")
FORK = multiprocessing.get_context("fork")  # the child starts with everything imported: one crash trial per step


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, dict]:
    """What a reader of an index holding only A (only B) answers."""
    answers = {}
    for version in ("A", "B"):
        backend = LocalBackend(tmp_path_factory.mktemp(version) / "index")
        feed_version(backend, version)
        answers[version] = answer(LocalBackend(backend.directory))
    assert answers["A"] != answers["B"] and all(answers["A"][key] != answers["B"][key] for key in answers["A"])
    return answers


@pytest.fixture(scope="module")
def index_a(tmp_path_factory) -> Path:
    """A committed index holding A, with B as its previous generation; tests copy it."""
    index = tmp_path_factory.mktemp("index_a") / "index"
    feed_version(LocalBackend(index), "B")
    feed_version(LocalBackend(index), "A")
    return index


def generations(index: Path) -> set[str]:
    return {entry.name for entry in index.iterdir() if entry.is_dir()}


def single_threaded() -> None:
    """In a forked child: faiss without OpenMP threads (the parent's thread pool does not survive fork; a child
    building an HNSW graph over more than a few dozen vectors would hang)."""
    import faiss

    faiss.omp_set_num_threads(1)


def commit_steps(index: Path, version: str) -> list[str]:
    """The steps of feeding `version` into (a copy of) `index`, in order."""
    steps: list[str] = []
    feed_version(LocalBackend(index, on_step=steps.append), version)
    return steps


def crash_feed(index: Path, version: str, crash_at: int) -> None:
    """Feed `version` in a child process that dies like kill -9 (os._exit: no cleanup) before step `crash_at`."""
    def child() -> None:
        single_threaded()
        seen = []

        def on_step(name: str) -> None:
            if len(seen) == crash_at:
                os._exit(9)
            seen.append(name)

        feed_version(LocalBackend(index, on_step=on_step), version)
        os._exit(0)

    process = FORK.Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 9, f"the writer was to die at step {crash_at}, exit code {process.exitcode}"


# ------------------------------------------------------------------------------- crashes

def test_a_writer_killed_at_every_step_leaves_the_old_generation(index_a: Path, expected: dict, tmp_path: Path):
    steps = commit_steps(shutil.copytree(index_a, tmp_path / "probe"), "B")
    switch = steps.index(f"rename {POINTER}")
    assert steps[0].startswith("create ") and "write MANIFEST.json" in steps[:switch] and len(steps) > 20
    assert any(step.startswith("remove g") for step in steps[switch:])  # the generation before the previous one
    for crash_at in range(len(steps)):
        index = shutil.copytree(index_a, tmp_path / f"crash{crash_at}")
        crash_feed(index, "B", crash_at)
        # before the rename of CURRENT the old generation is served whole; from it on, the new one
        assert answer(LocalBackend(index)) == expected["A" if crash_at <= switch else "B"], steps[crash_at]
        feed_version(LocalBackend(index), "B")  # the next feed succeeds, and cleans what the crash left
        assert answer(LocalBackend(index)) == expected["B"]
        assert len(generations(index)) == 2 and not [p for p in index.iterdir() if p.name.endswith(".tmp")]
    print(f"\nkill -9 of the writer before each of its {len(steps)} steps: the old generation served after "
          f"{switch + 1} of them, the new one after the other {len(steps) - switch - 1}; 0 mixed, 0 errors")


def test_a_writer_killed_during_the_first_feed_leaves_an_empty_index(expected: dict, tmp_path: Path):
    steps = commit_steps(tmp_path / "probe", "A")
    switch = steps.index(f"rename {POINTER}")
    for crash_at in range(len(steps)):
        index = tmp_path / f"crash{crash_at}"
        crash_feed(index, "A", crash_at)
        if crash_at <= switch:
            with pytest.raises(BackendError, match="the index holds no news; run `newsrec-feed"):
                LocalBackend(index).recommend("U1", 5).hits
            assert LocalBackend(index).state == {}
        else:
            assert answer(LocalBackend(index)) == expected["A"]
        feed_version(LocalBackend(index), "A")
        assert answer(LocalBackend(index)) == expected["A"]


def test_kill_9_at_random_moments_of_repeated_feeds(index_a: Path, expected: dict, tmp_path: Path):
    """The issue's experiment: kill -9 the writer at a random moment while it re-feeds; ten trials."""
    index, rng, served = shutil.copytree(index_a, tmp_path / "index"), random.Random(0), []
    for _ in range(10):
        process = FORK.Process(target=_feed_forever, args=(index,))
        process.start()
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        served.append(next(v for v in "AB" if answer(LocalBackend(index)) == expected[v]))
    print(f"\n10 kill -9 at random moments: served {served.count('A')} x A, {served.count('B')} x B, 0 mixed")


def _feed_forever(index: Path) -> None:
    single_threaded()
    for commit in range(10**6):
        feed_version(LocalBackend(index), "BA"[commit % 2])


def test_an_exception_in_a_transaction_makes_nothing_visible(index_a: Path, expected: dict, tmp_path: Path):
    index = shutil.copytree(index_a, tmp_path / "index")
    backend = LocalBackend(index)
    with pytest.raises(RuntimeError, match="stop"):
        with backend.transaction({"model": "B"}):
            backend.feed(corpus("B")["news"], "news", FeedReport())
            raise RuntimeError("stop")
    assert answer(backend) == answer(LocalBackend(index)) == expected["A"]


def test_feeds_in_one_transaction_make_one_generation_and_its_state(index_a: Path, tmp_path: Path):
    index = shutil.copytree(index_a, tmp_path / "index")
    backend = LocalBackend(index)
    before = json.loads((index / POINTER).read_text())["generation"]
    feed_version(backend, "B")
    after = json.loads((index / POINTER).read_text())["generation"]
    assert int(after[1:]) == int(before[1:]) + 1 and generations(index) == {before, after}
    state = LocalBackend(index).state
    assert state["model"] == "B" and (state["news_count"], state["user_count"], state["category_ctr_count"]) == (30, 6, 1)
    assert read_state(index)["model"] == "B"  # the copy in meta.json, for read_state


def test_feeding_nothing_commits_an_empty_index(tmp_path: Path):
    LocalBackend(tmp_path / "index").feed([], "news", FeedReport())
    assert LocalBackend(tmp_path / "index").state == {"news_count": 0}
    with pytest.raises(BackendError, match="the index holds no news"):
        LocalBackend(tmp_path / "index").popular(5)


def test_write_state_replaces_atomically(tmp_path: Path):
    write_state(tmp_path, {"max_norm": 1.5})
    write_state(tmp_path, {"news_ids": ["N1"]})
    assert read_state(tmp_path) == {"max_norm": 1.5, "news_ids": ["N1"]}

    def fail_at_rename(step: str) -> None:
        if step.startswith("rename"):
            raise OSError("disk gone")

    with pytest.raises(OSError):
        write_atomically(tmp_path / "meta.json", b"{}", fail_at_rename)
    assert read_state(tmp_path) == {"max_norm": 1.5, "news_ids": ["N1"]}


# ------------------------------------------------------------------------------- concurrency

def test_readers_see_one_generation_or_the_next_never_a_mix(index_a: Path, expected: dict, tmp_path: Path):
    index, stop = shutil.copytree(index_a, tmp_path / "index"), tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, str(WORKERS), "writer", str(index), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, str(WORKERS), "reader", str(index), "4"], stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        answers = [json.loads(line) for reader in readers for line in reader.communicate(timeout=120)[0].splitlines()]
    finally:
        stop.touch()
        commits = json.loads(writer.communicate(timeout=120)[0])["commits"]
    errors = [a["error"] for a in answers if "error" in a]
    served = [next((v for v in "AB" if a == expected[v]), "mixed") for a in answers if "error" not in a]
    print(f"\n2 readers, 1 writer ({commits} commits): {len(answers)} answers, {served.count('A')} A, "
          f"{served.count('B')} B, {served.count('mixed')} mixed, {len(errors)} errors")
    assert errors == [] and served.count("mixed") == 0
    assert commits >= 2 and served.count("A") and served.count("B")


def test_a_second_writer_waits_then_refuses_clearly(index_a: Path, tmp_path: Path):
    index = shutil.copytree(index_a, tmp_path / "index")
    first = LocalBackend(index)
    with first.transaction():
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match=f"another feed is writing {index} .pid {os.getpid()}"):
            LocalBackend(index, lock_timeout=0.3).feed(corpus("B")["user"], "user", FeedReport())
        assert time.monotonic() - started >= 0.3


def test_a_waiting_writer_starts_from_the_generation_it_waited_for(index_a: Path, tmp_path: Path):
    """No lost update: the second writer, opened before the first commits, keeps the first one's documents."""
    index = shutil.copytree(index_a, tmp_path / "index")
    second = LocalBackend(index)
    holding = threading.Event()

    def first_writer() -> None:
        backend = LocalBackend(index)
        with backend.transaction({"model": "first"}):
            backend.feed([corpus("B")["news"][0]], "news", FeedReport())
            holding.set()
            time.sleep(0.5)

    thread = threading.Thread(target=first_writer)
    thread.start()
    holding.wait(10)
    second.feed([corpus("B")["user"][0]], "user", FeedReport())  # waits for the first writer's commit
    thread.join()
    served = LocalBackend(index)
    fed_user = corpus("B")["user"][0]["fields"]["recall_embedding"]["values"]
    assert served.docs["news"]["N0"]["title"].startswith("B ")
    assert served.docs["user"]["U0"]["recall_embedding"]["values"] == pytest.approx(fed_user, rel=1e-6)
    assert served.docs["news"]["N1"]["title"].startswith("A ") and served.state["model"] == "first"


# ------------------------------------------------------------------------------- damage

def current_file(index: Path, name: str) -> Path:
    return index / json.loads((index / POINTER).read_text())["generation"] / name


@pytest.mark.parametrize("name, damage", [
    ("news.embedding.npy", "flip"), ("news.hnsw.faiss", "flip"), ("user.ids.json", "truncate"), ("user.recall_embedding.npy", "flip"),
    ("MANIFEST.json", "remove"), ("MANIFEST.json", "flip"), ("user.ranking_embedding.npy", "remove"),
])
def test_a_damaged_index_is_reported_never_served(index_a: Path, tmp_path: Path, name: str, damage: str):
    index = shutil.copytree(index_a, tmp_path / "index")
    path = current_file(index, name)
    data = path.read_bytes()
    path.unlink()  # the previous generation may share the file (a hard link): damage this one only
    if damage == "flip":
        path.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:])
    elif damage == "truncate":
        path.write_bytes(data[:len(data) * 197 // 371])  # cut as in the issue
    with pytest.raises(IndexDamagedError, match=f"{path}.*re-run newsrec-feed"):
        LocalBackend(index)


def test_a_damaged_pointer_is_reported(index_a: Path, tmp_path: Path):
    index = shutil.copytree(index_a, tmp_path / "index")
    (index / POINTER).write_text('{"generation": "g0000')
    with pytest.raises(IndexDamagedError, match=f"{index / POINTER} is damaged.*re-run newsrec-feed"):
        LocalBackend(index)


def test_a_full_re_feed_replaces_a_damaged_index(index_a: Path, expected: dict, tmp_path: Path):
    index = shutil.copytree(index_a, tmp_path / "index")
    current_file(index, "MANIFEST.json").unlink()
    backend = LocalBackend(index, replace_unreadable=True)
    assert backend.docs["news"] == {} and backend.state == {}
    feed_version(backend, "B")
    assert answer(LocalBackend(index)) == expected["B"]


def test_an_index_of_the_older_layout_is_refused_then_replaced(index_a: Path, expected: dict, tmp_path: Path):
    index = tmp_path / "index"
    index.mkdir()
    for name in ("news.jsonl", "news.embedding.npy", "news.hnsw.faiss"):
        shutil.copy(current_file(index_a, name), index / name)  # files directly in the directory, no CURRENT
    (index / "user.jsonl").write_text("")
    with pytest.raises(IndexFormatError, match="written by an older newsrec.*re-run newsrec-feed"):
        LocalBackend(index)
    feed_version(LocalBackend(index, replace_unreadable=True), "B")
    assert answer(LocalBackend(index)) == expected["B"] and not (index / "news.jsonl").exists()


def test_a_partial_generation_is_ignored_by_readers_and_removed_by_the_next_writer(index_a: Path, expected: dict,
                                                                                    tmp_path: Path):
    index = shutil.copytree(index_a, tmp_path / "index")
    partial = index / "g999999"
    partial.mkdir()
    (partial / "news.jsonl").write_text('{"id": "N1", "fie')
    assert answer(LocalBackend(index)) == expected["A"]
    feed_version(LocalBackend(index), "B")
    assert not partial.exists() and answer(LocalBackend(index)) == expected["B"]


def test_what_the_commands_create_is_private(fed, trained):
    """Read histories are in the index and the state; models too: 0600 files, 0700 directories (issue #33). The
    mktemp parents are the test's own; what `newsrec-feed` and `newsrec train` created must be the owner's alone."""
    import stat

    for root in (fed, trained):
        paths = [root, *root.rglob("*")]
        assert len(paths) >= 2
        loose = [f"{path} {stat.filemode(path.stat().st_mode)}" for path in paths if path.stat().st_mode & 0o077]
        assert not loose, loose
