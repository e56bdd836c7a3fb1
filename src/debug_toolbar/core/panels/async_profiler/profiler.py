"""AsyncRequestProfiler: one profiled request's collectors, started and stopped together.

A request's async profile comes from up to three collectors: its backend (task tracking, plus
yappi's function table), the blocking-call detector and the lag monitor. Each installs shared,
reference-counted hooks on the loop (a task factory, a heartbeat, a watchdog thread). They are
started along one path and stopped along its reverse, whatever fails on the way
(a list of their stops): a collector that could not start stops those started before it, and
one that fails to stop does not keep the others installed.

``stop_collecting`` stops them; the stopped collectors hold plain data only (no loop, task or
request context: a detector that kept nothing is let go), so the panel may freeze the profile
later, when its record is first read (``freezes_later``). ``stop`` freezes what was collected
into an ``AsyncProfile`` and forgets the collectors: the profile holds no collector, task or
loop, so a record waiting in the history keeps none alive.
``progress`` reads what was collected so far without stopping anything (when the response
starts, for its ``Server-Timing`` header).

With ``async_step_timing`` on, the request's steps (``step_recorder``, started after the
backend, whose task recorder tells it about every task), and the blocking-call detector keeps a
second list, of the stalls from the lag threshold up: the watchdog then samples the shorter
stalls too, and a slow step can be named at the exact line that held the loop
(``step_report.slow_steps``). One detector with two thresholds, not two detectors: each costs
its request a heartbeat subscription, some 50 µs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile, Overhead
from debug_toolbar.core.panels.async_profiler.recorder import current_task
from debug_toolbar.core.panels.async_profiler.step_findings import StepFindings
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.core.panels.async_profiler.step_recorder import StepRecorder
from debug_toolbar.core.panels.async_profiler.step_report import breakdown_so_far
from debug_toolbar.core.panels.async_profiler.steps import RequestTask

if TYPE_CHECKING:
    from collections.abc import Callable

    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
    from debug_toolbar.core.panels.async_profiler.profile import YappiRetention
    from debug_toolbar.core.panels.async_profiler.recorder import TaskRecorder
    from debug_toolbar.core.panels.async_profiler.step_report import TimeBreakdown
    from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking

__all__ = ("SLOW_SAMPLE_MIN_MS", "AsyncRequestProfiler", "RequestProgress")

SLOW_SAMPLE_MIN_MS = 5.0
"""The shortest stall the watchdog samples for slow steps, whatever the lag threshold: the
heartbeat beats every threshold / 4, and more often than every 1.25 ms it would busy the loop."""
STEP_TIMING_OFF = "step timing is off (async_step_timing)"


@dataclass(frozen=True, slots=True)
class RequestProgress:
    """What a request did so far, read while it is still profiled (``progress``)."""

    tasks: int
    """Tasks it spawned so far, those over the cap (``async_max_tasks``) included."""
    breakdown: TimeBreakdown | None
    """Its own task's time so far (``step_report.breakdown_so_far``); None without steps."""
    blocked_known: bool
    """Stalls are watched (blocking detection on), so ``breakdown.blocked_ms`` is measured;
    without the watchdog a stall another request caused counts as waiting or queued."""


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
        self.origin_ns = context.start_ns
        """The request's start: every time in the profile is in ms from it. The context
        itself is not kept: a profile frozen later must not keep the request alive."""
        self.backend = backend
        self.backend_note = backend_note
        self.detector: BlockingCallDetector | None = None
        self.lag_monitor: EventLoopLagMonitor | None = None
        self.steps: StepRecorder | None = None
        self._steps_unavailable = STEP_TIMING_OFF if not config.async_step_timing else None
        if config.async_step_timing:
            if STEPS_UNAVAILABLE is None:
                self.steps = StepRecorder(
                    max_steps=config.async_max_steps,
                    slow_threshold_ms=config.async_event_loop_lag_threshold_ms,
                    max_stack_depth=config.async_max_stack_depth,
                )
            else:  # an older Python: no recorder that would only say so, request by request
                self._steps_unavailable = STEPS_UNAVAILABLE
        if config.async_enable_blocking_detection:
            # With step timing, the same detector also keeps the shorter stalls, so a slow
            # step is named at the line that held the loop (on every Python version).
            slow_ms = (
                max(config.async_event_loop_lag_threshold_ms, SLOW_SAMPLE_MIN_MS)
                if config.async_step_timing
                else None
            )
            self.detector = BlockingCallDetector(
                threshold_ms=config.async_blocking_threshold_ms,
                interval_ms=config.async_lag_sample_interval_ms,
                max_stack_depth=config.async_max_stack_depth,
                owner=context,
                owns_task=backend.owns_task,
                origin_ns=context.start_ns,
                slow_threshold_ms=slow_ms,
                max_slow=config.async_max_steps,
            )
        if config.async_enable_event_loop_monitoring:
            self.lag_monitor = EventLoopLagMonitor(
                threshold_ms=config.async_event_loop_lag_threshold_ms,
                interval_ms=config.async_lag_sample_interval_ms,
                origin_ns=context.start_ns,
            )
        self.blocking_threshold_ms = config.async_blocking_threshold_ms
        self._request_task: tuple[str, str] | None = None
        self._started_ns = self._stopped_ns = 0
        self._running: list[Callable[[], None]] | None = None
        """While profiling: the collectors' stop methods, in the order they started."""
        self._profile: AsyncProfile | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start every collector; if one fails, those already started are stopped first.

        The backend starts last and stops first, apart from the other collectors: with yappi, the
        request's tag is then set only around the request's own code, not while the toolbar
        installs or removes its hooks (the watchdog thread, the heartbeat, the stack itself),
        whose stdlib calls would otherwise be counted as the request's functions.
        """
        if self._running is not None or self._profile is not None:
            raise RuntimeError("this request is already being profiled")
        loop = asyncio.get_running_loop() if loop is None else loop
        # A plain list and try/except rather than an ExitStack: this runs on every request,
        # and the stack's objects and callbacks cost more than the rest of starting.
        running: list[Callable[[], None]] = []
        try:
            if self.detector is not None:
                self.detector.install(loop)
                running.append(self.detector.uninstall)
            if self.lag_monitor is not None:
                # On the detector's heartbeat when there is one: it holds it until after the
                # monitor stops (stops run in reverse), so one acquisition serves both.
                self.lag_monitor.start(
                    loop, heartbeat=None if self.detector is None else self.detector.heartbeat
                )
                running.append(self.lag_monitor.stop)
            try:
                self.backend.start(loop)
                self._start_steps(loop)
            except BaseException:
                try:
                    self._stop_steps()
                finally:
                    self.backend.stop()
                raise
        except BaseException:
            _stop_all(running)
            raise
        self._running = running

    def _start_steps(self, loop: asyncio.AbstractEventLoop) -> None:
        """Record the request's own task and, with step timing, time its steps from now."""
        task = current_task(loop)
        self._started_ns = time.perf_counter_ns()
        if task is not None:
            coro = getattr(task, "get_coro", lambda: None)()
            coro_name = getattr(coro, "__qualname__", None) or type(coro).__name__
            self._request_task = (_task_name(task), str(coro_name))
        steps = self.steps
        if steps is None:
            return
        recorder = _task_recorder(self.backend)
        steps.start(task, {} if recorder is None else recorder.live)
        self._started_ns = steps.start_ns
        if recorder is not None and steps.active:
            recorder.steps = steps

    def _stop_steps(self) -> None:
        steps = self.steps
        if steps is not None:
            recorder = _task_recorder(self.backend)
            if recorder is not None:
                recorder.steps = None
            steps.stop()
        stopped = steps.end_ns if steps is not None else 0
        self._stopped_ns = stopped or time.perf_counter_ns()

    def progress(self, now_ns: int | None = None) -> RequestProgress:
        """What was collected up to ``now_ns`` (default: now), collection going on.

        On the loop's thread, while the request is profiled. Cheap: a count, and the request
        task's own steps so far (none of the spawned tasks' steps, no site resolved).
        """
        now = time.perf_counter_ns() if now_ns is None else now_ns
        recorder = _task_recorder(self.backend)
        tasks = 0 if recorder is None else len(recorder) + recorder.dropped
        breakdown = None
        steps = self.steps
        if steps is not None and steps.active:
            detector = self.detector
            suffered = [] if detector is None else detector.suffered_spans()
            breakdown = breakdown_so_far(
                steps, origin_ns=self.origin_ns, now_ns=now, suffered=suffered
            )
        return RequestProgress(
            tasks=tasks, breakdown=breakdown, blocked_known=self.detector is not None
        )

    def stop_collecting(self) -> None:
        """Stop every collector (idempotent), leaving the freezing to ``stop``.

        Safe after a failed or missing ``start``. The collectors stop in reverse order, each
        even if another failed to. The panel stops collecting when the response is sent and
        freezes the profile when the record is built, with the fixed costs measured by then.
        """
        running, self._running = self._running, None
        if running is not None:
            try:
                self._stop_steps()
            finally:
                try:
                    self.backend.stop()
                finally:
                    _stop_all(running)
        detector = self.detector
        if detector is not None and not detector.running and not detector.saw_stalls:
            # Nothing to report, and it knows the request's context (to recognise its own
            # stalls): let it go, so that a profile frozen later keeps no context alive.
            self.detector = None

    @property
    def freezes_later(self) -> bool:
        """Whether, collection stopped, the profile may be frozen later, when its record is
        first read (``stop`` then only reads plain data): unless a stall was kept, whose
        samples name the requests that held the loop; those are resolved now, so that no
        other request's context outlives it."""
        return not self.running and self.detector is None

    def counts(self) -> tuple[int, int, int, int]:
        """Tasks kept, tasks over the cap, steps and lag samples collected: what a profile
        frozen later will hold (for the nav, and the history's byte budget meanwhile)."""
        recorder = _task_recorder(self.backend)
        steps, lag = self.steps, self.lag_monitor
        return (
            0 if recorder is None else len(recorder),
            0 if recorder is None else recorder.dropped,
            0 if steps is None else len(steps.rows),
            0 if lag is None else lag.sample_count,
        )

    def stop(
        self,
        *,
        own_ms: Callable[[], float] | None = None,
        heartbeat_ms: float | None = None,
        yappi_retention: YappiRetention | None = None,
    ) -> AsyncProfile:
        """Stop collecting (idempotent) and return the request's frozen profile.

        ``own_ms`` is what the caller's hooks cost so far (read as the profile is frozen,
        last): the profile's ``setup_ms`` then holds every fixed cost, yappi's own part
        excepted.
        ``heartbeat_ms`` is the heartbeat's time during the request and ``yappi_retention``
        what yappi keeps in the process: the profile is frozen once, with all of them.
        """
        if self._profile is not None:
            return self._profile
        self.stop_collecting()
        profile = self._freeze(own_ms, heartbeat_ms, yappi_retention)
        self._profile = profile
        # The profile is all that remains: drop the collectors (and through them, the loop).
        self.detector = self.lag_monitor = None
        self.steps = None
        return profile

    def _freeze(
        self,
        own_ms: Callable[[], float] | None,
        heartbeat_ms: float | None,
        yappi_retention: YappiRetention | None,
    ) -> AsyncProfile:
        backend = self.backend
        collected = backend.collected()
        origin = self.origin_ns
        detector = self.detector
        blocking = () if detector is None else tuple(detector.get_stats())
        stalls = () if detector is None else tuple(detector.get_slow_stats())
        steps = self.steps
        table = None if steps is None else steps.table(origin)
        # Computed when first read: nothing here costs per step while the response waits.
        findings = StepFindings(
            table,
            slow_rows=() if steps is None else steps.slow,
            own_stalls=stalls,
            other_stalls=(*blocking, *stalls),
            blocking_threshold_ms=self.blocking_threshold_ms,
        )
        request_task = None
        if self._request_task is not None and self._started_ns:
            name, coro_name = self._request_task
            request_task = RequestTask(
                name=name,
                coro_name=coro_name,
                start_ms=(self._started_ns - origin) / 1e6,
                end_ms=(max(self._stopped_ns, self._started_ns) - origin) / 1e6,
            )
        lag = None if self.lag_monitor is None else self.lag_monitor.get_stats()
        return AsyncProfile(
            backend=backend.name,
            backend_note=self.backend_note,
            tasks=collected.tasks,
            blocking_calls=blocking,
            lag=lag,
            # Last but one, so that the caller's own cost covers the freezing: one Overhead
            # and one AsyncProfile per request, not a copy of each.
            overhead=_final_overhead(
                collected.overhead,
                steps_ms=None if steps is None or table is None else steps.overhead_ns / 1e6,
                own_ms=own_ms,
                heartbeat_ms=heartbeat_ms,
            ),
            functions=collected.functions,
            yappi_retention=yappi_retention,
            request_task=request_task,
            steps=table,
            steps_unavailable=self._steps_unavailable if steps is None else steps.unavailable,
            findings=findings,
        )


