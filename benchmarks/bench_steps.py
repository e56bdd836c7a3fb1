"""What step timing costs (issue 11): per step in process, and end to end through uvicorn.

Step timing needs Python 3.12+ (``sys.monitoring``). On an older interpreter (the project's
``.venv`` may be one) this module runs itself with the first ``.venv-3.13`` or ``.venv-3.12``
interpreter of the repository (``make test-all`` creates them) and reports its figures; with
neither it says so and returns nothing.

**Per step** (in process, asyncio and uvloop): a request task, its tasks tracked as the panel
tracks them, runs a handler ``HANDLER_DEPTH`` coroutines deep that awaits ``asyncio.sleep(0)``
``STEPS`` times. Each await is one step ending in a suspension whose await site is found at
the bottom of a 16-coroutine chain: about what a Litestar handler has under uvicorn (13). Two
variants, in rotating order in one loop, medians over rounds: task tracking alone, and task
tracking with step timing. The difference per step is what a step with its await site costs
(goal: at most 3 µs). Timed in CPU time of the loop's thread (``time.thread_time_ns``): the
work is all on that thread, and on a shared machine wall time mostly measures the neighbours.
Both the medians and the best rounds are given: on a busy shared machine the neighbours slow
some rounds down (caches, frequency), and the best round is the closest to the cost itself.
The same for gathers of 100 trivial tasks (one step each, which starts and returns): the cost
per task.

**End to end**: the routes of ``bench_async_panel`` (``/noop``; ``/sleeps``: three sequential
awaits, ``asyncio.sleep`` 20 + 20 + 30 ms; ``/gather``: 100 trivial tasks), each variant served
by uvicorn in a process of its own: the toolbar without the Async panel (the reference), the
panel with step timing off, the panel with its defaults (step timing on). One minimal
keep-alive client per server, every variant once per round in a fresh random order, p50
latencies. Goals (issue 11), step timing on / reference: noop <= 1.10x, sleeps <= 1.03x,
gather <= 2.0x. Also printed: on / off, what step timing alone adds. At the end the last
request's record is read from the JSON API, to check that its steps were really timed.

**What the step outputs cost per request** (in process): the ``Server-Timing`` header, computed
on every profiled response from the live recorder (``AsyncRequestProfiler.progress`` and its
formatting), and the slowest await the history lists (``step_report.slowest_await``, computed
at ``stop`` for the record's head), for a request task of 3, 100 and 2,000 awaits (and a gather
of 10 tasks, whose steps neither reads). Both cost per step of the request's own task only.
Timed in CPU time of the loop's thread, as the per-step figures.

``BENCH_SCALE`` (a float, default 1) scales every count; ``BENCH_LOOPS=asyncio`` (or
``uvloop``) runs one loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import Result
from benchmarks._servers import HttpConnection, UvicornProcess
from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler
from debug_toolbar.core.panels.async_profiler.server_timing import server_timing_value
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.core.panels.async_profiler.step_recorder import StepRecorder
from debug_toolbar.core.panels.async_profiler.step_report import slowest_await
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.watchdog import stop_watchdogs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from debug_toolbar.asgi.types import ASGIApp, Receive, Scope, Send

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency on POSIX
    uvloop = None  # type: ignore[assignment]

__all__ = ("app_steps_off", "app_steps_on", "app_toolbar", "run")

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)


def _scaled(count: float) -> int:
    return max(1, round(count * SCALE))


REPO = Path(__file__).resolve().parents[1]
HANDLER_DEPTH = 14
STEPS = 2_000
GATHER_SIZE = 100
GATHERS = 10
MICRO_ROUNDS = _scaled(40)
SLEEPS_S = (0.02, 0.02, 0.03)
WARMUP = 30
NOOP_ROUNDS = _scaled(1_000)
GATHER_ROUNDS = _scaled(500)
SLEEP_ROUNDS = _scaled(40)
SEED = 11
REQUEST_ID_HEADER = "x-debug-toolbar-request-id"
RESULTS_MARKER = "bench_steps results: "
_MODULE = "benchmarks.bench_steps"

OUTPUT_AWAITS = (3, 100, 2_000)
OUTPUT_CALLS = _scaled(2_000)
OUTPUT_ROUNDS = 7

GOAL_STEP_US = 3.0
GOAL_NOOP = 1.10
GOAL_SLEEPS = 1.03
GOAL_GATHER = 2.0

# ------------------------------------------------------------------------------ per step


async def _trivial() -> None:
    return None


async def _awaits() -> None:
    for _ in range(STEPS):
        await asyncio.sleep(0)


async def _gathers() -> None:
    for _ in range(GATHERS):
        await asyncio.gather(*(_trivial() for _ in range(GATHER_SIZE)))


async def _nested(depth: int, work: Callable[[], Awaitable[None]]) -> None:
    if depth:
        await _nested(depth - 1, work)
    else:
        await work()


async def _sample(work: Callable[[], Awaitable[None]], timed: bool) -> tuple[int, int]:
    """One request in its own task: tasks tracked, steps timed or not; (ns, steps)."""

    async def request() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        backend = TaskFactoryBackend(
            max_tasks=GATHER_SIZE * GATHERS, origin_ns=time.perf_counter_ns()
        )
        backend.start(loop)
        tasks = backend.tracking.recorder
        steps = StepRecorder(max_steps=1_000_000) if timed else None
        if steps is not None:
            steps.start(asyncio.current_task(), tasks.live)
            tasks.steps = steps
        try:
            started = time.thread_time_ns()
            await _nested(HANDLER_DEPTH, work)
            elapsed = time.thread_time_ns() - started
        finally:
            tasks.steps = None
            if steps is not None:
                steps.stop()
            backend.stop()
        return elapsed, 0 if steps is None else len(steps.rows)

    return await asyncio.create_task(request())


async def _micro(work: Callable[[], Awaitable[None]]) -> dict[bool, list[tuple[int, int]]]:
    samples: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
    for timed in (False, True):  # warm-up
        await _sample(work, timed)
    for round_index in range(MICRO_ROUNDS):
        order = (False, True) if round_index % 2 else (True, False)
        for timed in order:
            samples[timed].append(await _sample(work, timed))
    return samples


def _per_unit_ns(
    samples: dict[bool, list[tuple[int, int]]], units: int, pick: Callable[[list[int]], float]
) -> tuple[float, float]:
    off = pick([elapsed for elapsed, _ in samples[False]]) / units
    on = pick([elapsed for elapsed, _ in samples[True]]) / units
    return off, on


def _micro_run(loop_name: str, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> list[Result]:
    figures = {}
    best = {}
    for label, work, units in (
        ("awaits", _awaits, STEPS),
        ("gathers", _gathers, GATHER_SIZE * GATHERS),
    ):
        loop = new_loop()
        try:
            samples = loop.run_until_complete(_micro(work))
        finally:
            loop.close()
        recorded = {count for _elapsed, count in samples[True]}
        expected = STEPS + 1 if label == "awaits" else GATHERS + 1 + GATHER_SIZE * GATHERS
        assert recorded == {expected}, (label, recorded, expected)  # no silent no-op
        figures[label] = _per_unit_ns(samples, units, statistics.median)
        best[label] = _per_unit_ns(samples, units, min)
    for label, unit, what in (("awaits", "step", "awaits"), ("gathers", "task", "gathers")):
        off, on = figures[label]
        best_off, best_on = best[label]
        scene = (
            f"{STEPS:,} awaits {HANDLER_DEPTH + 2} coroutines deep"
            if what == "awaits"
            else f"gathers of {GATHER_SIZE} trivial tasks (a step each)"
        )
        print(
            f"  {loop_name}, {scene}, {MICRO_ROUNDS} rounds: a {unit} costs {off:5.0f} ns "
            f"without step timing, {on:5.0f} ns with it (+{on - off:4.0f} ns, medians); best "
            f"rounds {best_off:5.0f} / {best_on:5.0f} ns (+{best_on - best_off:4.0f} ns)"
        )
    off, on = figures["awaits"]
    best_off, best_on = best["awaits"]
    return [
        Result(f"{loop_name} per step (median rounds)", (on - off) / 1000, GOAL_STEP_US, "µs"),
        Result(
            f"{loop_name} per step (best rounds)", (best_on - best_off) / 1000, GOAL_STEP_US, "µs"
        ),
    ]


# ------------------------------------------------------------------------------ outputs


async def _outputs_once(awaits: int) -> tuple[float, float]:
    """One request task of ``awaits`` awaits, profiled as the panel profiles it (defaults):
    µs per Server-Timing header mid-request, and per slowest await once it stopped."""

    async def request() -> tuple[float, float]:
        context = RequestContext(method="GET", path="/", client_host="127.0.0.1")
        config = DebugToolbarConfig(extra_panels=[AsyncProfilerPanel])
        profiler = AsyncRequestProfiler(
            context, config, TaskFactoryBackend(origin_ns=context.start_ns)
        )
        profiler.start()
        try:
            for _ in range(awaits):
                await asyncio.sleep(0)
            await asyncio.gather(*(_trivial() for _ in range(10)))
            started = time.thread_time_ns()
            for _ in range(OUTPUT_CALLS):
                server_timing_value(profiler.progress())
            header = (time.thread_time_ns() - started) / OUTPUT_CALLS / 1e3
        finally:
            profile = profiler.stop()
        table = profile.steps
        assert table is not None
        assert slowest_await(table) is not None  # no silent no-op (and its site resolved)
        started = time.thread_time_ns()
        for _ in range(OUTPUT_CALLS):
            slowest_await(table)
        return header, (time.thread_time_ns() - started) / OUTPUT_CALLS / 1e3

    return await asyncio.create_task(request())


def _outputs_run(loop_name: str, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    loop = new_loop()
    try:
        for awaits in OUTPUT_AWAITS:
            rounds = [loop.run_until_complete(_outputs_once(awaits)) for _ in range(OUTPUT_ROUNDS)]
            headers, slowest = [row[0] for row in rounds], [row[1] for row in rounds]
            print(
                f"  {loop_name}, a request task of {awaits:,} awaits: the Server-Timing header "
                f"costs {statistics.median(headers):7.2f} µs a response (best round "
                f"{min(headers):7.2f}), the slowest await {statistics.median(slowest):6.2f} µs a "
                f"request (best {min(slowest):6.2f}); medians of {OUTPUT_ROUNDS} rounds of "
                f"{OUTPUT_CALLS:,} calls"
            )
    finally:
        loop.close()
        stop_watchdogs()


# ------------------------------------------------------------------------------ end to end


async def _routes(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope.get("path", "")
    if path == "/gather":
        await asyncio.gather(*(_trivial() for _ in range(GATHER_SIZE)))
    elif path == "/sleeps":
        for delay in SLEEPS_S:
            await asyncio.sleep(delay)
    body = b'{"ok": true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"12")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _panel(step_timing: bool) -> ASGIApp:
    return DebugToolbarMiddleware(
        _routes,
        DebugToolbarConfig(
            extra_panels=[AsyncProfilerPanel],
            async_profiler_backend="taskfactory",
            async_step_timing=step_timing,
        ),
    )


def app_toolbar() -> ASGIApp:
    return DebugToolbarMiddleware(_routes, DebugToolbarConfig())


def app_steps_off() -> ASGIApp:
    return _panel(step_timing=False)


def app_steps_on() -> ASGIApp:
    return _panel(step_timing=True)


VARIANTS = {"toolbar": "app_toolbar", "steps off": "app_steps_off", "steps on": "app_steps_on"}
ROUTES = (("/noop", NOOP_ROUNDS, GOAL_NOOP), ("/sleeps", SLEEP_ROUNDS, GOAL_SLEEPS))
ROUTES += (("/gather", GATHER_ROUNDS, GOAL_GATHER),)


async def _end_to_end(urls: dict[str, str]) -> tuple[dict[str, dict[str, list[float]]], str]:
    connections = {label: await HttpConnection.open(url) for label, url in urls.items()}
    last_request = ""

    async def fetch(label: str, path: str) -> float:
        nonlocal last_request
        started = time.perf_counter_ns()
        status, headers, body = await connections[label].get(path)
        elapsed = (time.perf_counter_ns() - started) / 1e6
        assert (status, json.loads(body)) == (200, {"ok": True}), (label, path, status)
        if label == "steps on":
            last_request = headers[REQUEST_ID_HEADER]
        return elapsed

    figures: dict[str, dict[str, list[float]]] = {}
    order = random.Random(SEED)
    try:
        for path, rounds, _goal in ROUTES:
            for _ in range(3 if path == "/sleeps" else WARMUP):
                for label in VARIANTS:
                    await fetch(label, path)
            latencies: dict[str, list[float]] = {label: [] for label in VARIANTS}
            for _ in range(rounds):
                for label in order.sample(list(VARIANTS), len(VARIANTS)):
                    latencies[label].append(await fetch(label, path))
            figures[path] = latencies
        record = await _record(connections["steps on"], last_request)
    finally:
        for connection in connections.values():
            await connection.close()
    return figures, record


async def _record(connection: HttpConnection, request_id: str) -> str:
    """The last measured request's steps, from the JSON API: step timing really ran."""
    prefix = DebugToolbarConfig().url_prefix
    status, _headers, body = await connection.get(f"{prefix}/api/requests/{request_id}")
    assert status == 200, (request_id, status)
    stats = json.loads(body)["panels"]["AsyncProfilerPanel"]
    assert stats["steps_unavailable"] is None, stats["steps_unavailable"]
    rows = stats["steps"]["rows"]
    assert len(rows) >= GATHER_SIZE, len(rows)
    breakdown = stats["time_breakdown"]
    return (
        f"last /gather record: {len(rows)} steps; breakdown of its own task: wall "
        f"{breakdown['wall_ms']:.3f} ms = running {breakdown['running_ms']:.3f} + waiting "
        f"{breakdown['waiting_ms']:.3f} + queued {breakdown['queued_ms']:.3f} ms"
    )


