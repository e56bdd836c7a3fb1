"""The loop heartbeat's logic on a fake clock: lag, stalls, samples, culprits, windows, caps.

The heartbeat and the watchdog are driven by hand (``beat()``, ``Watchdog.poll()``) on a real
event loop, with a fake ``perf_counter_ns``: every figure is exact, nothing sleeps. The one rule
that keeps these tests deterministic: the fake clock is never advanced across an ``await``, so
a real timer firing meanwhile beats at the same fake time and changes nothing. The watchdog
thread itself, on real time, is tested in test_detector.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.heartbeat import (
    LoopHeartbeat,
    StallSample,
    installed_heartbeats,
)
from debug_toolbar.core.panels.async_profiler.models import BlockingCall, LagSample
from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking
from debug_toolbar.core.panels.async_profiler.watchdog import Watchdog, running_watchdogs
from debug_toolbar.core.shared_hooks import LoopHooks, SharedHooks

T = TypeVar("T")
MS = 1_000_000
START_NS = 5_000 * MS


class FakeClock:
    """A perf_counter_ns that only moves when told to."""

    def __init__(self) -> None:
        self.now = START_NS

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> int:
        self.now += round(ms * MS)
        return self.now


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


@pytest.fixture(autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    yield
    assert installed_heartbeats() == 0, "a heartbeat is still installed"
    assert [w for w in running_watchdogs() if not w.parked] == [], "a watchdog still watches"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class TimerRecordingLoop(asyncio.SelectorEventLoop):
    """An asyncio loop that remembers the timers asked of it through ``call_later``, so a test
    sees the heartbeat's timer through the loop's public API."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[tuple[Callable[..., object], asyncio.TimerHandle]] = []

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = super().call_later(delay, callback, *args, context=context)
        self.timers.append((callback, handle))
        return handle


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = TimerRecordingLoop()
    yield loop
    loop.close()


@pytest.fixture
def registry(clock: FakeClock) -> LoopHooks[LoopHeartbeat]:
    """Heartbeats on the fake clock, without a watchdog thread (tests poll by hand)."""
    return SharedHooks(
        "test heartbeat", lambda loop: LoopHeartbeat(loop, clock=clock, run_watchdog=False)
    )