def _final_overhead(
    collected: Overhead,
    *,
    steps_ms: float | None,
    own_ms: Callable[[], float] | None,
    heartbeat_ms: float | None,
) -> Overhead:
    """The backend's overhead with step timing's, the heartbeat's and the caller's fixed
    costs: ``setup_ms`` becomes everything the caller's hooks cost (``own_ms()``, read now),
    yappi's own part (``profiler_ms``) excepted, and never less than the backend measured."""
    setup_ms = collected.setup_ms
    if own_ms is not None:
        setup_ms = max(own_ms() - (collected.profiler_ms or 0.0), setup_ms)
    return Overhead(
        tracking_ms=collected.tracking_ms,
        setup_ms=setup_ms,
        report_ms=collected.report_ms,
        profiler_ms=collected.profiler_ms,
        steps_ms=collected.steps_ms if steps_ms is None else steps_ms,
        heartbeat_ms=heartbeat_ms if heartbeat_ms is not None else collected.heartbeat_ms,
        tracking_estimated=collected.tracking_estimated,
        per_task_ns=collected.per_task_ns,
    )


def _stop_all(running: list[Callable[[], None]]) -> None:
    """Call each stop, the last started first, each even if another raised (an error is
    raised once all have run, chained to any before it)."""
    if running:
        stop = running.pop()
        try:
            stop()
        finally:
            _stop_all(running)


def _task_name(task: asyncio.Future[Any]) -> str:
    get_name = getattr(task, "get_name", None)
    return str(get_name()) if get_name is not None else type(task).__name__


def _task_recorder(backend: AsyncProfilerBackend) -> TaskRecorder | None:
    """The backend's task recorder (both backends track tasks through ``TaskTracking``)."""
    tracking: TaskTracking | None = getattr(backend, "tracking", None)
    return None if tracking is None else tracking.recorder
