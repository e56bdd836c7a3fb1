"""The shared per-loop task hooks: reference counting, chaining, attribution, stacks, references."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import logging
import re
import sys
import weakref
from typing import Any

import pytest

from debug_toolbar.core.panels.async_profiler.calibration import SAMPLE_EVERY, calibration
from debug_toolbar.core.panels.async_profiler.stacks import resolve_stack
from debug_toolbar.core.panels.async_profiler.task_hooks import (
    LoopTaskHooks,
    TaskTracking,
    task_hooks,
)
from debug_toolbar.core.shared_hooks import LoopHooks, SharedHooks

THIS_FILE = __file__


async def noop() -> None:
    return None


async def wait_for(event: asyncio.Event) -> None:
    await event.wait()


def names(tracking: TaskTracking) -> list[str]:
    return [event.name for event in tracking.table(0).events()]


class Marker:
    """A weakly referenceable local, to see whether a frame is still kept alive."""


class CountingHook:
    """A LoopHook that counts its install/uninstall calls (the registry is what is tested)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.installs = 0
        self.uninstalls = 0

    def install(self) -> None:
        self.installs += 1

    def uninstall(self) -> None:
        self.uninstalls += 1


class TestSharedHooksPerLoop:
    def test_first_acquire_installs_last_release_uninstalls(self) -> None:
        registry: LoopHooks[CountingHook] = SharedHooks("test hook", CountingHook)
        loop = asyncio.new_event_loop()
        try:
            first = registry.acquire(loop)
            second = registry.acquire(loop)
            assert first is second
            assert (first.installs, registry.users(loop)) == (1, 2)
            registry.release(loop)
            assert (first.uninstalls, registry.users(loop), registry.get(loop)) == (0, 1, first)
            registry.release(loop)
            assert (first.installs, first.uninstalls) == (1, 1)
            assert registry.get(loop) is None
            assert registry.users(loop) == 0
        finally:
            loop.close()

    def test_the_last_release_lets_go_of_the_loop(self) -> None:
        registry: LoopHooks[CountingHook] = SharedHooks("test hook", CountingHook)
        loop = asyncio.new_event_loop()
        registry.acquire(loop)
        registry.acquire(loop)
        registry.release(loop)
        loop.close()
        loop_ref = weakref.ref(loop)
        del loop
        gc.collect()
        assert loop_ref() is not None  # one user left: its hook (and so the loop) is kept
        live = loop_ref()
        assert live is not None
        registry.release(live)
        del live
        gc.collect()
        assert loop_ref() is None

    def test_each_loop_gets_its_own_hook(self) -> None:
        registry: LoopHooks[CountingHook] = SharedHooks("test hook", CountingHook)
        loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
        try:
            hooks = [registry.acquire(loop) for loop in loops]
            assert hooks[0] is not hooks[1]
            assert [hook.loop for hook in hooks] == loops
            for loop in loops:
                registry.release(loop)
            assert [hook.uninstalls for hook in hooks] == [1, 1]
        finally:
            for loop in loops:
                loop.close()

    def test_release_without_acquire_is_a_no_op(self) -> None:
        registry: LoopHooks[CountingHook] = SharedHooks("test hook", CountingHook)
        loop = asyncio.new_event_loop()
        try:
            registry.release(loop)
            assert registry.users(loop) == 0
        finally:
            loop.close()


