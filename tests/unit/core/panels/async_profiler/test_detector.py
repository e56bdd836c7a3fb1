"""BlockingCallDetector and EventLoopLagMonitor on real loops (asyncio and uvloop), real time.

Each test runs a "request" the way the panel will: in its own task, task tracking, detection
and lag monitoring started with the request's context as owner, stopped in ``finally``. The
blocking statements are found by the marker comment at the end of their line, so the assertion
is "this exact line", not "somewhere in this test". Thresholds are small (40 ms) and blocks
three to four times longer, so the timing assertions are lower bounds with room to spare.
"""

# Blocking the loop from async code is exactly what these tests do.
# ruff: noqa: ASYNC251

from __future__ import annotations

import asyncio
import gc
import inspect
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.heartbeat import (
    LoopHeartbeat,
    heartbeats,
    installed_heartbeats,
)
from debug_toolbar.core.panels.async_profiler.models import BlockingCall, LagSample, LagStats
from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking
from debug_toolbar.core.panels.async_profiler.watchdog import (
    WATCHDOG_THREAD_NAME,
    Watchdog,
    running_watchdogs,
    stop_watchdogs,
)
from support import ProcessPauses

THRESHOLD_MS = 40.0
BLOCK_S = 0.15
BLOCK_MS = BLOCK_S * 1000
SOURCE = Path(__file__).read_text().splitlines()

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def line_of(marker: str) -> int:
    """The line of this file that ends with ``# <marker>`` (exactly one)."""
    lines = [n for n, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(lines) == 1, f"marker {marker!r} found on lines {lines}"
    return lines[0]


def watchdog_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == WATCHDOG_THREAD_NAME]


@pytest.fixture(autouse=True)
def _no_watchdog_survives() -> Iterator[None]:
    yield
    assert [w for w in running_watchdogs() if not w.parked] == [], "a watchdog still watches"
    assert installed_heartbeats() == 0, "a heartbeat is still installed"
    stop_watchdogs()
    assert watchdog_threads() == [], "a watchdog thread survived stop_watchdogs()"


_pause_watch: list[ProcessPauses] = []
"""The running test's pause watcher (empty when the test runs without one)."""


@pytest.fixture(autouse=True)
def _watch_process_pauses() -> Iterator[None]:
    with ProcessPauses() as pauses:
        _pause_watch.append(pauses)
        try:
            yield
        finally:
            _pause_watch.remove(pauses)


@pytest.fixture(params=["asyncio", "uvloop"])
def new_loop(request: pytest.FixtureRequest) -> LoopFactory:
    if request.param == "uvloop":
        return uvloop.new_event_loop
    return asyncio.new_event_loop


@dataclass
class Request:
    """One profiled request: what the panel will compose, and what it collected."""

    path: str = "/"
    method: str = "GET"
    threshold_ms: float = THRESHOLD_MS
    detect: bool = True
    monitor: bool = True
    context: RequestContext = field(init=False)
    calls: list[BlockingCall] = field(default_factory=list)
    lag: LagStats | None = None
    threads_during: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context = RequestContext(method=self.method, path=self.path)

    async def run(self, handler: Callable[[], Awaitable[Any]]) -> Request:
        """Run ``handler`` in the request's own task, like the middleware."""
        return await asyncio.create_task(self._task(handler))

    async def _task(self, handler: Callable[[], Awaitable[Any]]) -> Request:
        loop = asyncio.get_running_loop()
        context = self.context
        tracking = TaskTracking()
        detector = BlockingCallDetector(
            threshold_ms=self.threshold_ms,
            owner=context,
            owns_task=tracking.recorder.owns,
            origin_ns=context.start_ns,
        )
        monitor = EventLoopLagMonitor(threshold_ms=5.0, origin_ns=context.start_ns)
        tracking.start(loop)
        if self.detect:
            detector.install(loop)
        if self.monitor:
            monitor.start(loop)
        try:
            self.threads_during = watchdog_threads()
            await handler()
        finally:
            monitor.stop()
            detector.uninstall()
            tracking.stop()
        self.calls = detector.get_stats()
        self.lag = monitor.get_stats()
        return self


