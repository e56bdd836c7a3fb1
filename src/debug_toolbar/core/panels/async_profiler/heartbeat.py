"""One heartbeat per event loop (the watchdog that watches it is in ``watchdog.py``).

The heartbeat is a ``call_later`` callback that reschedules itself every few milliseconds. Each
beat records how late it ran (the loop's lag) and when (proof that the loop is alive). It costs
one timer callback per interval, whatever the load, and needs no debug mode, no exception
handler and no logging configuration: the loop is otherwise untouched, on asyncio and uvloop.

While at least one request wants blocking calls detected, the loop's watchdog thread looks at
the heartbeat (between such requests it is parked, and the heartbeat itself is removed). When
the last beat is older than half the blocking threshold, the loop's thread is stuck in
something: the watchdog reads that thread's stack (``sys._current_frames``) and the loop's
current task, which names the request that is blocking. Sampling at half the threshold rather
than at the threshold means that any stall long enough to be reported was still going on when
it was sampled, even if it ends a moment after crossing the threshold.

The watchdog goes on sampling while the stall lasts, because one stall without a beat may be
several blocking calls back to back: the handlers of requests released together run one after
the other in one loop iteration, and the timer that beats comes after all of them. Each change
of the running request starts a new segment of the stall (``StallSample``), so that each request
is blamed for its own part only (see ``Stall.parts``).

A stall ends with the next beat: its duration is from the last beat before it to that beat (see
``Stall``). Everything is shared by every request in flight on the loop (``core.shared_hooks``):
the first user installs, the last removes, and each request keeps what falls in its own window.

Threads: the loop's thread runs beats and (un)subscribes; the watchdog only reads the heartbeat's
fields (single attribute reads, atomic under the GIL) and publishes its sample under a lock that
the loop thread takes only when a stall closes.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from debug_toolbar.core.panels.async_profiler.watchdog import Watchdog, watchdog_for
from debug_toolbar.core.shared_hooks import LoopHooks, SharedHooks

if TYPE_CHECKING:
    from types import CodeType

    from debug_toolbar.core.panels.async_profiler.stacks import RawStack

__all__ = (
    "DEFAULT_INTERVAL_NS",
    "UNKNOWN_CULPRIT",
    "Clock",
    "LagListener",
    "LoopHeartbeat",
    "Stall",
    "StallListener",
    "StallSample",
    "heartbeats",
    "installed_heartbeats",
)

logger = logging.getLogger("debug_toolbar.async_profiler")

Clock: TypeAlias = Callable[[], int]
"""A ``time.perf_counter_ns``-like clock; tests inject a fake one."""

DEFAULT_INTERVAL_NS = 10_000_000
_NEVER = 1 << 62
"""Stall threshold while nobody detects blocking calls: no gap ever reaches it."""
_MAX_SEGMENTS = 64
"""Segments kept per stall; a stall that changes hands more often ends in an unknown part."""
_UNSEEN_NS = 25_000_000
"""Two sightings of different culprits further apart than this leave a stretch the watchdog did
not see: its thread did not run, as on a starved machine. While a stall lasts it samples every
quarter threshold, at most every 5 ms, and waits at most a GIL switch interval (5 ms) to do so
(a C call holding the GIL delays it until the call returns, but then it sees that call's
request, still running): 10 ms apart at worst when it runs."""
_SEEN_MARGIN_NS = 5_000_000
"""How far a culprit's part reaches into an unseen stretch past its sighting: the longest
resampling period, within which the watchdog would have seen a switch had it run."""

_current_task = asyncio.current_task
_BEAT_CONTEXT = contextvars.Context()
_installed: weakref.WeakSet[LoopHeartbeat] = weakref.WeakSet()


@dataclass(slots=True, frozen=True)
class StallSample:
    """One segment of a stall: what the watchdog saw while the same request held the loop.

    Consecutive samples that find the same culprit are merged into one segment (its first and
    last sighting, and the stack of the application line it was seen at most often); a sample
    naming another culprit starts a new segment.

    Most often, not first: the first sighting may catch the request anywhere it happened to be
    when the heartbeat became overdue (a garbage collection or the OS pausing the loop's
    thread as the task resumed), and the blocking call that follows it is where the time went.
    """

    beat_ns: int
    """The last beat before the stall: identifies which stall this sample belongs to."""
    taken_ns: int
    """When this culprit was first seen holding the loop."""
    stack: RawStack
    """The loop thread's stack, innermost first (code, line) pairs; empty if unreadable. In a
    merged segment, a stack of the application line seen most often (ties: the first seen)."""
    app_index: int | None
    """Index in ``stack`` of the innermost application frame (None: none was on the stack)."""
    culprit: object | None
    """The owner (a RequestContext) of the request whose task was running; None when the loop
    was blocked outside any profiled request; ``UNKNOWN_CULPRIT`` past the segment cap."""
    count: int = 1
    """Samples merged into this segment."""
    last_ns: int = 0
    """When this culprit was last seen holding the loop (``taken_ns`` if seen once)."""

    @property
    def seen_until_ns(self) -> int:
        return max(self.last_ns, self.taken_ns)


UNKNOWN_CULPRIT: object = object()
"""The culprit of a stall's tail once it changed hands more than ``_MAX_SEGMENTS`` times."""