class TestLoopTaskHooks:
    @pytest.mark.asyncio
    async def test_chains_to_the_previous_factory_and_restores_it_exactly(
        self, restore_task_factory: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)
        created: list[str] = []

        def app_factory(
            loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
        ) -> asyncio.Task[Any]:
            created.append(coro.__qualname__)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(app_factory)
        hooks = LoopTaskHooks(loop)
        hooks.install()
        assert loop.get_task_factory() is hooks.factory
        assert hooks.previous is app_factory
        await asyncio.create_task(noop())  # no request: straight to the app's factory
        hooks.uninstall()
        assert loop.get_task_factory() is app_factory
        assert created == ["noop"]

    @pytest.mark.asyncio
    async def test_uninstall_leaves_a_factory_installed_over_it(
        self, restore_task_factory: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)
        hooks = LoopTaskHooks(loop)
        hooks.install()

        def later_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(later_factory)
        with caplog.at_level(logging.WARNING, logger="debug_toolbar.async_profiler"):
            hooks.uninstall()
        assert loop.get_task_factory() is later_factory
        assert "replaced while the async profiler was tracking" in caplog.text

    @pytest.mark.asyncio
    async def test_the_recorder_owns_the_request_task_and_its_live_children(
        self, run_in_request: Any
    ) -> None:
        tracking = TaskTracking()
        release = asyncio.Event()
        seen: dict[str, bool] = {}
        owns = tracking.recorder.owns

        async def body() -> None:
            child = asyncio.create_task(wait_for(release))
            seen["root"] = owns(asyncio.current_task())
            seen["child"] = owns(child)
            seen["none"] = owns(None)
            seen["outsider"] = owns(outsider)
            release.set()
            await child
            seen["finished child"] = owns(child)

        outsider = asyncio.create_task(noop())
        await run_in_request(tracking, body)
        await outsider
        assert seen == {
            "root": True,
            "child": True,
            "none": False,
            "outsider": False,
            "finished child": False,  # done: no longer held, no longer owned
        }
        assert owns(asyncio.current_task()) is False  # stopped: the root is forgotten


class TestTaskTrackingLifecycle:
    @pytest.mark.asyncio
    async def test_installs_while_running_and_restores_the_loop(self, run_in_request: Any) -> None:
        loop = asyncio.get_running_loop()
        before = loop.get_task_factory()
        tracking = TaskTracking()
        seen: list[Any] = []

        async def body() -> None:
            seen.append(loop.get_task_factory())
            seen.append(task_hooks.users(loop))

        await run_in_request(tracking, body)
        assert seen[0] is not None
        assert seen[0] is not before
        assert seen[1] == 1
        assert loop.get_task_factory() is before
        assert task_hooks.get(loop) is None
        assert not tracking.running

    @pytest.mark.asyncio
    async def test_stop_is_idempotent_and_safe_without_start(self, run_in_request: Any) -> None:
        never_started = TaskTracking()
        never_started.stop()
        never_started.stop()
        tracking = TaskTracking()
        await run_in_request(tracking, noop)
        tracking.stop()
        assert task_hooks.get(asyncio.get_running_loop()) is None

    @pytest.mark.asyncio
    async def test_second_start_raises_and_stop_still_releases(self) -> None:
        loop = asyncio.get_running_loop()
        tracking = TaskTracking()
        tracking.start(loop)
        try:
            with pytest.raises(RuntimeError, match="already started"):
                tracking.start(loop)
            assert task_hooks.users(loop) == 1
        finally:
            tracking.stop()
        assert task_hooks.users(loop) == 0

    @pytest.mark.asyncio
    async def test_failed_start_leaves_nothing_behind(self) -> None:
        tracking = TaskTracking()
        not_a_loop = object()
        with pytest.raises(AttributeError):
            tracking.start(not_a_loop)  # type: ignore[arg-type]
        assert not tracking.running
        tracking.stop()
        assert task_hooks.get(not_a_loop) is None  # type: ignore[arg-type]
        assert task_hooks.users(not_a_loop) == 0  # type: ignore[arg-type]
        assert asyncio.get_running_loop().get_task_factory() is None

    @pytest.mark.asyncio
    async def test_stop_from_another_task_still_stops_recording(self) -> None:
        loop = asyncio.get_running_loop()
        tracking = TaskTracking()

        async def start_only() -> None:
            tracking.start(loop)

        await asyncio.create_task(start_only())
        await asyncio.create_task(asyncio.to_thread(lambda: None))
        tracking.stop()  # a different context than the one that started
        assert not tracking.recorder.active
        assert loop.get_task_factory() is None


