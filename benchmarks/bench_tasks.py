"""What tracking a request's tasks costs per task, against bare asyncio (figures, no goal).

Per task (asyncio and uvloop): a "request" in its own task creates trivial tasks from a handler
eight frames deep (a middleware stack), either as gathers of 100 or one ``create_task`` +
``await`` at a time. Variants: bare asyncio (no task factory), bare again (the A/A check: the
noise of this machine), tracked with creation stacks off, tracked with the default stacks. Each
round runs every variant once, in rotating order, in one loop; figures are medians over rounds.
Only the handler's task work is timed: starting and stopping the request's tracking is part of
the end-to-end figure. Also printed: what the profiler's own accounting (``overhead_ns``, which
the panel shows: tasks times the per-task cost calibrated in this process) says per task, and
what building the task list of the record costs per task (``AsyncProfile.detail_dict``, paid
when someone reads the record).

The end-to-end figures and the goals of issue 10 (per task against the floor of any task
tracking, a bare factory plus one done callback) are in ``bench_async_panel``; this module
keeps the older comparison with bare asyncio, stacks off and on, gathers and one at a time,
printed for reference. The issue-3 goals it was held to (1.5x / 2.2x bare per task, 1.3x end
to end) are superseded.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency on POSIX
    uvloop = None  # type: ignore[assignment]

__all__ = ("run",)

GATHER_SIZE = 100
TASKS_PER_SAMPLE = 1_000
HANDLER_DEPTH = 8
MICRO_ROUNDS = 60
MICRO_BUDGET_S = 40.0

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
                f"   extra {per_task - bare:5.0f} ns, of which overhead_ns estimates "
                f"{accounted:4.0f} ns; stats {report:5.0f} ns/task afterwards"
            )
        print(line)
    return ratios


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


def run() -> None:
    """Print the per-task figures (the goals are ``bench_async_panel``'s)."""
    print(
        f"task tracking: trivial tasks created {HANDLER_DEPTH} frames deep, tracked by the "
        "task-factory backend (medians of interleaved rounds)"
    )
    for loop_name, new_loop in _loops():
        for scenario, work in (
            (f"gathers of {GATHER_SIZE}", _gathers),
            ("create_task + await, one at a time", _one_at_a_time),
        ):
            samples = _run_on(new_loop, functools.partial(_micro, work))
            _micro_report(loop_name, scenario, samples)


if __name__ == "__main__":
    run()
