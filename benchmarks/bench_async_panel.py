"""What the Async panel costs, held to issue 10's goals: end to end, per task, under load.

**End to end** (the goals' figures). One raw ASGI app with three routes, behind
``DebugToolbarMiddleware``, built once per variant and served by uvicorn on 127.0.0.1, **each
variant in a process of its own** (see ``_servers``), on asyncio and then on uvloop:

* ``/noop``: returns ``{"ok": true}``: the panel's fixed cost per request;
* ``/gather``: gathers 100 trivial tasks: task tracking under stress;
* ``/sleeps``: three sequential awaits (``asyncio.sleep`` 20 + 20 + 30 ms): a request that
  waits, as most real ones do.

Variants: no toolbar; the toolbar with its default panels but not the Async panel (the
reference of every ratio), twice (two processes: the A/A check); the toolbar with the Async
panel and its defaults (task-factory backend, creation stacks, blocking detection, lag
monitoring); the same with blocking detection off; the same with detection and lag off (task
tracking alone). One minimal keep-alive client (``HttpConnection``) per server sends the
requests one at a time, every variant once per round in a fresh random order; the figures are
p50 latencies (``/sleeps``: the reference and the panel only).

**Throughput**: 20 keep-alive connections to one server, each sending its next request as soon
as the last one was answered, for a fixed time; requests per second, the reference and the
panel in alternating bursts (random order), summed over the bursts.

**Per task** (in process, like ``bench_tasks``): a request task creates gathers of 100 trivial
tasks eight frames deep. The floor is what any task tracking must pay at least: a task factory
that only creates the task, plus one done callback (``add_done_callback`` of a no-op). Tracking
with the panel's defaults (creation stacks on) is held to 1.15x the floor, measured in the
same rounds; bare asyncio (no factory) is shown for scale.

**Where the fixed cost goes** (no server): the noop route called in-process through ASGI with
each variant, per request, best of several batches: the panel's CPU cost without any I/O.

Goals (issue 10): noop, panel / reference <= 1.10x, and blocking detection on vs off <= +0.05 ms
(difference of the p50s); gather of 100 <= 1.5x; three sequential awaits <= 1.03x; per task
<= 1.15x the floor; throughput with 20 clients on noop and gather-100 >= 0.8x the reference.

``BENCH_SCALE`` (a float, default 1) scales every count and duration: ``BENCH_SCALE=0.25`` for
a quick look, larger for steadier figures. ``BENCH_LOOPS=asyncio`` (or ``uvloop``) runs one loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks import Result
from benchmarks._in_process import batch_us
from benchmarks._servers import HttpConnection, UvicornProcess
from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.backends import select_backend

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from debug_toolbar.asgi.types import ASGIApp, Receive, Scope, Send

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency on POSIX
    uvloop = None  # type: ignore[assignment]

__all__ = (
    "app_bare",
    "app_panel",
    "app_panel_no_detection",
    "app_panel_tasks_only",
    "app_toolbar",
    "run",
)

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)


def _scaled(count: float) -> int:
    return max(1, round(count * SCALE))


GATHER_SIZE = 100
SLEEPS_S = (0.02, 0.02, 0.03)
WARMUP = 50
NOOP_ROUNDS = _scaled(2_000)
GATHER_ROUNDS = _scaled(1_000)
SLEEP_ROUNDS = _scaled(60)
CLIENTS = 20
BURSTS = _scaled(3)
BURST_S = 1.5 * min(SCALE, 1.0)
TASKS_PER_SAMPLE = 1_000
HANDLER_DEPTH = 8
MICRO_ROUNDS = _scaled(60)
IN_PROCESS_BATCH = _scaled(500)
IN_PROCESS_BATCHES = 7
SEED = 10
REQUEST_ID_HEADER = "x-debug-toolbar-request-id"
_MODULE = "benchmarks.bench_async_panel"
"""Importable name of this module (``__name__`` is ``__main__`` when it is run directly)."""

GOAL_NOOP = 1.10
GOAL_DETECTION_MS = 0.05
GOAL_GATHER = 1.5
GOAL_SLEEPS = 1.03
GOAL_PER_TASK = 1.15
GOAL_THROUGHPUT = 0.8

# ------------------------------------------------------------------------------ the app


async def _trivial() -> None:
    return None


async def _routes(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope.get("path", "")
    if path == "/gather":
        await asyncio.gather(*(_trivial() for _ in range(GATHER_SIZE)))
        body = b'{"tasks": 100}'
    elif path == "/sleeps":
        for delay in SLEEPS_S:
            await asyncio.sleep(delay)
        body = b'{"slept": true}'
    else:
        body = b'{"ok": true}'
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


def _panel_config(**options: Any) -> DebugToolbarConfig:
    # The task-factory backend named: it is the default now, while older trees defaulted to
    # "auto" (yappi when installed); naming it measures the same thing in both.
    return DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory", **options
    )


def app_bare() -> ASGIApp:
    """No toolbar (a ``UvicornProcess`` factory, like the four below)."""
    return _routes


def app_toolbar() -> ASGIApp:
    """The toolbar with its default panels, without the Async panel: the reference."""
    return DebugToolbarMiddleware(_routes, DebugToolbarConfig())


def app_panel() -> ASGIApp:
    """The toolbar with the Async panel and its defaults."""
    return DebugToolbarMiddleware(_routes, _panel_config())


def app_panel_no_detection() -> ASGIApp:
    """The Async panel with blocking detection off (lag monitoring on)."""
    return DebugToolbarMiddleware(_routes, _panel_config(async_enable_blocking_detection=False))


def app_panel_tasks_only() -> ASGIApp:
    """The Async panel with blocking detection and lag monitoring off: task tracking alone."""
    return DebugToolbarMiddleware(
        _routes,
        _panel_config(
            async_enable_blocking_detection=False, async_enable_event_loop_monitoring=False
        ),
    )


VARIANTS: dict[str, str] = {
    "no toolbar": "app_bare",
    "toolbar": "app_toolbar",
    "toolbar again": "app_toolbar",
    "panel": "app_panel",
    "panel, detection off": "app_panel_no_detection",
    "panel, tasks only": "app_panel_tasks_only",
}
"""Label -> factory; each label is a server process of its own."""
REFERENCE = "toolbar"
PANELS = ("panel", "panel, detection off", "panel, tasks only")
BODIES = {"/noop": {"ok": True}, "/gather": {"tasks": GATHER_SIZE}, "/sleeps": {"slept": True}}

# ------------------------------------------------------------------------------ end to end


class _Client:
    """One keep-alive connection per server; every answer checked."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.connections: dict[str, HttpConnection] = {}
        self.last_request: dict[str, str] = {}

    async def open(self) -> None:
        for label, url in self.urls.items():
            self.connections[label] = await HttpConnection.open(url)

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()

    async def fetch(self, label: str, path: str) -> float:
        started = time.perf_counter_ns()
        status, headers, body = await self.connections[label].get(path)
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        _check(label, path, status, headers, body)
        if REQUEST_ID_HEADER in headers:
            self.last_request[label] = headers[REQUEST_ID_HEADER]
        return elapsed_ms