class TestAttribution:
    @pytest.mark.asyncio
    async def test_overlapping_requests_record_only_their_own_tasks(
        self, run_in_request: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        a, b = TaskTracking(), TaskTracking()
        a_started, b_started, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        factory_during: list[Any] = []

        async def request_a() -> None:
            first = asyncio.create_task(noop(), name="a-1")
            a_started.set()
            await b_started.wait()
            await asyncio.gather(first, asyncio.create_task(noop(), name="a-2"))

        async def request_b() -> None:
            await a_started.wait()
            first = asyncio.create_task(noop(), name="b-1")
            b_started.set()
            await a_done.wait()
            # a has stopped: the shared hook must still be there for b.
            factory_during.append(loop.get_task_factory())
            await asyncio.gather(first, asyncio.create_task(noop(), name="b-2"))

        async def run_a() -> None:
            await run_in_request(a, request_a)
            a_done.set()

        outsider_names: list[str] = []

        async def outsider() -> None:
            await a_started.wait()
            task = asyncio.create_task(noop(), name="server-task")
            outsider_names.append(task.get_name())
            await task

        await asyncio.gather(run_a(), run_in_request(b, request_b), outsider())
        assert names(a) == ["a-1", "a-2"]
        assert names(b) == ["b-1", "b-2"]
        assert outsider_names == ["server-task"]
        assert factory_during[0] is not None
        assert loop.get_task_factory() is None

    @pytest.mark.asyncio
    async def test_tasks_created_outside_any_request_are_not_recorded(
        self, run_in_request: Any
    ) -> None:
        tracking = TaskTracking()
        outside_done = asyncio.Event()

        async def body() -> None:
            await outside_done.wait()

        async def outside() -> None:
            await asyncio.sleep(0)
            await asyncio.gather(noop(), noop())
            outside_done.set()

        await asyncio.gather(run_in_request(tracking, body), outside())
        assert len(tracking.recorder) == 0

    @pytest.mark.asyncio
    async def test_parents_through_create_task_gather_and_grandchildren(
        self, run_in_request: Any
    ) -> None:
        tracking = TaskTracking()

        async def grandchild() -> None:
            await asyncio.sleep(0)

        async def child() -> None:
            await asyncio.gather(grandchild(), grandchild())

        async def body() -> None:
            await asyncio.create_task(child(), name="child")
            await asyncio.ensure_future(noop())

        await run_in_request(tracking, body)
        events = tracking.table(0).events()
        assert [(e.task_id, e.parent_id, e.coro_name.rsplit(".", 1)[-1]) for e in events] == [
            (1, None, "child"),
            (2, 1, "grandchild"),
            (3, 1, "grandchild"),
            (4, None, "noop"),
        ]
        assert events[0].coro_name == (
            "TestAttribution.test_parents_through_create_task_gather_and_grandchildren"
            ".<locals>.child"
        )

    @pytest.mark.asyncio
    async def test_unnamed_tasks_keep_the_names_asyncio_gave_them(
        self, run_in_request: Any
    ) -> None:
        # 3.13.0-3.13.2 rename a factory-made task "None" once the factory has returned
        # (CPython gh-130033): the record keeps the name the task was created with.
        tracking = TaskTracking()

        async def body() -> asyncio.Task[None]:
            await asyncio.gather(noop(), noop(), noop())
            await asyncio.create_task(noop(), name="named")
            return asyncio.create_task(asyncio.sleep(10))  # still pending at stop

        pending = await run_in_request(tracking, body)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        events = tracking.table(0).events()
        assert [e.state for e in events] == ["completed"] * 4 + ["pending"]
        unnamed = [events[i].name for i in (0, 1, 2, 4)]
        assert all(re.fullmatch(r"Task-\d+", name) for name in unnamed), unnamed
        assert len(set(unnamed)) == 4
        assert events[3].name == "named"

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup is 3.11+")
    @pytest.mark.asyncio
    async def test_task_group_children_and_their_children(self, run_in_request: Any) -> None:
        tracking = TaskTracking()

        async def worker() -> None:
            await asyncio.create_task(noop(), name="inner")

        async def body() -> None:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
                group.create_task(worker(), name="w1")
                group.create_task(worker(), name="w2")

        await run_in_request(tracking, body)
        events = tracking.table(0).events()
        assert sorted(e.name for e in events) == ["inner", "inner", "w1", "w2"]
        workers = {e.name: e.task_id for e in events if e.name.startswith("w")}
        parents = sorted(e.parent_id or 0 for e in events if e.name == "inner")
        assert parents == sorted(workers.values())
        assert all(e.parent_id is None for e in events if e.name.startswith("w"))
        assert all(e.state == "completed" for e in events)


class TestChaining:
    @pytest.mark.asyncio
    async def test_app_factory_called_for_tracked_and_untracked_tasks(
        self, restore_task_factory: Any, run_in_request: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)
        calls: list[str] = []

        def app_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
            calls.append(coro.__qualname__)
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(app_factory)
        tracking = TaskTracking()
        started = asyncio.Event()
        finish = asyncio.Event()

        async def tracked() -> None:
            return None

        async def untracked() -> None:
            return None

        async def body() -> None:
            await asyncio.create_task(tracked(), name="mine")
            started.set()
            await finish.wait()

        async def outside() -> None:
            await started.wait()
            await asyncio.create_task(untracked())
            finish.set()

        calls.clear()
        await asyncio.gather(run_in_request(tracking, body), outside())
        short = [call.rsplit(".", 1)[-1] for call in calls]
        assert (short.count("tracked"), short.count("untracked")) == (1, 1)
        assert names(tracking) == ["mine"]
        assert loop.get_task_factory() is app_factory

    @pytest.mark.asyncio
    async def test_a_factory_that_raises_leaves_no_record(
        self, restore_task_factory: Any, run_in_request: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)

        async def refused() -> None:
            return None

        def refusing_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
            if coro.__qualname__.endswith("refused"):
                coro.close()
                raise RuntimeError("no more tasks")
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(refusing_factory)
        tracking = TaskTracking()

        async def body() -> None:
            with pytest.raises(RuntimeError, match="no more tasks"):
                asyncio.ensure_future(refused())  # noqa: RUF006
            await asyncio.create_task(noop(), name="accepted")

        await run_in_request(tracking, body)
        assert names(tracking) == ["accepted"]
        assert len(tracking.recorder.stacks) == 1
        assert loop.get_task_factory() is refusing_factory

    @pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_task_factory is 3.12+")
    @pytest.mark.asyncio
    async def test_eager_task_factory(self, restore_task_factory: Any, run_in_request: Any) -> None:
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)
        eager = asyncio.eager_task_factory  # type: ignore[attr-defined]
        loop.set_task_factory(eager)
        tracking = TaskTracking()

        async def grandchild() -> None:
            return None

        async def child_with_kids() -> None:
            done = asyncio.create_task(grandchild(), name="eager-grandchild")
            assert done.done()  # it finished eagerly, inside create_task
            await asyncio.sleep(0)

        async def body() -> str:
            done_eagerly = asyncio.create_task(noop(), name="eager-done")
            assert done_eagerly.done()
            await asyncio.create_task(child_with_kids(), name="eager-child")
            return done_eagerly.get_name()

        assert await run_in_request(tracking, body) == "eager-done"
        events = {e.name: e for e in tracking.table(0).events()}
        assert set(events) == {"eager-done", "eager-child", "eager-grandchild"}
        assert all(e.state == "completed" for e in events.values())
        assert events["eager-grandchild"].parent_id == events["eager-child"].task_id
        assert events["eager-done"].parent_id is None
        assert loop.get_task_factory() is eager


