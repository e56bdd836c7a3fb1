"""The process's one ``sys.monitoring`` tool for step timing (Python 3.12+).

A step begins when a task's coroutine starts or resumes and ends when it yields (suspends),
returns or raises. On 3.12+ ``await`` runs through every frame of the await chain, so the
task's *outermost* coroutine sees each of these: ``PY_START``/``PY_RESUME`` at a step's start,
``PY_YIELD`` at each suspension (with the Future the task will wait for), ``PY_RETURN`` at the
end. These are *local* events: they are switched on for a few code objects only, the outermost
coroutines of the tasks being timed, and the rest of the process runs uninstrumented.

A code object is shared by every coroutine running that function, including other requests'
and unprofiled ones, so each event is attributed by its frame: the monitor keeps the outermost
frame of every task being timed (``watch``), and an event from any other frame costs one dict
look-up. The frame of the event is the caller of the callback (``sys._getframe(1)``).

One tool per process (``sys.monitoring`` is per interpreter), installed by the first request
that times steps and removed by the last one (``core.shared_hooks``): then every code object it
instrumented is restored. It takes the first free tool id of ``TOOL_IDS`` (ids CPython assigns
to nobody); ``PROFILER_ID`` and ``COVERAGE_ID`` belong to profilers and coverage.py, which may
be running. With no free id, step timing says so instead of taking one that is in use.

What local events do not report (``PY_THROW`` and ``PY_UNWIND`` exist only process-wide, where
every exception in the process would call back): a step that begins with an exception thrown
into the task (a cancellation) and the end of a task that raises. The recorder makes do with
what it sees (``step_recorder``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from debug_toolbar.core.shared_hooks import SharedHooks

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, FrameType

__all__ = (
    "PROCESS",
    "STEPS_UNAVAILABLE",
    "TOOL_IDS",
    "TOOL_NAME",
    "NoFreeToolError",
    "StepMonitor",
    "StepWatcher",
    "step_monitors",
)

monitoring: Any = getattr(sys, "monitoring", None)

STEPS_UNAVAILABLE: str | None = (
    None if monitoring is not None else "step timing needs Python 3.12+ (sys.monitoring)"
)
"""Why steps cannot be timed in this interpreter, or None when they can."""

TOOL_IDS = (3, 4)
"""Tool ids CPython leaves unassigned (0 debugger, 1 coverage, 2 profiler, 5 optimizer)."""
TOOL_NAME = "debug-toolbar step timing"
PROCESS = "process"
"""The one key of ``step_monitors``: the tool is per interpreter."""

_perf_ns = time.perf_counter_ns
_getframe = sys._getframe
logger = logging.getLogger("debug_toolbar.async_profiler")


class NoFreeToolError(RuntimeError):
    """Every id of ``TOOL_IDS`` is taken by another tool."""


class StepWatcher(Protocol):
    """One task being timed (``step_recorder.TaskSteps``), told about its outermost frame."""

    begin_ns: int
    """When the step going on began; 0 while the task is suspended."""

    def suspend(self, now_ns: int, value: object) -> None:
        """The task suspended at ``now_ns``, waiting for ``value`` (what it yielded)."""

    def finish(self, now_ns: int) -> None:
        """The task's coroutine returned at ``now_ns``."""

    def broken(self) -> None:
        """A call above raised: the task is no longer timed (the frame is forgotten)."""