def _e2e_run(loop_name: str) -> list[Result]:
    servers = [UvicornProcess(f"{_MODULE}:{factory}", loop_name) for factory in VARIANTS.values()]
    started: list[UvicornProcess] = []
    try:
        for server in servers:
            started.append(server.__enter__())
        urls = {label: server.url for label, server in zip(VARIANTS, servers, strict=True)}
        figures, record = asyncio.run(_end_to_end(urls))
    finally:
        for server in started:
            server.__exit__()
    results = []
    for path, _rounds, goal in ROUTES:
        p50 = {label: statistics.median(values) for label, values in figures[path].items()}
        reference = p50["toolbar"]
        print(f"  {loop_name} {path} ({len(figures[path]['toolbar']):,} requests a variant, p50):")
        for label, value in p50.items():
            line = f"    {label:<10} {value:8.3f} ms"
            if label != "toolbar":
                line += f"  {value / reference:5.3f}x the toolbar without the panel"
            if label == "steps on":
                off = p50["steps off"]
                line += f", {value / off:5.3f}x steps off ({value - off:+.3f} ms)"
            print(line)
        name = f"{loop_name} {path.lstrip('/')}, steps on / toolbar (p50)"
        results.append(Result(name, p50["steps on"] / reference, goal))
    print(f"  {loop_name} {record}")
    return results