class TestCreationStack:
    @pytest.mark.asyncio
    async def test_names_the_exact_creating_line(
        self, run_in_request: Any, next_line: Any, function_name: Any
    ) -> None:
        tracking = TaskTracking()
        lines: list[int] = []

        async def body() -> None:
            lines.append(next_line())
            await asyncio.create_task(noop())
            lines.append(next_line())
            await asyncio.gather(noop(), noop())

        await run_in_request(tracking, body)
        stacks = [event.stack for event in tracking.table(0).events()]
        assert [(s[0].filename, s[0].lineno) for s in stacks] == [
            (THIS_FILE, lines[0]),
            (THIS_FILE, lines[1]),
            (THIS_FILE, lines[1]),
        ]
        assert stacks[0][0].code == "await asyncio.create_task(noop())"
        assert stacks[1][0].function == function_name(
            "TestCreationStack.test_names_the_exact_creating_line.<locals>.body"
        )
        # The next frame up is the caller of body: run_in_request's request task.
        assert stacks[0][1].function == function_name("_run_in_request.<locals>.request_task")

    @pytest.mark.asyncio
    async def test_one_stack_walk_for_a_gather_of_100(self, run_in_request: Any) -> None:
        tracking = TaskTracking()

        async def body() -> None:
            await asyncio.gather(*(noop() for _ in range(100)))

        await run_in_request(tracking, body)
        stacks = tracking.table(0).stacks
        assert stacks is not None
        assert len(stacks) == 100
        # A walk builds a new tuple: one shared tuple means one walk (and one resolution).
        assert all(stack is stacks[0] for stack in stacks)
        assert tracking.table(0).frames(99)[0].function.endswith("body")

    @pytest.mark.asyncio
    async def test_same_frame_other_line_or_other_callee_is_walked_again(
        self, run_in_request: Any, next_line: Any
    ) -> None:
        tracking = TaskTracking()
        lines: list[int] = []

        async def helper() -> asyncio.Task[None]:
            lines.append(next_line())
            return asyncio.create_task(noop())

        async def body() -> None:
            for _ in range(2):
                lines.append(next_line())
                await asyncio.gather(noop())
                await await_helper()

        async def await_helper() -> None:
            await (await helper())

        await run_in_request(tracking, body)
        sites = [
            (e.stack[0].function.rsplit(".", 1)[-1], e.stack[0].lineno)
            for e in tracking.table(0).events()
        ]
        gather_line, helper_line = lines[0], lines[1]
        assert sites == [
            ("body", gather_line),
            ("helper", helper_line),
            ("body", gather_line),
            ("helper", helper_line),
        ]

    @pytest.mark.asyncio
    async def test_depth_is_bounded(self, run_in_request: Any) -> None:
        tracking = TaskTracking(max_stack_depth=3)

        async def deep(level: int) -> None:
            if level:
                await deep(level - 1)
            else:
                await asyncio.create_task(noop())

        await run_in_request(tracking, lambda: deep(8))
        (event,) = tracking.table(0).events()
        assert [frame.function.rsplit(".", 1)[-1] for frame in event.stack] == ["deep"] * 3

    @pytest.mark.asyncio
    async def test_no_stacks_when_disabled(self, run_in_request: Any) -> None:
        tracking = TaskTracking(capture_stacks=False)
        await run_in_request(tracking, lambda: asyncio.gather(noop(), noop()))
        assert [event.stack for event in tracking.table(0).events()] == [[], []]
        assert tracking.recorder.stacks == []

    def test_resolve_stack_reads_the_source_line_once_per_frame(self, function_name: Any) -> None:
        code = TestCreationStack.test_resolve_stack_reads_the_source_line_once_per_frame.__code__
        line = code.co_firstlineno + 1
        first = resolve_stack(((code, line),))
        second = resolve_stack(((code, line), (code, 0)))
        assert first[0] is second[0]  # resolved once, shared by every stack holding it
        assert first[0].code == (
            "code = TestCreationStack.test_resolve_stack_reads_the_source_line_once_per_frame"
            ".__code__"
        )
        assert first[0].function == function_name(
            "TestCreationStack.test_resolve_stack_reads_the_source_line_once_per_frame"
        )
        assert second[1].code is None
        assert (first[0].filename, first[0].lineno) == (THIS_FILE, line)


