"""The Async panel's page for a real request: where its time went, its await sites, its slow step.

A Litestar handler with two sleeps, a thread call and a short synchronous stall runs through the
toolbar (in process, over ``httpx.ASGITransport``); the panel's HTML is fetched as the toolbar
fetches it. With step timing (Python 3.12+), the page has the breakdown whose shown figures add
up to the shown wall time, one ``dt-async-site-K`` row per await site in the JSON API's order
(the contract with the timeline's segments) with the handler's lines among them, and the stall
among the slow steps at its line. Before 3.12 the page says why there is no breakdown.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.litestar import DebugToolbarPlugin
from support import HtmlNode, html_tree, marked_line

PREFIX = "/_debug_toolbar"
SOURCE = Path(__file__).read_text().splitlines()
FILENAME = Path(__file__).name


def line_of(marker: str) -> int:
    return marked_line(__file__, marker)


@get("/warm")
async def warm() -> dict[str, bool]:
    """Start the loop's thread pool: starting its first thread is work, not waiting."""
    await asyncio.to_thread(time.sleep, 0)
    return {"warm": True}


@get("/handler")
async def handler() -> dict[str, bool]:
    await asyncio.sleep(0.03)  # first sleep
    await asyncio.sleep(0.01)  # second sleep
    await asyncio.to_thread(time.sleep, 0.02)  # thread call
    time.sleep(0.03)  # noqa: ASYNC251  # the stall
    return {"done": True}


def build_app() -> Litestar:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory"
    )
    return Litestar(
        route_handlers=[warm, handler],
        plugins=[DebugToolbarPlugin(config)],
        debug=False,
        logging_config=None,  # Litestar's default starts a queue thread per app, never stopped
    )


async def page_and_record() -> tuple[HtmlNode, dict[str, Any]]:
    transport = httpx.ASGITransport(app=build_app(), client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        await client.get("/warm")
        response = await asyncio.wait_for(client.get("/handler"), 30)
        assert response.json() == {"done": True}
        request_id = response.headers[REQUEST_ID_HEADER]
        fragment = await client.get(f"{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel")
        record = await client.get(f"{PREFIX}/api/requests/{request_id}")
    assert fragment.status_code == 200
    assert record.status_code == 200
    stats: dict[str, Any] = record.json()["panels"]["AsyncProfilerPanel"]
    return html_tree(fragment.text), stats


def figures(text: str) -> list[float]:
    return [float(value.replace(",", "")) for value in re.findall(r"([\d,]+\.\d) ms", text)]


@pytest.mark.asyncio
async def test_the_page_of_a_real_request() -> None:
    page, stats = await page_and_record()
    section = page.find("dt-async-steps")

    if STEPS_UNAVAILABLE is not None:
        assert section.find("dt-async-steps-note").text() == (
            f"No time breakdown for this request: {STEPS_UNAVAILABLE}."
        )
        assert page.find_all("dt-async-site") == []
        return

    # The breakdown: the shown parts add up to the shown wall time.
    *parts, wall = figures(section.find("dt-async-steps-sum").text())
    assert len(parts) == 4  # running, waiting, queued, blocked
    assert round(sum(parts), 1) == wall
    assert wall == round(stats["time_breakdown"]["wall_ms"], 1)
    assert len(section.find("dt-async-steps-bar").find_all("dt-async-steps-seg")) >= 2

    # One row per await site, in the JSON API's order, ids dt-async-site-0, -1, ...
    rows = page.find_all("dt-async-site")
    sites = stats["await_sites"]
    assert [row.attrs["id"] for row in rows] == [f"dt-async-site-{k}" for k in range(len(sites))]
    for row, site in zip(rows, sites, strict=True):
        code = row.find("dt-async-site-where").elements[0]
        assert code.attrs["title"] == f"{site['filename']}:{site['lineno']}"
    ours = {
        int(code.text().rsplit(":", 1)[1]): row
        for row in rows
        for code in row.find("dt-async-site-where").elements[:1]
        if code.text().startswith(f"{FILENAME}:")
    }
    assert sorted(ours) == [line_of("first sleep"), line_of("second sleep"), line_of("thread call")]
    first = ours[line_of("first sleep")]
    assert first.find("dt-async-site-what").text() == "sleep 30.0 ms"
    [source] = [node for node in first.find("dt-async-site-body").elements if node.tag == "pre"]
    assert source.children == [SOURCE[line_of("first sleep") - 1].strip()]
    [stack] = first.find_all("dt-stack")
    assert stack.elements[0].text().startswith(f"{__file__}:{line_of('first sleep')} in handler")
    assert ours[line_of("thread call")].find("dt-async-site-what").text() == "thread pool"

    # The stall: a slow step (not a blocking call), held at its line.
    [stall] = [
        step
        for step in page.find("dt-async-slow").find_all("dt-async-slow-step")
        if f"held the loop at {FILENAME}:{line_of('the stall')} in handler"
        in step.find("dt-async-slow-head").text()
    ]
    assert figures(stall.find("dt-badge").text())[0] >= 30.0
