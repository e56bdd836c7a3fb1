"""What tracking a request's tasks costs: per task against bare asyncio, and end to end.

Per task (asyncio and uvloop): a "request" in its own task creates trivial tasks from a handler
eight frames deep (a middleware stack), either as gathers of 100 or one ``create_task`` +
``await`` at a time. Variants: bare asyncio (no task factory), bare again (the A/A check: the
noise of this machine), tracked with creation stacks off, tracked with the default stacks. Each
round runs every variant once, in rotating order, in one loop; figures are medians over rounds.
Only the handler's task work is timed: starting and stopping the request's tracking is part of
the end-to-end figure. Also printed: what the profiler's own accounting (``overhead_ns``, which
the panel shows) measured per task, and what building the task list of the record costs per
task (``AsyncProfile.detail_dict``, paid when someone reads the record).

End to end: one uvicorn server on 127.0.0.1, in a process of its own, with one route that
gathers 100 trivial tasks, mounted four times: without the toolbar, behind the toolbar without
the Async panel, behind the toolbar with it (task-factory backend, default options), and with
it reduced to task tracking (blocking detection and lag monitoring off). One minimal keep-alive
client (``HttpConnection``) sends the requests one at a time, the four variants in a fresh
random order every round; the figures are the p50 latencies. The server runs in its own
process for the reason given in ``_servers``: in the client's process, the server's work after
it has answered would hold the GIL the client needs to read the answer. At the end the Async
panel's record of the last request is fetched from the toolbar's JSON API, to check that it
really tracked the 100 tasks.

Goals (issue 3): at most 1.5x bare asyncio per trivial task with stacks off, 2.2x with the
default stacks, and 1.3x end to end (panel on vs the toolbar without it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks import Result
from benchmarks._servers import HttpConnection, UvicornProcess
from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from debug_toolbar.asgi.types import ASGIApp, Receive, Scope, Send

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency on POSIX
    uvloop = None  # type: ignore[assignment]

__all__ = ("gather_router", "run")

GATHER_SIZE = 100
TASKS_PER_SAMPLE = 1_000
HANDLER_DEPTH = 8
MICRO_ROUNDS = 60
MICRO_BUDGET_S = 40.0
E2E_ROUNDS = 2_000
E2E_WARMUP = 50
E2E_BUDGET_S = 60.0
SEED = 2
REQUEST_ID_HEADER = "x-debug-toolbar-request-id"
_MODULE = "benchmarks.bench_tasks"
"""Importable name of this module (``__name__`` is ``__main__`` when it is run directly)."""
GOAL_STACKS_OFF = 1.5
GOAL_STACKS_ON = 2.2
GOAL_END_TO_END = 1.3

Variant = tuple[str, bool | None]
"""(label, capture_stacks); None means bare asyncio, no tracking."""
VARIANTS: tuple[Variant, ...] = (
    ("bare", None),
    ("bare again", None),
    ("stacks off", False),
    ("stacks on", True),
)


# ------------------------------------------------------------------------------ per task


async def _trivial() -> None:
    return None


async def _gathers() -> None:
    for _ in range(TASKS_PER_SAMPLE // GATHER_SIZE):
        await asyncio.gather(*(_trivial() for _ in range(GATHER_SIZE)))


async def _one_at_a_time() -> None:
    for _ in range(TASKS_PER_SAMPLE):
        await asyncio.create_task(_trivial())


async def _nested(depth: int, work: Callable[[], Awaitable[None]]) -> None:
    if depth:
        await _nested(depth - 1, work)
    else:
        await work()


class Sample:
    __slots__ = ("elapsed_ns", "overhead_ns", "report_ns")

    def __init__(self, elapsed_ns: int, overhead_ns: int = 0, report_ns: int = 0) -> None:
        self.elapsed_ns = elapsed_ns
        self.overhead_ns = overhead_ns
        self.report_ns = report_ns


async def _sample(work: Callable[[], Awaitable[None]], capture_stacks: bool | None) -> Sample:
    """One request in its own task: (tracking started,) the handler's task work timed."""

    async def request() -> Sample:
        backend = None
        if capture_stacks is not None:
            backend = TaskFactoryBackend(
                max_tasks=TASKS_PER_SAMPLE,
                capture_stacks=capture_stacks,
                origin_ns=time.perf_counter_ns(),
            )
            backend.start(asyncio.get_running_loop())
        try:
            started = time.perf_counter_ns()
            await _nested(HANDLER_DEPTH, work)
            elapsed = time.perf_counter_ns() - started
        finally:
            if backend is not None:
                backend.stop()
        if backend is None:
            return Sample(elapsed)
        recorder = backend.tracking.recorder
        assert len(recorder) == TASKS_PER_SAMPLE, "every task must have been recorded"
        collected = backend.collected()
        profile = AsyncProfile(
            backend=backend.name, tasks=collected.tasks, overhead=collected.overhead
        )
        report_ns = round(profile.detail_dict()["overhead"]["report_ms"] * 1e6)
        return Sample(elapsed, recorder.overhead_ns, report_ns)

    return await asyncio.create_task(request())


