"""The Async panel's Server-Timing header: its metrics, the live breakdown it reads, the panel.

The live breakdown (``step_report.breakdown_so_far``) is checked on a recorder whose raw rows
are written by hand (every Python version), against the same story the frozen breakdown's tests
use; the profiler's ``progress`` on a real loop; the panel's header never breaks a response.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler import panel as panel_module
from debug_toolbar.core.panels.async_profiler.profiler import (
    AsyncRequestProfiler,
    RequestProgress,
)
from debug_toolbar.core.panels.async_profiler.server_timing import server_timing_value
from debug_toolbar.core.panels.async_profiler.step_recorder import StepRecorder, TaskSteps
from debug_toolbar.core.panels.async_profiler.step_report import (
    TimeBreakdown,
    breakdown_so_far,
)
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.watchdog import stop_watchdogs
from debug_toolbar.core.toolbar import DebugToolbar

MS = 1_000_000


def breakdown(**parts: float) -> TimeBreakdown:
    values = {"running_ms": 4.0, "waiting_ms": 20.0, "queued_ms": 2.0, "blocked_ms": 5.0}
    values.update(parts)
    return TimeBreakdown(start_ms=1.0, end_ms=32.0, **values)


class TestMetrics:
    def test_the_breakdown_then_the_tasks(self) -> None:
        progress = RequestProgress(tasks=3, breakdown=breakdown(), blocked_known=True)
        assert server_timing_value(progress) == (
            'run;dur=4.000;desc="Running on the loop", '
            'wait;dur=20.000;desc="Awaiting", '
            'queued;dur=2.000;desc="Ready but queued behind other work", '
            'blocked;dur=5.000;desc="Other requests\' stalls", '
            'tasks;desc="3 tasks spawned"'
        )

    def test_without_steps_only_the_tasks(self) -> None:
        """Python before 3.12, or step timing off: nothing is said that is not known."""
        value = server_timing_value(RequestProgress(1, None, blocked_known=True))
        assert value == 'tasks;desc="1 task spawned"'

    def test_without_blocking_detection_no_blocked(self) -> None:
        """Other requests' stalls are not watched: a 0 there would be a claim."""
        value = server_timing_value(RequestProgress(0, breakdown(), blocked_known=False))
        assert [part.split(";")[0] for part in value.split(", ")] == [
            "run",
            "wait",
            "queued",
            "tasks",
        ]

    def test_past_the_step_cap_the_rest_is_unrecorded(self) -> None:
        value = server_timing_value(
            RequestProgress(0, breakdown(unrecorded_ms=7.5), blocked_known=True)
        )
        assert value.split(", ")[-2:] == [
            'unrecorded;dur=7.500;desc="Past the step cap (async_max_steps)"',
            'tasks;desc="0 tasks spawned"',
        ]

    def test_a_negative_part_is_refused_not_sent(self) -> None:
        """A bug giving a negative duration raises (the panel then sends no header)."""
        with pytest.raises(ValueError, match=r"run: duration -1\.0 is not a finite number"):
            server_timing_value(RequestProgress(0, breakdown(running_ms=-1.0), True))

    def test_a_large_count_has_no_comma(self) -> None:
        """Readers that split the header at commas do not get a broken metric."""
        value = server_timing_value(RequestProgress(12_345, None, blocked_known=True))
        assert value == 'tasks;desc="12345 tasks spawned"'


async def handler() -> None:
    await asyncio.sleep(0)


@pytest.fixture
def recorder() -> Iterator[StepRecorder]:
    """A recorder made active by hand (no monitor installed): rows are written by the test."""
    steps = StepRecorder()
    steps.unavailable = None
    steps._monitor = object()  # type: ignore[assignment]
    steps.start_ns = 0
    coros = []

    def root(begin_ns: int) -> None:
        coro = handler()
        coros.append(coro)
        task = TaskSteps(steps, 0, coro, coro.cr_frame)
        task.begin_ns = begin_ns
        steps.watched[0] = task

    steps.root = root  # type: ignore[attr-defined]
    yield steps
    steps._monitor = None
    for coro in coros:
        coro.close()


