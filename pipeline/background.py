"""Run one numpy-heavy function in a forked process beside the caller's own (Python-heavy) work.

`demo-data` writes its files in pure Python while world v2's planted truth is numpy over the same
arrays. In a thread the two share the GIL: the truth's many short numpy calls each wait for the
writer to let go of it, and it took twice its own time. A forked child shares the arrays copy-on-write
(nothing is pickled on the way in; only the small result comes back through a pipe) and has a core
of its own.

Fork is used only where it is safe and cheap: Linux, and no other Python thread running (a lock held
by another thread at the fork would stay held forever in the child), outside daemonic workers. Anywhere else the function runs
in the caller, when its result is asked for: the same result, serially.

    with Background(function, *args) as truth:
        ...                       # the caller's work
        value = truth.result()    # re-raises the child's error; BackgroundError if the child died
"""
from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import traceback
from typing import Any, Callable

from newsrec.pipeline.errors import NewsrecError


class BackgroundError(NewsrecError):
    """The forked process failed or died (killed, out of memory) before returning its result."""


def can_fork() -> bool:
    """Linux, no other Python thread, and not a daemonic multiprocessing worker (which may not have children)."""
    return sys.platform == "linux" and threading.active_count() == 1 and not multiprocessing.current_process().daemon


class Background:
    def __init__(self, function: Callable[..., Any], *args: Any, fork: bool = True):
        """`fork=False`: always run in the caller (work too small to be worth a process)."""
        self._function, self._args = function, args
        self._process = self._receiver = None
        if fork and can_fork():
            context = multiprocessing.get_context("fork")
            self._receiver, sender = context.Pipe(duplex=False)
            self._process = context.Process(target=_child, args=(sender, function, args), daemon=True,
                                            name=f"newsrec-{function.__name__}")
            self._process.start()  # flushes stdout and stderr first: nothing buffered is written twice
            sender.close()  # the child holds the only writer: its death ends the pipe (EOFError below)

    @property
    def forked(self) -> bool:
        return self._process is not None

    def result(self) -> Any:
        if self._process is None:
            return self._function(*self._args)
        try:
            status, value = self._receiver.recv()
        except EOFError:
            self._process.join()
            raise BackgroundError(f"{self._process.name} (pid {self._process.pid}) died with exit code "
                                  f"{self._process.exitcode} before returning its result") from None
        self._process.join()
        if status == "error":
            raise BackgroundError(f"{self._process.name} failed:\n{value}")
        return value

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._process is not None:
            if self._process.is_alive():  # the caller failed first: the result is not wanted any more
                self._process.terminate()
            self._process.join()
            self._receiver.close()


def _child(sender, function: Callable[..., Any], args: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: its __exit__ ends this process
    try:
        message = ("ok", function(*args))
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        message = ("error", traceback.format_exc())
    try:
        sender.send(message)
    except BrokenPipeError:  # the parent is gone: nobody wants the result
        pass
    finally:
        sender.close()