class TestReferences:
    @pytest.mark.asyncio
    async def test_no_strong_reference_outlives_the_record(self, run_in_request: Any) -> None:
        tracking = TaskTracking()
        refs: dict[str, weakref.ref[asyncio.Task[Any]]] = {}
        release = asyncio.Event()

        async def body() -> None:
            finished = asyncio.create_task(noop(), name="finished")
            await finished
            refs["finished"] = weakref.ref(finished)
            escaped = asyncio.create_task(wait_for(release), name="escaped")
            refs["escaped"] = weakref.ref(escaped)

        await run_in_request(tracking, body)
        escaped = refs["escaped"]()
        assert escaped is not None
        assert not escaped.done()
        release.set()
        await escaped
        del escaped
        await asyncio.sleep(0)  # asyncio's own wake-up callback holds the task until it ends
        gc.collect()
        assert refs["finished"]() is None
        assert refs["escaped"]() is None
        states = {event.name: event.state for event in tracking.table(0).events()}
        assert states == {"finished": "completed", "escaped": "pending"}

    @pytest.mark.asyncio
    async def test_stopping_lets_go_of_the_creating_frames(self, run_in_request: Any) -> None:
        """While recording, the recorder keeps the creating site's frames (the next task from
        the same site reuses their stack); once stopped, it keeps neither them nor their locals.
        A finished frame that is still referenced keeps its locals alive."""
        tracking = TaskTracking()
        locals_of_the_site: list[weakref.ref[Marker]] = []

        async def body() -> None:
            marker = Marker()
            locals_of_the_site.append(weakref.ref(marker))
            await asyncio.gather(noop(), noop())

        await run_in_request(tracking, body)
        gc.collect()
        assert len(tracking.recorder) == 2
        assert locals_of_the_site[0]() is None
        assert tracking.recorder.live == {}


