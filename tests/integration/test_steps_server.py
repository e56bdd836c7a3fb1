"""Where did the request's time go? Step timing through a real uvicorn server (asyncio, uvloop).

The handler of issue 11: two sequential ``asyncio.sleep(0.05)`` (two queries), a 30 ms thread
call, an outgoing ``httpx`` call to a route of the same app, and a synchronous 40 ms stall. Its
record (the JSON API) must name every await site at its line with the time it waited, within
5 ms of what the handler itself measured (time the process was paused by the machine
discounted), and the stall at its line among the slow steps. 50 overlapping requests that await
at distinct lines must each list only their own. Before Python 3.12 the record must say why it
has no steps, and still have the request's own task.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.params import FromPath

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.core.panels.async_profiler.timeline import timeline_of
from debug_toolbar.litestar import DebugToolbarPlugin
from support import ProcessPauses, Rendezvous, fetch_record, marked_line

PREFIX = "/_debug_toolbar"
CONCURRENCY = 50
TOLERANCE_MS = 5.0
LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)]


def line_of(marker: str) -> int:
    return marked_line(__file__, marker)


@get("/local")
async def local() -> dict[str, bool]:
    await asyncio.sleep(0.02)  # the local route's own wait
    return {"local": True}


@get("/warm")
async def warm() -> dict[str, bool]:
    """Start the loop's thread pool: starting its first thread is work, not waiting."""
    await asyncio.to_thread(time.sleep, 0)
    return {"warm": True}


@get("/story")
async def story(state: State) -> dict[str, float]:
    """Issue 11's handler; returns how long each await took, measured here."""
    truth: dict[str, float] = {}
    started = time.perf_counter()
    await asyncio.sleep(0.05)  # first query
    truth["first query"], started = (time.perf_counter() - started) * 1000, time.perf_counter()
    await asyncio.sleep(0.05)  # second query
    truth["second query"], started = (time.perf_counter() - started) * 1000, time.perf_counter()
    await asyncio.to_thread(time.sleep, 0.03)  # thread call
    truth["thread call"] = (time.perf_counter() - started) * 1000
    async with httpx.AsyncClient(base_url=state.base_url, verify=False) as client:
        started = time.perf_counter()
        response = await client.get("/local")  # outgoing call
        truth["outgoing call"] = (time.perf_counter() - started) * 1000
    assert response.json() == {"local": True}
    time.sleep(0.04)  # noqa: ASYNC251  # the stall
    return truth


def waiters_module(folder: Path) -> Any:
    """50 coroutine functions, each awaiting at a line of its own, in an application file."""
    lines = ["import asyncio", ""]
    for number in range(CONCURRENCY):
        lines += [f"async def wait_{number}() -> None:", "    await asyncio.sleep(0.01)", ""]
    path = folder / "steps_waiters.py"
    path.write_text("\n".join(lines))
    spec = importlib.util.spec_from_file_location("steps_waiters_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def waiter_line(number: int) -> int:
    return 4 + 3 * number


@get("/overlap/{number:int}")
async def overlap(number: FromPath[int], state: State) -> dict[str, int]:
    await state.rendezvous.wait()
    wait = getattr(state.waiters, f"wait_{number}")
    await wait()
    await asyncio.create_task(wait())
    return {"number": number}


def build_app(**state: Any) -> Litestar:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel],
        async_profiler_backend="taskfactory",
        max_request_history=CONCURRENCY * 2 + 10,
    )
    return Litestar(
        route_handlers=[local, warm, story, overlap],
        plugins=[DebugToolbarPlugin(config)],
        state=State(state),
        debug=False,
        logging_config=None,  # Litestar's default starts a queue thread per app, never stopped
    )