def _check(label: str, path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 200, (label, path, status)
    assert json.loads(body) == BODIES[path], (label, path, body)
    assert (REQUEST_ID_HEADER in headers) == (label != "no toolbar"), (label, path)


async def _latencies(client: _Client, path: str, labels: list[str], rounds: int) -> dict[str, Any]:
    for _ in range(WARMUP if path != "/sleeps" else 3):
        for label in labels:
            await client.fetch(label, path)
    order = random.Random(SEED)
    latencies: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(rounds):
        # A fresh random order every round: the server's work after answering (stopping the
        # panels, storing the record) must not always delay the same successor.
        for label in order.sample(labels, len(labels)):
            latencies[label].append(await client.fetch(label, path))
    return latencies


async def _check_record(client: _Client, label: str, tasks: int) -> None:
    """The Async panel of a measured request really tracked its tasks (no silent no-op)."""
    prefix = DebugToolbarConfig().url_prefix
    request_id = client.last_request[label]
    status, _headers, body = await client.connections[label].get(
        f"{prefix}/api/requests/{request_id}"
    )
    assert status == 200, (label, request_id, status)
    summary = json.loads(body)["panels"]["AsyncProfilerPanel"]["summary"]
    assert summary["completed"] == tasks, (label, summary)


async def _throughput(urls: dict[str, str], path: str, labels: list[str]) -> dict[str, Any]:
    """Requests per second of each server with ``CLIENTS`` connections, in alternating bursts."""
    pools = {
        label: [await HttpConnection.open(urls[label]) for _ in range(CLIENTS)] for label in labels
    }
    counts = dict.fromkeys(labels, 0)
    seconds = dict.fromkeys(labels, 0.0)
    client_cpu = dict.fromkeys(labels, 0.0)

    async def hammer(connection: HttpConnection, label: str, until: float) -> int:
        done = 0
        while time.perf_counter() < until:
            status, headers, body = await connection.get(path)
            _check(label, path, status, headers, body)
            done += 1
        return done

    try:
        for connections in pools.values():  # warm-up: every connection once
            await asyncio.gather(*(connection.get(path) for connection in connections))
        order = random.Random(SEED)
        for _ in range(BURSTS):
            for label in order.sample(labels, len(labels)):
                cpu, started = time.process_time(), time.perf_counter()
                until = started + BURST_S
                done = await asyncio.gather(*(hammer(c, label, until) for c in pools[label]))
                seconds[label] += time.perf_counter() - started
                client_cpu[label] += time.process_time() - cpu
                counts[label] += sum(done)
    finally:
        for connections in pools.values():
            for connection in connections:
                await connection.close()
    return {
        label: {
            "rps": counts[label] / seconds[label],
            "client_cpu": client_cpu[label] / seconds[label],
        }
        for label in labels
    }


async def _end_to_end(urls: dict[str, str]) -> dict[str, Any]:
    client = _Client(urls)
    await client.open()
    labels = list(VARIANTS)
    try:
        figures = {
            "/noop": await _latencies(client, "/noop", labels, NOOP_ROUNDS),
            "/gather": await _latencies(client, "/gather", labels, GATHER_ROUNDS),
            "/sleeps": await _latencies(client, "/sleeps", [REFERENCE, "panel"], SLEEP_ROUNDS),
        }
        for label in PANELS:
            await client.fetch(label, "/gather")
            await _check_record(client, label, GATHER_SIZE)
    finally:
        await client.close()
    pair = [REFERENCE, "panel"]
    figures["throughput /noop"] = await _throughput(urls, "/noop", pair)
    figures["throughput /gather"] = await _throughput(urls, "/gather", pair)
    return figures


def _serve_all(loop_name: str) -> dict[str, Any]:
    servers = {
        label: UvicornProcess(f"{_MODULE}:{factory}", loop_name)
        for label, factory in VARIANTS.items()
    }
    started: list[UvicornProcess] = []
    try:
        for server in servers.values():
            started.append(server.__enter__())
        urls = {label: server.url for label, server in servers.items()}
        figures: dict[str, Any] = _client_run(_end_to_end(urls))
        return figures
    finally:
        for server in started:
            server.__exit__()


def _client_run(coro: Awaitable[Any]) -> Any:
    """The client on uvloop when it is there: the cheaper the client, the less it hides."""
    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _e2e_report(loop_name: str, figures: dict[str, Any]) -> list[Result]:
    results: list[Result] = []
    for path, goal in (("/noop", GOAL_NOOP), ("/gather", GOAL_GATHER), ("/sleeps", GOAL_SLEEPS)):
        latencies = figures[path]
        p50 = {label: statistics.median(values) for label, values in latencies.items()}
        reference = p50[REFERENCE]
        rounds = len(latencies[REFERENCE])
        print(f"  {loop_name} {path} ({rounds:,} requests per variant, p50):")
        for label, value in p50.items():
            line = f"    {label:<22} {value:7.3f} ms"
            if label != REFERENCE:
                line += f"  {value / reference:5.3f}x  ({value - reference:+.3f} ms)"
            print(line)
        name = f"{loop_name} {path.lstrip('/')}, panel / toolbar (p50)"
        results.append(Result(name, p50["panel"] / reference, goal))
        if path == "/noop":
            detection = p50["panel"] - p50["panel, detection off"]
            print(f"    blocking detection on vs off: {detection:+.3f} ms")
            results.append(
                Result(f"{loop_name} noop, detection on - off", detection, GOAL_DETECTION_MS, "ms")
            )
    for path in ("/noop", "/gather"):
        rates = figures[f"throughput {path}"]
        ratio = rates["panel"]["rps"] / rates[REFERENCE]["rps"]
        print(
            f"  {loop_name} throughput {path}, {CLIENTS} connections, {BURSTS} bursts of "
            f"{BURST_S:.1f} s each: toolbar {rates[REFERENCE]['rps']:,.0f}/s, panel "
            f"{rates['panel']['rps']:,.0f}/s: {ratio:4.2f}x (client CPU "
            f"{rates[REFERENCE]['client_cpu']:.0%} / {rates['panel']['client_cpu']:.0%} of a core)"
        )
        results.append(
            Result(
                f"{loop_name} throughput {path.lstrip('/')}", ratio, GOAL_THROUGHPUT, at_least=True
            )
        )
    return results


# ------------------------------------------------------------------------------ per task


async def _gathers() -> None:
    for _ in range(TASKS_PER_SAMPLE // GATHER_SIZE):
        await asyncio.gather(*(_trivial() for _ in range(GATHER_SIZE)))


async def _nested(depth: int, work: Callable[[], Awaitable[None]]) -> None:
    if depth:
        await _nested(depth - 1, work)
    else:
        await work()


def _noop_callback(_task: object) -> None:
    return None


def _floor_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
) -> asyncio.Future[Any]:
    """The least any tracking pays: a Python task factory and one done callback per task."""
    task = asyncio.Task(coro, loop=loop, **kwargs)
    task.add_done_callback(_noop_callback)
    return task


MICRO_VARIANTS = ("bare asyncio", "floor", "floor again", "tracking, defaults")


async def _sample(variant: str) -> int:
    """One request in its own task; only the handler's task work is timed."""

    async def request() -> int:
        loop = asyncio.get_running_loop()
        previous = loop.get_task_factory()
        backend = None
        if variant.startswith("floor"):
            loop.set_task_factory(_floor_factory)
        elif variant == "tracking, defaults":
            defaults = DebugToolbarConfig()
            backend = select_backend("taskfactory")(  # type: ignore[call-arg]
                max_tasks=TASKS_PER_SAMPLE,
                capture_stacks=defaults.async_capture_task_stacks,
                max_stack_depth=defaults.async_max_stack_depth,
                origin_ns=time.perf_counter_ns(),
            )
            backend.start(loop)
        try:
            started = time.perf_counter_ns()
            await _nested(HANDLER_DEPTH, _gathers)
            return time.perf_counter_ns() - started
        finally:
            if backend is not None:
                backend.stop()
            loop.set_task_factory(previous)

    return await asyncio.create_task(request())


async def _micro() -> dict[str, list[int]]:
    samples: dict[str, list[int]] = {variant: [] for variant in MICRO_VARIANTS}
    for variant in MICRO_VARIANTS:  # warm-up
        await _sample(variant)
    for round_index in range(MICRO_ROUNDS):
        shift = round_index % len(MICRO_VARIANTS)
        for variant in MICRO_VARIANTS[shift:] + MICRO_VARIANTS[:shift]:
            samples[variant].append(await _sample(variant))
    return samples


def _micro_report(loop_name: str, samples: dict[str, list[int]]) -> Result:
    per_task = {v: statistics.median(s) / TASKS_PER_SAMPLE for v, s in samples.items()}
    floor = per_task["floor"]
    print(
        f"  {loop_name}, gathers of {GATHER_SIZE} ({len(samples['floor'])} rounds of "
        f"{TASKS_PER_SAMPLE:,} tasks, medians):"
    )
    for variant, value in per_task.items():
        print(f"    {variant:<20} {value:6.0f} ns/task  {value / floor:5.2f}x the floor")
    return Result(
        f"{loop_name} per task, tracking / floor",
        per_task["tracking, defaults"] / floor,
        GOAL_PER_TASK,
    )


# ------------------------------------------------------------------------------ in process


async def _in_process() -> dict[str, float]:
    apps = {
        label: globals()[factory]()
        for label, factory in VARIANTS.items()
        if label != "toolbar again"
    }
    best: dict[str, float] = {}
    for app in apps.values():
        await batch_us(app, "/noop", IN_PROCESS_BATCH)  # warm-up
    for _ in range(IN_PROCESS_BATCHES):
        for label, app in apps.items():
            figure = await batch_us(app, "/noop", IN_PROCESS_BATCH)
            best[label] = min(best.get(label, figure), figure)
    return best


def _in_process_report(loop_name: str, best: dict[str, float]) -> None:
    reference = best[REFERENCE]
    print(
        f"  {loop_name}, /noop in process (µs per request, best of {IN_PROCESS_BATCHES} batches):"
    )
    for label, value in best.items():
        extra = "" if label == REFERENCE else f"  {value - reference:+6.1f} µs"
        print(f"    {label:<22} {value:6.1f} µs{extra}")


# ------------------------------------------------------------------------------ run


def _loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    if uvloop is not None:
        loops.append(("uvloop", uvloop.new_event_loop))
    wanted = os.environ.get("BENCH_LOOPS", "").split(",")
    return [(name, new) for name, new in loops if name in wanted or wanted == [""]]


def _run_on(new_loop: Callable[[], asyncio.AbstractEventLoop], coro: Awaitable[Any]) -> Any:
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def run() -> list[Result]:
    """Print every figure; return the issue's goals as ``Result`` rows."""
    results: list[Result] = []
    print(
        "Async panel end to end: uvicorn on 127.0.0.1, one process per variant, one "
        "keep-alive client, variants interleaved in random order; reference: the toolbar "
        "without the Async panel"
    )
    for loop_name, _new_loop in _loops():
        results.extend(_e2e_report(loop_name, _serve_all(loop_name)))
    print("per trivial task, in process: the floor is a bare task factory + one done callback")
    for loop_name, new_loop in _loops():
        results.append(_micro_report(loop_name, _run_on(new_loop, _micro())))
    print("fixed cost per request, in process (no server, no I/O)")
    for loop_name, new_loop in _loops():
        _in_process_report(loop_name, _run_on(new_loop, _in_process()))
    return results


if __name__ == "__main__":
    for result in run():
        print(result)