class TestFailuresStayLoud:
    @pytest.mark.asyncio
    async def test_unretrieved_exception_is_still_reported_by_asyncio(
        self, run_in_request: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        tracking = TaskTracking()
        reported: list[dict[str, Any]] = []
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda loop, context: reported.append(context))

        async def fails() -> None:
            raise ValueError("nobody awaits me")

        async def body() -> None:
            task = asyncio.create_task(fails(), name="orphan")
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # the done callback has run
            assert task.done()

        try:
            await run_in_request(tracking, body)
            gc.collect()
        finally:
            loop.set_exception_handler(previous_handler)
        (event,) = tracking.table(0).events()
        assert (event.state, event.exception_type, event.exception_message) == (
            "failed",
            "ValueError",
            "nobody awaits me",
        )
        assert [context["message"] for context in reported] == [
            "Task exception was never retrieved"
        ]
        assert str(reported[0]["exception"]) == "nobody awaits me"


class TestTaskDicts:
    @pytest.mark.parametrize("capture_stacks", [True, False])
    @pytest.mark.asyncio
    async def test_same_as_the_events_to_dict(
        self, capture_stacks: bool, run_in_request: Any
    ) -> None:
        tracking = TaskTracking(capture_stacks=capture_stacks)
        release = asyncio.Event()

        async def fails() -> None:
            raise OSError("disk full")

        async def body() -> None:
            await asyncio.gather(noop(), noop())
            failing = asyncio.create_task(fails(), name="failing")
            with pytest.raises(OSError, match="disk full"):
                await failing
            cancelled = asyncio.create_task(wait_for(release))
            await asyncio.sleep(0)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            asyncio.create_task(wait_for(release), name="escaped")  # noqa: RUF006

        await run_in_request(tracking, body)
        origin = tracking.recorder.starts[0] - 5_000_000
        table = tracking.table(origin)
        dicts = table.to_dicts()
        assert dicts == [event.to_dict() for event in table.events()]
        assert [task["state"] for task in dicts] == [
            "completed",
            "completed",
            "failed",
            "cancelled",
            "pending",
        ]
        assert dicts[0]["start_ms"] == pytest.approx(5.0)
        if capture_stacks:
            assert dicts[0]["stack"] is dicts[1]["stack"]  # one site, one list of frames
            assert dicts[0]["stack"] is not dicts[2]["stack"]
        release.set()
        await asyncio.sleep(0)


class ManualCoroutine(collections.abc.Coroutine[Any, Any, str]):
    """A coroutine that is not a native one (as Cython or hand-written ones are)."""

    def send(self, value: Any) -> Any:
        raise StopIteration("manual result")

    def throw(self, *args: Any) -> Any:
        raise StopIteration

    def close(self) -> None:
        return None

    def __await__(self) -> Any:
        return iter(())


