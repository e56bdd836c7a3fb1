"""Blocking-call detection through a real uvicorn server (asyncio and uvloop) and the middleware.

A probe panel defined here composes task tracking, the detector and the lag monitor the way the
Async Profiler panel does, from ``process_request`` / ``process_response`` in the request's own
task; the stats are read back through the toolbar's JSON API. Two requests overlap on the
server's loop: the one that calls ``time.sleep`` is the culprit, the other one the victim.
"""

from __future__ import annotations

# Blocking the loop from async code is exactly what these tests do.
# ruff: noqa: ASYNC251
import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.asgi.types import Receive, Scope, Send
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.heartbeat import (
    installed_heartbeats,
)
from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking
from debug_toolbar.core.panels.async_profiler.watchdog import running_watchdogs
from support import ProcessPauses

BLOCK_S = 0.15
THRESHOLD_MS = 40.0
SOURCE = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> int:
    lines = [n for n, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(lines) == 1, f"marker {marker!r} found on lines {lines}"
    return lines[0]


class BlockingProbePanel(Panel):
    """What the Async Profiler panel does for blocking calls and lag, and nothing else."""

    title = "Blocking probe"
    has_content = False

    def __init__(self, toolbar: Any) -> None:
        super().__init__(toolbar)
        config, context = self.config, self.context
        self.tracking = TaskTracking()
        self.detector = BlockingCallDetector(
            threshold_ms=config.async_blocking_threshold_ms,
            interval_ms=config.async_lag_sample_interval_ms,
            max_stack_depth=config.async_max_stack_depth,
            owner=context,
            owns_task=self.tracking.recorder.owns,
            origin_ns=context.start_ns,
        )
        self.monitor = EventLoopLagMonitor(
            threshold_ms=config.async_event_loop_lag_threshold_ms,
            interval_ms=config.async_lag_sample_interval_ms,
            origin_ns=context.start_ns,
        )

    async def process_request(self, context: RequestContext) -> None:
        loop = asyncio.get_running_loop()
        self.tracking.start(loop)
        self.detector.install(loop)
        self.monitor.start(loop)

    async def process_response(self, context: RequestContext) -> None:
        self.monitor.stop()
        self.detector.uninstall()
        self.tracking.stop()

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        return {
            "blocking_calls": [call.to_dict() for call in self.detector.get_stats()],
            "lag": self.monitor.get_stats().to_dict(),
        }


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app: /block blocks the loop, /wait awaits, /last blocks after responding."""
    path = scope["path"]
    if path == "/block":
        await asyncio.sleep(0.02)
        time.sleep(BLOCK_S)  # block: server handler
    elif path == "/wait":
        await asyncio.sleep(0.35)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
    if path == "/last":
        time.sleep(BLOCK_S)  # block: after the response


@contextmanager
def serve(asgi_app: Any, loop: str) -> Iterator[str]:
    """Run uvicorn on 127.0.0.1 in a thread, on a socket bound here (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        asgi_app, loop=loop, lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn took too long to start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def pauses() -> Iterator[ProcessPauses]:
    with ProcessPauses() as watcher:
        yield watcher


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, DebugToolbarMiddleware]]:
    config = DebugToolbarConfig(
        panels=[BlockingProbePanel],
        async_blocking_threshold_ms=THRESHOLD_MS,
        async_event_loop_lag_threshold_ms=5.0,
    )
    middleware = DebugToolbarMiddleware(app, config)
    with serve(middleware, request.param) as url:
        yield url, middleware
    # lifespan="off": no shutdown told the panels, so the loop's watchdog is parked, not gone.
    assert [w for w in running_watchdogs() if not w.parked] == []
    assert installed_heartbeats() == 0


@pytest_asyncio.fixture
async def client(server: tuple[str, DebugToolbarMiddleware]) -> AsyncIterator[httpx.AsyncClient]:
    url, _middleware = server
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def probe_stats(
    client: httpx.AsyncClient, response: httpx.Response, pauses: ProcessPauses
) -> dict[str, Any]:
    """The probe panel's stats for ``response``'s request, without the stalls that a paused
    process (a starved CI machine) explains: the tests are about the stalls their code causes."""
    request_id = response.headers[REQUEST_ID_HEADER]
    record = (await client.get(f"/_debug_toolbar/api/requests/{request_id}")).json()
    assert record["panel_errors"] == {}
    stats: dict[str, Any] = record["panels"]["BlockingProbePanel"]
    stats["blocking_calls"] = [
        call
        for call in stats["blocking_calls"]
        if not pauses.explains(record["started_at"], call, THRESHOLD_MS)
    ]
    return stats


class TestThroughARealServer:
    @pytest.mark.asyncio
    async def test_culprit_and_victim(
        self, client: httpx.AsyncClient, pauses: ProcessPauses
    ) -> None:
        async def blocking_request() -> httpx.Response:
            await asyncio.sleep(0.08)  # the waiting request is in flight by then
            return await client.post("/block")

        waiting, blocking = await asyncio.gather(client.get("/wait"), blocking_request())
        assert (waiting.status_code, blocking.status_code) == (200, 200)
        culprit_stats = await probe_stats(client, blocking, pauses)
        victim_stats = await probe_stats(client, waiting, pauses)

        [own] = culprit_stats["blocking_calls"]
        assert own["culprit"] is True
        assert (own["filename"], own["lineno"]) == (__file__, line_of("block: server handler"))
        assert own["function"] == "app"
        assert own["code"] == "time.sleep(BLOCK_S)  # block: server handler"
        assert own["duration_ms"] >= BLOCK_S * 1000 - 1

        [suffered] = victim_stats["blocking_calls"]
        assert suffered["culprit"] == {
            "request_id": blocking.headers[REQUEST_ID_HEADER],
            "method": "POST",
            "path": "/block",
        }
        assert suffered["lineno"] == own["lineno"]
        # The victim's lag shows the stall too, on its own time axis.
        assert victim_stats["lag"]["max_lag_ms"] >= BLOCK_S * 1000 - 15

    @pytest.mark.asyncio
    async def test_a_block_after_the_response_is_reported(
        self, client: httpx.AsyncClient, pauses: ProcessPauses
    ) -> None:
        response = await client.get("/last")
        assert response.text == "done"
        stats = await probe_stats(client, response, pauses)
        [call] = stats["blocking_calls"]
        assert call["culprit"] is True
        assert call["lineno"] == line_of("block: after the response")
        assert call["duration_ms"] >= BLOCK_S * 1000 - 1

    @pytest.mark.asyncio
    async def test_fast_requests_report_nothing(
        self, client: httpx.AsyncClient, pauses: ProcessPauses
    ) -> None:
        responses = await asyncio.gather(*(client.get("/fast") for _ in range(10)))
        for response in responses:
            stats = await probe_stats(client, response, pauses)
            assert stats["blocking_calls"] == []
