"""TaskFactoryBackend: the default async profiler backend, stdlib only.

It is deliberately thin. The task factory, the per-request recorder and the reference counting
per loop live in ``task_hooks`` (``TaskTracking``), because the yappi backend tracks tasks the
same way and the blocking-call detector needs to ask which request owns a task. This class only
adapts one request's ``TaskTracking`` to the ``AsyncProfilerBackend`` contract.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

__all__ = ("TaskFactoryBackend",)


class TaskFactoryBackend(AsyncProfilerBackend):
    """Records the tasks one request spawns through the loop's shared task factory.

    Times in the stats are milliseconds from ``origin_ns`` (the request's ``start_ns``), so they
    line up with every other panel. The overheads are measured, not estimated: the summary's
    ``overhead_ms`` is what the request paid (the per-task work on the hot path, installing and
    removing the hook); the stats' ``overhead_ms`` adds building them (``report_ms``: resolving
    the creation stacks into file, line and source happens there, not while the request runs).
    """

    name = "taskfactory"

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
        owner: object | None = None,
        origin_ns: int | None = None,
    ) -> None:
        self.tracking = TaskTracking(
            max_tasks=max_tasks,
            capture_stacks=capture_stacks,
            max_stack_depth=max_stack_depth,
            owner=owner,
        )
        self.origin_ns = time.perf_counter_ns() if origin_ns is None else origin_ns

    @classmethod
    def is_available(cls) -> bool:
        return True

    def start(self, loop: AbstractEventLoop) -> None:
        self.tracking.start(loop)

    def stop(self) -> None:
        self.tracking.stop()

    def owns_task(self, task: Future[Any]) -> bool:
        return self.tracking.recorder.owns(task)

    def get_summary(self) -> dict[str, Any]:
        recorder = self.tracking.recorder
        summary: dict[str, Any] = dict(recorder.state_counts())
        summary["dropped"] = recorder.dropped
        summary["overhead_ms"] = self.tracking.overhead_ns / 1e6
        return summary

    def get_stats(self) -> dict[str, Any]:
        started = time.perf_counter_ns()
        tasks = self.tracking.task_dicts(self.origin_ns)
        report_ns = time.perf_counter_ns() - started
        tracking_ns = self.tracking.recorder.overhead_ns
        setup_ns = self.tracking.setup_ns
        return {
            "tasks": tasks,
            "dropped": self.tracking.recorder.dropped,
            "overhead_ms": (tracking_ns + setup_ns + report_ns) / 1e6,
            "overhead": {
                "tracking_ms": tracking_ns / 1e6,
                "setup_ms": setup_ns / 1e6,
                "report_ms": report_ns / 1e6,
            },
        }