def _eager_factory_refuses_eager_start() -> bool:
    """Whether uvloop's ``create_task`` breaks with ``asyncio.eager_task_factory`` installed."""
    if sys.version_info < (3, 13):  # uvloop only passes eager_start on 3.13+
        return False
    parameters = inspect.signature(asyncio.eager_task_factory).parameters.values()
    return not any(p.name == "eager_start" or p.kind is p.VAR_KEYWORD for p in parameters)


def run(new_loop: LoopFactory, main: Callable[[], Awaitable[Any]]) -> Any:
    loop = new_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def code_calls(request: Request) -> list[BlockingCall]:
    """The request's blocking calls, minus stalls caused by the machine, not by code.

    A stall counts as the machine's when, without the time the whole process was paused (see
    ``ProcessPauses``), it would not have reached the threshold. The detector is right to
    report those (the loop really did not run), but no statement of the test caused them.
    """
    if not _pause_watch:
        return list(request.calls)
    pauses = _pause_watch[-1]
    threshold_ns = request.threshold_ms * 1_000_000
    kept = []
    for call in request.calls:
        start = request.context.start_ns + round(call.start_ms * 1_000_000)
        end = start + round(call.duration_ms * 1_000_000)
        if end - start - pauses.paused_ns(start, end) > threshold_ns:
            kept.append(call)
    return kept


def code_lag_ms(request: Request, sample: LagSample) -> float:
    """A lag sample's lag minus the time the whole process was paused while the beat waited."""
    if not _pause_watch:
        return sample.lag_ms
    at_ns = request.context.start_ns + round(sample.at_ms * 1_000_000)
    paused_ns = _pause_watch[-1].paused_ns(at_ns - round(sample.lag_ms * 1_000_000), at_ns)
    return sample.lag_ms - paused_ns / 1_000_000


def only_call(request: Request) -> BlockingCall:
    calls = code_calls(request)
    assert len(calls) == 1, request.calls
    return calls[0]


def blocking_helper() -> None:
    time.sleep(BLOCK_S)  # block: sync helper


async def child_job() -> None:
    await asyncio.sleep(0)
    time.sleep(BLOCK_S)  # block: child task


