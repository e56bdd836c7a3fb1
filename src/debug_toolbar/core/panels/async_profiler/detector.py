"""Per-request views of the loop's heartbeat: blocking calls and event-loop lag.

Each request gets its own ``BlockingCallDetector`` and ``EventLoopLagMonitor``; both listen to
the one heartbeat of their loop (``heartbeat.heartbeats``), and the detector also shares the
loop's one watchdog thread. What a request reports is what happened in its own window, from its
``install``/``start`` to its ``uninstall``/``stop``, with times in ms from ``origin_ns`` (the
request's ``start_ns``) so that stalls and lag line up with its tasks.

A stall is attributed when the watchdog samples it: the request whose task was running is the
culprit (its record says ``culprit=True``); every other request in flight records it as
suffered, naming the culprit, or no one when the loop was blocked outside any profiled request.
A stall that changed hands is cut where the running request changed, and each request is blamed
for its own part only; where the evidence is missing, the answer is "unknown" (not sampled),
never another request.

Neither class turns on asyncio debug mode, sets ``slow_callback_duration``, touches the loop's
exception handler or the logging configuration.
"""

from __future__ import annotations

import asyncio
import functools
import math
from typing import TYPE_CHECKING, Any, TypeAlias

from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.heartbeat import UNKNOWN_CULPRIT, heartbeats
from debug_toolbar.core.panels.async_profiler.models import BlockingCall, LagSample, LagStats
from debug_toolbar.core.panels.async_profiler.stacks import resolve_stack, stack_window

if TYPE_CHECKING:
    from collections.abc import Callable

    from debug_toolbar.core.panels.async_profiler.heartbeat import (
        LoopHeartbeat,
        Stall,
        StallSample,
    )
    from debug_toolbar.core.panels.async_profiler.models import StackFrame
    from debug_toolbar.core.shared_hooks import LoopHooks

__all__ = ("BlockingCallDetector", "EventLoopLagMonitor")

_MS = 1_000_000


