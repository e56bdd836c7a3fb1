"""A slow step below the blocking threshold is named at the line that held the loop.

Issue 11's new user saw a 57 ms red bar on the lag strip that nothing explained: creating an
``httpx.AsyncClient()`` loads the CA bundle into an SSL context, synchronously, on the loop.
Through a real uvicorn server (asyncio and uvloop) that stall must be listed among the slow
steps, held at the handler's ``async with httpx.AsyncClient()`` line, as the watchdog sampled
it. Works without step timing too (Python < 3.12): the stall the watchdog saw is then listed on
its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.litestar import DebugToolbarPlugin
from support import fetch_record, marked_line

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)]
LAG_THRESHOLD_MS = 10.0


def line_of(marker: str) -> int:
    return marked_line(__file__, marker)


@get("/client")
async def client_route() -> dict[str, float]:
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=5):  # builds an SSL context
        built_ms = (time.perf_counter() - started) * 1000
    return {"built_ms": built_ms}


def build_app() -> Litestar:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel],
        async_profiler_backend="taskfactory",
        async_event_loop_lag_threshold_ms=LAG_THRESHOLD_MS,
    )
    return Litestar(
        route_handlers=[client_route],
        plugins=[DebugToolbarPlugin(config)],
        debug=False,
        logging_config=None,
    )


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.asyncio
async def test_an_ssl_context_built_on_the_loop_is_named_at_its_line(
    uvicorn_server: Any, loop_name: str
) -> None:
    server = uvicorn_server(build_app(), loop=loop_name)
    line = line_of("builds an SSL context")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await client.get("/client")  # warm up: httpx's first client also imports modules
        response = await client.get("/client")
        assert response.status_code == 200
        built_ms = response.json()["built_ms"]
        record = await fetch_record(client, response)
    stats = record["panels"]["AsyncProfilerPanel"]
    if built_ms < 2 * LAG_THRESHOLD_MS:
        pytest.skip(f"loading the CA bundle took only {built_ms:.1f} ms here: nothing to name")
    held = [
        slow
        for slow in stats["slow_steps"]
        if slow["held_at"] is not None
        and (slow["held_at"]["filename"], slow["held_at"]["lineno"]) == (__file__, line)
    ]
    assert len(held) == 1, stats["slow_steps"]
    [slow] = held
    assert slow["sampled"] is True
    assert slow["held_at"]["function"] == "client_route"
    # It holds the client's whole construction, as the handler timed it (a step runs from
    # resume to suspension; a stall seen without steps from one heartbeat to the next).
    assert slow["duration_ms"] >= built_ms - 1
    # Its stack goes down into httpx, where the SSL context is loaded (in C: no frame below).
    innermost = slow["held_stack"][0]
    assert "httpx" in Path(innermost["filename"]).parts, slow["held_stack"]