async def _micro(work: Callable[[], Awaitable[None]]) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {label: [] for label, _ in VARIANTS}
    for _label, capture in VARIANTS:  # warm-up: caches, code objects, allocator
        await _sample(work, capture)
    deadline = time.perf_counter() + MICRO_BUDGET_S / 4
    for round_index in range(MICRO_ROUNDS):
        shift = round_index % len(VARIANTS)
        for label, capture in VARIANTS[shift:] + VARIANTS[:shift]:
            samples[label].append(await _sample(work, capture))
        if time.perf_counter() > deadline:
            break
    return samples


def _per_task_ns(samples: list[Sample], attribute: str = "elapsed_ns") -> float:
    median = statistics.median(float(getattr(sample, attribute)) for sample in samples)
    return median / TASKS_PER_SAMPLE


def _micro_report(loop_name: str, scenario: str, samples: dict[str, list[Sample]]) -> list[float]:
    bare = _per_task_ns(samples["bare"])
    rounds = len(samples["bare"])
    print(f"  {loop_name}, {scenario} ({rounds} rounds of {TASKS_PER_SAMPLE:,} tasks):")
    ratios = []
    for label, capture in VARIANTS:
        per_task = _per_task_ns(samples[label])
        line = f"    {label:<11} {per_task:7.0f} ns/task  {per_task / bare:5.2f}x bare"
        if capture is not None:
            ratios.append(per_task / bare)
            accounted = _per_task_ns(samples[label], "overhead_ns")
            report = _per_task_ns(samples[label], "report_ns")
            line += (
                f"   extra {per_task - bare:5.0f} ns, of which overhead_ns accounts "
                f"{accounted:4.0f} ns; stats {report:5.0f} ns/task afterwards"
            )
        print(line)
    return ratios


# ------------------------------------------------------------------------------ end to end


async def _gather_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await asyncio.gather(*(_trivial() for _ in range(GATHER_SIZE)))
    await _send_json(send, {"tasks": GATHER_SIZE})