def _ns(name: str, value_ms: float) -> int:
    if (
        isinstance(value_ms, bool)
        or not isinstance(value_ms, (int, float))
        or not 0 < value_ms < math.inf
    ):
        raise ValueError(f"{name} must be a finite number greater than 0, got {value_ms!r}")
    return max(1, round(value_ms * _MS))


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@functools.lru_cache(maxsize=64, typed=True)
def _detector_settings(  # noqa: PLR0917 - positional: typed caching sees each argument's type
    threshold_ms: float,
    max_stack_depth: int,
    interval_ms: float,
    max_calls: int,
    slow_threshold_ms: float | None,
    max_slow: int,
) -> tuple[int, int, int, int | None, int, int, int]:
    """The detector's settings, validated, in ns: (blocking, max depth, max calls, slow,
    max slow, the lower threshold, the beat interval).

    Cached: every request builds a detector from the same config, and validating it again
    was a tenth of what starting one cost. ``typed``, so ``True`` is not taken for ``1``: the
    arguments stay separate, as a tuple's items would be compared by value only.
    """
    blocking_ns = _ns("threshold_ms", threshold_ms)
    depth = _count("max_stack_depth", max_stack_depth, 1)
    calls = _count("max_calls", max_calls, 0)
    slow_ns = None if slow_threshold_ms is None else _ns("slow_threshold_ms", slow_threshold_ms)
    slow = _count("max_slow", max_slow, 0)
    # One listener for both thresholds: the watchdog samples from half the lower one.
    lower_ns = min(blocking_ns, slow_ns or blocking_ns)
    interval_ns = min(_ns("interval_ms", interval_ms), max(1, lower_ns // 4))
    return blocking_ns, depth, calls, slow_ns, slow, lower_ns, interval_ns


@functools.lru_cache(maxsize=64, typed=True)
def _lag_settings(
    threshold_ms: float, interval_ms: float, max_samples: int
) -> tuple[int, int, int]:
    """The lag monitor's settings, validated, in ns (cached, as ``_detector_settings``)."""
    return (
        _ns("threshold_ms", threshold_ms),
        _ns("interval_ms", interval_ms),
        _count("max_samples", max_samples, 0),
    )


_Part: TypeAlias = "tuple[int, int, StallSample | None]"


def _keep(into: list[_Part], parts: list[_Part], whole: _Part, threshold: int, cap: int) -> int:
    """Append the parts longer than ``threshold`` (or ``whole``, unattributed, if none is) to
    ``into``, up to ``cap`` in all; how many did not fit."""
    kept = [part for part in parts if part[1] - part[0] > threshold] or [whole]
    room = max(cap - len(into), 0)
    into += kept[:room]
    return max(len(kept) - room, 0)


class BlockingCallDetector:
    """Reports the stalls of the event loop during one request, each with the line that blocked.

    ``install`` must run in the request's own task (as ``Panel.process_request`` does): that
    task is how the watchdog recognises this request as the culprit; the request's other tasks
    are recognised through ``owns_task`` (the task tracking's ``TaskRecorder.owns``), which the
    watchdog calls from its thread.

    The heartbeat runs at least every ``threshold_ms / 4`` whatever ``interval_ms`` says: the
    watchdog samples at half the threshold and a healthy loop must never look that late.
    """

    def __init__(
        self,
        *,
        threshold_ms: float = 100.0,
        max_stack_depth: int = 10,
        interval_ms: float = 10.0,
        owner: RequestContext | None = None,
        owns_task: Callable[[asyncio.Future[Any]], bool] | None = None,
        origin_ns: int | None = None,
        max_calls: int = 100,
        slow_threshold_ms: float | None = None,
        max_slow: int = 0,
        registry: LoopHooks[LoopHeartbeat] = heartbeats,
    ) -> None:
        options = (
            threshold_ms,
            max_stack_depth,
            interval_ms,
            max_calls,
            slow_threshold_ms,
            max_slow,
        )
        try:
            validated = _detector_settings(*options)
        except TypeError:  # an unhashable value: validated uncached, which says what is wrong
            validated = _detector_settings.__wrapped__(*options)
        self.threshold_ms = float(threshold_ms)
        self._blocking_ns: int
        self._slow_ns: int | None
        """Also keep the stalls from this long (slow steps), in a list of their own."""
        (
            self._blocking_ns,
            self.max_stack_depth,
            self.max_calls,
            self._slow_ns,
            self.max_slow,
            self._threshold_ns,
            self._interval_ns,
        ) = validated
        self.dropped_slow = 0
        self.owner = owner
        """Who this request is (a RequestContext): compared with the sampled culprit."""
        self._owns_task = owns_task
        self.origin_ns = origin_ns
        self.dropped = 0
        """Stalls over the threshold that ``max_calls`` did not keep."""
        self._registry = registry
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat: LoopHeartbeat | None = None
        self._root_task: asyncio.Future[Any] | None = None
        self._joined_ns = 0
        self._stalls: list[_Part] = []
        self._slow: list[_Part] = []

    # StallListener protocol (read by the heartbeat and, for the last two, by the watchdog)

    @property
    def interval_ns(self) -> int:
        return self._interval_ns

    @property
    def threshold_ns(self) -> int:
        return self._threshold_ns

    @property
    def culprit_key(self) -> object:
        return self.owner if self.owner is not None else self

    def owns(self, task: asyncio.Future[Any]) -> bool:
        owns_task = self._owns_task
        return task is self._root_task or (owns_task is not None and owns_task(task))

    def on_stall(self, stall: Stall) -> None:
        """Keep the parts of ``stall`` that fall in this request's window and are stalls.

        A stall that changed hands (several requests blocking back to back, with no beat in
        between) is cut where the running request changed, and each part over the threshold
        is kept with its own culprit. When no part reaches the threshold on its own but the
        whole does, the stall is kept once, unattributed: several short blocks added up, and
        blaming one of them would be a guess.

        A request that starts right after a block (in the same loop iteration, before the next
        beat) sees the stall's start clipped to its own start, and so does not report a stall
        that happened before it existed.
        """
        joined = self._joined_ns
        start = max(stall.start_ns, joined)
        if stall.end_ns - start <= self._threshold_ns:
            return
        parts = [
            (max(part_start, joined), part_end, sample)
            for part_start, part_end, sample in stall.parts()
        ]
        whole = (start, stall.end_ns, None)
        if stall.end_ns - start > self._blocking_ns:
            self.dropped += _keep(self._stalls, parts, whole, self._blocking_ns, self.max_calls)
        if self._slow_ns is not None:
            self.dropped_slow += _keep(self._slow, parts, whole, self._slow_ns, self.max_slow)

    # Lifecycle

    @property
    def running(self) -> bool:
        return self._heartbeat is not None

    @property
    def heartbeat(self) -> LoopHeartbeat | None:
        """The loop's heartbeat this detector holds while installed."""
        return self._heartbeat

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start listening to ``loop``'s heartbeat (installing it and the watchdog if first)."""
        if self._heartbeat is not None:
            raise RuntimeError("blocking-call detection already installed for this request")
        heartbeat = self._registry.acquire(loop)
        try:
            self._loop = loop
            self._joined_ns = heartbeat.clock()
            if self.origin_ns is None:
                self.origin_ns = self._joined_ns
            self._root_task = asyncio.current_task(loop) if loop.is_running() else None
            heartbeat.add_stall_listener(self)
        except BaseException:
            self._root_task = None
            self._registry.release(loop)
            raise
        self._heartbeat = heartbeat

    def uninstall(self) -> None:
        """Stop listening; idempotent and safe after a failed or missing ``install``.

        A stall still going on (the loop has not beaten since it was blocked, as after a
        ``time.sleep`` in a handler's last step) is closed now and reported.
        """
        heartbeat, loop = self._heartbeat, self._loop
        if heartbeat is None or loop is None:
            return
        self._heartbeat = None
        try:
            stall = heartbeat.open_stall(heartbeat.clock()) if heartbeat.installed else None
            if stall is not None:
                self.on_stall(stall)
            heartbeat.remove_stall_listener(self)
        finally:
            self._root_task = self._loop = None
            self._registry.release(loop)

    # Results

    @property
    def saw_stalls(self) -> bool:
        """Whether any stall was kept (over either threshold). Its samples name the requests
        that held the loop: their contexts stay reachable from here until ``get_stats``."""
        return bool(self._stalls or self._slow)

    def get_stats(self) -> list[BlockingCall]:
        """The stalls of this request over the blocking threshold, oldest first (resolved
        here, not on the hot path)."""
        origin = self.origin_ns if self.origin_ns is not None else self._joined_ns
        return [self._record(start, end, sample, origin) for start, end, sample in self._stalls]

    def get_slow_stats(self) -> list[BlockingCall]:
        """The stalls over the slow-step threshold (the blocking ones too), oldest first;
        empty without a ``slow_threshold_ms``."""
        origin = self.origin_ns if self.origin_ns is not None else self._joined_ns
        return [self._record(start, end, sample, origin) for start, end, sample in self._slow]

    def suffered_spans(self) -> list[tuple[int, int]]:
        """(start, end) ns of the stalls so far that another profiled request caused: what the
        time breakdown counts as blocked (``step_findings.caused_by_another``). Cheap, nothing
        resolved: read while the request runs, when its response starts (``Server-Timing``).
        From the slow-step list when there is one: it holds the blocking stalls too."""
        key = self.culprit_key
        return [
            (start, end)
            for start, end, sample in (self._slow if self._slow_ns is not None else self._stalls)
            if sample is not None
            and isinstance(sample.culprit, RequestContext)
            and sample.culprit is not key
        ]

    def _record(
        self, start_ns: int, end_ns: int, sample: StallSample | None, origin_ns: int
    ) -> BlockingCall:
        start_ms = (start_ns - origin_ns) / _MS
        duration_ms = (end_ns - start_ns) / _MS
        if sample is None or sample.culprit is UNKNOWN_CULPRIT:
            return BlockingCall(
                start_ms=start_ms,
                duration_ms=duration_ms,
                filename=None,
                lineno=None,
                function=None,
                code=None,
                relation="unknown",
            )
        location: StackFrame | None = None
        stack: list[StackFrame] = []
        if sample.stack:
            # No application frame (the loop was stuck in a library or the server): show the
            # innermost frame rather than nothing.
            index = sample.app_index if sample.app_index is not None else 0
            location = resolve_stack(sample.stack[index : index + 1])[0]
            stack = resolve_stack(stack_window(sample.stack, index, self.max_stack_depth))
        own = sample.culprit is not None and sample.culprit is self.culprit_key
        # Another request's context, or None: outside any request (or a detector without one).
        culprit = sample.culprit if isinstance(sample.culprit, RequestContext) else None
        return BlockingCall(
            start_ms=start_ms,
            duration_ms=duration_ms,
            filename=None if location is None else location.filename,
            lineno=None if location is None else location.lineno,
            function=None if location is None else location.function,
            code=None if location is None else location.code,
            stack=stack,
            relation="own" if own else "suffered",
            culprit_request_id=None if own or culprit is None else culprit.request_id,
            culprit_method=None if own or culprit is None else culprit.method,
            culprit_path=None if own or culprit is None else culprit.path,
        )


class EventLoopLagMonitor:
    """Records how late the loop's heartbeat runs during one request.

    Lag is a beat's lateness: when it ran minus when it was due. Only the part of it inside
    the request's window counts (a beat that was already late when the request started does
    not charge the request for that). Samples above ``threshold_ms`` are kept, up to
    ``max_samples``; ``max_lag_ms`` covers every beat.
    """

    def __init__(
        self,
        *,
        threshold_ms: float = 10.0,
        interval_ms: float = 10.0,
        origin_ns: int | None = None,
        max_samples: int = 1000,
        registry: LoopHooks[LoopHeartbeat] = heartbeats,
    ) -> None:
        try:
            validated = _lag_settings(threshold_ms, interval_ms, max_samples)
        except TypeError:  # an unhashable value: validated uncached, which says what is wrong
            validated = _lag_settings.__wrapped__(threshold_ms, interval_ms, max_samples)
        self._threshold_ns, self._interval_ns, self.max_samples = validated
        self.threshold_ms = float(threshold_ms)
        self.interval_ms = float(interval_ms)
        self.origin_ns = origin_ns
        self.beats = 0
        self.dropped = 0
        self.max_lag_ns = 0
        self._registry = registry
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat: LoopHeartbeat | None = None
        self._joined_ns = 0
        self._acquired = False
        """The heartbeat was acquired here (else lent by the caller, who releases it)."""
        self._samples: list[tuple[int, int]] = []
        """(when the beat ran, its lag), both in ns."""

    @property
    def interval_ns(self) -> int:
        return self._interval_ns

    @property
    def running(self) -> bool:
        return self._heartbeat is not None

    def on_beat(self, now_ns: int, due_ns: int) -> None:
        """Called by the heartbeat on the loop's thread, once per beat: keep it short."""
        # max(..., 0): a timer may fire a hair early (uvloop rounds to its cached ms clock).
        lag = max(now_ns - (due_ns if due_ns > self._joined_ns else self._joined_ns), 0)
        self.beats += 1
        self._note(now_ns, lag)

    def _note(self, now_ns: int, lag: int) -> None:
        self.max_lag_ns = max(self.max_lag_ns, lag)
        if lag > self._threshold_ns:
            if len(self._samples) < self.max_samples:
                self._samples.append((now_ns, lag))
            else:
                self.dropped += 1

    def start(
        self, loop: asyncio.AbstractEventLoop, *, heartbeat: LoopHeartbeat | None = None
    ) -> None:
        """Start listening to ``loop``'s heartbeat, acquired from the registry; or to
        ``heartbeat``, the loop's, which the caller holds until this monitor has stopped (the
        request's detector does: one acquisition per request, not two)."""
        if self._heartbeat is not None:
            raise RuntimeError("event-loop lag monitoring already started for this request")
        acquired = heartbeat is None
        if heartbeat is None:
            heartbeat = self._registry.acquire(loop)
        try:
            self._loop = loop
            self._joined_ns = heartbeat.clock()
            if self.origin_ns is None:
                self.origin_ns = self._joined_ns
            heartbeat.add_lag_listener(self)
        except BaseException:
            if acquired:
                self._registry.release(loop)
            raise
        self._heartbeat = heartbeat
        self._acquired = acquired

    def stop(self) -> None:
        """Stop listening; idempotent and safe after a failed or missing ``start``.

        A beat overdue right now counts with the lateness it has so far, so a block in the
        request's last step shows as lag even though the beat it delays runs after the request.
        """
        heartbeat, loop = self._heartbeat, self._loop
        if heartbeat is None or loop is None:
            return
        self._heartbeat = None
        try:
            if heartbeat.installed:
                now = heartbeat.clock()
                due = max(heartbeat.due_ns, self._joined_ns)
                if now > due:
                    self._note(now, now - due)
            heartbeat.remove_lag_listener(self)
        finally:
            self._loop = None
            if self._acquired:
                self._registry.release(loop)

    @property
    def sample_count(self) -> int:
        """Lag samples kept so far (over the threshold)."""
        return len(self._samples)

    def get_stats(self) -> LagStats:
        origin = self.origin_ns if self.origin_ns is not None else self._joined_ns
        return LagStats(
            samples=[
                LagSample(at_ms=(at - origin) / _MS, lag_ms=lag / _MS) for at, lag in self._samples
            ],
            max_lag_ms=self.max_lag_ns / _MS,
            threshold_ms=self.threshold_ms,
            interval_ms=self.interval_ms,
            beats=self.beats,
            dropped=self.dropped,
        )