def suspensions_at(stats: dict[str, Any], lineno: int) -> list[dict[str, Any]]:
    return [
        step
        for step in stats["steps"]["rows"]
        if step["site"] is not None
        and step["site"]["lineno"] == lineno
        and step["site"]["filename"] == __file__
    ]


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.asyncio
async def test_where_the_story_handler_time_went(
    loop_name: str, uvicorn_server: Callable[..., Any]
) -> None:
    app = build_app()
    server = uvicorn_server(app, loop=loop_name)
    app.state.base_url = server.url
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await client.get("/local")  # warm up: imports, the first connection
        await client.get("/warm")
        with ProcessPauses() as pauses:
            response = await client.get("/story")
        assert response.status_code == 200
        truth: dict[str, float] = response.json()
        record = await fetch_record(client, response)
    stats = record["panels"]["AsyncProfilerPanel"]

    # The request's own task: in the record, and the first row (root) of the timeline.
    request_task = stats["request_task"]
    assert request_task["task_id"] == 0
    assert request_task["coro_name"]  # uvicorn's coroutine running the request
    profile = AsyncProfile.from_dict(stats)
    timeline = timeline_of(profile, duration_ms=record["duration_ms"])
    assert (timeline.rows[0].task_id, timeline.rows[0].is_request) == (0, True)

    if STEPS_UNAVAILABLE is not None:
        assert stats["steps_unavailable"] == STEPS_UNAVAILABLE
        assert stats["time_breakdown"] is None
        return
    assert stats["steps_unavailable"] is None
    started_at = record["started_at"]

    def paused(step: dict[str, Any]) -> float:
        return pauses.paused_ms_at(started_at, step["end_ms"], step["waited_ms"])

    rows = stats["steps"]["rows"]
    for marker in ("first query", "second query", "thread call", "outgoing call"):
        waits = suspensions_at(stats, line_of(marker))
        assert waits, f"no await at the {marker} line"
        assert all(step["task_id"] == 0 for step in waits)
        waited = sum(step["waited_ms"] for step in waits)
        discount = sum(paused(step) for step in waits)
        if marker != "outgoing call":  # one suspension: its wait is what the handler timed
            assert len(waits) == 1
            assert abs(waited - truth[marker]) <= TOLERANCE_MS + discount, (marker, truth)
            continue
        # An HTTP call suspends several times; between and around its suspensions the
        # library's own code runs on the loop (running time, not waiting). What the handler
        # timed lies between the waits plus the steps between them, and that plus the steps
        # that led into the first suspension and out of the last.
        between = sum(
            step["duration_ms"]
            for step in rows
            if step["task_id"] == 0 and waits[0]["end_ms"] < step["start_ms"] < waits[-1]["end_ms"]
        )
        [after] = [
            step
            for step in rows
            if step["task_id"] == 0 and step["start_ms"] == waits[-1]["resumed_ms"]
        ]
        around = waits[0]["duration_ms"] + after["duration_ms"]
        low, high = waited + between, waited + between + around
        assert low - TOLERANCE_MS - discount <= truth[marker] <= high + TOLERANCE_MS + discount
    kinds = {
        marker: suspensions_at(stats, line_of(marker))[0]["awaited"]["kind"]
        for marker in ("first query", "thread call", "outgoing call")
    }
    assert kinds == {"first query": "sleep", "thread call": "thread", "outgoing call": "library"}
    outgoing = suspensions_at(stats, line_of("outgoing call"))[0]["awaited"]
    assert outgoing["library"] == "httpx"
    # The other request (the local route) is not this one's: none of its awaits are here.
    assert not suspensions_at(stats, line_of("the local route's own wait"))

    # The stall: a slow step, named at its line by the watchdog's sample.
    [stall] = [step for step in stats["slow_steps"] if step["held_at"] is not None]
    assert stall["held_at"]["lineno"] == line_of("the stall")
    assert stall["task_id"] == 0
    assert stall["duration_ms"] >= 40.0
    assert stall["blocking"] is False

    # The breakdown adds up to the wall time of the request's own task.
    breakdown = stats["time_breakdown"]
    parts = ("running_ms", "waiting_ms", "queued_ms", "blocked_ms", "unrecorded_ms")
    assert sum(breakdown[part] for part in parts) == pytest.approx(breakdown["wall_ms"], abs=1e-6)
    assert breakdown["running_ms"] >= 40.0  # the stall ran on the loop, in the request's task
    rows = {row["lineno"]: row for row in stats["await_sites"] if row["filename"] == __file__}
    assert rows[line_of("first query")]["count"] == 1
    assert rows[line_of("first query")]["awaited"]["label"] == "sleep 50.0 ms"


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.asyncio
async def test_overlapping_requests_each_list_only_their_own_await_sites(
    loop_name: str, uvicorn_server: Callable[..., Any], tmp_path: Path
) -> None:
    waiters = waiters_module(tmp_path)
    app = build_app(rendezvous=Rendezvous(CONCURRENCY), waiters=waiters)
    server = uvicorn_server(app, loop=loop_name)
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.get(f"/overlap/{number}") for number in range(CONCURRENCY))
        )
        assert [r.json()["number"] for r in responses] == list(range(CONCURRENCY))
        records = await asyncio.gather(*(fetch_record(client, r) for r in responses))

    for number, record in enumerate(records):
        stats = record["panels"]["AsyncProfilerPanel"]
        assert stats["request_task"]["task_id"] == 0
        if STEPS_UNAVAILABLE is not None:
            assert stats["steps_unavailable"] == STEPS_UNAVAILABLE
            continue
        waits = [
            (step["task_id"], step["site"]["lineno"])
            for step in stats["steps"]["rows"]
            if step["site"] is not None and step["site"]["filename"] == waiters.__file__
        ]
        # Its own line, once in its own task and once in the task it spawned: nobody else's.
        assert sorted(waits) == [(0, waiter_line(number)), (1, waiter_line(number))]
        task_ids = {task["task_id"] for task in stats["tasks"]}
        assert {step["task_id"] for step in stats["steps"]["rows"]} <= {0} | task_ids