def story(steps: StepRecorder) -> None:
    """As the frozen breakdown's story (test_step_report): the request's task runs 0-2, sleeps
    8 ms (ready at 10), resumes at 12, runs to 13, awaits httpx until 30 and runs since.
    Task 1 runs 2-3, sleeps, returns at 21. Raw rows, in ns, as the recorder writes them."""
    code = handler.__code__
    steps.rows = [
        (0, 0, 2 * MS, (code, 0, True), ("sleep", 8 * MS, None)),
        (1, 2 * MS, 3 * MS, (code, 0, True), ("sleep", 8 * MS, None)),
        (0, 12 * MS, 13 * MS, (code, 0, True), ("library", ("httpx", "AsyncClient.get"), None)),
        (1, 20 * MS, 21 * MS, None, None),
    ]
    steps.endings = {3: "return"}
    steps.root_rows = [0, 2]
    steps.task_ends = {1: 21 * MS}


class TestBreakdownSoFar:
    def test_running_now_the_parts_add_up_to_now(self, recorder: StepRecorder) -> None:
        story(recorder)
        recorder.root(30 * MS)  # type: ignore[attr-defined]
        so_far = breakdown_so_far(
            recorder, origin_ns=0, now_ns=31 * MS, suffered=[(15 * MS, 20 * MS)]
        )
        assert so_far is not None
        # The frozen breakdown of the same story at 31 ms gives these (test_step_report).
        assert (so_far.start_ms, so_far.end_ms) == (0.0, 31.0)
        assert so_far.running_ms == 4.0  # 0-2, 12-13, 30-31 (the step going on)
        assert so_far.queued_ms == 2.0  # ready at 10, resumed at 12
        assert so_far.blocked_ms == 5.0  # another request held the loop 15-20
        assert so_far.waiting_ms == 8.0 + 12.0
        assert so_far.unrecorded_ms == 0.0
        assert so_far.steps == 3
        assert so_far.by_site == ()  # not for the header: it would resolve every site

    def test_the_origin_shifts_the_times_not_the_parts(self, recorder: StepRecorder) -> None:
        story(recorder)
        recorder.root(30 * MS)  # type: ignore[attr-defined]
        so_far = breakdown_so_far(recorder, origin_ns=-5 * MS, now_ns=31 * MS)
        assert so_far is not None
        assert (so_far.start_ms, so_far.end_ms, so_far.wall_ms) == (5.0, 36.0, 31.0)
        assert so_far.waiting_ms == 8.0 + 17.0  # no stall: the whole httpx wait

    def test_suspended_now_the_last_wait_runs_to_now(self, recorder: StepRecorder) -> None:
        """The response started from another task while the request's own one waits."""
        story(recorder)
        recorder.root(0)  # type: ignore[attr-defined]
        so_far = breakdown_so_far(recorder, origin_ns=0, now_ns=25 * MS)
        assert so_far is not None
        assert (so_far.running_ms, so_far.queued_ms, so_far.waiting_ms) == (3.0, 2.0, 20.0)
        assert so_far.steps == 2

    def test_past_the_cap_the_rest_is_unrecorded(self, recorder: StepRecorder) -> None:
        story(recorder)
        recorder.root_rows = [0]
        recorder.dropped, recorder.dropped_from_ns = 2, 12 * MS
        recorder.root(30 * MS)  # type: ignore[attr-defined]
        so_far = breakdown_so_far(recorder, origin_ns=0, now_ns=31 * MS)
        assert so_far is not None
        assert (so_far.running_ms, so_far.waiting_ms, so_far.queued_ms) == (2.0, 8.0, 2.0)
        assert so_far.unrecorded_ms == 19.0

    def test_a_thread_call_is_ready_when_its_future_completed(self, recorder: StepRecorder) -> None:
        recorder.rows = [(0, 0, 1 * MS, (handler.__code__, 0, True), ("thread", None, None))]
        recorder.root_rows = [0]
        recorder.ready = {0: 9 * MS}
        recorder.root(10 * MS)  # type: ignore[attr-defined]
        so_far = breakdown_so_far(recorder, origin_ns=0, now_ns=10 * MS)
        assert so_far is not None
        assert (so_far.running_ms, so_far.waiting_ms, so_far.queued_ms) == (1.0, 8.0, 1.0)

    def test_nothing_without_steps(self) -> None:
        assert breakdown_so_far(StepRecorder(), origin_ns=0, now_ns=1) is None


@pytest.fixture(autouse=True)
def _end_parked_watchdogs() -> Iterator[None]:
    yield
    stop_watchdogs()


def profiler_for(**options: Any) -> AsyncRequestProfiler:
    context = RequestContext(method="GET", path="/", client_host="127.0.0.1")
    backend = TaskFactoryBackend(origin_ns=context.start_ns)
    return AsyncRequestProfiler(context, DebugToolbarConfig(**options), backend)


async def noop() -> None:
    return None


