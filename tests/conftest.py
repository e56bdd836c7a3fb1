"""Fixtures for the whole suite.

The toolbar changes shared state: the event loop's task factory, a heartbeat and a watchdog
thread per loop, a log handler, yappi (all reference-counted, ``core.shared_hooks``). A leak
there is exactly the bug this project exists to avoid, so every test is checked for it, not
only the profiler's own.

``uvicorn_server`` is a factory shared by the integration and the browser tests:
``server = uvicorn_server(app)`` starts uvicorn for ``app`` in a background thread on a free
port of 127.0.0.1 and returns a ``LiveServer`` (``server.url`` is its base URL); every server
started in a test is stopped at the end of it. Extra keyword arguments go to ``uvicorn.Config``
(for example ``loop="uvloop"``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from pytest_asyncio import is_async_test

from debug_toolbar.core.panels.async_profiler.heartbeat import heartbeats
from debug_toolbar.core.panels.async_profiler.step_monitor import step_monitors
from debug_toolbar.core.panels.async_profiler.task_hooks import task_hooks
from debug_toolbar.core.panels.async_profiler.watchdog import running_watchdogs, stop_watchdogs
from debug_toolbar.core.panels.logging import log_handlers
from debug_toolbar.core.shared_hooks import hooks_in_use


def _loop_scope(item: pytest.Item) -> str:
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") if marker is not None else None
    return str(scope or "function")


def _loop_state(loop: asyncio.AbstractEventLoop) -> tuple[Any, bool]:
    return loop.get_task_factory(), loop.get_debug()


def _yappi_running() -> bool:
    try:
        import yappi
    except ImportError:
        return False
    return bool(yappi.is_running())


@pytest.fixture(autouse=True)
def _no_leaked_instrumentation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves anything the toolbar shares installed or changed.

    The loop's task factory and debug flag (for async tests, the loop pytest-asyncio runs the
    test on: requesting its runner here makes this check run before that loop is closed); every
    shared hook (task factories, heartbeats, log handlers: ``core.shared_hooks``); a watchdog
    thread still watching (a parked one is normal: it is ended here); a yappi run. What leaked
    is cleaned up, so one leak does not fail every following test.
    """
    loop: asyncio.AbstractEventLoop | None = None
    if is_async_test(request.node):
        runner = request.getfixturevalue(f"_{_loop_scope(request.node)}_scoped_runner")
        loop = runner.get_loop()
    before = None if loop is None else _loop_state(loop)
    yield
    problems = []
    if loop is not None and before is not None:
        factory, debug = _loop_state(loop)
        if factory is not before[0]:
            problems.append(f"the loop's task factory changed: {before[0]!r} -> {factory!r}")
        if debug != before[1]:
            problems.append(f"the loop's debug flag changed: {before[1]} -> {debug}")
    watching = [watchdog for watchdog in running_watchdogs() if not watchdog.parked]
    if watching:
        problems.append(f"{len(watching)} watchdog thread(s) still watching a heartbeat")
    # A parked watchdog outlives requests by design (it ends with its loop, at shutdown or at
    # exit); each test's loop is its own, so end them here rather than one per test.
    stop_watchdogs()
    leaked = hooks_in_use()
    if leaked:
        problems.append(f"shared hooks still installed: {leaked}")
        for registry in (task_hooks, heartbeats, log_handlers, step_monitors):
            registry.clear()
    if _yappi_running():
        problems.append("yappi is still running")
        import yappi

        yappi.stop()
        yappi.clear_stats()
    if problems:
        pytest.fail("instrumentation leaked: " + "; ".join(problems), pytrace=False)


# ---------------------------------------------------------------- a real uvicorn server


class LiveServer:
    """uvicorn serving one ASGI app on 127.0.0.1, in a thread of its own.

    The listening socket is bound and put in listening state here, before uvicorn starts, so a
    client can connect at once: the kernel queues the connection until uvicorn accepts it, and
    no test has to poll for the server to be up. It is created with ``IPPROTO_TCP`` named, as a
    socket from ``getaddrinfo`` has it: asyncio sets ``TCP_NODELAY`` only on accepted sockets of
    that protocol, and without it Nagle's algorithm and delayed ACKs add some 40 ms to every
    request that follows another on a kept-alive connection.
    """

    def __init__(self, app: Any, **config: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options: dict[str, Any] = {
            "log_level": "warning",
            "lifespan": "auto",
            "loop": "asyncio",
            "http": "h11",
            "ws": "none",
            "timeout_graceful_shutdown": 5,
        }
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
        if self.thread.is_alive():  # pragma: no cover - a hung server is a test failure
            raise RuntimeError("uvicorn did not stop within 10 s")


@pytest.fixture
def uvicorn_server() -> Iterator[Callable[..., LiveServer]]:
    """Start real uvicorn servers for the test; all are stopped when it ends."""
    servers: list[LiveServer] = []

    def start(app: Any, **config: Any) -> LiveServer:
        server = LiveServer(app, **config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
