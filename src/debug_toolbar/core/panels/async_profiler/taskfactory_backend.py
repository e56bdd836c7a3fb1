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
from debug_toolbar.core.panels.async_profiler.profile import BackendProfile, Overhead
from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

__all__ = ("TaskFactoryBackend",)


class TaskFactoryBackend(AsyncProfilerBackend):
    """Records the tasks one request spawns through the loop's shared task factory.

    Times in the stats are milliseconds from ``origin_ns`` (the request's ``start_ns``), so they
    line up with every other panel. Installing and removing the hook is measured; the per-task
    work on the hot path is estimated from a cost per task calibrated in this process
    (``calibration.TaskCalibration``), and says so (``tracking_estimated``). Building the stats
    (``report_ms``: resolving the creation stacks into file, line and source) is measured when
    it happens, not while the request runs.
    """

    name = "taskfactory"

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
        origin_ns: int | None = None,
    ) -> None:
        self.tracking = TaskTracking(
            max_tasks=max_tasks,
            capture_stacks=capture_stacks,
            max_stack_depth=max_stack_depth,
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

    def collected(self) -> BackendProfile:
        tracking = self.tracking
        return BackendProfile(
            tasks=tracking.table(self.origin_ns),
            overhead=Overhead(
                tracking_ms=tracking.recorder.overhead_ns / 1e6,
                setup_ms=tracking.setup_ns / 1e6,
                tracking_estimated=True,
                per_task_ns=tracking.recorder.per_task_ns,
            ),
        )
