"""Serving the app with hypercorn (HTTP/1.1 and h2c): in a background thread for tests, or in the foreground.

hypercorn is in the `test` extra only, so it is imported where serving happens, not with the package.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

from newsrec.feed.schema import SCHEMA_DIR
from newsrec.contract_server.app import ClusterView, VespaContractApp

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    """Return once 127.0.0.1:<port> accepts connections; RuntimeError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"contract server not listening on port {port}")


class ContractServer:
    """The app served by hypercorn (HTTP/1.1 + h2c) on 127.0.0.1:<free port>, in a background thread.

    with ContractServer() as server:  # server.url, server.documents, server.requests, server.inject(...)
    """

    def __init__(self, schema_dir: str | Path = SCHEMA_DIR, hold_s: float = 3.0, token: str | None = None,
                 cluster: str = "both", sharing: ContractServer | None = None):
        """`cluster`: the paths served ("both", or one container cluster: "query", "feed"); `sharing`: another
        server whose documents (and faults, records) this one serves, e.g. the feed cluster beside a query one."""
        self.app = sharing.app if sharing is not None else VespaContractApp(schema_dir, hold_s, token)
        self._asgi = ClusterView(self.app, cluster)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # state and fault plan, for assertions
    documents = property(lambda self: self.app.documents)
    put_counts = property(lambda self: self.app.put_counts)
    requests = property(lambda self: self.app.requests)

    def inject(self, target: str, faults: list) -> None:
        self.app.inject(target, faults)

    def start(self) -> ContractServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="vespa-contract")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("contract server did not start")
        wait_listening(self.port)
        return self

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._loop.set_exception_handler(_quiet_cancellation)
        ready.set()
        self._loop.run_until_complete(_serve(self._asgi, self.port, shutdown_trigger=self._stop.wait))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(port: int, hold_s: float = 3.0, schema_dir: str | Path = SCHEMA_DIR) -> None:
    """Serve a fresh app on 127.0.0.1:<port> in the foreground until interrupted."""
    app = VespaContractApp(schema_dir, hold_s=hold_s)
    print(f"listening on http://{HOST}:{port}", flush=True)
    asyncio.run(_serve_quietly(app, port))


async def _serve_quietly(app: VespaContractApp, port: int) -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_cancellation)
    await _serve(app, port)


async def _serve(app: VespaContractApp, port: int, shutdown_trigger=None) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.errorlog = None
    config.accesslog = None
    config.graceful_timeout = 0.2
    config.h2_max_concurrent_streams = 256
    await serve(app, config, shutdown_trigger=shutdown_trigger)


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Connections still open at shutdown are cancelled: not worth a traceback."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)
