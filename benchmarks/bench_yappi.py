"""What the yappi backend costs next to the task-factory backend, on a 100-task request.

One profiled request here is what the panel does around a handler that gathers 100 trivial
tasks: start the backend in the request's task, gather, stop, build the stats. Bare asyncio
(no backend) is the reference. The variants run interleaved in one process and one loop, round
after round, so drift (CPU frequency, other load) hits all of them alike; the figures are
medians. A second scenario runs 10 such requests concurrently, because yappi's cost grows with
everything else it has to trace at the same time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend, yappi_session

__all__ = ("run",)

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


async def _timed(make_backend: BackendFactory, concurrency: int) -> tuple[float, float]:
    """(ms until every request stopped, ms building their stats) for one batch."""
    started = time.perf_counter_ns()
    backends = await asyncio.gather(*(_request(make_backend) for _ in range(concurrency)))
    stopped = time.perf_counter_ns()
    stats = [backend.get_stats() for backend in backends if backend is not None]
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
    print(f"  {'':<13} {'request':>10} {'per task':>10} {'vs bare':>8} {'get_stats':>10}")
    for name, (request, stats) in medians.items():
        per_task_us = request * 1000 / (TASKS_PER_REQUEST * concurrency)
        print(
            f"  {name:<13} {request:7.3f} ms {per_task_us:7.2f} µs {request / bare:7.1f}x "
            f"{stats:7.3f} ms"
        )
    yappi, taskfactory = medians["yappi"], medians["taskfactory"]
    print(
        f"  yappi / taskfactory: {yappi[0] / taskfactory[0]:.1f}x the request, "
        f"{sum(yappi) / sum(taskfactory):.1f}x request + get_stats"
    )


def run(rounds: int = 200, warmup: int = 20) -> None:
    """Print the medians and ratios of both scenarios."""
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


if __name__ == "__main__":
    run()
