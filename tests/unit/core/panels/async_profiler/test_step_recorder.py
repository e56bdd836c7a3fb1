"""StepRecorder and AwaitChain driven by hand, the way the step monitor drives them (3.11+).

The monitor's events are replayed here without ``sys.monitoring``: the test resumes a coroutine
itself (``coro.send``, as a Task does), gets what it yielded, and tells the task's ``TaskSteps``
as the ``PY_YIELD`` / ``PY_RETURN`` callbacks would. So the recorder's logic (what a suspension
records, the await site, what was awaited, readiness, the cap, the end of a task) is checked on
every Python that has ``cr_suspended``, not only where real events exist (``test_steps.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pytest

from debug_toolbar.core.panels.async_profiler.step_recorder import StepRecorder, TaskSteps
from debug_toolbar.core.panels.async_profiler.steps import StepTable

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="cr_suspended is 3.11+")

SOURCE = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> int:
    for number, text in enumerate(SOURCE, 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise LookupError(marker)


class FakeMonitor:
    """What ``StepRecorder`` needs of the step monitor: the frames it watches."""

    def __init__(self) -> None:
        self.frames: dict[FrameType, Any] = {}
        self.codes: list[CodeType] = []

    def watch(self, frame: FrameType, code: CodeType, watcher: Any) -> None:
        self.codes.append(code)
        self.frames[frame] = watcher

    def unwatch(self, frame: FrameType) -> None:
        self.frames.pop(frame, None)


class Driver:
    """A recorder on a fake monitor, and the task coroutines it times, resumed by hand."""

    def __init__(self, **options: Any) -> None:
        self.recorder = StepRecorder(**options)
        self.recorder.unavailable = None
        self.monitor = FakeMonitor()
        self.recorder._monitor = self.monitor  # type: ignore[assignment]
        self.recorder.start_ns = time.perf_counter_ns()
        self.tasks: dict[Any, int] = {}
        self.recorder.task_ids = self.tasks

    def watch(self, task_id: int, coro: Coroutine[Any, Any, Any]) -> TaskSteps:
        self.recorder.watch_task(task_id, coro)
        return self.recorder.watched[task_id]

    def step(self, steps: TaskSteps, value: Any = None) -> Any:
        """Run one step of the task: resume its coroutine, tell its steps what happened."""
        steps.begin_ns = time.perf_counter_ns()
        try:
            yielded = steps.coro.send(value)
        except StopIteration:
            self.monitor.frames.pop(steps.frame, None)
            steps.finish(time.perf_counter_ns())
            return None
        steps.suspend(time.perf_counter_ns(), yielded)
        return yielded

    def table(self) -> StepTable:
        self.recorder.end_ns = time.perf_counter_ns()
        table = self.recorder.table(0)
        assert table is not None
        return table


async def helper(event: asyncio.Event) -> None:
    await event.wait()  # helper waits


async def handler(event: asyncio.Event, future: asyncio.Future[int]) -> int:
    await asyncio.sleep(0)  # sleep zero
    await asyncio.sleep(0)  # sleep zero again
    await helper(event)  # call helper
    return await future  # await a future


class TestWhatASuspensionRecords:
    @pytest.mark.asyncio
    async def test_sites_awaited_and_the_end(self) -> None:
        driver = Driver()
        loop = asyncio.get_running_loop()
        event, future = asyncio.Event(), loop.create_future()
        steps = driver.watch(1, handler(event, future))
        assert driver.monitor.codes == [handler.__code__]
        assert driver.step(steps) is None  # asyncio.sleep(0) yields None
        assert driver.step(steps) is None
        waiter = driver.step(steps)  # in the helper, the Event's future
        assert isinstance(waiter, asyncio.Future)
        event.set()
        assert driver.step(steps) is future
        future.set_result(7)
        assert driver.step(steps) is None  # returned
        table = driver.table()
        got = [
            (step.site.lineno if step.site else None, step.awaited.label if step.awaited else None)
            for step in table.steps()
        ]
        assert got == [
            (line_of("sleep zero"), "sleep 0.00 ms"),
            (line_of("sleep zero again"), "sleep 0.00 ms"),
            (line_of("helper waits"), "asyncio Event.wait"),
            (line_of("await a future"), "Future"),
            (None, None),
        ]
        assert [step.ended for step in table.steps()] == ["await"] * 4 + ["return"]
        assert 1 in table.task_ends_ns
        assert 1 not in driver.recorder.watched
        # The site of the Event's wait keeps its callers: the helper, then the handler.
        sites = {row.site.lineno: row for row in driver_sites(table) if row.site}
        stack = sites[line_of("helper waits")].stack
        assert [frame.lineno for frame in stack] == [
            line_of("helper waits"),
            line_of("call helper"),
        ]

    @pytest.mark.asyncio
    async def test_tasks_gathers_threads_and_sleeps(self) -> None:
        driver = Driver()
        loop = asyncio.get_running_loop()
        child = loop.create_task(asyncio.sleep(0.01))
        other = loop.create_task(asyncio.sleep(0.05))
        driver.tasks.update({child: 4, other: 5})  # the request's tasks 5 and 6
        gathered = asyncio.gather(other)
        gate = threading.Event()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        thread = loop.run_in_executor(pool, gate.wait, 5)

        async def awaits() -> None:
            await asyncio.sleep(0.5)  # sleeps half a second
            await child  # awaits the child
            await gathered  # awaits the gather
            await thread  # awaits the thread

        steps = driver.watch(2, awaits())
        timer = driver.step(steps)
        timer.set_result(None)  # the timer's job, done at once
        assert driver.step(steps) is child
        await asyncio.sleep(0.03)  # the child ends, not yet the gathered task
        assert driver.step(steps) is gathered
        await asyncio.sleep(0.1)  # the gathered task ends
        assert driver.step(steps) is thread
        gate.set()
        pool.shutdown(wait=True)  # the call returned: its done callback ran in the worker
        await asyncio.sleep(0.05)  # the loop copies the result into the asyncio Future
        assert driver.step(steps) is None  # returned
        table = driver.table()
        labels = [step.awaited.label for step in table.steps() if step.awaited]
        assert labels == ["sleep 500.0 ms", "task 5", "gather of 1", "thread pool"]
        sleep, _task, gather, thread_step, _end = table.steps()
        assert sleep.ready_ms == pytest.approx(sleep.end_ms + 500.0)
        assert gather.awaited is not None
        assert gather.awaited.task_ids == (6,)
        assert thread_step.ready_ms is not None  # when the worker finished the call
        assert thread_step.ready_ms <= thread_step.resumed_ms  # type: ignore[operator]

    @pytest.mark.asyncio
    async def test_a_library_await_is_named_after_what_the_app_called(self) -> None:
        driver = Driver()
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def reads() -> int:
            return await asyncio.wait_for(queue.get(), timeout=5)  # reads the queue

        steps = driver.watch(3, reads())
        driver.step(steps)
        steps.coro.close()
        [step] = driver.table().steps()
        assert step.site is not None
        assert step.site.lineno == line_of("reads the queue")
        assert step.awaited is not None
        assert (step.awaited.kind, step.awaited.library) == ("library", "asyncio")
        assert step.awaited.function == "wait_for"


class TestTheRecorder:
    @pytest.mark.asyncio
    async def test_the_cap_counts_and_the_request_task_marks_where_it_lost_a_step(self) -> None:
        driver = Driver(max_steps=2)

        async def many() -> None:
            for _ in range(4):
                await asyncio.sleep(0)  # many sleeps

        steps = driver.watch(0, many())
        for _ in range(5):
            driver.step(steps)
        table = driver.table()
        assert (len(table), table.dropped) == (2, 3)
        assert table.dropped_from_ns is not None
        assert driver.recorder.root_rows == [0, 1]

    @pytest.mark.asyncio
    async def test_a_task_that_raised_ends_at_its_done_callback(self) -> None:
        driver = Driver()

        async def fails() -> None:
            await asyncio.sleep(0)  # before failing
            raise LookupError("no row")

        steps = driver.watch(6, fails())
        driver.step(steps)
        steps.begin_ns = time.perf_counter_ns()
        with pytest.raises(LookupError):
            steps.coro.send(None)
        driver.recorder.task_done(6)  # what the task recorder's done callback says
        driver.recorder.task_done(6)  # twice is harmless
        endings = [step.ended for step in driver.table().steps()]
        assert endings == ["await", "raise"]

    @pytest.mark.asyncio
    async def test_a_slow_step_remembers_where_it_ran_from(self) -> None:
        driver = Driver(slow_threshold_ms=5.0)

        async def stalls() -> None:
            await asyncio.sleep(0)  # before the stall
            time.sleep(0.01)  # noqa: ASYNC251
            await asyncio.sleep(0)  # after the stall

        steps = driver.watch(7, stalls())
        driver.step(steps)
        driver.step(steps)
        steps.coro.close()
        [(index, ran_from)] = driver.recorder.slow
        assert index == 1
        assert ran_from[0] is stalls.__code__

    def test_stop_closes_what_runs_and_forgets_every_frame(self) -> None:
        driver = Driver()

        async def runs() -> None:
            await asyncio.sleep(0)

        coro = runs()
        steps = driver.watch(0, coro)
        other = driver.watch(8, runs())
        driver.recorder.forget_task(8)  # its creation failed
        assert other.frame not in driver.monitor.frames
        steps.begin_ns = time.perf_counter_ns()  # running when the request stops
        driver.recorder._monitor = None  # stop() releases the real monitor: not here
        driver.recorder.end_ns = time.perf_counter_ns()
        for watched in driver.recorder.watched.values():
            watched.close(driver.recorder.end_ns, "running")
        coro.close()
        other.coro.close()
        [step] = driver.table().steps()
        assert step.ended == "running"


def driver_sites(table: StepTable) -> tuple[Any, ...]:
    from debug_toolbar.core.panels.async_profiler.step_report import await_sites

    return await_sites(table)
