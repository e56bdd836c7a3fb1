"""TaskFactoryBackend: what one request's tasks look like in what it collected."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest

from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.calibration import calibration
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile, Overhead
from debug_toolbar.core.panels.async_profiler.task_hooks import task_hooks
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

THIS_FILE = __file__


async def noop() -> None:
    return None


async def sleeper() -> None:
    await asyncio.sleep(3600)


async def fails() -> None:
    await asyncio.sleep(0)
    raise LookupError("no such row: 42")


def task_dicts(backend: TaskFactoryBackend) -> list[dict[str, Any]]:
    """The tasks as the history stores them (``TaskTable.to_dicts``)."""
    return backend.collected().tasks.to_dicts()


def by_name(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {task["name"]: task for task in tasks}


class TestContract:
    def test_is_a_backend_named_taskfactory_and_always_available(self) -> None:
        assert issubclass(TaskFactoryBackend, AsyncProfilerBackend)
        assert TaskFactoryBackend.name == "taskfactory"
        assert TaskFactoryBackend.is_available() is True

    def test_options_reach_the_recorder(self) -> None:
        backend = TaskFactoryBackend(
            max_tasks=7, capture_stacks=False, max_stack_depth=3, origin_ns=123
        )
        recorder = backend.tracking.recorder
        assert (recorder.max_tasks, recorder.capture_stacks, recorder.max_stack_depth) == (
            7,
            False,
            3,
        )
        assert backend.origin_ns == 123

    def test_what_a_backend_that_never_started_collected(self) -> None:
        backend = TaskFactoryBackend(origin_ns=0)
        backend.stop()
        collected = backend.collected()
        assert collected.tasks.to_dicts() == []
        assert collected.tasks.dropped == 0
        assert collected.tasks.state_counts() == {
            "completed": 0,
            "cancelled": 0,
            "failed": 0,
            "pending": 0,
        }
        # Nothing recorded: an estimate of zero tasks (the per-task cost was never read).
        assert collected.overhead == Overhead(
            tracking_ms=0.0, setup_ms=0.0, tracking_estimated=True, per_task_ns=0.0
        )
        assert collected.functions is None


class TestTaskStates:
    @pytest.mark.asyncio
    async def test_completed_failed_cancelled_and_pending(self, run_in_request: Any) -> None:
        origin = time.perf_counter_ns()
        backend = TaskFactoryBackend(origin_ns=origin)
        lines: dict[str, int] = {}

        async def body() -> None:
            await asyncio.create_task(noop(), name="done")
            failing = asyncio.create_task(fails(), name="failing")
            with pytest.raises(LookupError):
                await failing
            cancelled = asyncio.create_task(sleeper(), name="cancelled")
            await asyncio.sleep(0)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            lines["escaped"] = sys._getframe().f_lineno + 1
            asyncio.create_task(sleeper(), name="escaped")  # noqa: RUF006

        await run_in_request(backend, body)
        stopped_ms = (time.perf_counter_ns() - origin) / 1e6
        table = backend.collected().tasks
        task_list = table.to_dicts()
        tasks = by_name(task_list)
        assert [task["task_id"] for task in task_list] == [1, 2, 3, 4]
        assert {name: task["state"] for name, task in tasks.items()} == {
            "done": "completed",
            "failing": "failed",
            "cancelled": "cancelled",
            "escaped": "pending",
        }
        # The counts say the same states without building the task list.
        assert table.state_counts() == {
            "completed": 1,
            "cancelled": 1,
            "failed": 1,
            "pending": 1,
        }
        assert table.dropped == 0
        assert tasks["failing"]["exception"] == {
            "type": "LookupError",
            "message": "no such row: 42",
        }
        assert tasks["done"]["exception"] is None
        assert tasks["cancelled"]["exception"] is None
        assert tasks["done"]["coro_name"] == "noop"
        assert tasks["escaped"]["coro_name"] == "sleeper"
        # Times are ms from the request's start, in creation order, within the request.
        starts = [task["start_ms"] for task in task_list]
        assert starts == sorted(starts)
        assert 0 < starts[0] < stopped_ms
        for name in ("done", "failing", "cancelled"):
            task = tasks[name]
            assert task["start_ms"] <= task["end_ms"] <= stopped_ms
            assert task["duration_ms"] == pytest.approx(task["end_ms"] - task["start_ms"])
        # The escaped task: still running, reported with where it was created.
        escaped = tasks["escaped"]
        assert (escaped["end_ms"], escaped["duration_ms"]) == (None, None)
        assert escaped["stack"][0]["filename"] == THIS_FILE
        assert escaped["stack"][0]["lineno"] == lines["escaped"]
        assert escaped["stack"][0]["code"] == (
            'asyncio.create_task(sleeper(), name="escaped")  # noqa: RUF006'
        )
        for running in asyncio.all_tasks():
            if running.get_name() == "escaped":
                running.cancel()

    @pytest.mark.asyncio
    async def test_names_given_after_creation_are_kept(self, run_in_request: Any) -> None:
        backend = TaskFactoryBackend(origin_ns=0)

        async def body() -> None:
            task = asyncio.create_task(noop())
            task.set_name("renamed")
            await task

        await run_in_request(backend, body)
        assert [task["name"] for task in task_dicts(backend)] == ["renamed"]

    @pytest.mark.asyncio
    async def test_a_task_done_before_its_callback_ran_is_not_pending(
        self, run_in_request: Any
    ) -> None:
        backend = TaskFactoryBackend(origin_ns=0)
        loop = asyncio.get_running_loop()
        seen: list[bool] = []

        async def finishes_right_after_waking_the_request(waker: asyncio.Future[None]) -> None:
            waker.set_result(None)  # the request's wake-up is queued before our done callback

        async def body() -> None:
            waker = loop.create_future()
            task = asyncio.create_task(finishes_right_after_waking_the_request(waker), name="quick")
            await waker
            seen.append(task.done())  # finished; its done callbacks have not run yet

        await run_in_request(backend, body)  # stops right there
        (task,) = task_dicts(backend)
        assert seen == [True]
        assert task["state"] == "completed"
        assert task["name"] == "quick"
        assert task["end_ms"] is not None
        await asyncio.sleep(0)  # our callback runs now, after stop: it must do nothing
        assert task_dicts(backend)[0]["end_ms"] == task["end_ms"]

    @pytest.mark.asyncio
    async def test_an_exception_that_cannot_be_printed(self, run_in_request: Any) -> None:
        class UnprintableError(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no")

        async def raises() -> None:
            raise UnprintableError

        backend = TaskFactoryBackend(origin_ns=0)

        async def body() -> None:
            with pytest.raises(UnprintableError):
                await asyncio.create_task(raises())

        await run_in_request(backend, body)
        (task,) = task_dicts(backend)
        assert task["state"] == "failed"
        assert task["exception"]["message"] == "<unprintable>"
        assert task["exception"]["type"].endswith("UnprintableError")


class TestRelations:
    @pytest.mark.asyncio
    async def test_children_grandchildren_gather_and_ensure_future(
        self, run_in_request: Any
    ) -> None:
        backend = TaskFactoryBackend(origin_ns=0)

        async def leaf() -> None:
            await asyncio.sleep(0)

        async def middle() -> None:
            await asyncio.gather(leaf(), leaf())

        async def body() -> None:
            await asyncio.create_task(middle(), name="middle")
            await asyncio.ensure_future(leaf())

        await run_in_request(backend, body)
        rows = [
            (task["task_id"], task["parent_id"], task["coro_name"].rsplit(".", 1)[-1])
            for task in task_dicts(backend)
        ]
        assert rows == [(1, None, "middle"), (2, 1, "leaf"), (3, 1, "leaf"), (4, None, "leaf")]

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup is 3.11+")
    @pytest.mark.asyncio
    async def test_task_group(self, run_in_request: Any) -> None:
        backend = TaskFactoryBackend(origin_ns=0)

        async def body() -> None:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
                for index in range(3):
                    group.create_task(noop(), name=f"member-{index}")

        await run_in_request(backend, body)
        tasks = task_dicts(backend)
        assert [task["name"] for task in tasks] == ["member-0", "member-1", "member-2"]
        assert {task["state"] for task in tasks} == {"completed"}
        assert {task["stack"][0]["code"] for task in tasks} == {
            'group.create_task(noop(), name=f"member-{index}")'
        }


class TestLimits:
    @pytest.mark.asyncio
    async def test_cap_counts_what_it_drops_and_the_tasks_still_run(
        self, run_in_request: Any
    ) -> None:
        backend = TaskFactoryBackend(max_tasks=3, origin_ns=0)
        ran: list[int] = []

        async def work(index: int) -> int:
            ran.append(index)
            return index

        async def body() -> list[int]:
            return list(await asyncio.gather(*(work(index) for index in range(5))))

        assert await run_in_request(backend, body) == [0, 1, 2, 3, 4]
        table = backend.collected().tasks
        assert sorted(ran) == [0, 1, 2, 3, 4]
        assert len(table.to_dicts()) == len(table) == 3
        assert table.dropped == 2
        assert (table.state_counts()["completed"], table.dropped) == (3, 2)


class TestOverhead:
    @pytest.mark.asyncio
    async def test_overhead_is_measured_and_adds_up(self, run_in_request: Any) -> None:
        backend = TaskFactoryBackend(origin_ns=0)

        async def body() -> None:
            await asyncio.gather(*(noop() for _ in range(50)))

        started = time.perf_counter_ns()
        await run_in_request(backend, body)
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        collected = backend.collected()
        paid = collected.overhead
        assert paid.tracking_ms > 0
        assert paid.setup_ms > 0
        # The tasks' share: 50 tasks at the per-task cost calibrated in this process.
        assert (paid.tracking_estimated, paid.per_task_ns) == (True, calibration.per_task_ns())
        assert paid.tracking_ms == pytest.approx(50 * calibration.per_task_ns() / 1e6, abs=1e-6)
        assert (paid.report_ms, paid.profiler_ms) == (0.0, None)  # nothing built yet
        # What was measured while the request ran cannot exceed the request itself (the
        # tasks' share is an estimate: it may, in a cold process).
        assert paid.setup_ms < elapsed_ms
        # The summary is what the request paid; building the task list (report) comes later.
        profile = AsyncProfile(backend=backend.name, tasks=collected.tasks, overhead=paid)
        assert profile.summary.profiling_overhead_ms == pytest.approx(
            paid.tracking_ms + paid.setup_ms
        )
        detail = profile.detail_dict()
        assert len(detail["tasks"]) == 50
        assert detail["overhead"]["report_ms"] > 0
        assert (detail["overhead"]["tracking_ms"], detail["overhead"]["setup_ms"]) == (
            paid.tracking_ms,
            paid.setup_ms,
        )


class TestLifecycle:
    @pytest.mark.asyncio
    async def test_restores_the_loop_and_stop_is_idempotent(self, run_in_request: Any) -> None:
        loop = asyncio.get_running_loop()
        backend = TaskFactoryBackend(origin_ns=0)
        during: list[Any] = []

        async def body() -> None:
            during.append(loop.get_task_factory())

        await run_in_request(backend, body)
        backend.stop()
        backend.stop()
        assert during[0] is not None
        assert loop.get_task_factory() is None
        assert task_hooks.get(loop) is None

    @pytest.mark.asyncio
    async def test_stop_after_a_failed_start(self) -> None:
        backend = TaskFactoryBackend(origin_ns=0)
        with pytest.raises(AttributeError):
            backend.start(None)  # type: ignore[arg-type]
        backend.stop()
        assert backend.collected().tasks.to_dicts() == []
        assert task_hooks.users(None) == 0  # type: ignore[arg-type]  # nothing under the bad loop
        assert task_hooks.get(asyncio.get_running_loop()) is None
        assert asyncio.get_running_loop().get_task_factory() is None
