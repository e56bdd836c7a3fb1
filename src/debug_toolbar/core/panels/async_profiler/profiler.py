"""AsyncRequestProfiler: one profiled request's collectors, started and stopped together.

A request's async profile comes from up to three collectors: its backend (task tracking, plus
yappi's function table), the blocking-call detector and the lag monitor. Each installs shared,
reference-counted hooks on the loop (a task factory, a heartbeat, a watchdog thread). They are
started along one path and stopped along its reverse, whatever fails on the way
(``contextlib.ExitStack``): a collector that could not start stops those started before it, and
one that fails to stop does not keep the others installed.

``stop`` freezes what was collected into an ``AsyncProfile`` and forgets the collectors: the
profile holds no collector, task or loop, so a record waiting in the history keeps none alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend

__all__ = ("AsyncRequestProfiler",)


class AsyncRequestProfiler:
    """Profiles one request: its tasks, the loop's stalls and lag, on one clock.

    ``start`` must run in the request's own task: the backend records that task as the
    request's root and sets the ContextVar its children inherit, and the detector recognises
    the request by it.
    """

    def __init__(
        self,
        context: RequestContext,
        config: DebugToolbarConfig,
        backend: AsyncProfilerBackend,
        *,
        backend_note: str | None = None,
    ) -> None:
        self.context = context
        self.backend = backend
        self.backend_note = backend_note
        self.detector: BlockingCallDetector | None = None
        self.lag_monitor: EventLoopLagMonitor | None = None
        if config.async_enable_blocking_detection:
            self.detector = BlockingCallDetector(
                threshold_ms=config.async_blocking_threshold_ms,
                interval_ms=config.async_lag_sample_interval_ms,
                max_stack_depth=config.async_max_stack_depth,
                owner=context,
                owns_task=backend.owns_task,
                origin_ns=context.start_ns,
            )
        if config.async_enable_event_loop_monitoring:
            self.lag_monitor = EventLoopLagMonitor(
                threshold_ms=config.async_event_loop_lag_threshold_ms,
                interval_ms=config.async_lag_sample_interval_ms,
                origin_ns=context.start_ns,
            )
        self._running: contextlib.ExitStack | None = None
        self._profile: AsyncProfile | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start every collector; if one fails, those already started are stopped first.

        The backend starts last and stops first, outside the ``ExitStack``: with yappi, the
        request's tag is then set only around the request's own code, not while the toolbar
        installs or removes its hooks (the watchdog thread, the heartbeat, the stack itself),
        whose stdlib calls would otherwise be counted as the request's functions.
        """
        if self._running is not None or self._profile is not None:
            raise RuntimeError("this request is already being profiled")
        loop = asyncio.get_running_loop() if loop is None else loop
        with contextlib.ExitStack() as started:
            if self.detector is not None:
                self.detector.install(loop)
                started.callback(self.detector.uninstall)
            if self.lag_monitor is not None:
                self.lag_monitor.start(loop)
                started.callback(self.lag_monitor.stop)
            running = started.pop_all()
        try:
            self.backend.start(loop)
        except BaseException:
            try:
                self.backend.stop()
            finally:
                running.close()
            raise
        self._running = running

    def stop(self) -> AsyncProfile:
        """Stop collecting (idempotent) and return the request's frozen profile.

        Safe after a failed or missing ``start``: the profile is then what was collected, maybe
        nothing. The collectors stop in reverse order, each even if another failed to.
        """
        if self._profile is not None:
            return self._profile
        running, self._running = self._running, None
        if running is not None:
            try:
                self.backend.stop()
            finally:
                running.close()
        profile = self._freeze()
        self._profile = profile
        # The profile is all that remains: drop the collectors (and through them, the loop).
        self.detector = self.lag_monitor = None
        return profile

    def _freeze(self) -> AsyncProfile:
        backend = self.backend
        collected = backend.collected()
        return AsyncProfile(
            backend=backend.name,
            backend_note=self.backend_note,
            tasks=collected.tasks,
            blocking_calls=() if self.detector is None else tuple(self.detector.get_stats()),
            lag=None if self.lag_monitor is None else self.lag_monitor.get_stats(),
            overhead=collected.overhead,
            functions=collected.functions,
        )