def _mounts() -> dict[str, ASGIApp]:
    without_panel = DebugToolbarMiddleware(_gather_app, DebugToolbarConfig())
    with_panel = DebugToolbarMiddleware(
        _gather_app,
        DebugToolbarConfig(extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory"),
    )
    # The same panel with blocking detection and lag monitoring off: what task tracking alone
    # costs, apart from the watchdog thread started and joined for a request alone on its loop.
    tasks_only = DebugToolbarMiddleware(
        _gather_app,
        DebugToolbarConfig(
            extra_panels=[AsyncProfilerPanel],
            async_profiler_backend="taskfactory",
            async_enable_blocking_detection=False,
            async_enable_event_loop_monitoring=False,
        ),
    )
    return {
        "/bare": _gather_app,
        "/toolbar": without_panel,
        "/panel": with_panel,
        "/panel-tasks": tasks_only,
    }


SERVER_TIMES_PATH = "/_bench/server-times"


def gather_router() -> ASGIApp:
    """One app serving the four mounts by path (a ``UvicornProcess`` factory).

    The toolbar's own pages (``/_debug_toolbar/...``) go to the mount with the Async panel,
    whose record the benchmark checks at the end. Each measured request's time in the server,
    from the call to its return (the work after the response left included: stopping the
    panels, storing the record), is kept per path and served as JSON at ``SERVER_TIMES_PATH``
    (``?reset`` empties it, after the warm-up).
    """
    mounts = _mounts()
    prefix = DebugToolbarConfig().url_prefix
    server_ms: dict[str, list[float]] = {path: [] for path in mounts}

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path = scope.get("path", "")
        if path == SERVER_TIMES_PATH:
            if scope.get("query_string") == b"reset":
                for times in server_ms.values():
                    times.clear()
            await _send_json(send, server_ms)
            return
        if path.startswith(prefix):
            await mounts["/panel"](scope, receive, send)
            return
        started = time.perf_counter_ns()
        await mounts[path](scope, receive, send)
        server_ms[path].append((time.perf_counter_ns() - started) / 1e6)

    return router


async def _send_json(send: Send, value: Any) -> None:
    body = json.dumps(value).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: acknowledge uvicorn's lifespan messages."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


PATHS = ("/bare", "/toolbar", "/panel", "/panel-tasks")


async def _end_to_end(url: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Client-side latencies and server-side times (ms) of every measured request."""
    latencies: dict[str, list[float]] = {path: [] for path in PATHS}
    connection = await HttpConnection.open(url)
    last_panel_request = ""

    async def fetch(path: str) -> float:
        nonlocal last_panel_request
        started = time.perf_counter_ns()
        status, headers, body = await connection.get(path)
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        assert status == 200, (path, status)
        assert json.loads(body) == {"tasks": GATHER_SIZE}, (path, body)
        assert (REQUEST_ID_HEADER in headers) == (path != "/bare"), path
        if path == "/panel":
            last_panel_request = headers[REQUEST_ID_HEADER]
        return elapsed_ms

    try:
        for index in range(E2E_WARMUP):
            await fetch(PATHS[index % len(PATHS)])
        await connection.get(SERVER_TIMES_PATH + "?reset")
        deadline = time.perf_counter() + E2E_BUDGET_S / 2
        order = random.Random(SEED)
        for _ in range(E2E_ROUNDS):
            # A fresh random order every round. A fixed rotation would always send one variant
            # right after the same other one, and the server's work after answering a request
            # (stopping the panels, storing the record) delays the next request: that variant
            # would be charged with its predecessor's tail.
            for path in order.sample(PATHS, len(PATHS)):
                latencies[path].append(await fetch(path))
            if time.perf_counter() > deadline:
                break
        _status, _headers, body = await connection.get(SERVER_TIMES_PATH)
        server_ms: dict[str, list[float]] = json.loads(body)
        await _check_record(connection, last_panel_request)
    finally:
        await connection.close()
    return latencies, server_ms


async def _check_record(connection: HttpConnection, request_id: str) -> None:
    """The Async panel of a measured request really tracked its tasks (no silent no-op)."""
    prefix = DebugToolbarConfig().url_prefix
    status, _headers, body = await connection.get(f"{prefix}/api/requests/{request_id}")
    assert status == 200, (request_id, status)
    summary = json.loads(body)["panels"]["AsyncProfilerPanel"]["summary"]
    assert summary["completed"] == GATHER_SIZE, summary


def _e2e_report(
    loop_name: str, latencies: dict[str, list[float]], server_ms: dict[str, list[float]]
) -> tuple[float, float]:
    p50 = {path: statistics.median(values) for path, values in latencies.items()}
    server = {path: statistics.median(values) for path, values in server_ms.items()}
    rounds = len(latencies["/bare"])
    print(
        f"  {loop_name} ({rounds} requests per variant; p50 latency, and p50 time in the "
        "server including its work after the response left):"
    )
    labels = {
        "/bare": "no toolbar",
        "/toolbar": "toolbar without Async",
        "/panel": "toolbar with Async",
        "/panel-tasks": "Async, tasks only",
    }
    for path, label in labels.items():
        line = f"    {label:<23} {p50[path]:6.3f} ms   server {server[path]:6.3f} ms"
        if path in ("/panel", "/panel-tasks"):
            latency_ratio = p50[path] / p50["/toolbar"]
            server_ratio = server[path] / server["/toolbar"]
            line += f"   {latency_ratio:4.2f}x / {server_ratio:4.2f}x the toolbar without it"
        print(line)
    print("    (tasks only: blocking detection and lag monitoring off)")
    return p50["/panel"] / p50["/toolbar"], p50["/panel-tasks"] / p50["/toolbar"]


# ------------------------------------------------------------------------------ run


def _loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    if uvloop is not None:
        loops.append(("uvloop", uvloop.new_event_loop))
    return loops


def _run_on(new_loop: Callable[[], asyncio.AbstractEventLoop], make: Callable[[], Any]) -> Any:
    loop = new_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()


def run() -> list[Result]:
    """Print the per-task and end-to-end figures; return the headline ratios."""
    print(
        f"task tracking: trivial tasks created {HANDLER_DEPTH} frames deep, tracked by the "
        "task-factory backend (medians of interleaved rounds)"
    )
    results: list[Result] = []
    for loop_name, new_loop in _loops():
        for scenario, work in (
            (f"gathers of {GATHER_SIZE}", _gathers),
            ("create_task + await, one at a time", _one_at_a_time),
        ):
            samples = _run_on(new_loop, functools.partial(_micro, work))
            off, on = _micro_report(loop_name, scenario, samples)
            short = "gather" if scenario.startswith("gathers") else "sequential"
            results.append(Result(f"{loop_name} {short}, stacks off", off, GOAL_STACKS_OFF))
            results.append(Result(f"{loop_name} {short}, stacks on", on, GOAL_STACKS_ON))
    print(f"end to end: uvicorn on 127.0.0.1, a route gathering {GATHER_SIZE} tasks")
    for loop_name, _new_loop in _loops():
        with UvicornProcess(f"{_MODULE}:gather_router", loop_name) as server:
            latencies, server_ms = asyncio.run(_end_to_end(server.url))
        ratio, tasks_ratio = _e2e_report(loop_name, latencies, server_ms)
        results.append(Result(f"{loop_name} end to end (p50)", ratio, GOAL_END_TO_END))
        results.append(
            Result(f"{loop_name} end to end, tasks only (p50)", tasks_ratio, GOAL_END_TO_END)
        )
    return results


if __name__ == "__main__":
    for result in run():
        print(result)