class TestUnusualTasks:
    @pytest.mark.asyncio
    async def test_a_non_native_coroutine_is_named_by_its_type(self, run_in_request: Any) -> None:
        tracking = TaskTracking()

        async def body() -> str:
            return await asyncio.create_task(ManualCoroutine())  # type: ignore[arg-type]

        assert await run_in_request(tracking, body) == "manual result"
        (event,) = tracking.table(0).events()
        assert (event.coro_name, event.state) == ("ManualCoroutine", "completed")

    @pytest.mark.asyncio
    async def test_a_factory_returning_plain_futures(
        self, restore_task_factory: Any, run_in_request: Any
    ) -> None:
        """A custom factory may return any Future: no get_name, the type stands in."""
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)
        runners: set[asyncio.Task[Any]] = set()

        class NamelessFuture(asyncio.Future):  # type: ignore[type-arg]
            def set_name(self, name: object) -> None:
                """asyncio 3.13+ names what a factory returns; this one has no get_name."""

        def future_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
            future = NamelessFuture(loop=loop)
            runner = asyncio.Task(coro, loop=loop)
            runners.add(runner)

            def settle(done: asyncio.Task[Any]) -> None:
                runners.discard(done)
                if done.exception() is not None:
                    future.set_exception(done.exception())  # type: ignore[arg-type]
                else:
                    future.set_result(done.result())

            runner.add_done_callback(settle)
            return future

        async def fails() -> None:
            raise ValueError("plain future failed")

        tracking = TaskTracking()

        async def body() -> None:
            await loop.create_task(noop())
            with pytest.raises(ValueError, match="plain future failed"):
                await loop.create_task(fails())

        loop.set_task_factory(future_factory)
        await run_in_request(tracking, body)
        events = tracking.table(0).events()
        assert [(e.name, e.state) for e in events] == [
            ("NamelessFuture", "completed"),
            ("NamelessFuture", "failed"),
        ]
        assert events[1].exception_message == "plain future failed"

    @pytest.mark.asyncio
    async def test_cap_through_a_chained_factory(
        self, restore_task_factory: Any, run_in_request: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        restore_task_factory(loop)
        created: list[str] = []

        def app_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
            created.append(coro.__qualname__)
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(app_factory)
        tracking = TaskTracking(max_tasks=2)
        await run_in_request(tracking, lambda: asyncio.gather(noop(), noop(), noop()))
        assert len(tracking.recorder) == 2
        assert tracking.recorder.dropped == 1
        assert created.count("noop") == 3  # the dropped one was still created by the app

    @pytest.mark.asyncio
    async def test_recorder_stop_twice_and_overhead(self, run_in_request: Any) -> None:
        tracking = TaskTracking()
        await run_in_request(tracking, lambda: asyncio.gather(noop(), noop()))
        recorder = tracking.recorder
        before = (recorder.overhead_ns, dict(recorder.names))
        recorder.stop()
        assert (recorder.overhead_ns, recorder.names) == before
        assert tracking.overhead_ns == recorder.overhead_ns + tracking.setup_ns
        assert recorder.overhead_ns > 0
        assert tracking.setup_ns > 0

    @pytest.mark.asyncio
    async def test_the_per_task_cost_is_sampled_and_the_overhead_estimated(
        self, run_in_request: Any
    ) -> None:
        tracking = TaskTracking()
        samples = (calibration.track_samples, calibration.done_samples)
        tasks = SAMPLE_EVERY * 4
        await run_in_request(tracking, lambda: asyncio.gather(*(noop() for _ in range(tasks))))
        # One creation and one completion in SAMPLE_EVERY is timed, whatever the phase.
        assert (calibration.track_samples, calibration.done_samples) == (
            samples[0] + 4,
            samples[1] + 4,
        )
        recorder = tracking.recorder
        assert recorder.per_task_ns == calibration.per_task_ns() > 0
        assert recorder.overhead_ns == round(tasks * recorder.per_task_ns)