@dataclass(slots=True, frozen=True)
class Stall:
    """A period longer than the stall threshold without any heartbeat.

    It runs from the last beat before the stall to the beat that followed it (or to "now" for a
    stall still open when a request stops). That is an upper bound of the blocking itself: the
    block began somewhere in the first heartbeat interval, so it lasted at least
    ``duration - interval``.
    """

    start_ns: int
    end_ns: int
    samples: tuple[StallSample, ...] = ()
    """The segments the watchdog saw, in order; empty when it could not sample the stall (it
    ended before the watchdog got to run)."""
    open: bool = False
    """Still going on: closed early for a request that stopped during it."""

    def parts(self) -> list[tuple[int, int, StallSample | None]]:
        """The stall cut where the running request changed: ``(start, end, segment)``.

        The cut between two segments is halfway between the last sighting of one culprit and
        the first sighting of the next: the switch happened somewhere in that resampling
        period, so the error is at most half of it. The first segment begins with the stall
        and the last one ends with it.

        Unless the watchdog missed a stretch between two culprits (``_UNSEEN_NS``: its thread
        did not get to run): whoever held the loop then is unknown, and the stretch is a part
        of its own with no segment, never split between the culprits seen around them. A
        request whose whole block fell in such a stretch is told "unknown", not blamed on its
        neighbours. Before the first sighting and after the last, the culprit seen is kept: a
        C call holding the GIL keeps the watchdog out until it returns, and is still running
        when the watchdog gets in.
        """
        samples = self.samples
        start, end = self.start_ns, self.end_ns
        if not samples:
            return [(start, end, None)]
        parts: list[tuple[int, int, StallSample | None]] = []
        for current, following in itertools.pairwise(samples):
            seen_until, seen_next = current.seen_until_ns, following.taken_ns
            if seen_next - seen_until > _UNSEEN_NS:
                cut = min(max(seen_until + _SEEN_MARGIN_NS, start), end)
                resumed = min(max(seen_next - _SEEN_MARGIN_NS, cut), end)
                parts.append((start, cut, current))
                parts.append((cut, resumed, None))
                start = resumed
                continue
            cut = min(max((seen_until + seen_next) // 2, start), end)
            parts.append((start, cut, current))
            start = cut
        parts.append((start, end, samples[-1]))
        return [part for part in parts if part[1] > part[0]]


class LagListener(Protocol):
    """A request's lag monitor: told about every beat of its window."""

    @property
    def interval_ns(self) -> int: ...

    def on_beat(self, now_ns: int, due_ns: int) -> None: ...


class StallListener(Protocol):
    """A request's blocking-call detector: told about every stall of its window."""

    @property
    def interval_ns(self) -> int: ...

    @property
    def threshold_ns(self) -> int: ...

    @property
    def culprit_key(self) -> object:
        """What the watchdog records as the culprit when one of this request's tasks ran."""

    def owns(self, task: asyncio.Future[Any]) -> bool:
        """Whether ``task`` runs for this request; called from the watchdog's thread."""

    def on_stall(self, stall: Stall) -> None: ...


def installed_heartbeats() -> int:
    """How many heartbeats are installed in this process (0 when nothing is profiled)."""
    return len(_installed)


class LoopHeartbeat:
    """The heartbeat of one loop; built and installed by ``heartbeats.acquire(loop)``.

    ``install`` must run on the loop's thread (the registry is acquired from the request's own
    task): that is the thread the watchdog will sample.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        clock: Clock = time.perf_counter_ns,
        run_watchdog: bool = True,
    ) -> None:
        self.loop = loop
        self.clock = clock
        self.run_watchdog = run_watchdog
        """False in deterministic tests, which drive ``Watchdog.poll`` themselves."""
        self.thread_id: int | None = None
        self.interval_ns = DEFAULT_INTERVAL_NS
        self.stall_threshold_ns = _NEVER
        """The smallest threshold of the stall listeners."""
        self.last_beat_ns = 0
        self.due_ns = 0
        """When the next beat should run; its lateness is the loop's lag."""
        self.beats = 0
        self.busy_ns = 0
        """Time spent in beats so far (measured): what the heartbeat cost the loop."""
        self.watchdog: Watchdog | None = None
        """The loop's watchdog while it watches this heartbeat (it outlives it, parked)."""
        self._installed = False
        self._handle: asyncio.TimerHandle | None = None
        """The pending beat: scheduled by the first listener, at the interval it wants."""
        self._lag_listeners: list[LagListener] = []
        self._stall_listeners: list[StallListener] = []
        self._intervals: dict[int, int] = {}
        """The listeners' intervals, each with how many listeners want it: the smallest is
        found among the distinct values (one or two), not by asking every listener."""
        self._thresholds: dict[int, int] = {}
        """The stall listeners' thresholds, counted the same way."""
        self._segments: list[StallSample] = []
        """The segments of the stall going on (all of one ``beat_ns``), under ``_lock``."""
        self._votes: dict[tuple[CodeType, int], int] = {}
        """How often each application line was seen in the last segment, under ``_lock``."""
        self._lock = threading.Lock()

    @property
    def installed(self) -> bool:
        return self._installed

    @property
    def sample_after_ns(self) -> int:
        """Heartbeat age at which the watchdog samples the loop (half the stall threshold)."""
        return self.stall_threshold_ns // 2

    def install(self) -> None:
        """Ready to beat; the first listener schedules the first beat (``_settings_joined``).

        Not here: a request's detector wants beats more often than the default interval, and
        a beat scheduled now would be cancelled and scheduled again at once, on every request.
        """
        self.thread_id = threading.get_ident()
        self.last_beat_ns = self.clock()
        self._installed = True
        _installed.add(self)

    def uninstall(self) -> None:
        self._installed = False
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
        self._park_watchdog()
        self._lag_listeners.clear()
        self._stall_listeners.clear()
        self._intervals.clear()
        self._thresholds.clear()
        with self._lock:
            self._segments = []
        _installed.discard(self)

    def _schedule(self, now_ns: int) -> None:
        interval = self.interval_ns
        self.due_ns = now_ns + interval
        # In a context of its own: scheduled from a request's task, the timer would otherwise
        # carry that request's context (its RequestContext, headers and query) for as long as
        # the heartbeat runs, and hand it to every beat.
        self._handle = self.loop.call_later(interval / 1e9, self.beat, context=_BEAT_CONTEXT)

    def beat(self) -> None:
        """One heartbeat: the loop calls it every interval (tests may call it by hand)."""
        now = self.clock()
        due = self.due_ns
        previous = self.last_beat_ns
        self.last_beat_ns = now
        self.beats += 1
        self._schedule(now)  # first: whatever happens below, the heartbeat goes on
        if self._segments or now - previous > self.stall_threshold_ns:
            self._close_stall(previous, now)
        for listener in self._lag_listeners:
            listener.on_beat(now, due)
        self.busy_ns += self.clock() - now

    def _close_stall(self, previous: int, now: int) -> None:
        with self._lock:
            segments, self._segments = self._segments, []
        if now - previous <= self.stall_threshold_ns:
            return  # the watchdog sampled a slow moment that did not become a stall
        stall = Stall(start_ns=previous, end_ns=now, samples=_of_stall(segments, previous))
        for listener in tuple(self._stall_listeners):
            listener.on_stall(stall)

    def open_stall(self, now_ns: int) -> Stall | None:
        """The stall going on right now, if the heartbeat is overdue past the threshold.

        Called on the loop's thread by a request that stops while the loop has not beaten
        since it was blocked (a block in the handler's last step), so the request can close
        the stall at that moment instead of losing it. The stall goes on for the others: the
        next request to block before the next beat is a new segment of it.
        """
        last = self.last_beat_ns
        if now_ns - last <= self.stall_threshold_ns:
            return None
        with self._lock:
            segments = tuple(self._segments)
        return Stall(start_ns=last, end_ns=now_ns, samples=_of_stall(segments, last), open=True)

    # Listeners (loop thread only)

    def add_lag_listener(self, listener: LagListener) -> None:
        self._lag_listeners.append(listener)
        self._settings_joined(listener.interval_ns, None)

    def remove_lag_listener(self, listener: LagListener) -> None:
        if listener in self._lag_listeners:
            self._lag_listeners.remove(listener)
            self._settings_left(listener.interval_ns, None)

    def add_stall_listener(self, listener: StallListener) -> None:
        self._stall_listeners.append(listener)
        self._settings_joined(listener.interval_ns, listener.threshold_ns)
        if not self.run_watchdog:
            return
        try:
            watchdog = self.watchdog or watchdog_for(self.loop)
        except BaseException:
            self.remove_stall_listener(listener)
            raise
        self.watchdog = watchdog
        watchdog.watch(self)  # wakes it: parked, or the threshold may have dropped

    def remove_stall_listener(self, listener: StallListener) -> None:
        if listener not in self._stall_listeners:
            return
        self._stall_listeners.remove(listener)
        self._settings_left(listener.interval_ns, listener.threshold_ns)
        if not self._stall_listeners:
            self._park_watchdog()

    @property
    def lag_listeners(self) -> tuple[LagListener, ...]:
        return tuple(self._lag_listeners)

    @property
    def stall_listeners(self) -> tuple[StallListener, ...]:
        return tuple(self._stall_listeners)

    def _settings_joined(self, interval_ns: int, threshold_ns: int | None) -> None:
        """A listener joined: the settings become the smallest wanted. Constant time, as
        every request joins and leaves: with many requests in flight, asking every listener
        again each time cost each request in proportion to the others."""
        intervals = self._intervals
        intervals[interval_ns] = intervals.get(interval_ns, 0) + 1
        threshold = self.stall_threshold_ns
        if threshold_ns is not None:
            thresholds = self._thresholds
            thresholds[threshold_ns] = thresholds.get(threshold_ns, 0) + 1
            threshold = min(threshold, threshold_ns)
        self._apply(interval_ns if len(intervals) == 1 else min(intervals), threshold)
        if self._handle is None and self._installed:
            self.last_beat_ns = now = self.clock()
            self._schedule(now)

    def _settings_left(self, interval_ns: int, threshold_ns: int | None) -> None:
        if not self._lag_listeners and not self._stall_listeners:  # the last one: defaults
            self._intervals.clear()
            self._thresholds.clear()
            self._apply(DEFAULT_INTERVAL_NS, _NEVER)
            return
        # Each count decremented inline, twice rather than through a helper: a call each
        # cost more than the counting, on every request.
        intervals = self._intervals
        left = intervals[interval_ns] - 1
        if left:
            intervals[interval_ns] = left
        else:
            del intervals[interval_ns]
        threshold = self.stall_threshold_ns
        if threshold_ns is not None:
            thresholds = self._thresholds
            left = thresholds[threshold_ns] - 1
            if left:
                thresholds[threshold_ns] = left
            else:
                del thresholds[threshold_ns]
                threshold = min(thresholds) if thresholds else _NEVER
        self._apply(min(intervals), threshold)  # someone is left: never empty

    def _apply(self, interval_ns: int, threshold_ns: int) -> None:
        self.stall_threshold_ns = threshold_ns
        if interval_ns == self.interval_ns:
            return
        self.interval_ns = interval_ns
        if self._handle is not None:
            # A listener that wants beats more often than the pending one: bring it forward,
            # or that listener would see the rest of the old interval as a stall of its own.
            now = self.clock()
            if self.due_ns - now > interval_ns:
                self._handle.cancel()
                self._schedule(now)

    def _park_watchdog(self) -> None:
        """Nobody detects blocking calls here any more: the loop's watchdog waits, parked (it
        outlives the requests: starting and joining a thread per request cost ~0.2 ms)."""
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None:
            watchdog.park(self)

    # Watchdog side (any thread)

    def publish_sample(
        self, *, beat_ns: int, stack: RawStack, app_index: int | None, culprit: object | None
    ) -> bool:
        """The watchdog's sample of the loop's thread, taken now: see ``publish``."""
        return self.publish(
            StallSample(
                beat_ns=beat_ns,
                taken_ns=self.clock(),
                stack=stack,
                app_index=app_index,
                culprit=culprit,
            )
        )

    def publish(self, sample: StallSample) -> bool:
        """Add ``sample`` to the stall it belongs to, if that stall is still going on.

        The check and the store happen under the lock that the beat takes to read the
        segments, after it has moved ``last_beat_ns``: a sample is either seen by that beat or
        discarded. A sample of the culprit already holding the loop extends its segment (and
        brings its stack if its application line has now been seen more often than the kept
        one's); another culprit starts a new segment.
        """
        with self._lock:
            if self.last_beat_ns != sample.beat_ns:
                return False
            segments = self._segments
            if segments and segments[0].beat_ns != sample.beat_ns:
                segments.clear()  # left over from a stall that a beat did not close
            current = segments[-1] if segments else None
            site = _app_site(sample)
            if current is not None and current.culprit is sample.culprit:
                votes = self._votes
                if site is not None:
                    votes[site] = votes.get(site, 0) + 1
                kept = _app_site(current)
                better = site is not None and (
                    kept is None or (site != kept and votes[site] > votes.get(kept, 0))
                )
                segments[-1] = replace(
                    sample if better else current,
                    taken_ns=current.taken_ns,
                    count=current.count + 1,
                    last_ns=sample.taken_ns,
                )
            elif current is not None and current.culprit is UNKNOWN_CULPRIT:
                return False
            elif len(segments) >= _MAX_SEGMENTS:
                segments.append(replace(sample, stack=(), app_index=None, culprit=UNKNOWN_CULPRIT))
            else:
                segments.append(replace(sample, last_ns=sample.taken_ns))
                self._votes = {} if site is None else {site: 1}
            return True

    def identify(self, task: asyncio.Future[Any] | None) -> object | None:
        """The owner of the request ``task`` belongs to, or None; callable from any thread."""
        if task is None:
            return None
        for listener in tuple(self._stall_listeners):
            if listener.owns(task):
                return listener.culprit_key
        return None


def _app_site(sample: StallSample) -> tuple[CodeType, int] | None:
    """The application line ``sample`` caught the loop at: its innermost application frame."""
    index = sample.app_index
    return None if index is None else sample.stack[index]


def _of_stall(segments: Iterable[StallSample], beat_ns: int) -> tuple[StallSample, ...]:
    """The segments that belong to the stall that began at ``beat_ns``."""
    return tuple(segment for segment in segments if segment.beat_ns == beat_ns)


heartbeats: LoopHooks[LoopHeartbeat] = SharedHooks("heartbeat", LoopHeartbeat)
"""The process-wide registry of heartbeats, one per loop."""
