"""One task factory per event loop, shared by every profiled request on it.

The first profiled request on a loop installs one factory (chained to whatever was there: the
app's own, ``asyncio.eager_task_factory``, uvloop's), the last one to finish restores exactly
that (``core.shared_hooks.SharedHooks``), and in between each new task is attributed through a
ContextVar to the request it was created under. asyncio copies the context into every task, so
children, grandchildren, ``TaskGroup``, ``gather`` and ``ensure_future`` are all attributed
without any bookkeeping per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import Context, ContextVar
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.recorder import TaskRecorder, current_task
from debug_toolbar.core.shared_hooks import LoopHooks, SharedHooks

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from debug_toolbar.core.panels.async_profiler.recorder import TaskFactory
    from debug_toolbar.core.panels.async_profiler.task_table import TaskTable

__all__ = ("LoopTaskHooks", "TaskTracking", "task_hooks")

logger = logging.getLogger("debug_toolbar.async_profiler")

_perf_ns = time.perf_counter_ns
_current_task = current_task
_Task = asyncio.Task

_current_recorder: ContextVar[TaskRecorder | None] = ContextVar(
    "debug_toolbar_task_recorder", default=None
)


class LoopTaskHooks:
    """The task factory installed on one loop, chained to the one that was there before."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous: TaskFactory | None = None
        self.factory: TaskFactory | None = None

    def install(self) -> None:
        previous = self.loop.get_task_factory()
        recorder_var = _current_recorder
        get_recorder = recorder_var.get

        def tracking_task_factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Future[Any]:
            context: Context | None = kwargs.get("context") if kwargs else None
            recorder = get_recorder() if context is None else context.get(recorder_var)
            if recorder is None or not recorder.active:
                if previous is None:
                    return _Task(coro, loop=loop, **kwargs)
                return previous(loop, coro, **kwargs)
            if previous is None:
                return recorder.track(loop, coro, kwargs)
            return recorder.track_chained(loop, coro, previous, kwargs)

        self.previous = previous
        self.factory = tracking_task_factory
        self.loop.set_task_factory(tracking_task_factory)  # type: ignore[arg-type]

    def uninstall(self) -> None:
        current = self.loop.get_task_factory()
        if current is self.factory:
            self.loop.set_task_factory(self.previous)
        else:
            logger.warning(
                "the loop's task factory was replaced while the async profiler was tracking "
                "tasks; leaving the new factory %r in place",
                current,
            )
        self.factory = None


task_hooks: LoopHooks[LoopTaskHooks] = SharedHooks("task factory", LoopTaskHooks)
"""The process-wide registry of task hooks, one per loop."""


class TaskTracking:
    """One request's use of its loop's shared task hooks: start, stop, read the tasks.

    ``start`` must run in the request's own task: it records that task as the request's root
    and sets the ContextVar that the tasks it spawns inherit.
    """

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
    ) -> None:
        self.recorder = TaskRecorder(
            max_tasks=max_tasks,
            capture_stacks=capture_stacks,
            max_stack_depth=max_stack_depth,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hooks: LoopTaskHooks | None = None
        self._token: Any = None
        self.setup_ns = 0
        """Time spent starting and stopping (install, ContextVar), part of the overhead."""

    @property
    def running(self) -> bool:
        return self._hooks is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._hooks is not None:
            raise RuntimeError("task tracking already started for this request")
        started = _perf_ns()
        self._hooks = task_hooks.acquire(loop)
        self._loop = loop
        self.recorder.root_task = _current_task(loop)
        self._token = _current_recorder.set(self.recorder)
        self.setup_ns += _perf_ns() - started

    def stop(self) -> None:
        """Idempotent; safe after a failed or missing ``start``."""
        hooks, loop = self._hooks, self._loop
        if hooks is None or loop is None:
            return
        started = _perf_ns()
        self._hooks = None
        self._loop = None  # the recorder may outlive the loop (in a record's deferred stats)
        self.recorder.stop()
        self._reset_context()
        task_hooks.release(loop)
        self.setup_ns += _perf_ns() - started

    def _reset_context(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:  # noqa: SIM105 - not contextlib.suppress: see below
            _current_recorder.reset(token)
        except ValueError:
            # Stopped from another context than the one that started: the recorder is
            # inactive, so whatever still sees it records nothing. (Not contextlib.suppress:
            # this runs on every request, and its object and two calls cost more than this.)
            pass

    @property
    def overhead_ns(self) -> int:
        return self.recorder.overhead_ns + self.setup_ns

    def table(self, origin_ns: int) -> TaskTable:
        """The request's tasks, frozen (after ``stop``); times in ms from ``origin_ns``."""
        return self.recorder.table(origin_ns)