def run(loop: asyncio.AbstractEventLoop, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return loop.run_until_complete(body())


def context(path: str, method: str = "GET") -> RequestContext:
    return RequestContext(method=method, path=path)


def heartbeat_handles(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """The heartbeat timers scheduled on ``loop`` and not cancelled (the tests that ask do not
    run the loop meanwhile, so none of them has fired)."""
    assert isinstance(loop, TimerRecordingLoop)
    return [
        handle
        for callback, handle in loop.timers
        if not handle.cancelled() and isinstance(getattr(callback, "__self__", None), LoopHeartbeat)
    ]


class TestHeartbeat:
    def test_the_first_listener_schedules_one_beat_and_uninstall_cancels_it(
        self, loop: asyncio.AbstractEventLoop, clock: FakeClock
    ) -> None:
        heartbeat = LoopHeartbeat(loop, clock=clock, run_watchdog=False)
        heartbeat.install()
        try:
            assert installed_heartbeats() == 1
            assert heartbeat_handles(loop) == []  # nobody listens yet
            heartbeat.add_lag_listener(EventLoopLagMonitor(interval_ms=10))
            handles = heartbeat_handles(loop)
            assert len(handles) == 1
            assert handles[0].when() == pytest.approx(loop.time() + 0.010, abs=0.005)
            assert heartbeat.due_ns == START_NS + 10 * MS
            assert heartbeat.thread_id == threading.get_ident()
        finally:
            heartbeat.uninstall()
        assert heartbeat_handles(loop) == []
        assert installed_heartbeats() == 0
        assert not heartbeat.installed

    def test_a_request_s_collectors_schedule_one_beat_at_the_interval_they_need(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        # As a request starts them: the detector (beats every threshold / 4), then the lag
        # monitor. One timer, never one cancelled and scheduled again.
        detector = BlockingCallDetector(threshold_ms=10, interval_ms=10, registry=registry)
        lag = EventLoopLagMonitor(interval_ms=10, registry=registry)
        detector.install(loop)
        lag.start(loop)
        try:
            assert isinstance(loop, TimerRecordingLoop)
            [(_beat, handle)] = loop.timers
            assert not handle.cancelled()
            assert handle.when() == pytest.approx(loop.time() + 0.0025, abs=0.002)
        finally:
            lag.stop()
            detector.uninstall()
        assert heartbeat_handles(loop) == []

    def test_a_beat_reschedules_itself(
        self, loop: asyncio.AbstractEventLoop, clock: FakeClock
    ) -> None:
        heartbeat = LoopHeartbeat(loop, clock=clock, run_watchdog=False)
        heartbeat.install()
        heartbeat.add_lag_listener(EventLoopLagMonitor(interval_ms=10))
        try:
            clock.advance(12)
            heartbeat.beat()
            assert (heartbeat.beats, heartbeat.last_beat_ns) == (1, START_NS + 12 * MS)
            assert heartbeat.due_ns == START_NS + 22 * MS
        finally:
            heartbeat.uninstall()

    def test_the_loop_runs_the_beats(self, loop: asyncio.AbstractEventLoop) -> None:
        heartbeat = LoopHeartbeat(loop, run_watchdog=False)

        async def body() -> int:
            heartbeat.install()
            heartbeat.add_lag_listener(EventLoopLagMonitor(interval_ms=10))
            try:
                await asyncio.sleep(0.06)
                return heartbeat.beats
            finally:
                heartbeat.uninstall()

        assert 2 <= run(loop, body) <= 7  # every 10 ms during 60 ms, timers permitting

    def test_a_listener_wanting_beats_sooner_brings_the_pending_beat_forward(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        lag = EventLoopLagMonitor(interval_ms=10, registry=registry)
        strict = BlockingCallDetector(threshold_ms=8, registry=registry, owner=context("/"))
        lag.start(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        assert heartbeat.due_ns == START_NS + 10 * MS
        clock.advance(1)
        strict.install(loop)  # beats every 2 ms from now: the pending 10 ms beat is too late
        assert heartbeat.due_ns == START_NS + 3 * MS
        [pending] = heartbeat_handles(loop)
        assert pending.when() == pytest.approx(loop.time() + 0.002, abs=0.001)
        clock.advance(2)
        heartbeat.beat()
        strict.uninstall()
        lag.stop()
        assert strict.get_stats() == []  # no false stall from the old interval's remainder

    def test_interval_and_threshold_come_from_the_listeners(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        lag = EventLoopLagMonitor(interval_ms=8, registry=registry)
        slow = BlockingCallDetector(threshold_ms=200, interval_ms=50, registry=registry)
        fast = BlockingCallDetector(threshold_ms=20, interval_ms=50, registry=registry)
        lag.start(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        assert heartbeat.stall_threshold_ns > 10**15  # nobody detects: no gap is a stall
        slow.install(loop)
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (8 * MS, 200 * MS)
        assert heartbeat.sample_after_ns == 100 * MS
        fast.install(loop)
        # The detector beats at least every threshold / 4: 5 ms, not its 50 ms.
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (5 * MS, 20 * MS)
        fast.uninstall()
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (8 * MS, 200 * MS)
        slow.uninstall()
        assert heartbeat.interval_ns == 8 * MS
        assert heartbeat.stall_threshold_ns > 10**15
        lag.stop()
        assert registry.get(loop) is None

    def test_settings_follow_listeners_sharing_their_values_in_any_order(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        # Many requests in flight share one config: the minimum stays while anyone wants it.
        fast = [
            BlockingCallDetector(threshold_ms=20, interval_ms=50, registry=registry)
            for _ in range(3)
        ]
        slow = BlockingCallDetector(threshold_ms=200, interval_ms=50, registry=registry)
        lag = EventLoopLagMonitor(interval_ms=8, registry=registry)
        for detector in (*fast, slow):
            detector.install(loop)
        lag.start(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        settings = (5 * MS, 20 * MS)
        for detector in (fast[1], fast[0]):
            detector.uninstall()
            assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == settings
        fast[2].uninstall()
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (8 * MS, 200 * MS)
        lag.stop()
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (50 * MS, 200 * MS)
        fast[0].uninstall()  # again: nothing changes
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (50 * MS, 200 * MS)
        slow.uninstall()
        assert registry.get(loop) is None

    def test_a_listener_leaving_that_held_no_minimum_changes_nothing(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        fast = BlockingCallDetector(threshold_ms=20, interval_ms=50, registry=registry)
        lag = EventLoopLagMonitor(interval_ms=40, registry=registry)
        also_fast = BlockingCallDetector(threshold_ms=20, interval_ms=50, registry=registry)
        fast.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        lag.start(loop)
        also_fast.install(loop)
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (5 * MS, 20 * MS)
        lag.stop()
        fast.uninstall()  # held the minimum, as does the one left
        assert (heartbeat.interval_ns, heartbeat.stall_threshold_ns) == (5 * MS, 20 * MS)
        also_fast.uninstall()
        assert registry.get(loop) is None

    def test_one_heartbeat_shared_by_every_user(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        monitor = EventLoopLagMonitor(registry=registry)
        detector = BlockingCallDetector(registry=registry)
        monitor.start(loop)
        detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        assert registry.users(loop) == 2
        assert (heartbeat.lag_listeners, heartbeat.stall_listeners) == ((monitor,), (detector,))
        monitor.stop()
        assert registry.users(loop) == 1
        assert heartbeat_handles(loop) != []
        detector.uninstall()
        assert registry.users(loop) == 0
        assert heartbeat_handles(loop) == []


class TestLagMonitor:
    @pytest.fixture
    def monitor(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> Iterator[EventLoopLagMonitor]:
        monitor = EventLoopLagMonitor(
            threshold_ms=5, interval_ms=10, origin_ns=START_NS - 3 * MS, registry=registry
        )
        monitor.start(loop)
        yield monitor
        monitor.stop()

    @staticmethod
    def heartbeat(registry: LoopHooks[LoopHeartbeat], loop: Any) -> LoopHeartbeat:
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        return heartbeat

    def test_on_time_beats_leave_no_sample(
        self,
        monitor: EventLoopLagMonitor,
        registry: LoopHooks[LoopHeartbeat],
        loop: asyncio.AbstractEventLoop,
        clock: FakeClock,
    ) -> None:
        heartbeat = self.heartbeat(registry, loop)
        for _ in range(3):
            clock.advance(10)
            heartbeat.beat()
        stats = monitor.get_stats()
        assert (stats.samples, stats.max_lag_ms, stats.beats) == ([], 0.0, 3)

    def test_a_late_beat_is_a_sample_at_its_time_with_its_lateness(
        self,
        monitor: EventLoopLagMonitor,
        registry: LoopHooks[LoopHeartbeat],
        loop: asyncio.AbstractEventLoop,
        clock: FakeClock,
    ) -> None:
        heartbeat = self.heartbeat(registry, loop)
        clock.advance(10)
        heartbeat.beat()  # due at +10, on time
        clock.advance(60)
        heartbeat.beat()  # due at +20, ran at +70
        clock.advance(11)
        heartbeat.beat()  # 1 ms late: under the threshold, counted in beats only
        stats = monitor.get_stats()
        # Times from origin_ns, 3 ms before the monitor started.
        assert stats.samples == [LagSample(at_ms=73.0, lag_ms=50.0)]
        assert stats.max_lag_ms == 50.0
        assert stats.beats == 3
        assert stats.to_dict() == {
            "samples": [{"at_ms": 73.0, "lag_ms": 50.0}],
            "max_lag_ms": 50.0,
            "threshold_ms": 5.0,
            "interval_ms": 10.0,
            "beats": 3,
            "dropped": 0,
        }

    def test_the_threshold_is_exclusive_and_max_covers_every_beat(
        self,
        monitor: EventLoopLagMonitor,
        registry: LoopHooks[LoopHeartbeat],
        loop: asyncio.AbstractEventLoop,
        clock: FakeClock,
    ) -> None:
        heartbeat = self.heartbeat(registry, loop)
        clock.advance(15)  # exactly 5 ms late: "at or below the threshold is not kept"
        heartbeat.beat()
        stats = monitor.get_stats()
        assert (stats.samples, stats.max_lag_ms) == ([], 5.0)
        clock.advance(15.5)
        heartbeat.beat()
        assert [s.lag_ms for s in monitor.get_stats().samples] == [5.5]

    def test_samples_are_capped_and_the_rest_counted(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        monitor = EventLoopLagMonitor(threshold_ms=1, max_samples=2, registry=registry)
        monitor.start(loop)
        heartbeat = self.heartbeat(registry, loop)
        for lateness in (20, 30, 40):
            clock.advance(10 + lateness)
            heartbeat.beat()
        monitor.stop()
        stats = monitor.get_stats()
        assert [s.lag_ms for s in stats.samples] == [20.0, 30.0]
        assert (stats.dropped, stats.max_lag_ms, stats.beats) == (1, 40.0, 3)

    def test_lateness_before_the_request_is_not_charged_to_it(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        first = EventLoopLagMonitor(threshold_ms=1, registry=registry)
        first.start(loop)
        heartbeat = self.heartbeat(registry, loop)
        clock.advance(40)  # the beat due at +10 is 30 ms late when the second request starts
        second = EventLoopLagMonitor(threshold_ms=1, registry=registry)
        second.start(loop)
        clock.advance(8)
        heartbeat.beat()
        second.stop()
        first.stop()
        assert [s.lag_ms for s in first.get_stats().samples] == [38.0]
        assert [s.lag_ms for s in second.get_stats().samples] == [8.0]

    def test_an_overdue_beat_counts_when_the_request_stops(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        monitor = EventLoopLagMonitor(threshold_ms=5, registry=registry)
        monitor.start(loop)
        clock.advance(80)  # the request's last step blocked: the beat due at +10 never ran
        monitor.stop()
        stats = monitor.get_stats()
        assert stats.samples == [LagSample(at_ms=80.0, lag_ms=70.0)]
        assert (stats.max_lag_ms, stats.beats) == (70.0, 0)

    def test_beats_after_stop_are_not_seen(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        monitor = EventLoopLagMonitor(threshold_ms=1, registry=registry)
        other = EventLoopLagMonitor(threshold_ms=1, registry=registry)
        monitor.start(loop)
        other.start(loop)
        heartbeat = self.heartbeat(registry, loop)
        monitor.stop()
        clock.advance(50)
        heartbeat.beat()
        other.stop()
        assert monitor.get_stats().beats == 0
        assert other.get_stats().beats == 1

    def test_start_twice_fails_and_stop_is_idempotent(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        monitor = EventLoopLagMonitor(registry=registry)
        monitor.stop()  # never started: nothing to do
        monitor.start(loop)
        with pytest.raises(RuntimeError, match="already started"):
            monitor.start(loop)
        assert registry.users(loop) == 1
        monitor.stop()
        monitor.stop()
        assert registry.users(loop) == 0
        assert not monitor.running

    def test_on_a_lent_heartbeat_it_neither_acquires_nor_releases(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = BlockingCallDetector(threshold_ms=100, interval_ms=10, registry=registry)
        monitor = EventLoopLagMonitor(threshold_ms=10, interval_ms=10, registry=registry)
        detector.install(loop)
        heartbeat = detector.heartbeat
        assert heartbeat is not None
        monitor.start(loop, heartbeat=heartbeat)
        assert registry.users(loop) == 1  # the detector's acquisition serves both
        assert heartbeat.lag_listeners == (monitor,)
        clock.advance(30)
        heartbeat.beat()  # 20 ms late
        monitor.stop()
        assert registry.users(loop) == 1  # released by its holder, not by the monitor
        assert heartbeat.lag_listeners == ()
        detector.uninstall()
        assert registry.get(loop) is None
        assert monitor.get_stats().max_lag_ms == 20.0

    def test_a_failed_start_on_a_lent_heartbeat_leaves_the_holders_use(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        detector = BlockingCallDetector(registry=registry)
        detector.install(loop)
        heartbeat = detector.heartbeat
        assert heartbeat is not None

        def refuse(listener: object) -> None:
            raise RuntimeError("no room")

        monkeypatch.setattr(heartbeat, "add_lag_listener", refuse)
        with pytest.raises(RuntimeError, match="no room"):
            EventLoopLagMonitor(registry=registry).start(loop, heartbeat=heartbeat)
        assert registry.users(loop) == 1
        detector.uninstall()
        assert registry.get(loop) is None

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"threshold_ms": 0}, "threshold_ms"),
            ({"interval_ms": -1}, "interval_ms"),
            ({"interval_ms": True}, "interval_ms"),
            ({"max_samples": -1}, "max_samples"),
            ({"max_samples": [1]}, "max_samples"),
        ],
    )
    def test_invalid_settings_are_refused(self, kwargs: dict[str, Any], name: str) -> None:
        EventLoopLagMonitor(interval_ms=1)  # cached by value and type: True is not 1
        with pytest.raises(ValueError, match=name):
            EventLoopLagMonitor(**kwargs)


class TestStalls:
    """Detectors listening to one heartbeat; the watchdog polled by hand on this thread."""

    THRESHOLD = 100.0

    def detector(
        self,
        registry: LoopHooks[LoopHeartbeat],
        owner: object | None,
        **kwargs: Any,
    ) -> BlockingCallDetector:
        kwargs.setdefault("threshold_ms", self.THRESHOLD)
        return BlockingCallDetector(owner=owner, registry=registry, **kwargs)

    @staticmethod
    def parts(
        registry: LoopHooks[LoopHeartbeat],
        loop: asyncio.AbstractEventLoop,
    ) -> tuple[LoopHeartbeat, Watchdog]:
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        return heartbeat, Watchdog(heartbeat)

    def test_a_sampled_stall_in_the_request_is_its_own(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
        function_name: Callable[[str], str],
    ) -> None:
        request = context("/report")
        detector = self.detector(registry, request, origin_ns=START_NS - 2 * MS)

        async def handler() -> int:
            detector.install(loop)
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(5)
            heartbeat.beat()
            clock.advance(60)  # past half the threshold: the watchdog looks
            line = _next_line()
            delay = watchdog.poll()
            assert watchdog.samples_taken == 1
            assert delay == pytest.approx(0.005)  # then checks again every 5 ms
            clock.advance(70)
            heartbeat.beat()  # the loop is back: 130 ms without a beat
            detector.uninstall()
            return line

        line = run(loop, handler)
        [call] = detector.get_stats()
        assert (call.start_ms, call.duration_ms) == (7.0, 130.0)
        assert (call.filename, call.lineno, call.function) == (
            __file__,
            line,
            function_name(handler_name()),
        )
        assert call.code == "delay = watchdog.poll()"
        # The window keeps the library frames the line called (here: the sampler, as the test
        # samples its own thread), then the line and its callers.
        assert next((f.function, f.lineno) for f in call.stack if f.filename == __file__) == (
            function_name(handler_name()),
            line,
        )
        assert call.relation == "own"
        assert call.relation != "unknown"
        assert call.to_dict()["culprit"] is True

    def test_a_short_gap_is_not_a_stall_even_if_sampled(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, context("/"))

        async def handler() -> None:
            detector.install(loop)
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(60)
            watchdog.poll()
            clock.advance(30)
            heartbeat.beat()  # 90 ms: slow, not a stall; the sample is dropped
            clock.advance(150)
            heartbeat.beat()  # a stall nobody sampled: the old sample must not be reused
            detector.uninstall()

        run(loop, handler)
        [call] = detector.get_stats()
        assert call.duration_ms == 150.0
        assert call.relation == "unknown"
        assert (call.filename, call.lineno, call.stack) == (None, None, [])
        assert call.to_dict()["culprit"] is None

    def test_the_watchdog_sleeps_until_half_the_threshold(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None)

        async def handler() -> float:
            detector.install(loop)
            _heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(20)
            delay = watchdog.poll()
            assert watchdog.samples_taken == 0
            detector.uninstall()
            return delay

        assert run(loop, handler) == pytest.approx(0.030 + 0.001)

    def test_a_loop_that_is_not_running_is_not_sampled(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None)
        detector.install(loop)
        _heartbeat, watchdog = self.parts(registry, loop)
        clock.advance(500)
        watchdog.poll()
        detector.uninstall()
        assert watchdog.samples_taken == 0

    def test_a_sample_of_a_stall_that_already_ended_is_discarded(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None)
        detector.install(loop)
        heartbeat, watchdog = self.parts(registry, loop)
        stalled_since = heartbeat.last_beat_ns
        clock.advance(120)
        heartbeat.beat()
        assert watchdog.sample(stalled_since) is False
        clock.advance(150)
        heartbeat.beat()  # the next stall was not sampled: the late sample is not its
        detector.uninstall()
        assert [(c.duration_ms, c.relation) for c in detector.get_stats()] == [
            (120.0, "unknown"),
            (150.0, "unknown"),
        ]

    def test_a_segment_keeps_the_first_application_line_of_its_culprit(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None)
        detector.install(loop)
        heartbeat, _watchdog = self.parts(registry, loop)
        beat = heartbeat.last_beat_ns
        app_code = sys._getframe().f_code
        library = StallSample(beat, beat, ((threading.Event.wait.__code__, 1),), None, None)
        first_app = StallSample(beat, beat + 5 * MS, ((app_code, 11),), 0, None)
        second_app = StallSample(beat, beat + 10 * MS, ((app_code, 22),), 0, None)
        for sample in (library, first_app, second_app):
            assert heartbeat.publish(sample) is True
        clock.advance(150)
        stall = heartbeat.open_stall(clock())
        assert stall is not None
        [segment] = stall.samples
        assert (segment.taken_ns, segment.last_ns, segment.count) == (beat, beat + 10 * MS, 3)
        heartbeat.beat()
        detector.uninstall()
        [call] = detector.get_stats()
        assert (call.filename, call.lineno) == (__file__, 11)

    def test_a_segment_names_the_application_line_it_was_seen_at_most_often(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        """The first sighting caught the request resuming (a garbage collection paused the loop
        there); the blocking call after it was seen far more often, and it is the one named."""
        detector = self.detector(registry, None)
        detector.install(loop)
        heartbeat, _watchdog = self.parts(registry, loop)
        beat = heartbeat.last_beat_ns
        app_code = sys._getframe().f_code
        lines = [11, 11, 22, 22, 22, 11, 22]
        for n, line in enumerate(lines):
            sample = StallSample(beat, beat + n * 5 * MS, ((app_code, line),), 0, None)
            assert heartbeat.publish(sample) is True
        clock.advance(150)
        stall = heartbeat.open_stall(clock())
        assert stall is not None
        [segment] = stall.samples
        assert (segment.taken_ns, segment.count) == (beat, len(lines))
        heartbeat.beat()
        detector.uninstall()
        [call] = detector.get_stats()
        assert (call.filename, call.lineno) == (__file__, 22)

    def test_culprit_and_victim(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        slow, waiting = context("/slow", "POST"), context("/waiting")
        culprit = self.detector(registry, slow)
        victim = self.detector(registry, waiting)

        async def start_waiting_request() -> None:
            victim.install(loop)

        async def slow_handler() -> None:
            await asyncio.create_task(start_waiting_request())
            culprit.install(loop)
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(70)
            watchdog.poll()
            clock.advance(80)
            heartbeat.beat()
            culprit.uninstall()
            victim.uninstall()

        run(loop, slow_handler)
        [own] = culprit.get_stats()
        [suffered] = victim.get_stats()
        assert own.relation == "own"
        assert suffered.relation == "suffered"
        assert (suffered.culprit_request_id, suffered.culprit_method, suffered.culprit_path) == (
            slow.request_id,
            "POST",
            "/slow",
        )
        assert suffered.to_dict()["culprit"] == {
            "request_id": slow.request_id,
            "method": "POST",
            "path": "/slow",
        }
        # Both name the same line: the one that blocked, in the culprit's handler.
        assert (suffered.filename, suffered.lineno) == (own.filename, own.lineno)
        assert suffered.duration_ms == own.duration_ms == 150.0

    def test_outside_any_request(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
        function_name: Callable[[str], str],
    ) -> None:
        detector = self.detector(registry, context("/victim"))

        async def request() -> None:
            detector.install(loop)

        async def background_job() -> None:
            await asyncio.create_task(request())
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(70)
            watchdog.poll()
            clock.advance(80)
            heartbeat.beat()
            detector.uninstall()

        run(loop, background_job)
        [call] = detector.get_stats()
        assert call.relation == "suffered"
        assert call.relation != "unknown"
        assert call.to_dict()["culprit"] == {"request_id": None, "method": None, "path": None}
        assert call.function == function_name(
            "TestStalls.test_outside_any_request.<locals>.background_job"
        )

    def test_a_child_task_is_attributed_through_the_task_tracking(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
        function_name: Callable[[str], str],
    ) -> None:
        request = context("/fan-out")
        tracking = TaskTracking()
        detector = self.detector(registry, request, owns_task=tracking.recorder.owns)
        lines: list[int] = []

        async def child() -> None:
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(70)
            lines.append(_next_line())
            watchdog.poll()
            clock.advance(80)
            heartbeat.beat()

        async def handler() -> None:
            tracking.start(loop)
            detector.install(loop)
            try:
                await asyncio.create_task(child())
            finally:
                detector.uninstall()
                tracking.stop()

        run(loop, handler)
        [call] = detector.get_stats()
        assert call.relation == "own"
        assert (call.lineno, call.function) == (lines[0], function_name(child.__qualname__))

    def test_a_stall_open_when_the_request_stops_is_closed_then(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        ending, other = context("/ending"), context("/other")
        stopping = self.detector(registry, ending)
        staying = self.detector(registry, other)

        async def other_request() -> None:
            staying.install(loop)

        async def handler() -> None:
            await asyncio.create_task(other_request())
            stopping.install(loop)
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(60)
            watchdog.poll()
            clock.advance(90)
            stopping.uninstall()  # the handler's last step blocked; no beat since
            clock.advance(5)
            heartbeat.beat()
            staying.uninstall()

        run(loop, handler)
        [closed_early] = stopping.get_stats()
        [closed_by_beat] = staying.get_stats()
        assert (closed_early.duration_ms, closed_early.relation) == (150.0, "own")
        assert closed_early.lineno is not None
        assert (closed_by_beat.duration_ms, closed_by_beat.relation) == (155.0, "suffered")
        assert closed_by_beat.culprit_path == "/ending"

    def test_a_request_that_starts_after_a_block_does_not_report_it(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        early = self.detector(registry, context("/early"))
        late = self.detector(registry, context("/late"), origin_ns=START_NS)
        early.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        clock.advance(130)  # someone blocked the loop; then, in the same iteration:
        late.install(loop)
        clock.advance(2)
        heartbeat.beat()
        clock.advance(10)
        heartbeat.beat()
        late.uninstall()
        early.uninstall()
        assert [c.duration_ms for c in early.get_stats()] == [132.0]
        assert late.get_stats() == []

    def test_a_stall_partly_before_the_request_is_clipped_to_its_start(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        first = self.detector(registry, context("/first"))
        first.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        clock.advance(8)
        second = self.detector(registry, context("/second"), origin_ns=START_NS)
        second.install(loop)  # 8 ms after the last beat, then it blocks for 120 ms
        clock.advance(120)
        heartbeat.beat()
        second.uninstall()
        first.uninstall()
        [call] = second.get_stats()
        assert (call.start_ms, call.duration_ms) == (8.0, 120.0)
        assert [c.duration_ms for c in first.get_stats()] == [128.0]

    def test_a_block_the_watchdog_never_saw_is_unknown_not_its_neighbours(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        """Three requests block back to back; the watchdog's thread does not run during the
        middle one's block (a starved machine): that stretch is nobody's known part, so the
        middle request is told "unknown" and its neighbours are not blamed for it."""
        first_request, middle_request, last_request = context("/a"), context("/m"), context("/z")
        detectors = [
            self.detector(registry, request, origin_ns=START_NS)
            for request in (first_request, middle_request, last_request)
        ]
        for detector in detectors:
            detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        beat = heartbeat.last_beat_ns
        code = sys._getframe().f_code
        for at_ms in range(50, 151, 5):  # the first blocks from 0 to ~150 ms, seen
            heartbeat.publish(
                StallSample(beat, START_NS + at_ms * MS, ((code, 1),), 0, first_request)
            )
        # The middle one blocks from ~150 to ~320 ms: not a single sample.
        for at_ms in range(320, 471, 5):  # the last blocks until ~470 ms, seen again
            heartbeat.publish(
                StallSample(beat, START_NS + at_ms * MS, ((code, 3),), 0, last_request)
            )
        clock.advance(472)
        heartbeat.beat()
        for detector in detectors:
            detector.uninstall()
        # Every request in flight sees the same three parts: the first's (its sightings and
        # one resampling period, 5 ms, beyond them), the unseen stretch, the last's.
        spans = [(0.0, 155.0), (155.0, 160.0), (315.0, 157.0)]  # the middle one: nobody's
        first, middle, last = (detector.get_stats() for detector in detectors)
        for calls in (first, middle, last):
            assert [(c.start_ms, c.duration_ms) for c in calls] == spans
        assert [(c.relation, c.culprit_path) for c in first] == [
            ("own", None),
            ("unknown", None),
            ("suffered", "/z"),
        ]
        assert [(c.relation, c.culprit_path) for c in middle] == [
            ("suffered", "/a"),
            ("unknown", None),
            ("suffered", "/z"),
        ]
        assert [(c.relation, c.culprit_path) for c in last] == [
            ("suffered", "/a"),
            ("unknown", None),
            ("own", None),
        ]

    def test_back_to_back_blocks_of_two_requests_are_cut_where_the_culprit_changed(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        """Two requests block one after the other with no beat between them (released together,
        they run in one loop iteration): each is blamed for its own block only."""
        first_request, second_request = context("/first"), context("/second")
        first = self.detector(registry, first_request, origin_ns=START_NS)
        second = self.detector(registry, second_request, origin_ns=START_NS)
        first.install(loop)
        second.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        beat = heartbeat.last_beat_ns
        code = sys._getframe().f_code

        def seen(at_ms: int, owner: RequestContext, line: int) -> None:
            sample = StallSample(beat, START_NS + at_ms * MS, ((code, line),), 0, owner)
            assert heartbeat.publish(sample) is True

        for at_ms in range(50, 151, 5):  # the first request blocks from 0 to ~150 ms
            seen(at_ms, first_request, 1)
        clock.advance(152)
        first.uninstall()  # its request ends between the two blocks: its own part so far
        for at_ms in range(155, 301, 5):  # then the second blocks until ~300 ms
            seen(at_ms, second_request, 2)
        clock.advance(150)
        heartbeat.beat()
        second.uninstall()

        [own_first] = first.get_stats()
        assert (own_first.relation, own_first.lineno) == ("own", 1)
        assert (own_first.start_ms, own_first.duration_ms) == (0.0, 152.0)
        suffered, own_second = second.get_stats()
        assert (suffered.relation, suffered.culprit_path, suffered.lineno) == (
            "suffered",
            "/first",
            1,
        )
        # Cut halfway between the last sighting of the first and the first of the second.
        assert (suffered.start_ms, suffered.duration_ms) == (0.0, 152.5)
        assert (own_second.relation, own_second.lineno) == ("own", 2)
        assert (own_second.start_ms, own_second.duration_ms) == (152.5, 149.5)

    def test_a_stall_of_short_blocks_adding_up_is_not_blamed_on_any(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        one, other = context("/one"), context("/other")
        detector = self.detector(registry, one)
        detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        beat = heartbeat.last_beat_ns
        code = sys._getframe().f_code
        for at_ms, owner in ((50, one), (55, one), (65, other), (70, other), (85, one)):
            heartbeat.publish(StallSample(beat, START_NS + at_ms * MS, ((code, 1),), 0, owner))
        clock.advance(130)  # 130 ms without a beat, but no request held the loop for 100
        heartbeat.beat()
        detector.uninstall()
        [call] = detector.get_stats()
        assert (call.duration_ms, call.relation) == (130.0, "unknown")
        assert call.to_dict()["culprit"] is None

    def test_a_stall_changing_hands_too_often_ends_unknown(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        requests = [context("/a"), context("/b")]
        detector = self.detector(registry, requests[0], threshold_ms=1)
        detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        beat = heartbeat.last_beat_ns
        code = sys._getframe().f_code
        for n in range(200):  # culprits alternate every 5 ms, far past the segment cap
            sample = StallSample(beat, START_NS + n * 5 * MS, ((code, n),), 0, requests[n % 2])
            heartbeat.publish(sample)
        clock.advance(1000)
        stall = heartbeat.open_stall(clock())
        assert stall is not None
        assert len(stall.samples) == 65  # 64 segments, then one unknown tail
        heartbeat.beat()
        detector.uninstall()
        calls = detector.get_stats()
        assert [c.relation for c in calls[:32]] == ["own", "suffered"] * 16
        tail = calls[-1]
        assert (tail.relation, tail.lineno, tail.start_ms) == ("unknown", None, 317.5)
        assert tail.start_ms + tail.duration_ms == 1000.0

    def test_the_threshold_is_per_request(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        strict = self.detector(registry, None, threshold_ms=50)
        lenient = self.detector(registry, None, threshold_ms=200)
        strict.install(loop)
        lenient.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        clock.advance(120)
        heartbeat.beat()
        lenient.uninstall()
        strict.uninstall()
        assert [c.duration_ms for c in strict.get_stats()] == [120.0]
        assert lenient.get_stats() == []

    def test_calls_are_capped_and_the_rest_counted(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None, max_calls=1)
        detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        for _ in range(3):
            clock.advance(150)
            heartbeat.beat()
        detector.uninstall()
        assert len(detector.get_stats()) == 1
        assert detector.dropped == 2

    def test_a_slow_threshold_keeps_the_shorter_stalls_in_a_list_of_their_own(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None, threshold_ms=100, slow_threshold_ms=10, max_slow=2)
        detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        # One listener: the heartbeat beats and the watchdog samples for the lower threshold.
        assert (heartbeat.stall_threshold_ns, heartbeat.interval_ns) == (10 * MS, 10 * MS // 4)
        for gap_ms in (5, 30, 150, 40):
            clock.advance(gap_ms)
            heartbeat.beat()
        detector.uninstall()
        assert [c.duration_ms for c in detector.get_stats()] == [150.0]
        assert [c.duration_ms for c in detector.get_slow_stats()] == [30.0, 150.0]
        assert (detector.dropped, detector.dropped_slow) == (0, 1)

    def test_without_a_slow_threshold_there_is_no_slow_list(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None, threshold_ms=100)
        detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        clock.advance(150)
        heartbeat.beat()
        detector.uninstall()
        assert [c.duration_ms for c in detector.get_stats()] == [150.0]
        assert detector.get_slow_stats() == []

    def test_the_stack_is_cut_at_the_maximum_depth(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
        clock: FakeClock,
    ) -> None:
        detector = self.detector(registry, None, max_stack_depth=2)

        async def handler() -> None:
            detector.install(loop)
            heartbeat, watchdog = self.parts(registry, loop)
            clock.advance(60)
            watchdog.poll()
            clock.advance(60)
            heartbeat.beat()
            detector.uninstall()

        run(loop, handler)
        [call] = detector.get_stats()
        # No room for the library frames inside: the line that blocked, then its caller.
        assert len(call.stack) == 2
        assert (call.stack[0].function, call.stack[0].lineno) == (call.function, call.lineno)
        assert call.stack[0].function.endswith("handler")

    def test_install_twice_fails_uninstall_is_idempotent(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: LoopHooks[LoopHeartbeat],
    ) -> None:
        detector = self.detector(registry, None)
        detector.uninstall()
        detector.install(loop)
        with pytest.raises(RuntimeError, match="already installed"):
            detector.install(loop)
        detector.uninstall()
        detector.uninstall()
        assert registry.users(loop) == 0
        assert detector.get_stats() == []

    def test_a_failed_install_leaves_nothing(self, loop: asyncio.AbstractEventLoop) -> None:
        def broken(loop: asyncio.AbstractEventLoop) -> LoopHeartbeat:
            raise OSError("no timers today")

        detector = BlockingCallDetector(registry=SharedHooks("test heartbeat", broken))
        with pytest.raises(OSError, match="no timers"):
            detector.install(loop)
        assert not detector.running
        detector.uninstall()

    def test_a_watchdog_that_cannot_start_leaves_nothing(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        registry: LoopHooks[LoopHeartbeat] = SharedHooks(
            "test heartbeat", lambda loop: LoopHeartbeat(loop, clock=clock)
        )
        monitor = EventLoopLagMonitor(registry=registry)
        monitor.start(loop)

        def refuse(thread: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(threading.Thread, "start", refuse)
        detector = self.detector(registry, None)
        with pytest.raises(RuntimeError, match="new thread"):
            detector.install(loop)
        heartbeat = registry.get(loop)
        assert heartbeat is not None
        assert (heartbeat.stall_listeners, heartbeat.watchdog) == ((), None)
        assert registry.users(loop) == 1  # only the monitor's
        assert not detector.running
        detector.uninstall()
        monitor.stop()
        assert registry.users(loop) == 0

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"threshold_ms": 0}, "threshold_ms"),
            ({"threshold_ms": "100"}, "threshold_ms"),
            ({"threshold_ms": float("inf")}, "threshold_ms"),
            ({"threshold_ms": float("nan")}, "threshold_ms"),
            ({"interval_ms": 0}, "interval_ms"),
            ({"max_stack_depth": 0}, "max_stack_depth"),
            ({"max_calls": -1}, "max_calls"),
            ({"slow_threshold_ms": 0}, "slow_threshold_ms"),
            ({"slow_threshold_ms": float("inf")}, "slow_threshold_ms"),
            ({"max_slow": -1}, "max_slow"),
            ({"threshold_ms": [100]}, "threshold_ms"),
            ({"max_calls": True}, "max_calls"),
            ({"max_slow": 1.0}, "max_slow"),
        ],
    )
    def test_invalid_settings_are_refused(self, kwargs: dict[str, Any], name: str) -> None:
        # Valid settings equal to the invalid ones (1 == True == 1.0) validated first: the
        # validation is cached by value and type, never one for the other.
        BlockingCallDetector(max_calls=1, max_slow=1)
        with pytest.raises(ValueError, match=name):
            BlockingCallDetector(**kwargs)


def handler_name() -> str:
    return "TestStalls.test_a_sampled_stall_in_the_request_is_its_own.<locals>.handler"


def test_blocking_call_round_trips_through_its_dict() -> None:
    call = BlockingCall(1.0, 150.0, None, None, None, None, relation="unknown")
    assert BlockingCall.from_dict(call.to_dict()) == call


class TestBeatContext:
    @pytest.mark.parametrize("loop_factory", ["asyncio", "uvloop"])
    def test_beats_run_outside_the_request_that_installed_the_heartbeat(
        self, loop_factory: str
    ) -> None:
        import contextvars

        import uvloop

        request_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "request", default=None
        )
        seen: list[str | None] = []
        loop = asyncio.new_event_loop() if loop_factory == "asyncio" else uvloop.new_event_loop()
        registry: LoopHooks[LoopHeartbeat] = SharedHooks(
            "context test", lambda loop: LoopHeartbeat(loop, run_watchdog=False)
        )

        class Listener:
            interval_ns = 1_000_000

            def on_beat(self, now_ns: int, due_ns: int) -> None:
                seen.append(request_var.get())

        async def request() -> None:
            request_var.set("the request's secrets")
            heartbeat = registry.acquire(asyncio.get_running_loop())
            heartbeat.add_lag_listener(Listener())
            await asyncio.sleep(0.02)
            registry.release(asyncio.get_running_loop())

        try:
            loop.run_until_complete(request())
        finally:
            loop.close()
        assert seen, "no beat ran"
        assert set(seen) == {None}
