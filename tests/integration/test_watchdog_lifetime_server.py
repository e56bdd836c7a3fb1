"""The blocking-call watchdog's lifetime through real uvicorn: one thread per loop, parked
between requests, ended at the application's lifespan shutdown; never started with the Async
panel off. On asyncio and uvloop, with the plain middleware and the Litestar plugin."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, get

from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.asgi.types import Receive, Scope, Send
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.watchdog import running_watchdogs
from debug_toolbar.litestar import DebugToolbarPlugin

REQUESTS = 1_000


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app that speaks the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@get("/")
async def litestar_route() -> str:
    return "ok"


def build(kind: str, config: DebugToolbarConfig) -> Any:
    if kind == "middleware":
        return DebugToolbarMiddleware(asgi_app, config)
    return Litestar(
        route_handlers=[litestar_route],
        plugins=[DebugToolbarPlugin(config)],
        logging_config=None,
    )


def alive() -> list[Any]:
    return [w for w in running_watchdogs() if w.thread is not None and w.thread.is_alive()]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("kind", ["middleware", "litestar"])
class TestWatchdogLifetime:
    def test_one_thread_for_a_thousand_requests_and_none_after_shutdown(
        self, uvicorn_server: Callable[..., Any], loop: str, kind: str
    ) -> None:
        config = DebugToolbarConfig(panels=[AsyncProfilerPanel])
        server = uvicorn_server(build(kind, config), loop=loop, lifespan="on")
        threads = set()
        with httpx.Client(base_url=server.url) as client:
            for n in range(REQUESTS):
                assert client.get("/").status_code == 200
                if n % 100 == 0:
                    threads.update(w.thread for w in alive())
        threads.update(w.thread for w in alive())
        assert len(threads) == 1  # the same thread all along, parked between requests
        [watchdog] = alive()
        # The server stops the last request's panels after the response left: give it time.
        deadline = time.monotonic() + 2.0
        while not watchdog.parked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchdog.parked
        server.stop()  # lifespan shutdown: the panels let go of what outlives requests
        assert alive() == []

    def test_never_started_with_the_async_panel_off(
        self, uvicorn_server: Callable[..., Any], loop: str, kind: str
    ) -> None:
        server = uvicorn_server(build(kind, DebugToolbarConfig()), loop=loop, lifespan="on")
        with httpx.Client(base_url=server.url) as client:
            for _ in range(50):
                assert client.get("/").status_code == 200
        assert alive() == []