# ------------------------------------------------------------------------------ run


def _loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    wanted = os.environ.get("BENCH_LOOPS", "")
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    if uvloop is not None:
        loops.append(("uvloop", uvloop.new_event_loop))
    return [loop for loop in loops if not wanted or loop[0] in wanted.split(",")]


def _run_here() -> list[Result]:
    print(f"step timing on Python {sys.version.split()[0]}")
    results = []
    for loop_name, new_loop in _loops():
        results.extend(_micro_run(loop_name, new_loop))
    for loop_name, new_loop in _loops():
        _outputs_run(loop_name, new_loop)
    for loop_name, _new_loop in _loops():
        results.extend(_e2e_run(loop_name))
    return results


def _run_elsewhere() -> list[Result]:
    """This interpreter cannot time steps: run the module with a 3.12+ one of the repo."""
    for version in ("3.13", "3.12"):
        python = REPO / f".venv-{version}" / "bin" / "python"
        if python.exists():
            break
    else:
        print(f"  {STEPS_UNAVAILABLE}; no .venv-3.13 or .venv-3.12 here (make test-all): skipped")
        return []
    print(f"  {STEPS_UNAVAILABLE}: measured with {python.relative_to(REPO)}")
    done = subprocess.run(
        [str(python), "-m", _MODULE, "--results"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    results = []
    for line in done.stdout.splitlines():
        if line.startswith(RESULTS_MARKER):
            results = [Result(**row) for row in json.loads(line[len(RESULTS_MARKER) :])]
        else:
            print(line)
    return results


def run() -> list[Result]:
    """Print the per-step and end-to-end figures; return the headline ones."""
    return _run_elsewhere() if STEPS_UNAVAILABLE is not None else _run_here()


if __name__ == "__main__":
    rows = run()
    if "--results" in sys.argv:
        print(RESULTS_MARKER + json.dumps([dataclasses.asdict(row) for row in rows]))
    else:
        for row in rows:
            print(row)
