"""The Async panel's ``Server-Timing`` header, through a real uvicorn server (asyncio, uvloop).

A JSON route gets no toolbar, so the header is how the browser's network tab shows where its
time went. Checked on the wire: the header is there on profiled responses (JSON and HTML) with
the tasks spawned so far; with steps (Python 3.12+) ``run``, ``wait``, ``queued`` and
``blocked`` add up to the request task's time up to the response's start, as the record's own
figures give it, and a 50 ms sleep shows as at least 50 ms of waiting. Without steps the header
says only what is known (``tasks``). The option off, a panel turned off, an excluded path: no
header. An app's own ``Server-Timing`` header is kept, before the toolbar's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, MediaType, get
from litestar.response import Response

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.litestar import DebugToolbarPlugin
from support import fetch_record

PREFIX = "/_debug_toolbar"
LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)]
BREAKDOWN = ("run", "wait", "queued", "blocked")
_METRIC = re.compile(
    r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)((?:\s*;\s*[A-Za-z]+=(?:\"(?:[^\"\\]|\\.)*\"|[^;,\s]*))*)\s*(?:,|$)"
)
_PARAM = re.compile(r";\s*([A-Za-z]+)=(\"(?:[^\"\\]|\\.)*\"|[^;,\s]*)")


def parse_server_timing(value: str) -> dict[str, dict[str, str]]:
    """``{metric: {param: value}}`` of one header value (quoted values unquoted)."""
    metrics: dict[str, dict[str, str]] = {}
    position = 0
    while position < len(value):
        match = _METRIC.match(value, position)
        assert match is not None, f"not a Server-Timing value at {position}: {value!r}"
        params = {
            name: re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
            for name, raw in _PARAM.findall(match.group(2))
        }
        metrics[match.group(1)] = params
        position = match.end()
    return metrics


async def child() -> None:
    await asyncio.sleep(0)


@get("/json")
async def sleepy_json() -> dict[str, bool]:
    await asyncio.gather(asyncio.create_task(child()), asyncio.create_task(child()))
    await asyncio.sleep(0.05)
    return {"ok": True}


@get("/page", media_type=MediaType.HTML)
async def page() -> str:
    await asyncio.create_task(child())
    return "<!DOCTYPE html><html><body><p>page</p></body></html>"


@get("/own-timing")
async def own_timing() -> Response[dict[str, bool]]:
    return Response({"ok": True}, headers={"Server-Timing": 'db;dur=1.5;desc="the app\'s"'})


@get("/skip/json")
async def skipped() -> dict[str, bool]:
    await asyncio.create_task(child())
    return {"ok": True}


def build_app(**options: Any) -> Litestar:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel],
        async_profiler_backend="taskfactory",
        exclude_paths=["/skip"],
        **options,
    )
    return Litestar(
        route_handlers=[sleepy_json, page, own_timing, skipped],
        plugins=[DebugToolbarPlugin(config)],
        debug=False,
        logging_config=None,  # Litestar's default starts a queue thread per app, never stopped
    )


def toolbar_timing(response: httpx.Response) -> dict[str, dict[str, str]]:
    """The toolbar's Server-Timing header: the last one (an app's own comes first)."""
    values = response.headers.get_list("server-timing")
    assert values, "no Server-Timing header"
    return parse_server_timing(values[-1])


class TestServerTimingOnTheWire:
    @pytest.mark.parametrize("loop_name", LOOPS)
    @pytest.mark.asyncio
    async def test_a_json_route_tells_its_breakdown(
        self, loop_name: str, uvicorn_server: Callable[..., Any]
    ) -> None:
        server = uvicorn_server(build_app(), loop=loop_name)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            await client.get("/json")  # warm up: imports, the first connection
            response = await client.get("/json")
            assert response.status_code == 200
            assert response.json() == {"ok": True}
            record = await fetch_record(client, response)
        metrics = toolbar_timing(response)
        assert metrics["tasks"] == {"desc": "2 tasks spawned"}  # a count: no dur

        if STEPS_UNAVAILABLE is not None:
            # Before Python 3.12 only the count is known: nothing else is said.
            assert list(metrics) == ["tasks"]
            return
        assert list(metrics) == [*BREAKDOWN, "tasks"]
        parts = {name: float(metrics[name]["dur"]) for name in BREAKDOWN}
        assert all(metrics[name]["desc"] for name in BREAKDOWN)
        # The 50 ms sleep, at least (its wait lasts until its timer was due; any lateness is
        # queued). libuv's timers have a whole millisecond's grain: on uvloop the sleep may
        # end up to 1 ms early.
        assert parts["wait"] >= 49.0
        assert all(value >= 0 for value in parts.values())
        # The parts add up to the request task's time from the start of profiling to the
        # response's start, as the record measured both (the Timer panel, the request task).
        started = record["panels"]["AsyncProfilerPanel"]["request_task"]["start_ms"]
        response_start = record["panels"]["TimerPanel"]["response_start_ms"]
        assert sum(parts.values()) == pytest.approx(response_start - started, abs=2.0)

    @pytest.mark.parametrize("loop_name", LOOPS)
    @pytest.mark.asyncio
    async def test_html_pages_and_the_apps_own_header(
        self, loop_name: str, uvicorn_server: Callable[..., Any]
    ) -> None:
        server = uvicorn_server(build_app(), loop=loop_name)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            html = await client.get("/page")
            own = await client.get("/own-timing")
        assert "dt-toolbar" in html.text  # the toolbar is there, and the header too
        assert toolbar_timing(html)["tasks"] == {"desc": "1 task spawned"}
        # The app's header is kept as it was, first; the toolbar's follows it.
        values = own.headers.get_list("server-timing")
        assert len(values) == 2
        assert values[0] == 'db;dur=1.5;desc="the app\'s"'
        assert parse_server_timing(values[1])["tasks"] == {"desc": "0 tasks spawned"}

    @pytest.mark.asyncio
    async def test_no_header_where_nothing_is_profiled(
        self, uvicorn_server: Callable[..., Any]
    ) -> None:
        on = uvicorn_server(build_app())
        off = uvicorn_server(build_app(async_server_timing=False))
        async with httpx.AsyncClient(base_url=on.url, timeout=30) as client:
            excluded = await client.get("/skip/json")
            panel_off = await client.get(
                "/json",
                headers={"cookie": f"{DISABLED_PANELS_COOKIE}={AsyncProfilerPanel.panel_id}"},
            )
            profiled = await client.get("/json")
        async with httpx.AsyncClient(base_url=off.url, timeout=30) as client:
            option_off = await client.get("/json")
        assert "server-timing" in profiled.headers  # the same server does add it
        for response in (excluded, panel_off, option_off):
            assert response.status_code == 200
            assert "server-timing" not in response.headers
        assert REQUEST_ID_HEADER not in excluded.headers  # not profiled at all
        assert REQUEST_ID_HEADER in panel_off.headers  # profiled, but not by the Async panel
        assert REQUEST_ID_HEADER in option_off.headers