class TestProgress:
    @pytest.mark.asyncio
    async def test_tasks_so_far_and_the_breakdown_up_to_now(self) -> None:
        profiler = profiler_for()

        async def request() -> tuple[RequestProgress, int, int]:
            profiler.start()
            try:
                await asyncio.gather(asyncio.create_task(noop()), asyncio.create_task(noop()))
                await asyncio.sleep(0.01)
                at = time.perf_counter_ns()
                progress = profiler.progress(at)
                await asyncio.create_task(noop())  # after: not counted above
                return progress, at, profiler.progress().tasks
            finally:
                profiler.stop()

        progress, at, later = await asyncio.create_task(request())
        assert (progress.tasks, later) == (2, 3)
        assert progress.blocked_known is True
        if sys.version_info < (3, 12):
            assert progress.breakdown is None
            return
        so_far = progress.breakdown
        assert so_far is not None
        start = profiler.origin_ns
        assert so_far.end_ms == (at - start) / 1e6
        parts = so_far.running_ms + so_far.waiting_ms + so_far.queued_ms + so_far.blocked_ms
        assert parts == pytest.approx(so_far.wall_ms, abs=1e-6)
        assert so_far.waiting_ms >= 10.0  # the sleep: its timer was due 10 ms after

    @pytest.mark.asyncio
    async def test_step_timing_off_no_breakdown(self) -> None:
        profiler = profiler_for(async_step_timing=False, async_enable_blocking_detection=False)

        async def request() -> RequestProgress:
            profiler.start()
            try:
                await asyncio.create_task(noop())
                return profiler.progress()
            finally:
                profiler.stop()

        progress = await asyncio.create_task(request())
        assert progress == RequestProgress(tasks=1, breakdown=None, blocked_known=False)


async def respond(toolbar: DebugToolbar) -> list[tuple[str, str]]:
    """The panels' headers asked as the responder asks them, mid-request."""
    await toolbar.process_request()
    try:
        await asyncio.create_task(noop())
        toolbar.context.response_start_ns = time.perf_counter_ns()
        return toolbar.response_headers()
    finally:
        await toolbar.process_response()


def toolbar_for(**options: Any) -> DebugToolbar:
    config = DebugToolbarConfig(panels=[AsyncProfilerPanel], **options)
    return DebugToolbar(config, RequestContext(method="GET", path="/", client_host="127.0.0.1"))


class TestThePanelsHeader:
    @pytest.mark.asyncio
    async def test_added_while_profiling(self) -> None:
        toolbar = toolbar_for()
        [(name, value)] = await asyncio.create_task(respond(toolbar))
        assert name == "Server-Timing"
        assert value.endswith('tasks;desc="1 task spawned"')
        assert value.startswith("run;dur=") is (sys.version_info >= (3, 12))

    @pytest.mark.asyncio
    async def test_the_option_off(self) -> None:
        toolbar = toolbar_for(async_server_timing=False)
        assert await asyncio.create_task(respond(toolbar)) == []

    def test_nothing_before_profiling_started(self) -> None:
        toolbar = toolbar_for()
        assert toolbar.response_headers() == []

    @pytest.mark.asyncio
    async def test_a_failure_drops_the_header_keeps_the_profile_and_is_logged_once(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(self: AsyncRequestProfiler, now_ns: int | None = None) -> RequestProgress:
            raise RuntimeError("no progress today")

        monkeypatch.setattr(AsyncRequestProfiler, "progress", broken)
        monkeypatch.setattr(panel_module, "_failures_logged", set())
        caplog.set_level(logging.DEBUG, logger="debug_toolbar")
        first, second = toolbar_for(), toolbar_for()
        assert await asyncio.create_task(respond(first)) == []
        assert await asyncio.create_task(respond(second)) == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "Server-Timing header failed" in warnings[0].getMessage()
        assert warnings[0].exc_info is not None
        # The panel did not fail: its profile is recorded as on any request.
        await first.generate_stats()
        assert first.errors == {}
        panel = first.build_record().panel(AsyncProfilerPanel.panel_id)
        assert panel is not None
        assert panel.head["summary"]["total_tasks"] == 1


class TestOption:
    def test_on_by_default(self) -> None:
        assert DebugToolbarConfig().async_server_timing is True

    @pytest.mark.parametrize("value", [1, "yes", None])
    def test_a_boolean(self, value: Any) -> None:
        with pytest.raises(ValueError, match="async_server_timing must be True or False"):
            DebugToolbarConfig(async_server_timing=value)
