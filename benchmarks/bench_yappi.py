"""What the yappi backend costs next to the task-factory backend, on a 100-task request.

One profiled request here is what the panel does around a handler that gathers 100 trivial
tasks: start the backend in the request's task, gather, stop; then the stats are built as the
record's first reader builds them (the frozen profile, turned into the history's dicts:
``AsyncProfile.to_dict``). Bare asyncio
(no backend) is the reference. The variants run interleaved in one process and one loop, round
after round, so drift (CPU frequency, other load) hits all of them alike; the figures are
medians. A second scenario runs 10 such requests concurrently, because yappi's cost grows with
everything else it has to trace at the same time.

A third part measures what yappi keeps for good (sumerc/yappi#217, #220): the process's growth
per request, in RSS and in tracemalloc, the coroutines still alive after a collection, and the
backend's own count and estimate of them (``YappiRetention``), which should agree.
``python -m benchmarks.bench_yappi --leak`` runs that part alone.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend, yappi_session

__all__ = ("run", "run_leak")

TASKS_PER_REQUEST = 100
CONCURRENT_REQUESTS = 10

BackendFactory = Callable[[], AsyncProfilerBackend] | None


async def _trivial() -> None:
    return None


async def _handler() -> None:
    await asyncio.gather(*(_trivial() for _ in range(TASKS_PER_REQUEST)))


async def _request(make_backend: BackendFactory) -> AsyncProfilerBackend | None:
    """One request in its own task, profiled by a fresh backend as the panel would."""

    async def request_task() -> AsyncProfilerBackend | None:
        if make_backend is None:
            await _handler()
            return None
        backend = make_backend()
        backend.start(asyncio.get_running_loop())
        try:
            await _handler()
        finally:
            backend.stop()
        return backend

    return await asyncio.create_task(request_task())


def _stats(backend: AsyncProfilerBackend) -> dict[str, Any]:
    """The request's stats as the history keeps them, from what the backend collected."""
    collected = backend.collected()
    return AsyncProfile(
        backend=backend.name,
        tasks=collected.tasks,
        overhead=collected.overhead,
        functions=collected.functions,
    ).to_dict()


async def _timed(make_backend: BackendFactory, concurrency: int) -> tuple[float, float]:
    """(ms until every request stopped, ms building their stats) for one batch."""
    started = time.perf_counter_ns()
    backends = await asyncio.gather(*(_request(make_backend) for _ in range(concurrency)))
    stopped = time.perf_counter_ns()
    stats = [_stats(backend) for backend in backends if backend is not None]
    reported = time.perf_counter_ns()
    # A benchmark of a backend that recorded nothing would measure nothing.
    assert all(len(each["tasks"]) == TASKS_PER_REQUEST for each in stats)
    return (stopped - started) / 1e6, (reported - stopped) / 1e6


VARIANTS: dict[str, BackendFactory] = {
    "bare asyncio": None,
    "taskfactory": TaskFactoryBackend,
    "yappi": YappiBackend,
}

Medians = dict[str, tuple[float, float]]


async def _measure(rounds: int, concurrency: int, warmup: int) -> Medians:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for round_index in range(warmup + rounds):
        # Rotate the order so no variant always runs right after the same one.
        offset = round_index % len(names)
        for name in names[offset:] + names[:offset]:
            elapsed = await _timed(VARIANTS[name], concurrency)
            if round_index >= warmup:
                samples[name].append(elapsed)
    return {
        name: (
            statistics.median(request for request, _ in values),
            statistics.median(stats for _, stats in values),
        )
        for name, values in samples.items()
    }


def _report(title: str, medians: Medians, concurrency: int) -> None:
    bare = medians["bare asyncio"][0]
    print(title)
    print(f"  {'':<13} {'request':>10} {'per task':>10} {'vs bare':>8} {'stats':>10}")
    for name, (request, stats) in medians.items():
        per_task_us = request * 1000 / (TASKS_PER_REQUEST * concurrency)
        print(
            f"  {name:<13} {request:7.3f} ms {per_task_us:7.2f} µs {request / bare:7.1f}x "
            f"{stats:7.3f} ms"
        )
    yappi, taskfactory = medians["yappi"], medians["taskfactory"]
    print(
        f"  yappi / taskfactory: {yappi[0] / taskfactory[0]:.1f}x the request, "
        f"{sum(yappi) / sum(taskfactory):.1f}x request + stats"
    )


_COROUTINE_KINDS = (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)


def _rss_bytes() -> int | None:
    statm = Path("/proc/self/statm")  # Linux; elsewhere the RSS column is left out
    if not statm.exists():
        return None
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _coroutines_alive() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, _COROUTINE_KINDS))


async def _growth(make_backend: BackendFactory, requests: int, traced: bool) -> dict[str, float]:
    """Per request: bytes the process keeps (RSS, or tracemalloc), coroutines kept and counted."""
    for _ in range(10):  # warm-up: caches, the loop's free lists
        await _request(make_backend)
    coroutines, counted = _coroutines_alive(), yappi_session.retention()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else _rss_bytes() or 0
    for _ in range(requests):
        await _request(make_backend)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if traced else _rss_bytes() or 0
    if traced:
        tracemalloc.stop()
    retention = yappi_session.retention()
    return {
        "bytes": (after - before) / requests,
        "coroutines": (_coroutines_alive() - coroutines) / requests,
        "counted": (retention.coroutines - counted.coroutines) / requests,
        "estimate": (retention.approx_bytes - counted.approx_bytes) / requests,
    }


def run_leak(requests: int = 300) -> None:
    """Print what each yappi-profiled request leaves in the process, next to the task factory."""
    print(
        f"what stays in memory per request, over {requests} requests of {TASKS_PER_REQUEST} "
        "gathered tasks (after a garbage collection)"
    )
    print(f"  {'':<13} {'RSS':>9} {'traced':>9} {'estimate':>9} {'coroutines':>11} {'counted':>8}")
    for name in ("taskfactory", "yappi"):
        rss = asyncio.run(_growth(VARIANTS[name], requests, traced=False))
        traced = asyncio.run(_growth(VARIANTS[name], requests, traced=True))
        rss_text = f"{rss['bytes'] / 1024:6.1f} KB" if _rss_bytes() is not None else "      -"
        print(
            f"  {name:<13} {rss_text:>9} {traced['bytes'] / 1024:6.1f} KB "
            f"{traced['estimate'] / 1024:6.1f} KB {traced['coroutines']:11.1f} "
            f"{traced['counted']:8.1f}"
        )


def run(rounds: int = 200, warmup: int = 20) -> None:
    """Print the medians and ratios of both scenarios, then what yappi keeps per request."""
    sequential = asyncio.run(_measure(rounds, 1, warmup))
    concurrent = asyncio.run(_measure(max(rounds // 4, 10), CONCURRENT_REQUESTS, warmup // 4))
    print(
        f"yappi backend vs task-factory backend: {TASKS_PER_REQUEST} trivial tasks gathered per "
        f"request; 'request' is start + handler + stop, medians of interleaved rounds"
    )
    _report("1 request at a time:", sequential, 1)
    _report(
        f"{CONCURRENT_REQUESTS} concurrent requests (figures per batch):",
        concurrent,
        CONCURRENT_REQUESTS,
    )
    run_leak()


if __name__ == "__main__":
    if sys.argv[1:] == ["--leak"]:
        run_leak()
    else:
        run()
