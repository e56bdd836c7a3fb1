"""Step timing on real loops (asyncio and uvloop): what a request's steps say, and what it costs
the app nothing to have (its own coroutines, no monitoring left behind).

Requests run as the panel runs them: ``AsyncRequestProfiler`` started in the request's own
task, stopped after. Await sites are found by the marker comments at the end of their lines.
Durations are only checked from below (a 30 ms sleep waits at least about that long): timing
targets live in the integration tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.profiler import STEP_TIMING_OFF
from debug_toolbar.core.panels.async_profiler.step_monitor import (
    STEPS_UNAVAILABLE,
    TOOL_IDS,
    TOOL_NAME,
    step_monitors,
)
from debug_toolbar.core.panels.async_profiler.step_recorder import TaskSteps
from debug_toolbar.core.panels.async_profiler.steps import Step
from support import profiled

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

SOURCE = Path(__file__).read_text().splitlines()
needs_steps = pytest.mark.skipif(STEPS_UNAVAILABLE is not None, reason="needs Python 3.12+")
monitoring: Any = getattr(sys, "monitoring", None)


def line_of(marker: str) -> int:
    """The line of this file that ends with ``# marker``."""
    for number, text in enumerate(SOURCE, 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise LookupError(marker)


@pytest.fixture(params=["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)])
def new_loop(request: pytest.FixtureRequest) -> LoopFactory:
    return uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop


def run(new_loop: LoopFactory, main: Callable[[], Awaitable[T]]) -> T:
    loop = new_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def own_steps(profile: AsyncProfile, task_id: int) -> list[Step]:
    assert profile.steps is not None
    return [step for step in profile.steps.steps() if step.task_id == task_id]


def lines(steps: list[Step]) -> list[int | None]:
    return [None if step.site is None else step.site.lineno for step in steps]


# ------------------------------------------------------------------------ the app's code


async def child_sleeps() -> str:
    await asyncio.sleep(0.02)  # child sleep
    return "slept"


async def everything(event: asyncio.Event) -> None:
    await asyncio.sleep(0.03)  # first sleep
    await asyncio.create_task(child_sleeps(), name="child")  # await child
    await asyncio.to_thread(time.sleep, 0.01)  # thread
    await asyncio.gather(child_sleeps(), child_sleeps())  # gather
    asyncio.get_running_loop().call_later(0.01, event.set)
    await event.wait()  # event


async def awaits(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)  # sleep zero


async def stubborn() -> None:
    try:
        await asyncio.sleep(10)  # stubborn sleep
    except asyncio.CancelledError:
        await asyncio.sleep(0)  # cleanup
        raise


async def stalls() -> None:
    await asyncio.sleep(0)  # before the stall
    time.sleep(0.06)  # noqa: ASYNC251  # the stall
    await asyncio.sleep(0)  # after the stall


@needs_steps
class TestStepsOfARequest:
    def test_each_await_named_at_its_line_with_what_was_awaited(
        self, new_loop: LoopFactory
    ) -> None:
        profile = run(new_loop, lambda: profiled(lambda: everything(asyncio.Event())))
        assert profile.steps_unavailable is None
        assert profile.request_task is not None
        assert profile.request_task.name == "the-request"
        root = own_steps(profile, 0)
        assert lines(root) == [
            line_of("first sleep"),
            line_of("await child"),
            line_of("thread"),
            line_of("gather"),
            line_of("event"),
            None,  # still running when the profiler stopped
        ]
        assert [step.ended for step in root] == ["await"] * 5 + ["running"]
        labels = [step.awaited.label for step in root[:5] if step.awaited is not None]
        assert labels == [
            "sleep 30.0 ms",
            "task 1",
            "thread pool",
            "gather of 2",
            "asyncio Event.wait",
        ]
        assert all(step.site_is_app for step in root[:5])
        # Each await site keeps the chain above it: who called the code that awaited.
        row = next(row for row in profile.await_sites() if row.site == root[0].site)
        assert [frame.lineno for frame in row.stack[:1]] == [line_of("first sleep")]
        assert row.stack[1].function.endswith("request")
        assert next(event.name for event in profile.tasks.events(stacks=False)) == "child"

    def test_waits_resume_and_readiness(self, new_loop: LoopFactory) -> None:
        profile = run(new_loop, lambda: profiled(lambda: everything(asyncio.Event())))
        assert profile.steps is not None
        end_ms = profile.steps.end_ms
        sleep, child, thread, gather, event, running = own_steps(profile, 0)
        # Each suspension lasts until the next step of the same task.
        for step, following in ((sleep, child), (child, thread), (thread, gather)):
            assert step.resumed_ms == following.start_ms
            assert step.waited_ms(end_ms) == following.start_ms - step.end_ms
        assert sleep.waited_ms(end_ms) >= 29.0  # type: ignore[operator]
        # Readiness known exactly: a sleep's timer, a task's end, a thread call's return.
        assert sleep.ready_ms == pytest.approx(sleep.end_ms + 30.0)
        assert child.ready_ms == own_steps(profile, 1)[-1].end_ms
        for step in (sleep, child, thread, gather):
            assert step.ready_ms is not None
            ready = max(step.ready_ms, step.end_ms)
            # uvloop's timers run on a millisecond clock: a sleep may end a little early.
            assert step.resume_delay_ms(end_ms) == max(step.resumed_ms - ready, 0.0)  # type: ignore[operator]
        # An Event's readiness is not observable without patching asyncio: unknown.
        assert (event.ready_ms, event.resume_delay_ms(end_ms)) == (None, None)
        assert running.resumed_ms is None

    def test_spawned_tasks_have_their_own_steps(self, new_loop: LoopFactory) -> None:
        profile = run(new_loop, lambda: profiled(lambda: everything(asyncio.Event())))
        for task_id in (1, 2, 3):
            steps = own_steps(profile, task_id)
            assert lines(steps) == [line_of("child sleep"), None]
            assert [step.ended for step in steps] == ["await", "return"]
        sites = {(row.site.lineno if row.site else None): row for row in profile.await_sites()}
        child_row = sites[line_of("child sleep")]
        assert (child_row.count, child_row.task_ids) == (3, (1, 2, 3))
        assert [row.total_ms for row in profile.await_sites()] == sorted(
            (row.total_ms for row in profile.await_sites()), reverse=True
        )

    def test_the_breakdown_adds_up_to_the_wall_time(self, new_loop: LoopFactory) -> None:
        profile = run(new_loop, lambda: profiled(lambda: everything(asyncio.Event())))
        breakdown = profile.time_breakdown
        assert breakdown is not None
        assert breakdown.steps == 6
        assert breakdown.running_ms + breakdown.waiting_ms + breakdown.queued_ms + (
            breakdown.blocked_ms + breakdown.unrecorded_ms
        ) == pytest.approx(breakdown.wall_ms, abs=1e-6)
        assert breakdown.unrecorded_ms == 0.0
        by_line = {wait.site.lineno: wait for wait in breakdown.by_site if wait.site}
        assert set(by_line) == {
            line_of(marker)
            for marker in ("first sleep", "await child", "thread", "gather", "event")
        }
        assert sum(wait.waiting_ms for wait in breakdown.by_site) == pytest.approx(
            breakdown.waiting_ms
        )

    def test_requests_running_the_same_code_keep_their_own_steps(
        self, new_loop: LoopFactory
    ) -> None:
        async def main() -> list[AsyncProfile]:
            return list(await asyncio.gather(*(profiled(lambda n=n: awaits(n)) for n in (3, 5))))

        three, five = run(new_loop, main)
        assert lines(own_steps(three, 0)) == [line_of("sleep zero")] * 3 + [None]
        assert lines(own_steps(five, 0)) == [line_of("sleep zero")] * 5 + [None]

    def test_a_cancelled_task_ends_in_raise_and_its_thrown_in_step_is_marked(
        self, new_loop: LoopFactory
    ) -> None:
        async def body() -> None:
            task = asyncio.create_task(stubborn())
            await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        profile = run(new_loop, lambda: profiled(body))
        steps = own_steps(profile, 1)
        assert lines(steps) == [line_of("stubborn sleep"), line_of("cleanup"), None]
        assert [step.ended for step in steps] == ["await", "await", "raise"]
        # Local events do not report an exception thrown into the task: that step is shown
        # from its end only.
        assert [step.start_known for step in steps] == [True, False, True]

    def test_the_cap_counts_what_it_drops_and_the_breakdown_still_adds_up(
        self, new_loop: LoopFactory
    ) -> None:
        profile = run(new_loop, lambda: profiled(lambda: awaits(10), async_max_steps=3))
        assert profile.steps is not None
        assert (len(profile.steps), profile.steps.dropped) == (3, 8)
        breakdown = profile.time_breakdown
        assert breakdown is not None
        assert breakdown.unrecorded_ms > 0
        assert breakdown.start_ms + breakdown.running_ms + breakdown.waiting_ms + (
            breakdown.queued_ms + breakdown.unrecorded_ms + breakdown.blocked_ms
        ) == pytest.approx(breakdown.end_ms, abs=1e-6)

    def test_a_slow_step_names_where_it_ran_from_to_and_the_line_that_held_the_loop(
        self, new_loop: LoopFactory
    ) -> None:
        profile = run(new_loop, lambda: profiled(stalls))
        [slow] = [step for step in profile.slow_steps if step.duration_ms >= 50]
        assert slow.task_id == 0
        assert slow.ran_from is not None
        assert slow.ran_to is not None
        assert (slow.ran_from.lineno, slow.ran_to.lineno) == (
            line_of("before the stall"),
            line_of("after the stall"),
        )
        assert slow.held_at is not None
        assert slow.held_at.lineno == line_of("the stall")
        assert slow.blocking is False  # 60 ms: under the 100 ms blocking threshold


@needs_steps
class TestTheAppSeesItsOwnCoroutines:
    def test_get_coro_all_tasks_and_get_stack(self, new_loop: LoopFactory) -> None:
        seen: dict[str, Any] = {}

        async def body() -> None:
            coro = child_sleeps()
            task = asyncio.create_task(coro)
            await asyncio.sleep(0.005)  # the child is suspended in its sleep now
            seen["same"] = task.get_coro() is coro
            seen["type"] = type(task.get_coro())
            seen["in_all_tasks"] = task in asyncio.all_tasks()
            seen["all_codes"] = {t.get_coro().cr_code for t in asyncio.all_tasks()}
            seen["stack"] = [frame.f_code for frame in task.get_stack()]
            seen["own"] = asyncio.current_task().get_coro().cr_code  # type: ignore[union-attr]
            await task

        profile = run(new_loop, lambda: profiled(body))
        assert profile.steps is not None
        assert len(own_steps(profile, 1)) == 2  # the child's steps were timed meanwhile
        assert seen["same"] is True
        assert seen["type"] is types.CoroutineType
        assert seen["in_all_tasks"] is True
        assert child_sleeps.__code__ in seen["all_codes"]
        assert seen["stack"] == [child_sleeps.__code__]
        assert seen["own"].co_name == "request"


class TestMonitoringIsRemoved:
    @needs_steps
    def test_the_tool_is_there_while_timing_and_gone_after(self, new_loop: LoopFactory) -> None:
        seen: dict[str, Any] = {}

        async def body() -> None:
            seen["tools"] = {tool: monitoring.get_tool(tool) for tool in TOOL_IDS}
            seen["code"] = asyncio.current_task().get_coro().cr_code  # type: ignore[union-attr]
            await asyncio.sleep(0)

        run(new_loop, lambda: profiled(body))
        assert TOOL_NAME in seen["tools"].values()
        tool = next(tool for tool, name in seen["tools"].items() if name == TOOL_NAME)
        assert monitoring.get_tool(tool) is None
        assert monitoring.get_local_events(tool, seen["code"]) == 0
        assert step_monitors.in_use() == {}

    def test_step_timing_off_installs_no_monitoring(self, new_loop: LoopFactory) -> None:
        seen: dict[str, Any] = {}

        async def body() -> None:
            seen["monitors"] = step_monitors.in_use()
            if monitoring is not None:
                seen["tools"] = [monitoring.get_tool(tool) for tool in TOOL_IDS]
            await asyncio.sleep(0)

        profile = run(new_loop, lambda: profiled(body, async_step_timing=False))
        assert seen["monitors"] == {}
        assert TOOL_NAME not in seen.get("tools", ())
        assert (profile.steps, profile.time_breakdown, profile.slow_steps) == (None, None, ())
        assert profile.steps_unavailable == STEP_TIMING_OFF
        assert profile.request_task is not None  # the request's own task does not need steps

    @needs_steps
    def test_no_free_tool_id_is_said_not_taken(self, new_loop: LoopFactory) -> None:
        taken = [tool for tool in TOOL_IDS if monitoring.get_tool(tool) is None]
        for tool in taken:
            monitoring.use_tool_id(tool, "someone else")
        try:
            profile = run(new_loop, lambda: profiled(lambda: awaits(2)))
        finally:
            for tool in taken:
                monitoring.free_tool_id(tool)
        assert profile.steps is None
        assert profile.steps_unavailable is not None
        assert "no free sys.monitoring tool id" in profile.steps_unavailable
        assert profile.request_task is not None


@needs_steps
class TestNeverBreakTheApp:
    def test_a_failing_step_record_stops_timing_that_task_and_is_logged_once(
        self,
        new_loop: LoopFactory,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def broken(self: TaskSteps, now_ns: int, value: object) -> None:
            raise RuntimeError("a bug in step timing")

        monkeypatch.setattr(TaskSteps, "suspend", broken)
        done: list[str] = []

        async def body() -> None:
            await awaits(3)
            done.append(await asyncio.create_task(child_sleeps()))

        with caplog.at_level("WARNING", logger="debug_toolbar.async_profiler"):
            profile = run(new_loop, lambda: profiled(body))
        assert done == ["slept"]  # the app ran on, none the wiser
        assert profile.steps is not None
        # Each task stopped being timed at its first suspension, with nothing recorded.
        assert [step.task_id for step in profile.steps.steps()] == []
        assert [record.message for record in caplog.records].count(
            "step timing failed; the task's steps stop here"
        ) == 1


@pytest.mark.skipif(STEPS_UNAVAILABLE is None, reason="Python 3.12+ times steps")
class TestOlderPythons:
    def test_the_request_task_and_an_honest_note(self, new_loop: LoopFactory) -> None:
        profile = run(new_loop, lambda: profiled(stalls))
        assert profile.steps_unavailable == "step timing needs Python 3.12+ (sys.monitoring)"
        assert (profile.steps, profile.time_breakdown) == (None, None)
        assert profile.request_task is not None
        assert profile.request_task.name == "the-request"
        # The sampled stall is still a slow step, named at the line that held the loop.
        [slow] = [step for step in profile.slow_steps if step.duration_ms >= 50]
        assert slow.task_id is None
        assert slow.held_at is not None
        assert slow.held_at.lineno == line_of("the stall")
        data = profile.to_dict()
        assert data["steps_unavailable"] == profile.steps_unavailable
        assert "steps" not in data


@pytest.fixture
def eager_loop() -> LoopFactory:
    def new() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        return loop

    return new


@needs_steps
class TestEagerTasks:
    def test_an_eager_task_first_step_is_timed(self, eager_loop: LoopFactory) -> None:
        async def body() -> None:
            await asyncio.create_task(child_sleeps(), name="eager")

        profile = run(eager_loop, lambda: profiled(body))
        steps = own_steps(profile, 1)
        assert lines(steps) == [line_of("child sleep"), None]
        root = own_steps(profile, 0)
        # The eager first step ran inside the request's step, before it awaited the task.
        assert root[0].start_ms <= steps[0].start_ms <= steps[0].end_ms <= root[0].end_ms
