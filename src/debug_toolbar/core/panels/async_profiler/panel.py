"""AsyncProfilerPanel: the tasks a request spawned, what blocked the loop, and the loop's lag.

The panel is per request like every panel. It picks the request's backend, hands the collecting
to one ``AsyncRequestProfiler`` (which starts and stops the backend, the blocking-call detector
and the lag monitor together) and records the frozen ``AsyncProfile`` it returns: the cheap part
at once, the part that costs per task when the record is first read. The page, the JSON API and
the trace download all read the same profile (``AsyncProfile.from_dict`` of the stored stats).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panel import Panel, PanelDownload
from debug_toolbar.core.panels.async_profiler.backends import (
    BackendUnavailableError,
    select_backend,
)
from debug_toolbar.core.panels.async_profiler.export import chrome_trace
from debug_toolbar.core.panels.async_profiler.heartbeat import heartbeats
from debug_toolbar.core.panels.async_profiler.history import HISTORY_COLUMNS, history_cells
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile, YappiRetention
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler
from debug_toolbar.core.panels.async_profiler.server_timing import server_timing_value
from debug_toolbar.core.panels.async_profiler.steps_view import steps_view
from debug_toolbar.core.panels.async_profiler.timeline import (
    timeline_of,
)
from debug_toolbar.core.panels.async_profiler.watchdog import stop_watchdogs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.panel import HistoryCell
    from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
    from debug_toolbar.core.panels.async_profiler.heartbeat import LoopHeartbeat
    from debug_toolbar.core.records import RequestRecord

__all__ = ("BACKEND_COOKIE", "AsyncProfilerPanel")

BACKEND_COOKIE = "debug_toolbar_async_backend"
"""Per-browser backend choice ("yappi" or "taskfactory"), set from the panel: it overrides the
config for that browser's following requests, so the cheap backend can stay the default while
yappi is one click away."""

logger = logging.getLogger("debug_toolbar")

_perf_ns = time.perf_counter_ns

_UNBUILT_TASK_BYTES = 300
_UNBUILT_FRAME_BYTES = 24
"""What a profile holds per kept task, and per frame of its creation stack, until the
deferred stats are built (measured with tracemalloc: about 290 bytes a task)."""
_UNBUILT_STEP_BYTES = 300
"""And per step (a row, its times and its site: about 290 bytes, measured the same way)."""
_UNBUILT_HEAD_BYTES = 1_000
"""The head until built: the summary's dict (about 0.9 KB built)."""
_UNBUILT_LAG_SAMPLE_BYTES = 120
"""And per lag sample over the threshold (its dict: two floats)."""
_UNBUILT_PROFILE_BYTES = 1_500
"""And whatever the request did: the backend, the lag figures, the request task, the
overhead (their dicts, about 1.4 KB built)."""


def _chrome_trace(stats: dict[str, Any], record: RequestRecord) -> dict[str, Any] | None:
    """The request's whole timeline as a Chrome trace; None when nothing was profiled."""
    if not stats:
        return None
    return chrome_trace(
        AsyncProfile.from_dict(stats),
        duration_ms=record.duration_ms,
        request_id=record.request_id,
        method=record.method,
        path=record.path,
    )


