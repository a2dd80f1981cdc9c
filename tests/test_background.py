"""`pipeline.background.Background`: a function run in a forked process, its result or its failure back."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from newsrec.pipeline import background
from newsrec.pipeline.background import Background, BackgroundError

# Forking is tested in a fresh interpreter: the only thread there, as in `newsrec demo-data`.
FORKED = """
import os, sys
import numpy as np
from newsrec.pipeline.background import Background, BackgroundError

def total(values):
    return {"sum": float(np.sum(values)), "pid": os.getpid()}

def fails():
    raise ValueError("bad planted arrays")

def dies():
    os._exit(3)

with Background(total, np.arange(10.0)) as job:
    result = job.result()
print(job.forked, result["sum"], result["pid"] != os.getpid())
for function in (fails, dies):
    try:
        with Background(function) as job:
            job.result()
    except BackgroundError as error:
        print(type(error).__name__, repr(str(error)))
"""


def test_a_forked_function_returns_its_result_and_reports_its_failures():
    done = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True, check=True, timeout=60)
    forked, failed, died = done.stdout.splitlines()
    assert forked == "True 45.0 True"  # the sum came from another process
    assert failed.startswith("BackgroundError") and "ValueError: bad planted arrays" in failed
    assert died.startswith("BackgroundError") and "exit code 3" in died


def test_without_fork_the_function_runs_in_the_caller_when_asked():
    calls = []
    with Background(lambda x: calls.append(x) or x * 2, 21, fork=False) as job:
        assert not job.forked and calls == []
        assert job.result() == 42 and calls == [21]


def test_no_fork_while_another_thread_runs():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not background.can_fork()
    finally:
        stop.set()
        other.join()


def test_an_error_in_the_caller_ends_the_child():
    script = """
import time
from newsrec.pipeline.background import Background
try:
    with Background(time.sleep, 60) as job:
        child = job._process
        raise RuntimeError("writing failed")
except RuntimeError:
    pass
print(child.is_alive(), child.exitcode)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["False", "-15"]  # terminated (SIGTERM), not left running for a minute


@pytest.mark.skipif(sys.platform != "linux", reason="fork is used on Linux only")
def test_can_fork_in_a_fresh_interpreter():
    done = subprocess.run([sys.executable, "-c", "from newsrec.pipeline.background import can_fork; print(can_fork())"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_no_fork_inside_a_daemonic_worker():
    script = """
import multiprocessing
from newsrec.pipeline.background import can_fork

def report(queue):
    queue.put(can_fork())

context = multiprocessing.get_context("fork")
queue = context.Queue()
worker = context.Process(target=report, args=(queue,), daemon=True)
worker.start()
print(can_fork(), queue.get(timeout=60))
worker.join()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["True", "False"]  # a daemonic process may not have children
