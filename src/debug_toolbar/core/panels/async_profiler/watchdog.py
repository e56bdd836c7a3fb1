"""The watchdog: one thread per event loop that samples the loop's thread when it is stuck.

It watches the loop's heartbeat (``heartbeat.LoopHeartbeat``) while at least one profiled
request wants blocking calls detected. Between such requests it is **parked**: blocked on an
``Event`` with no timeout, so it never wakes and never takes the GIL. Starting and joining a
thread for every request cost about 0.2 ms of every request (and the GIL hand-offs around it);
a parked thread costs nothing. Waking it costs a GIL hand-off too, so a request only wakes it
when it is parked for good: after the last request it goes on looking every half threshold
for 100 ms (``_LINGER_NS``) and only then parks; requests that keep coming never wake it. It
ends when the application shuts down (``stop_watchdogs``, called by the middleware at lifespan
shutdown and by the Litestar plugin's ``on_shutdown``), when its loop is garbage-collected,
when a watchdog is next needed and its loop is found closed, and at interpreter exit. At most
one per loop.

The thread holds its loop only weakly, and its heartbeat only while watching.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING

from debug_toolbar.core.panels.async_profiler.stacks import innermost_app_frame, sample_thread_stack

if TYPE_CHECKING:
    from debug_toolbar.core.panels.async_profiler.heartbeat import LoopHeartbeat

__all__ = (
    "WATCHDOG_THREAD_NAME",
    "Watchdog",
    "running_watchdogs",
    "stop_watchdogs",
    "watchdog_for",
)

logger = logging.getLogger("debug_toolbar.async_profiler")

WATCHDOG_THREAD_NAME = "debug-toolbar-watchdog"
_WAKE_SLACK_S = 0.001
"""Wake a little after the deadline, so the heartbeat is surely overdue when we look."""
_WAKE_SLACK_NS = 1_000_000
_NEVER_NS = 1 << 62
"""``Watchdog.next_look_ns`` of a thread that may wait without a timeout (parked)."""
_LINGER_NS = 100_000_000
"""How long after the last request the thread goes on looking (every half threshold) before
it parks without a timeout: a request in that time does not have to wake it."""
_MAX_IDLE_WAIT_S = 1.0
_MAX_RESAMPLE_WAIT_S = 0.005
"""Resampling period cap during a stall: where the running request changes, the stall is cut
within half of it. A sample costs the watchdog some 10-50 µs, only while the loop is stalled."""
_JOIN_TIMEOUT_S = 2.0

_current_task = asyncio.current_task


class Watchdog:
    """Samples the loop's thread whenever the watched heartbeat is overdue.

    While watching, it sleeps until the moment the heartbeat would become overdue (so a healthy
    loop wakes it about once per half threshold, not once per interval), then checks: if no
    beat came, it samples, and samples again every quarter threshold (at most 5 ms) while the
    stall lasts. Tests build one on a heartbeat and drive ``poll`` by hand, without a thread.
    """

    def __init__(self, heartbeat: LoopHeartbeat | None = None) -> None:
        self.heartbeat = heartbeat
        """The heartbeat watched; None while parked."""
        self.samples_taken = 0
        self.next_look_ns = _NEVER_NS
        """When the thread reads ``heartbeat`` next at the latest (``perf_counter_ns``):
        written before each read, pessimistically, so ``watch`` may trust it."""
        self.wakeups = 0
        """Times ``watch`` woke the thread (the others were left to its timed wait)."""
        self._active_ns = 0
        """When a request last started or stopped being watched: the thread lingers after it."""
        self._linger_s = 0.0
        self._stopping = False
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def waits_forever(self) -> bool:
        """Parked for good: waiting without a timeout, only ``watch`` or ``stop`` wake it."""
        return self.next_look_ns >= _NEVER_NS

    @property
    def stopping(self) -> bool:
        """Told to end (its thread is gone or about to be)."""
        return self._stopping

    @property
    def parked(self) -> bool:
        return self.heartbeat is None

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name=WATCHDOG_THREAD_NAME, daemon=True)
        thread.start()
        self._thread = thread

    def watch(self, heartbeat: LoopHeartbeat) -> None:
        """Watch ``heartbeat`` (again), waking the thread only if it would look too late.

        A thread parked without a timeout must be woken. One in a timed wait (requests keep
        coming: it still waits for a heartbeat watched a moment ago) reads ``heartbeat`` when
        that wait ends, in time if it ends before this heartbeat can be overdue: waking it
        anyway cost every request a GIL hand-off (some 0.1-0.4 ms of latency through uvicorn).
        """
        self.heartbeat = heartbeat
        self._linger_s = heartbeat.sample_after_ns / 1e9
        now = self._active_ns = time.perf_counter_ns()
        if self.next_look_ns > now + heartbeat.sample_after_ns + _WAKE_SLACK_NS:
            self.wakeups += 1
            self._wakeup.set()

    def park(self, heartbeat: LoopHeartbeat) -> None:
        """Stop watching ``heartbeat`` (nothing if another is watched by now). No wake-up:
        the thread notices at its next check, lingers, then waits without a timeout."""
        if self.heartbeat is heartbeat:
            self.heartbeat = None
            self._active_ns = time.perf_counter_ns()

    def stop(self, *, join: bool = True) -> None:
        """End the thread (it wakes at once; the join's timeout is a safety net)."""
        self._stopping = True
        self.heartbeat = None
        self._wakeup.set()
        thread = self._thread
        if not join or thread is None or thread is threading.current_thread():
            return
        thread.join(_JOIN_TIMEOUT_S)
        if thread.is_alive():  # pragma: no cover - would need a wedged interpreter
            logger.warning("the blocking-call watchdog thread did not stop in time")

    def _run(self) -> None:
        clock = time.perf_counter_ns
        try:
            while not self._stopping:
                # Read the heartbeat once per turn. "Maybe never again" is published before
                # the read, the real deadline after it: a watch() that reads the deadline
                # of this turn knows this turn has seen its heartbeat, and one that reads
                # the pessimistic value wakes the thread (the wait below returns at once).
                self.next_look_ns = _NEVER_NS
                delay = self.poll()
                if delay is None and clock() - self._active_ns < _LINGER_NS:
                    # Nothing to watch, but a request was watched a moment ago: more may
                    # follow. Looking again every half threshold spares them the wake-up (the
                    # thread, woken, gets the GIL late, often after its request ended, and
                    # parked again it would be woken again by the next one).
                    delay = self._linger_s
                if delay is not None:
                    self.next_look_ns = clock() + int(delay * 1e9)
                self._wakeup.wait(delay)
                self._wakeup.clear()
        except Exception:  # pragma: no cover - a bug here must not take the app down
            logger.exception("the blocking-call watchdog stopped after an error")

    def poll(self) -> float | None:
        """Check the heartbeat once (sampling if it is overdue); seconds until the next check,
        None when parked."""
        heartbeat = self.heartbeat
        if heartbeat is None:
            return None
        sample_after = heartbeat.sample_after_ns
        last = heartbeat.last_beat_ns
        age = heartbeat.clock() - last
        if age <= sample_after:
            return min((sample_after - age) / 1e9 + _WAKE_SLACK_S, _MAX_IDLE_WAIT_S)
        if heartbeat.loop.is_running():
            self.sample(last)  # again and again while it lasts: the culprit may change
        return min(sample_after / 2e9, _MAX_RESAMPLE_WAIT_S)

    def sample(self, beat_ns: int) -> bool:
        """Sample the loop's thread for the stall that began at ``beat_ns``; True if kept."""
        heartbeat = self.heartbeat
        if heartbeat is None or heartbeat.thread_id is None:
            return False
        stack = sample_thread_stack(heartbeat.thread_id) or ()
        culprit = heartbeat.identify(_current_task(heartbeat.loop))
        self.samples_taken += 1
        return heartbeat.publish_sample(
            beat_ns=beat_ns,
            stack=stack,
            app_index=innermost_app_frame(stack),
            culprit=culprit,
        )


class _LoopWatchdogs:
    """The process's watchdogs, one per loop; the loop is held weakly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = (
            weakref.WeakKeyDictionary()
        )
        self._all: weakref.WeakSet[Watchdog] = weakref.WeakSet()

    def get(self, loop: asyncio.AbstractEventLoop) -> Watchdog:
        # The loop's own watchdog, without the lock and the scan for closed loops: those run
        # when a watchdog has to be started (a request asks for one each, some 5 µs).
        found = self._by_loop.get(loop)
        if found is not None and not loop.is_closed():
            return found
        with self._lock:
            self._stop_closed()
            watchdog = self._by_loop.get(loop)
            if watchdog is not None:
                return watchdog
            watchdog = Watchdog()
            watchdog.start()  # raises if no thread can be started: nothing is kept
            self._by_loop[loop] = watchdog
            self._all.add(watchdog)
            # A collected loop takes its watchdog with it (no join: GC may run anywhere).
            weakref.finalize(loop, watchdog.stop, join=False)
            return watchdog

    def _stop_closed(self) -> None:
        for loop, watchdog in list(self._by_loop.items()):
            if loop.is_closed():
                del self._by_loop[loop]
                watchdog.stop(join=False)

    def stop(self, loop: asyncio.AbstractEventLoop | None) -> int:
        with self._lock:
            if loop is None:
                # Ended ones stay in the set while a loop's finalizer holds them; those told
                # to end without a join (a finalizer, a closed loop) are joined here too.
                found = list(self._all)
                self._by_loop.clear()
            else:
                one = self._by_loop.pop(loop, None)
                found = [] if one is None else [one]
        stopping = [watchdog for watchdog in found if not watchdog.stopping]
        for watchdog in found:
            watchdog.stop()
        return len(stopping)

    def running(self) -> list[Watchdog]:
        return [w for w in list(self._all) if w.thread is not None and w.thread.is_alive()]


_watchdogs = _LoopWatchdogs()


def watchdog_for(loop: asyncio.AbstractEventLoop) -> Watchdog:
    """The loop's watchdog, started on first use; parked watchdogs of closed loops end here."""
    return _watchdogs.get(loop)


def stop_watchdogs(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """End the watchdog of ``loop`` (every watchdog with None) and join it; how many ended.

    For application shutdown: a request still profiled on that loop keeps its heartbeat but
    gets no more samples.
    """
    return _watchdogs.stop(loop)


def running_watchdogs() -> list[Watchdog]:
    """The watchdog threads alive in this process (parked or watching)."""
    return _watchdogs.running()


atexit.register(stop_watchdogs)