class AsyncProfilerPanel(Panel):
    """Tracks the asyncio tasks spawned while the request runs (children, grandchildren, ...)."""

    panel_id = "AsyncProfilerPanel"
    title = "Async"
    nav_title = "Async"
    template = "panels/async_profiler.html"
    downloads = (
        PanelDownload(
            name="async-trace.json",
            title="Download trace (Perfetto)",
            media_type="application/json",
            build=_chrome_trace,
        ),
    )
    history_columns = HISTORY_COLUMNS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiler: AsyncRequestProfiler | None = None
        self.backend_note: str | None = None
        self.yappi_asked = False
        """yappi was chosen for this request (it may have fallen back at its limit)."""
        self._own_ns = 0
        """Time spent in this panel's request hooks: profiling's fixed cost, measured."""
        self._heartbeat: LoopHeartbeat | None = None
        self._heartbeat_ns: int | None = None
        """The heartbeat's time in beats during the request (None: no heartbeat used)."""
        self._tasks_seen: int | None = None
        """The request's tasks, counted when its profile is left to freeze later."""

    @classmethod
    def check_config(cls, config: DebugToolbarConfig) -> None:
        """A backend asked for by name that cannot run here fails at start-up, naming the extra.

        ``auto`` is not checked: it falls back to the task factory by design. The per-browser
        cookie is not either: a stale one falls back quietly, request by request.
        """
        name = config.async_profiler_backend
        if name == "auto":
            return
        try:
            select_backend(name)
        except BackendUnavailableError as exc:
            raise ValueError(str(exc)) from exc

    @classmethod
    def on_shutdown(cls) -> None:
        """End the watchdog of the loop that is shutting down (it outlives requests, parked)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        stop_watchdogs(loop)

    def _backend_class(self, context: RequestContext) -> type[AsyncProfilerBackend]:
        """The chosen backend, or the task factory once yappi reached its process limit."""
        backend_class = self._chosen_backend_class(context)
        if backend_class.name != "yappi":
            return backend_class
        self.yappi_asked = True
        from debug_toolbar.core.panels.async_profiler.yappi_backend import (
            limit_note,
            yappi_session,
        )

        # yappi keeps memory of every request it profiles (see yappi_backend): past the limit
        # this process stops using it. The session enforces the limit exactly in ``acquire``;
        # this early look lets the request say so and run the cheap backend instead.
        profiled = yappi_session.profiled
        if profiled >= self.config.async_yappi_max_requests:
            self.backend_note = limit_note(profiled)
            return select_backend("taskfactory")
        return backend_class

    def _chosen_backend_class(self, context: RequestContext) -> type[AsyncProfilerBackend]:
        """The config's backend, unless this browser chose one with the panel's switch."""
        chosen = context.cookie(BACKEND_COOKIE)
        if chosen not in ("yappi", "taskfactory"):
            return select_backend(self.config.async_profiler_backend)
        try:
            return select_backend(chosen)
        except BackendUnavailableError as exc:
            # A stale cookie must not break profiling: say why and use the cheap backend.
            self.backend_note = str(exc)
            return select_backend("taskfactory")

    def create_backend(self, context: RequestContext) -> AsyncProfilerBackend:
        """The backend for this request (raises when the configured one cannot run here)."""
        config = self.config
        backend_class = self._backend_class(context)
        options: dict[str, Any] = {}
        if backend_class.name == "yappi":
            options["max_process_requests"] = config.async_yappi_max_requests
        # Every backend takes these keyword options (the ABC cannot declare a constructor).
        return backend_class(  # type: ignore[call-arg]
            max_tasks=config.async_max_tasks,
            capture_stacks=config.async_capture_task_stacks,
            max_stack_depth=config.async_max_stack_depth,
            origin_ns=context.start_ns,
            **options,
        )

    async def process_request(self, context: RequestContext) -> None:
        # Runs in the request's own task: the backend records it as the root and sets the
        # ContextVar that every task spawned from here inherits.
        started = _perf_ns()
        try:
            profiler = AsyncRequestProfiler(
                context, self.config, self.create_backend(context), backend_note=self.backend_note
            )
            self.profiler = profiler
            profiler.start()
            config = self.config
            if config.async_enable_blocking_detection or config.async_enable_event_loop_monitoring:
                heartbeat = heartbeats.get(asyncio.get_running_loop())
                if heartbeat is not None:  # the one this request's collectors listen to
                    self._heartbeat, self._heartbeat_ns = heartbeat, -heartbeat.busy_ns
        finally:
            self._own_ns += _perf_ns() - started

    async def process_response(self, context: RequestContext) -> None:
        if self.profiler is not None:
            started = _perf_ns()
            try:
                self._stop_collecting()
            finally:
                self._own_ns += _perf_ns() - started

    def _stop_collecting(self) -> None:
        assert self.profiler is not None
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None and self._heartbeat_ns is not None:
            self._heartbeat_ns += heartbeat.busy_ns
        self.profiler.stop_collecting()

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        """Nothing now, most often: the profile is frozen when its record is first read.

        What the nav subtitle needs is a count, read from the stopped collectors. The head
        (the summary, which the history's columns read) and the detail (every task as a dict,
        its creation stack resolved, about a microsecond a task) are built from the frozen
        profile on first read (``Panel.defer_stats``), so a request nobody inspects never pays
        for freezing, summing up or bounding them: that was a third of the panel's cost on a
        noop request. The collectors hold only plain data once stopped.

        Unless a stall was kept: its samples name the requests that held the loop, whose
        contexts must not live on in this record, so the profile is frozen now (as yappi's
        retention and the fixed costs are measured now in every case).
        """
        profiler = self.profiler
        if profiler is None:
            return {}
        started = _perf_ns()
        self._stop_collecting()
        heartbeat_ms = None if self._heartbeat_ns is None else self._heartbeat_ns / 1e6
        retention = self._yappi_retention()
        if profiler.freezes_later:
            tasks, dropped, steps, lag_samples = profiler.counts()
            self._tasks_seen = tasks + dropped
            later = _ProfileLater(
                profiler,
                # The hooks' time holds every fixed cost (the collectors built, started and
                # stopped); yappi's own part of it is ``profiler_ms``. The per-task work
                # happened in the request's own code, apart: ``tracking_ms``.
                own_ms=(self._own_ns + _perf_ns() - started) / 1e6,
                heartbeat_ms=heartbeat_ms,
                yappi_retention=retention,
            )
            self.defer_stats(later.head, approx_size=_UNBUILT_HEAD_BYTES, head=True)
            self.defer_stats(
                later.detail, approx_size=self._unbuilt_bytes(tasks, steps, lag_samples, 0)
            )
            return {}
        profile = profiler.stop(
            own_ms=lambda: (self._own_ns + _perf_ns() - started) / 1e6,
            heartbeat_ms=heartbeat_ms,
            yappi_retention=retention,
        )
        lag = profile.lag
        self.defer_stats(
            profile.detail_dict,
            approx_size=self._unbuilt_bytes(
                len(profile.tasks),
                len(profile.steps or ()),
                0 if lag is None else len(lag.samples),
                len(profile.blocking_calls),
            ),
        )
        return profile.head_dict()

    def _unbuilt_bytes(self, tasks: int, steps: int, lag_samples: int, blocking: int) -> int:
        """What the deferred detail holds until built, estimated by the caps."""
        config = self.config
        depth = config.async_max_stack_depth if config.async_capture_task_stacks else 0
        return (
            _UNBUILT_PROFILE_BYTES
            + (tasks + blocking) * (_UNBUILT_TASK_BYTES + _UNBUILT_FRAME_BYTES * depth)
            + steps * _UNBUILT_STEP_BYTES
            + lag_samples * _UNBUILT_LAG_SAMPLE_BYTES
        )

    def _yappi_retention(self) -> YappiRetention | None:
        """What yappi keeps alive in this process so far, for requests that asked for yappi.

        Read after this request released yappi, so it is counted; a few microseconds (a lock).
        """
        if not self.yappi_asked:
            return None
        from debug_toolbar.core.panels.async_profiler.yappi_backend import yappi_session

        retention = yappi_session.retention()
        return YappiRetention(
            requests=retention.requests,
            coroutines=retention.coroutines,
            approx_bytes=retention.approx_bytes,
            limit=self.config.async_yappi_max_requests,
        )

    def response_headers(self) -> list[tuple[str, str]]:
        """``Server-Timing``: the request's breakdown and tasks up to the response's start.

        Read live from the collectors (``AsyncRequestProfiler.progress``); its time counts in
        the panel's own cost. Whatever fails, the response goes out without the header and
        the profile is kept: the failure is logged once per process.
        """
        profiler = self.profiler
        if profiler is None or not profiler.running or not self.config.async_server_timing:
            return []
        started = _perf_ns()
        try:
            value = server_timing_value(profiler.progress(self.context.response_start_ns))
        except Exception:
            _log_server_timing_failure()
            return []
        finally:
            self._own_ns += _perf_ns() - started
        return [("Server-Timing", value)]

    @classmethod
    def history_cells(cls, stats: Mapping[str, Any]) -> dict[str, HistoryCell]:
        return history_cells(stats)

    def get_nav_subtitle(self) -> str:
        summary = self.get_stats().get("summary")
        if summary:
            total, blocking = summary["total_tasks"], summary.get("blocking_calls", 0)
        elif self._tasks_seen is not None:  # frozen later: no stall was kept, so no blocking
            total, blocking = self._tasks_seen, 0
        else:
            return ""
        text = f"{total:,} task" if total == 1 else f"{total:,} tasks"
        if blocking:
            text += f" · ⚠ {blocking} blocking"
        return text

    @classmethod
    def get_template_context(
        cls, stats: dict[str, Any], record: RequestRecord, config: DebugToolbarConfig
    ) -> dict[str, Any]:
        from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend

        profile = AsyncProfile.from_dict(stats) if stats else None
        steps = (
            None
            if profile is None
            else steps_view(
                profile,
                slow_threshold_ms=config.async_event_loop_lag_threshold_ms,
                blocking_threshold_ms=config.async_blocking_threshold_ms,
            )
        )
        return {
            "profile": profile,
            "steps_view": steps,
            # Await-site rows on the page: ids dt-async-site-0 .. shown_sites - 1.
            "shown_sites": 0 if steps is None else steps.shown_sites,
            "timeline": None
            if profile is None
            else timeline_of(
                profile, duration_ms=record.duration_ms, max_rows=config.async_max_timeline_rows
            ),
            "backend_cookie": BACKEND_COOKIE,
            "yappi_available": YappiBackend.is_available(),
        }


_failures_logged: set[str] = set()
"""What already failed in this process (logged once, with its traceback)."""


def _log_server_timing_failure() -> None:
    """Once per process with its traceback: a failure here is a bug, and it would repeat on
    every response."""
    if "server_timing" in _failures_logged:
        logger.debug("debug toolbar: Server-Timing failed again", exc_info=True)
        return
    _failures_logged.add("server_timing")
    logger.warning(
        "debug toolbar: the Async panel's Server-Timing header failed; responses go out "
        "without it (said once)",
        exc_info=True,
    )


class _ProfileLater:
    """A stopped request's profile, frozen once, when its record's head or detail is first
    read (from any thread: under a lock). Then the collectors are let go."""

    __slots__ = ("_heartbeat_ms", "_lock", "_own_ms", "_profile", "_profiler", "_retention")

    def __init__(
        self,
        profiler: AsyncRequestProfiler,
        *,
        own_ms: float,
        heartbeat_ms: float | None,
        yappi_retention: YappiRetention | None,
    ) -> None:
        self._profiler: AsyncRequestProfiler | None = profiler
        self._own_ms = own_ms
        self._heartbeat_ms = heartbeat_ms
        self._retention = yappi_retention
        self._profile: AsyncProfile | None = None
        self._lock = threading.Lock()

    def profile(self) -> AsyncProfile:
        with self._lock:
            profile = self._profile
            if profile is None:
                assert self._profiler is not None
                own_ms = self._own_ms
                profile = self._profile = self._profiler.stop(
                    own_ms=lambda: own_ms,
                    heartbeat_ms=self._heartbeat_ms,
                    yappi_retention=self._retention,
                )
                self._profiler = None
            return profile

    def head(self) -> dict[str, Any]:
        return self.profile().head_dict()

    def detail(self) -> dict[str, Any]:
        return self.profile().detail_dict()