class TestBlockingStatementIsNamed:
    def test_sleep_in_the_middle_of_the_handler(
        self, new_loop: LoopFactory, function_name: Callable[[str], str]
    ) -> None:
        async def handler() -> None:
            await asyncio.sleep(0.02)
            time.sleep(BLOCK_S)  # block: handler middle
            await asyncio.sleep(0.02)

        request = run(new_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert (call.filename, call.lineno) == (__file__, line_of("block: handler middle"))
        assert call.function == function_name(handler.__qualname__)
        assert call.code == "time.sleep(BLOCK_S)  # block: handler middle"
        assert call.relation == "own"
        assert call.relation != "unknown"
        # The handler's next await lets the loop run between callbacks before the next beat:
        # a sample there (no task running) ends the request's part halfway from its last
        # sighting, up to half a resampling period (5 ms) before the block really ended.
        assert BLOCK_MS - 5 <= call.duration_ms < BLOCK_MS + 500
        assert call.start_ms >= 5.0  # after the first await (minus a heartbeat interval)
        assert call.stack[0].lineno == call.lineno

    def test_sleep_as_the_handlers_last_step(self, new_loop: LoopFactory) -> None:
        async def handler() -> None:
            await asyncio.sleep(0.01)
            time.sleep(BLOCK_S)  # block: last step

        request = run(new_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert (call.filename, call.lineno) == (__file__, line_of("block: last step"))
        assert call.relation == "own"
        assert BLOCK_MS - 1 <= call.duration_ms < BLOCK_MS + 500
        # The lag monitor saw it too, although the delayed beat ran after the request.
        assert request.lag is not None
        assert request.lag.max_lag_ms >= BLOCK_MS - 15

    def test_sleep_in_a_child_task(self, new_loop: LoopFactory) -> None:
        async def handler() -> None:
            await asyncio.create_task(child_job())

        request = run(new_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert (call.lineno, call.function) == (line_of("block: child task"), "child_job")
        assert call.relation == "own"  # the child belongs to the request (task hooks)

    @pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks need Python 3.12")
    def test_sleep_in_an_eager_tasks_first_step(self, new_loop: LoopFactory) -> None:
        if new_loop is uvloop.new_event_loop and _eager_factory_refuses_eager_start():
            pytest.skip(
                "uvloop passes eager_start to the task factory on 3.13, and this Python's "
                "asyncio.eager_task_factory does not accept it (later 3.13 releases do, "
                "CPython gh-133745): uvloop cannot run eager tasks here"
            )

        async def eager_child() -> None:
            time.sleep(BLOCK_S)  # block: eager first step

        async def handler() -> None:
            await asyncio.create_task(eager_child())

        def eager_loop() -> asyncio.AbstractEventLoop:
            loop = new_loop()
            loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
            return loop

        request = run(eager_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert call.lineno == line_of("block: eager first step")
        assert call.relation == "own"  # it ran inside the request's create_task call

    def test_sleep_in_a_sync_helper_called_by_the_handler(
        self, new_loop: LoopFactory, function_name: Callable[[str], str]
    ) -> None:
        async def handler() -> None:
            await asyncio.sleep(0)
            blocking_helper()  # calls: helper

        request = run(new_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert (call.lineno, call.function) == (line_of("block: sync helper"), "blocking_helper")
        assert (call.stack[1].lineno, call.stack[1].function) == (
            line_of("calls: helper"),
            function_name(handler.__qualname__),
        )

    def test_a_pure_python_cpu_loop(
        self, new_loop: LoopFactory, function_name: Callable[[str], str]
    ) -> None:
        async def handler() -> int:
            await asyncio.sleep(0)
            total = 0
            deadline = time.perf_counter() + BLOCK_S
            while time.perf_counter() < deadline:  # block: cpu loop head
                total += 1  # block: cpu loop body
            return total

        request = run(new_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert call.lineno in {line_of("block: cpu loop head"), line_of("block: cpu loop body")}
        assert call.function == function_name(handler.__qualname__)
        assert call.duration_ms >= BLOCK_MS - 1


class TestACallHoldingTheGil:
    @pytest.fixture(autouse=True)
    def _watch_process_pauses(self) -> None:
        """No pause watcher here: a third thread waiting for the GIL could take it before the
        watchdog when the C call returns, and the request would end before any sample."""

    def test_a_c_call_holding_the_gil_is_named_once_it_returns(self, new_loop: LoopFactory) -> None:
        # The watchdog cannot run while the regex engine holds the GIL; it gets the GIL back
        # at the end of the call, when the loop's thread is still on the calling line.
        pattern = re.compile(r"(a+)+$")
        subject = "a" * 22 + "b"

        async def handler() -> None:
            await asyncio.sleep(0)
            started = time.perf_counter()
            while time.perf_counter() - started < BLOCK_S:
                pattern.match(subject)  # block: gil

        request = run(new_loop, lambda: Request().run(handler))
        call = only_call(request)
        assert call.lineno == line_of("block: gil")
        assert call.relation == "own"


class TestWhatIsNotReported:
    def test_fast_async_code_is_not_a_blocking_call(self, new_loop: LoopFactory) -> None:
        async def tick() -> None:
            await asyncio.sleep(0.001)

        async def handler() -> None:
            deadline = time.perf_counter() + 0.15
            while time.perf_counter() < deadline:
                await asyncio.gather(*(tick() for _ in range(20)))
                await asyncio.sleep(0)

        request = run(new_loop, lambda: Request(threshold_ms=60).run(handler))
        assert code_calls(request) == []
        assert request.lag is not None
        assert request.lag.beats >= 5

    def test_the_threshold_is_honoured(self, new_loop: LoopFactory) -> None:
        async def handler() -> None:
            time.sleep(0.01)  # short: under the threshold
            await asyncio.sleep(0.02)
            time.sleep(0.2)  # block: over threshold
            await asyncio.sleep(0.02)

        request = run(new_loop, lambda: Request(threshold_ms=80).run(handler))
        call = only_call(request)
        assert call.lineno == line_of("block: over threshold")


class TestConcurrentRequests:
    def test_culprit_and_victim(self, new_loop: LoopFactory) -> None:
        blocker = Request(path="/report", method="POST")
        waiter = Request(path="/health")

        async def blocking_handler() -> None:
            await asyncio.sleep(0.03)  # the waiter is in flight by now
            time.sleep(BLOCK_S)  # block: culprit

        async def waiting_handler() -> None:
            await asyncio.sleep(0.3)

        async def main() -> None:
            await asyncio.gather(waiter.run(waiting_handler), blocker.run(blocking_handler))

        run(new_loop, main)
        own = only_call(blocker)
        suffered = only_call(waiter)
        assert own.relation == "own"
        assert suffered.relation == "suffered"
        assert suffered.to_dict()["culprit"] == {
            "request_id": blocker.context.request_id,
            "method": "POST",
            "path": "/report",
        }
        assert suffered.lineno == own.lineno == line_of("block: culprit")
        # Its part may end half a resampling period early (a sample between callbacks after
        # the block, before the next beat, cuts it halfway).
        assert suffered.duration_ms >= BLOCK_MS - 5
        # Both ran on one loop with one watchdog.
        assert len(blocker.threads_during) == 1
        assert blocker.threads_during == waiter.threads_during

    def test_blocked_outside_any_request(self, new_loop: LoopFactory) -> None:
        victim = Request(path="/victim")

        async def background_job() -> None:
            await asyncio.sleep(0.03)
            time.sleep(BLOCK_S)  # block: background

        async def main() -> None:
            job = asyncio.create_task(background_job())  # not created by any request
            await victim.run(lambda: asyncio.sleep(0.25))
            await job

        run(new_loop, main)
        call = only_call(victim)
        assert call.relation == "suffered"
        assert call.to_dict()["culprit"] == {"request_id": None, "method": None, "path": None}
        assert call.lineno == line_of("block: background")


class TestLag:
    def test_a_block_is_a_lag_sample_of_about_its_length(self, new_loop: LoopFactory) -> None:
        async def handler() -> None:
            await asyncio.sleep(0.03)
            time.sleep(0.05)
            await asyncio.sleep(0.03)

        request = run(new_loop, lambda: Request(detect=False).run(handler))
        lag = request.lag
        assert lag is not None
        big = [sample for sample in lag.samples if code_lag_ms(request, sample) > 20]
        assert len(big) == 1, lag.samples
        # The beat due during the block ran when it ended: late by the block, minus at most
        # one interval (when it was due after the block began).
        assert 50 - 10 - 2 <= code_lag_ms(request, big[0]) <= 50 + 30
        assert big[0].at_ms >= 30 + 50 - 1
        assert lag.max_lag_ms >= big[0].lag_ms
        assert (lag.threshold_ms, lag.interval_ms) == (5.0, 10.0)

    def test_monitoring_off_records_no_lag(self, new_loop: LoopFactory) -> None:
        async def handler() -> None:
            time.sleep(0.06)
            await asyncio.sleep(0.01)

        request = run(new_loop, lambda: Request(monitor=False).run(handler))
        assert request.lag is not None
        assert (request.lag.samples, request.lag.beats) == ([], 0)
        assert len(code_calls(request)) == 1  # the detector still has its heartbeat


class TestWatchdogLifetime:
    """One watchdog per loop, started by the first request that detects blocking calls, parked
    between requests, ended with its loop."""

    def test_one_thread_serves_every_request_of_a_loop(self, new_loop: LoopFactory) -> None:
        async def main() -> set[threading.Thread]:
            seen: set[threading.Thread] = set()
            for _ in range(200):
                request = await Request().run(lambda: asyncio.sleep(0))
                seen.update(request.threads_during)
            await asyncio.gather(*(Request().run(lambda: asyncio.sleep(0.01)) for _ in range(50)))
            seen.update(watchdog_threads())
            return seen

        threads = run(new_loop, main)
        assert len(threads) == 1
        assert len(watchdog_threads()) == 1

    def test_requests_back_to_back_do_not_wake_the_thread_each(self, new_loop: LoopFactory) -> None:
        async def main() -> Watchdog:
            for _ in range(200):
                await Request().run(lambda: asyncio.sleep(0))
                # A server's requests are apart: the loop waits for I/O, the GIL is free. (Back
                # to back without any wait, the loop's thread can starve the watchdog of the
                # GIL for the whole run: its next look is then never published.)
                await asyncio.sleep(0.001)
            [watchdog] = running_watchdogs()
            return watchdog

        watchdog = run(new_loop, main)
        # Woken once parked, then left to its timed wait (it looks on its own every half
        # threshold, 20 ms here, and parks 100 ms after the last request): a wake-up per
        # request, a GIL hand-off each, would be 200.
        assert 1 <= watchdog.wakeups <= 5

    def test_after_the_last_request_it_lingers_then_waits_without_a_timeout(
        self, new_loop: LoopFactory
    ) -> None:
        async def main() -> tuple[bool, bool, Watchdog]:
            await Request().run(lambda: asyncio.sleep(0))
            [watchdog] = running_watchdogs()
            await asyncio.sleep(0.03)  # past its first look, within the 100 ms linger
            lingering = watchdog.parked and not watchdog.waits_forever
            await asyncio.sleep(0.3)
            return lingering, watchdog.waits_forever, watchdog

        lingering, waits_forever, watchdog = run(new_loop, main)
        assert (lingering, waits_forever) == (True, True)
        assert watchdog.thread is not None
        assert watchdog.thread.is_alive()

    def test_watch_wakes_the_thread_only_when_its_own_wait_ends_too_late(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            heartbeat = LoopHeartbeat(loop, run_watchdog=False)
            heartbeat.stall_threshold_ns = 100_000_000  # sampled when 50 ms overdue
            watchdog = Watchdog()  # no thread: only the decision to wake is tested
            watchdog.watch(heartbeat)  # parked, waiting without a timeout
            assert watchdog.wakeups == 1
            watchdog.next_look_ns = time.perf_counter_ns() + 10_000_000
            watchdog.watch(heartbeat)  # it looks again within 10 ms: in time
            assert watchdog.wakeups == 1
            watchdog.next_look_ns = time.perf_counter_ns() + 200_000_000
            watchdog.watch(heartbeat)  # in 200 ms: too late for a 50 ms sample
            assert watchdog.wakeups == 2
        finally:
            loop.close()

    def test_a_parked_watchdog_wakes_for_the_next_request_and_names_its_block(
        self, new_loop: LoopFactory
    ) -> None:
        async def main() -> list[Request]:
            first = await Request().run(lambda: asyncio.sleep(0.01))
            await asyncio.sleep(0.2)  # the watchdog is parked, with no timeout

            async def handler() -> None:
                time.sleep(BLOCK_S)  # block: after a parked watchdog

            second = await Request().run(handler)
            return [first, second]

        first, second = run(new_loop, main)
        assert code_calls(first) == []
        call = only_call(second)
        assert (call.relation, call.lineno) == ("own", line_of("block: after a parked watchdog"))

    def test_a_request_after_a_long_idle_loop_reports_no_stall_and_no_lag(
        self, new_loop: LoopFactory
    ) -> None:
        async def main() -> Request:
            await Request().run(lambda: asyncio.sleep(0.01))
            # The loop idles for ten blocking thresholds: nothing watches, nothing beats.
            await asyncio.sleep(THRESHOLD_MS * 10 / 1000)
            return await Request().run(lambda: asyncio.sleep(0.05))

        request = run(new_loop, main)
        assert code_calls(request) == []
        assert request.lag is not None
        # Lag is kept above 5 ms; what the machine's pauses explain is not the test's.
        assert [s for s in request.lag.samples if code_lag_ms(request, s) > 5.0] == []

    def test_a_closed_loops_watchdog_ends_when_another_is_needed(
        self, new_loop: LoopFactory
    ) -> None:
        first = run(new_loop, lambda: Request().run(lambda: asyncio.sleep(0)))
        [old] = first.threads_during  # its loop is closed now, the watchdog still parked
        second = run(new_loop, lambda: Request().run(lambda: asyncio.sleep(0)))
        old.join(2)
        assert not old.is_alive()
        # The second request had a watchdog of its own (the old one, told to end, may still
        # have been on its way out while it ran).
        [new] = [thread for thread in second.threads_during if thread is not old]
        # Parked now; or already ended, when the second closed loop was collected at once.
        assert watchdog_threads() in ([new], [])

    def test_a_collected_loops_watchdog_ends(self, new_loop: LoopFactory) -> None:
        run(new_loop, lambda: Request().run(lambda: asyncio.sleep(0)))
        [thread] = watchdog_threads()
        gc.collect()  # the closed loop, unreferenced, is collected: its finalizer stops it
        thread.join(2)
        assert not thread.is_alive()


class TestNothingLeftBehind:
    def test_detection_off_starts_no_thread(self, new_loop: LoopFactory) -> None:
        request = run(new_loop, lambda: Request(detect=False).run(lambda: asyncio.sleep(0.02)))
        assert request.threads_during == []

    def test_the_watchdog_is_a_named_daemon_parked_after_the_request(
        self, new_loop: LoopFactory
    ) -> None:
        async def main() -> tuple[Request, list[Watchdog], int]:
            request = await Request().run(lambda: asyncio.sleep(0.02))
            await asyncio.sleep(0.2)  # past its linger after the last request: parked for good
            after = running_watchdogs()
            # The app's shutdown ends it (Panel.on_shutdown, on the loop's thread).
            return request, after, stop_watchdogs(asyncio.get_running_loop())

        request, after, stopped = run(new_loop, main)
        [thread] = request.threads_during
        assert thread.daemon
        [watchdog] = after
        assert (watchdog.thread, watchdog.parked) == (thread, True)  # outlived its request
        assert stopped == 1
        assert not thread.is_alive()

    def test_the_loop_is_left_as_it_was(self, new_loop: LoopFactory) -> None:
        loop = new_loop()
        try:
            before = (
                loop.get_debug(),
                loop.get_exception_handler(),
                loop.get_task_factory(),
                getattr(loop, "slow_callback_duration", None),
            )

            seen: list[LoopHeartbeat] = []

            async def main() -> int:
                request = Request()

                async def handler() -> None:
                    assert loop.get_debug() is False
                    heartbeat = heartbeats.get(asyncio.get_running_loop())
                    assert heartbeat is not None
                    seen.append(heartbeat)
                    await asyncio.sleep(0.03)
                    time.sleep(0.06)

                await request.run(handler)
                assert len(code_calls(request)) == 1
                beats = seen[0].beats
                await asyncio.sleep(0.03)  # a heartbeat would have run by now
                return seen[0].beats - beats

            assert loop.run_until_complete(main()) == 0  # its timer is gone
            after = (
                loop.get_debug(),
                loop.get_exception_handler(),
                loop.get_task_factory(),
                getattr(loop, "slow_callback_duration", None),
            )
            assert after == before
            assert heartbeats.get(loop) is None
            assert not seen[0].installed
        finally:
            loop.close()

    def test_beats_stop_with_the_last_request(self, new_loop: LoopFactory) -> None:
        seen: list[LoopHeartbeat] = []

        async def main() -> int:
            async def handler() -> None:
                heartbeat = heartbeats.get(asyncio.get_running_loop())
                assert heartbeat is not None
                seen.append(heartbeat)
                await asyncio.sleep(0.03)

            await Request().run(handler)
            beats = seen[0].beats
            await asyncio.sleep(0.05)
            return seen[0].beats - beats

        assert run(new_loop, main) == 0
        assert not seen[0].installed