class StepMonitor:
    """The process's step-timing tool; built and installed by ``step_monitors.acquire``."""

    def __init__(self, key: object = PROCESS) -> None:
        self.tool_id: int | None = None
        self.frames: dict[FrameType, StepWatcher] = {}
        """The outermost frame of every task being timed, in any request or thread."""
        self.failures = 0
        """Callbacks that raised (logged once per install): their tasks' steps stopped."""
        self._codes: dict[int, CodeType] = {}
        """Code objects with local events on, by id (hashing a code object hashes its body)."""

    @property
    def installed(self) -> bool:
        return self.tool_id is not None

    def install(self) -> None:
        if monitoring is None:
            raise RuntimeError(STEPS_UNAVAILABLE)
        for tool_id in TOOL_IDS:
            if monitoring.get_tool(tool_id) is None:
                break
        else:
            raise NoFreeToolError(
                "step timing found no free sys.monitoring tool id (tried "
                + ", ".join(map(str, TOOL_IDS))
                + ")"
            )
        monitoring.use_tool_id(tool_id, TOOL_NAME)
        events = monitoring.events
        on_begin, on_yield, on_return = self._callbacks()
        try:
            monitoring.register_callback(tool_id, events.PY_START, on_begin)
            monitoring.register_callback(tool_id, events.PY_RESUME, on_begin)
            monitoring.register_callback(tool_id, events.PY_YIELD, on_yield)
            monitoring.register_callback(tool_id, events.PY_RETURN, on_return)
        except BaseException:
            self._release_tool(tool_id)
            raise
        self.tool_id = tool_id

    def _callbacks(self) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
        """The three callbacks, closures over this monitor's frames (local look-ups only).

        An exception raised in a callback would surface in the application's code, at its
        await: a failure stops timing that task, is logged once, and never reaches the app.
        """
        frames = self.frames
        get = frames.get
        pop = frames.pop
        failed = self._failed

        def on_begin(code: CodeType, offset: int) -> None:
            watcher = get(_getframe(1))
            if watcher is not None:
                watcher.begin_ns = _perf_ns()

        def on_yield(code: CodeType, offset: int, value: object) -> None:
            now = _perf_ns()
            frame = _getframe(1)
            watcher = get(frame)
            if watcher is not None:
                try:
                    watcher.suspend(now, value)
                except Exception:
                    failed(frame, watcher)

        def on_return(code: CodeType, offset: int, value: object) -> None:
            now = _perf_ns()
            watcher = pop(_getframe(1), None)
            if watcher is not None:
                try:
                    watcher.finish(now)
                except Exception:
                    failed(None, watcher)

        return on_begin, on_yield, on_return

    def _failed(self, frame: FrameType | None, watcher: StepWatcher) -> None:
        if frame is not None:
            self.frames.pop(frame, None)
        with contextlib.suppress(Exception):
            watcher.broken()
        if not self.failures:
            logger.warning("step timing failed; the task's steps stop here", exc_info=True)
        self.failures += 1

    def uninstall(self) -> None:
        tool_id, self.tool_id = self.tool_id, None
        self.frames.clear()
        if tool_id is None:
            return
        codes, self._codes = self._codes, {}
        for code in codes.values():
            monitoring.set_local_events(tool_id, code, 0)
        self._release_tool(tool_id)

    @staticmethod
    def _release_tool(tool_id: int) -> None:
        events = monitoring.events
        for event in (events.PY_START, events.PY_RESUME, events.PY_YIELD, events.PY_RETURN):
            monitoring.register_callback(tool_id, event, None)
        monitoring.free_tool_id(tool_id)

    def watch(self, frame: FrameType, code: CodeType, watcher: StepWatcher) -> None:
        """Report the steps run in ``frame`` (a task's outermost, running ``code``)."""
        tool_id = self.tool_id
        if tool_id is None:
            raise RuntimeError("the step monitor is not installed")
        if id(code) not in self._codes:
            events = monitoring.events
            monitoring.set_local_events(
                tool_id,
                code,
                events.PY_START | events.PY_RESUME | events.PY_YIELD | events.PY_RETURN,
            )
            self._codes[id(code)] = code
        self.frames[frame] = watcher

    def unwatch(self, frame: FrameType) -> None:
        self.frames.pop(frame, None)

    @property
    def instrumented(self) -> int:
        """How many code objects have local events on (for tests and the docs' figures)."""
        return len(self._codes)


step_monitors: SharedHooks[str, StepMonitor] = SharedHooks("step monitor", StepMonitor)
"""The process-wide registry: one step monitor, key ``PROCESS``."""
