"""The history page's Async columns after real requests, through uvicorn (asyncio, uvloop).

A few requests that spawn tasks, block the loop and await at known lines; then the history
page: each row (found by the request's id) shows that request's tasks, blocking calls and, with
steps (Python 3.12+), its slowest await at the handler's line, as the record's own summary
says. The JSON API keeps every field it had; the summary gains ``slowest_await``.
"""

from __future__ import annotations

import asyncio
import html as html_module
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import FromPath

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.core.panels.async_profiler.steps import format_ms
from debug_toolbar.litestar import DebugToolbarPlugin
from support import marked_line

PREFIX = "/_debug_toolbar"
LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)]
SUMMARY_FIELDS = {
    "total_tasks",
    "completed",
    "cancelled",
    "failed",
    "pending",
    "dropped",
    "profiling_overhead_ms",
    "blocking_calls",
    "suffered_blocking_calls",
    "max_lag_ms",
    "overhead_estimated",
}
"""The Async panel's summary before the history columns: every field stays."""
LIST_FIELDS = {
    "request_id",
    "method",
    "path",
    "query_string",
    "status_code",
    "duration_ms",
    "started_at",
    "error",
    "body_cut_at",
    "client_disconnected",
}
"""A request in the JSON API's list."""


def line_of(marker: str) -> int:
    return marked_line(__file__, marker)


async def child() -> None:
    await asyncio.sleep(0)


@get("/spawn/{count:int}")
async def spawn(count: FromPath[int]) -> dict[str, int]:
    await asyncio.gather(*(asyncio.create_task(child()) for _ in range(count)))
    await asyncio.sleep(0.03)  # the spawn route's wait
    return {"count": count}


@get("/block")
async def block() -> dict[str, bool]:
    time.sleep(0.15)  # noqa: ASYNC251  # blocks the loop
    await asyncio.sleep(0.02)  # the block route's wait
    return {"blocked": True}


@get("/quiet")
async def quiet() -> dict[str, bool]:
    return {"quiet": True}


def build_app() -> Litestar:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory"
    )
    return Litestar(
        route_handlers=[spawn, block, quiet],
        plugins=[DebugToolbarPlugin(config)],
        debug=False,
        logging_config=None,  # Litestar's default starts a queue thread per app, never stopped
    )


def row_cells(page: str, request_id: str) -> dict[str, tuple[str, str]]:
    """``{column: (text shown, tooltip)}`` of the Async columns in one request's row."""
    row = re.search(rf'<tr data-request-id="{request_id}">(.*?)</tr>', page, re.S)
    assert row is not None, f"the history has no row for {request_id}"
    cells = {}
    for key, attributes, content in re.findall(
        r'<td[^>]*data-column="([^"]+)"([^>]*)>(.*?)</td>', row.group(1), re.S
    ):
        title = re.search(r'title="([^"]*)"', attributes)
        text = " ".join(re.sub(r"<[^>]+>", " ", content).split())
        cells[key] = (
            html_module.unescape(text),
            "" if title is None else html_module.unescape(title.group(1)),
        )
    return cells


class TestHistoryColumns:
    @pytest.mark.parametrize("loop_name", LOOPS)
    @pytest.mark.asyncio
    async def test_each_row_tells_its_requests_async_story(
        self, loop_name: str, uvicorn_server: Callable[..., Any]
    ) -> None:
        server = uvicorn_server(build_app(), loop=loop_name)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            await client.get("/quiet")  # warm up: imports, the first connection
            responses = {
                "spawn": await client.get("/spawn/3"),
                "block": await client.get("/block"),
                "quiet": await client.get("/quiet"),
            }
            ids = {name: r.headers[REQUEST_ID_HEADER] for name, r in responses.items()}
            summaries = {}
            for name, request_id in ids.items():
                record = (await client.get(f"{PREFIX}/api/requests/{request_id}")).json()
                summaries[name] = record["panels"]["AsyncProfilerPanel"]["summary"]
            page = (await client.get(f"{PREFIX}/")).text
            listed = (await client.get(f"{PREFIX}/api/requests")).json()["requests"]

        headings = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', page)
        assert headings[-3:] == ["Tasks", "Blocking", "Slowest await"]
        cells = {name: row_cells(page, request_id) for name, request_id in ids.items()}
        assert [cells[name]["tasks"][0] for name in ("spawn", "block", "quiet")] == ["3", "0", "0"]
        assert cells["spawn"]["tasks"][1] == "3 completed"
        # Blocking: the /block request's own stall, as its record counts it (a starved
        # machine may add a stall, never take this one away); the row says the same.
        assert summaries["block"]["blocking_calls"] >= 1
        for name, summary in summaries.items():
            own, suffered = summary["blocking_calls"], summary["suffered_blocking_calls"]
            shown = f"{own} +{suffered} suffered" if suffered else str(own)
            assert cells[name]["blocking"][0] == shown, name
            assert SUMMARY_FIELDS | {"slowest_await"} == set(summary)
        assert all(set(item) >= LIST_FIELDS for item in listed)

        if STEPS_UNAVAILABLE is not None:
            for name in ids:
                assert summaries[name]["slowest_await"] is None
                assert cells[name]["slowest_await"] == ("–", f"No steps: {STEPS_UNAVAILABLE}")
            return
        for name, marker, at_least in (
            ("spawn", "the spawn route's wait", 30.0),
            ("block", "the block route's wait", 20.0),
        ):
            slowest = summaries[name]["slowest_await"]
            assert (slowest["filename"], slowest["lineno"]) == (__file__, line_of(marker))
            # From the suspension to the resumption: the timer was armed a hair before the
            # task suspended, and uvloop fires on its millisecond clock, so maybe a bit less.
            assert slowest["duration_ms"] >= at_least - 1.0
            assert slowest["awaited"] == f"sleep {format_ms(at_least)}"
            text, title = cells[name]["slowest_await"]
            assert (
                text
                == f"{format_ms(slowest['duration_ms'])} {Path(__file__).name}:{line_of(marker)}"
            )
            assert f"at {__file__}:{line_of(marker)}" in title
