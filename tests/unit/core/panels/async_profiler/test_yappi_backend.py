"""YappiBackend: per-request function stats from one shared yappi run, plus the task timeline.

Everything here runs the real yappi (no stand-in): requests are asyncio tasks that start a
backend in their own task, as the middleware does. Only the availability tests make the import
fail, by putting None in ``sys.modules`` (a real ImportError), and those run without yappi too.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import sys
import threading
import time
import tracemalloc
import types
import weakref
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import pytest

import debug_toolbar
from debug_toolbar.core.panels.async_profiler.backends import (
    BackendUnavailableError,
    select_backend,
)
from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile, FunctionProfile
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.yappi_backend import (
    YAPPI_KEEPS_COROUTINES,
    YappiBackend,
    YappiLimitError,
    YappiSession,
    yappi_session,
)

T = TypeVar("T")

NEEDS_YAPPI = "yappi is not installed here; pip install 'debug-toolbar[yappi]' to run this"
OWN_DIR = os.path.dirname(debug_toolbar.__file__) + os.sep


@pytest.fixture
def yappi() -> Any:
    """The real yappi module; tests that need it skip (with the reason) only where it is absent."""
    return pytest.importorskip("yappi", reason=NEEDS_YAPPI)


@pytest.fixture(autouse=True)
def no_yappi_leak() -> Iterator[None]:
    """No test may leave yappi running, stats behind, the shared run held or a profile hook."""
    yield
    assert yappi_session.users == 0
    assert threading.getprofile() is None
    try:
        import yappi
    except ImportError:
        return
    assert not yappi.is_running()
    assert yappi.get_func_stats().empty()
    assert yappi.get_clock_type() == "cpu"


async def in_request(backend: YappiBackend, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` as a request does: its own task, backend started in it, stopped after."""

    async def request_task() -> T:
        backend.start(asyncio.get_running_loop())
        try:
            return await body()
        finally:
            backend.stop()

    return await asyncio.create_task(request_task())


def function_profile(backend: YappiBackend) -> FunctionProfile:
    functions = backend.collected().functions
    assert functions is not None  # the yappi backend always has a table, maybe empty
    return functions


def function_dicts(backend: YappiBackend) -> list[dict[str, Any]]:
    """The function table as the history stores it."""
    return [function.to_dict() for function in function_profile(backend).functions]


def functions_by_name(backend: YappiBackend) -> dict[str, dict[str, Any]]:
    return {function["name"]: function for function in function_dicts(backend)}


def task_dicts(backend: AsyncProfilerBackend) -> list[dict[str, Any]]:
    return backend.collected().tasks.to_dicts()


def profile_of(backend: AsyncProfilerBackend) -> AsyncProfile:
    """The request's profile as the panel freezes it (without detector and lag monitor)."""
    collected = backend.collected()
    return AsyncProfile(
        backend=backend.name,
        tasks=collected.tasks,
        overhead=collected.overhead,
        functions=collected.functions,
    )


# The app code the requests run: distinct names so each request's functions are recognisable.


async def nap_50ms() -> None:
    await asyncio.sleep(0.05)


async def shared_step() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def alpha_handler() -> None:
    await shared_step()
    await asyncio.sleep(0.02)


async def beta_handler() -> None:
    await shared_step()
    await shared_step()
    await asyncio.sleep(0.02)


def sync_helper() -> int:
    return sum(range(1000))


class TestAvailability:
    def test_available_when_yappi_imports(self, yappi: Any) -> None:
        assert YappiBackend.is_available() is True
        assert YappiBackend.name == "yappi"

    def test_unavailable_when_the_import_fails(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)

        assert YappiBackend.is_available() is False

    @pytest.mark.asyncio
    async def test_start_without_yappi_names_the_extra_and_installs_nothing(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        loop = asyncio.get_running_loop()
        factory_before = loop.get_task_factory()
        backend = YappiBackend()

        with pytest.raises(BackendUnavailableError, match=r"debug-toolbar\[yappi\]"):
            backend.start(loop)
        backend.stop()  # the panel always stops, whatever start did

        assert loop.get_task_factory() is factory_before
        assert yappi_session.users == 0

    def test_selection_falls_back_only_for_auto(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)

        assert select_backend("auto") is TaskFactoryBackend
        with pytest.raises(BackendUnavailableError, match=r"debug-toolbar\[yappi\]"):
            select_backend("yappi")

    def test_selection_picks_yappi_when_installed(self, yappi: Any) -> None:
        assert select_backend("yappi") is YappiBackend
        assert select_backend("auto") is YappiBackend


class TestFunctionStats:
    @pytest.mark.asyncio
    async def test_awaited_sleep_counts_as_wall_time_of_one_call(self, yappi: Any) -> None:
        backend = YappiBackend()

        await in_request(backend, nap_50ms)

        nap = functions_by_name(backend)["nap_50ms"]
        assert 40.0 <= nap["total_ms"] <= 150.0
        assert nap["calls"] == 1
        assert nap["avg_ms"] == pytest.approx(nap["total_ms"])
        assert nap["own_ms"] < 5.0  # the wait is in asyncio.sleep, a callee
        assert nap["is_coroutine"] is True
        assert nap["filename"] == __file__
        assert nap["lineno"] == nap_50ms.__code__.co_firstlineno
        # Only the request's code and the asyncio it drives: no toolbar bookkeeping, nor the
        # stdlib helpers that bookkeeping calls (contextlib and the like).
        asyncio_dir = os.path.dirname(asyncio.__file__) + os.sep
        assert {
            f["filename"]
            for f in function_dicts(backend)
            if not f["filename"].startswith(asyncio_dir)
        } == {__file__}

    @pytest.mark.asyncio
    async def test_resumptions_are_not_calls_and_sync_functions_are_not_coroutines(
        self, yappi: Any
    ) -> None:
        async def body() -> None:
            for _ in range(3):
                await shared_step()  # two awaits each: six resumptions, three calls
            sync_helper()
            sync_helper()

        backend = YappiBackend()
        await in_request(backend, body)

        functions = functions_by_name(backend)
        assert functions["shared_step"]["calls"] == 3
        assert functions["shared_step"]["is_coroutine"] is True
        assert functions["sync_helper"]["calls"] == 2
        assert functions["sync_helper"]["is_coroutine"] is False
        assert functions["body"]["calls"] == 1  # yappi names nested functions by co_name

    @pytest.mark.asyncio
    async def test_top_functions_by_total_time_without_the_toolbars_own(self, yappi: Any) -> None:
        async def body() -> None:
            await nap_50ms()
            await alpha_handler()
            sync_helper()

        backend = YappiBackend(max_functions=3)
        await in_request(backend, body)
        table = function_profile(backend)

        totals = [function.total_ms for function in table.functions]
        assert len(totals) == 3
        assert totals == sorted(totals, reverse=True)
        assert table.total > 3
        assert table.max_functions == 3
        # asyncio.sleep (about 70 ms in all) and body (about 70 ms) outrank nap_50ms.
        assert [function.name for function in table.functions][2] == "nap_50ms"
        assert not any(function.filename.startswith(OWN_DIR) for function in table.functions)

    @pytest.mark.asyncio
    async def test_sync_code_in_a_worker_thread_is_attributed_to_the_request(
        self, yappi: Any
    ) -> None:
        async def body() -> int:
            return await asyncio.to_thread(sync_helper)

        # The first to_thread imports and starts the executor: far more functions than 50.
        backend = YappiBackend(max_functions=1000)
        assert await in_request(backend, body) == sum(range(1000))

        assert functions_by_name(backend)["sync_helper"]["calls"] == 1

    @pytest.mark.asyncio
    async def test_stats_keep_the_task_backends_shape_and_add_the_functions(
        self, yappi: Any
    ) -> None:
        async def body() -> None:
            await asyncio.gather(alpha_handler(), shared_step())

        backend = YappiBackend(origin_ns=time.perf_counter_ns())
        await in_request(backend, body)
        profile = profile_of(backend)
        stats = profile.to_dict()

        reference = TaskFactoryBackend()
        await in_request(reference, body)  # type: ignore[arg-type]
        reference_stats = profile_of(reference).to_dict()
        assert set(stats) - set(reference_stats) == {"profile"}
        assert set(stats["overhead"]) - set(reference_stats["overhead"]) == {"profiler_ms"}
        assert [t["coro_name"] for t in stats["tasks"]] == [
            t["coro_name"] for t in reference_stats["tasks"]
        ]
        functions = function_profile(backend)
        assert functions.clock == "wall"
        assert functions.error is None
        assert functions.cost_note is not None
        assert "slower" in functions.cost_note
        overhead = profile.overhead
        assert overhead.profiler_ms is not None
        assert overhead.profiler_ms > 0.0
        # The summary: the same counts as the task backend's, and yappi's cost in the overhead.
        summary = profile.summary
        assert summary.completed == sum(1 for t in stats["tasks"] if t["state"] == "completed")
        assert summary.completed == profile_of(reference).summary.completed == 2
        paid = overhead.tracking_ms + overhead.setup_ms
        assert summary.profiling_overhead_ms == pytest.approx(paid + overhead.profiler_ms)


class TestIsolation:
    @pytest.mark.asyncio
    async def test_concurrent_requests_see_only_their_own_functions(self, yappi: Any) -> None:
        alpha, beta = YappiBackend(), YappiBackend()

        await asyncio.gather(in_request(alpha, alpha_handler), in_request(beta, beta_handler))

        alpha_functions, beta_functions = functions_by_name(alpha), functions_by_name(beta)
        assert "alpha_handler" in alpha_functions
        assert "beta_handler" not in alpha_functions
        assert "beta_handler" in beta_functions
        assert "alpha_handler" not in beta_functions
        # A function both run is counted for each request separately.
        assert alpha_functions["shared_step"]["calls"] == 1
        assert beta_functions["shared_step"]["calls"] == 2
        assert 15.0 <= alpha_functions["alpha_handler"]["total_ms"] <= 120.0

    @pytest.mark.asyncio
    async def test_child_tasks_carry_their_requests_tag(self, yappi: Any) -> None:
        async def alpha_body() -> None:
            await asyncio.gather(*(asyncio.create_task(shared_step()) for _ in range(4)))

        async def beta_body() -> None:
            await asyncio.create_task(nap_50ms())

        alpha, beta = YappiBackend(), YappiBackend()
        await asyncio.gather(in_request(alpha, alpha_body), in_request(beta, beta_body))

        assert functions_by_name(alpha)["shared_step"]["calls"] == 4
        assert "nap_50ms" not in functions_by_name(alpha)
        assert functions_by_name(beta)["nap_50ms"]["calls"] == 1
        assert "shared_step" not in functions_by_name(beta)

    @pytest.mark.asyncio
    async def test_unprofiled_code_running_meanwhile_is_nobodys(self, yappi: Any) -> None:
        async def bystander() -> None:
            await alpha_handler()

        backend = YappiBackend()
        outside = asyncio.create_task(bystander())
        await in_request(backend, beta_handler)
        await outside

        assert "bystander" not in functions_by_name(backend)
        assert "alpha_handler" not in functions_by_name(backend)

    def test_requests_on_loops_in_two_threads(self, yappi: Any) -> None:
        barrier = threading.Barrier(2, timeout=5)
        results: dict[str, YappiBackend] = {}

        def serve(label: str, handler: Callable[[], Awaitable[None]]) -> None:
            async def body() -> None:
                barrier.wait()  # both requests hold a share of the run at this point
                await handler()

            backend = YappiBackend()
            asyncio.run(in_request(backend, body))
            results[label] = backend

        threads = [
            threading.Thread(target=serve, args=("alpha", alpha_handler)),
            threading.Thread(target=serve, args=("beta", beta_handler)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)

        assert "alpha_handler" in functions_by_name(results["alpha"])
        assert "beta_handler" not in functions_by_name(results["alpha"])
        assert "beta_handler" in functions_by_name(results["beta"])
        assert "alpha_handler" not in functions_by_name(results["beta"])


class TestSharedRun:
    @pytest.mark.asyncio
    async def test_the_last_request_stops_and_clears_yappi(self, yappi: Any) -> None:
        alpha_started, alpha_stopped = asyncio.Event(), asyncio.Event()
        seen: dict[str, Any] = {}

        async def alpha_body() -> None:
            alpha_started.set()

        async def beta_body() -> None:
            await alpha_stopped.wait()
            seen["running_after_alpha"] = yappi.is_running()
            seen["users_after_alpha"] = yappi_session.users
            await nap_50ms()  # profiled although the request that started yappi is gone

        alpha, beta = YappiBackend(), YappiBackend()
        beta_request = asyncio.create_task(in_request(beta, beta_body))
        await in_request(alpha, alpha_body)
        alpha_stopped.set()
        await beta_request

        assert alpha_started.is_set()
        assert seen == {"running_after_alpha": True, "users_after_alpha": 1}
        assert 40.0 <= functions_by_name(beta)["nap_50ms"]["total_ms"] <= 150.0
        assert not yappi.is_running()
        assert yappi.get_func_stats().empty()

    @pytest.mark.asyncio
    async def test_the_tag_callback_is_removed_afterwards(self, yappi: Any) -> None:
        backend = YappiBackend()
        inside: list[tuple[contextvars.Context, int | None]] = []

        async def body() -> None:
            await nap_50ms()
            inside.append((contextvars.copy_context(), backend.tag))

        await in_request(backend, body)
        ((request_context, request_tag),) = inside
        assert request_tag is not None
        assert request_tag > 0

        # Someone else's yappi run, afterwards, in a context that still carries the request's
        # tag: the toolbar's tag callback must be gone, so yappi tags nothing.
        yappi.start()
        try:
            request_context.run(sync_helper)
        finally:
            yappi.stop()
        tags = {stat.tag for stat in yappi.get_func_stats() if stat.name == "sync_helper"}
        yappi.clear_stats()

        assert tags == {0}

    @pytest.mark.asyncio
    async def test_thread_names_come_from_c_code_during_the_run_only(self, yappi: Any) -> None:
        # yappi calls its thread-name callback inside its profile hook; a Python one could
        # switch threads there (see _CONTEXT_NAME). During the toolbar's run it is C code.
        names_during: list[str] = []

        async def handler() -> None:
            sync_helper()
            names_during.extend(stat.name for stat in yappi.get_thread_stats())

        await in_request(YappiBackend(), handler)
        assert names_during
        assert set(names_during) == {"thread"}

        yappi.start()  # afterwards: yappi's own default (the thread's class name) is back
        try:
            sync_helper()
        finally:
            yappi.stop()
        names_after = {stat.name for stat in yappi.get_thread_stats()}
        yappi.clear_stats()
        assert "_MainThread" in names_after

    @pytest.mark.asyncio
    @pytest.mark.parametrize("clock_type", ["cpu", "wall"])
    async def test_the_clock_type_and_thread_hook_are_put_back(
        self, yappi: Any, clock_type: str
    ) -> None:
        def app_thread_hook(frame: FrameType, event: str, arg: object) -> None:
            return None

        yappi.set_clock_type(clock_type)
        threading.setprofile(app_thread_hook)
        try:
            backend = YappiBackend()

            async def body() -> None:
                assert yappi.get_clock_type() == "wall"

            await in_request(backend, body)
            assert yappi.get_clock_type() == clock_type
            assert threading.getprofile() is app_thread_hook
        finally:
            threading.setprofile(None)
            yappi.set_clock_type("cpu")

    @pytest.mark.asyncio
    async def test_stop_is_idempotent_and_safe_without_start(self, yappi: Any) -> None:
        YappiBackend().stop()
        backend = YappiBackend()

        await in_request(backend, nap_50ms)
        functions = function_dicts(backend)
        backend.stop()

        assert "nap_50ms" in {function["name"] for function in functions}
        assert function_dicts(backend) == functions
        assert yappi_session.users == 0

    @pytest.mark.asyncio
    async def test_a_second_start_is_refused_and_the_share_still_released(self, yappi: Any) -> None:
        backend = YappiBackend()

        async def body() -> None:
            with pytest.raises(RuntimeError, match="already started"):
                backend.start(asyncio.get_running_loop())
            assert yappi_session.users == 1

        await in_request(backend, body)

        assert not yappi.is_running()

    @pytest.mark.asyncio
    async def test_stopping_from_another_task_releases_the_run(self, yappi: Any) -> None:
        backend = YappiBackend()
        started = asyncio.Event()

        async def request_task() -> None:
            backend.start(asyncio.get_running_loop())
            started.set()
            await nap_50ms()

        request = asyncio.create_task(request_task())
        await started.wait()
        await request
        backend.stop()  # not the task that started: its ContextVar token is foreign here

        assert "nap_50ms" in functions_by_name(backend)
        assert not yappi.is_running()

    @pytest.mark.asyncio
    async def test_a_start_that_fails_leaves_nothing_behind(self, yappi: Any) -> None:
        backend = YappiBackend()

        with pytest.raises(AttributeError):
            backend.start(None)  # type: ignore[arg-type]  # task tracking needs a real loop
        backend.stop()

        assert yappi_session.users == 0
        assert not yappi.is_running()
        assert function_dicts(backend) == []

    def test_releasing_a_run_nobody_holds_returns_nothing(self, yappi: Any) -> None:
        assert YappiSession().release(12345) == []


class TestSomeoneElsesYappi:
    @pytest.mark.asyncio
    async def test_a_running_yappi_is_left_alone(self, yappi: Any) -> None:
        yappi.start()
        try:
            backend = YappiBackend()
            await in_request(backend, alpha_handler)
            still_running = yappi.is_running()
            theirs = {stat.name for stat in yappi.get_func_stats()}
        finally:
            yappi.stop()
            yappi.clear_stats()

        table = function_profile(backend)
        assert still_running is True
        assert "alpha_handler" in theirs  # their profile kept everything
        assert table.functions == ()
        assert "already running" in str(table.error)
        assert [task["coro_name"] for task in task_dicts(backend)] == []
        assert yappi_session.users == 0

    @pytest.mark.asyncio
    async def test_stats_left_by_someone_else_are_not_cleared(self, yappi: Any) -> None:
        yappi.start()
        sync_helper()
        yappi.stop()
        try:
            backend = YappiBackend()

            async def body() -> None:
                await asyncio.create_task(shared_step())

            await in_request(backend, body)
            theirs = {stat.name for stat in yappi.get_func_stats()}
        finally:
            yappi.clear_stats()

        table = function_profile(backend)
        assert "sync_helper" in theirs
        assert table.functions == ()
        assert "holds stats" in str(table.error)
        assert [task["coro_name"] for task in task_dicts(backend)] == ["shared_step"]


class TestDrainingRun:
    @pytest.mark.asyncio
    async def test_a_run_accepts_a_bounded_number_of_requests(self, yappi: Any) -> None:
        session = YappiSession(max_requests=2)
        release = asyncio.Event()

        inside = [asyncio.Event(), asyncio.Event()]

        def held(entered: asyncio.Event) -> Callable[[], Awaitable[None]]:
            async def body() -> None:
                await shared_step()
                entered.set()
                await release.wait()

            return body

        first = YappiBackend(session=session)
        second = YappiBackend(session=session)
        requests = [
            asyncio.create_task(in_request(first, held(inside[0]))),
            asyncio.create_task(in_request(second, held(inside[1]))),
        ]
        await asyncio.gather(*(event.wait() for event in inside))
        assert session.users == 2
        third = YappiBackend(session=session)

        async def third_body() -> None:
            await asyncio.create_task(shared_step())

        await in_request(third, third_body)
        release.set()
        await asyncio.gather(*requests)
        fourth = YappiBackend(session=session)
        await in_request(fourth, nap_50ms)

        assert functions_by_name(first)["shared_step"]["calls"] == 1
        assert functions_by_name(second)["shared_step"]["calls"] == 1
        third_table = function_profile(third)
        assert third_table.functions == ()
        assert "draining" in str(third_table.error)
        assert [task["coro_name"] for task in task_dicts(third)] == ["shared_step"]
        assert "nap_50ms" in functions_by_name(fourth)  # a fresh run once it drained

    def test_at_least_one_request_per_run_and_one_function_per_table(self) -> None:
        with pytest.raises(ValueError, match="max_requests"):
            YappiSession(max_requests=0)
        with pytest.raises(ValueError, match="max_functions"):
            YappiBackend(max_functions=0)


class TestTasksUnderYappi:
    @pytest.mark.asyncio
    async def test_tasks_are_recorded_with_their_parents(self, yappi: Any) -> None:
        async def grandchild() -> None:
            await asyncio.sleep(0)

        async def child() -> None:
            await asyncio.create_task(grandchild())

        async def body() -> None:
            await asyncio.gather(asyncio.create_task(child()), asyncio.create_task(child()))

        backend = YappiBackend(max_tasks=3)
        await in_request(backend, body)
        table = backend.collected().tasks

        tasks = {task["task_id"]: task for task in table.to_dicts()}
        assert [task["coro_name"].rsplit(".", 1)[-1] for task in tasks.values()] == [
            "child",
            "child",
            "grandchild",
        ]
        assert tasks[1]["parent_id"] is None
        assert tasks[2]["parent_id"] is None
        assert tasks[3]["parent_id"] in {1, 2}
        assert all(task["state"] == "completed" for task in tasks.values())
        assert table.dropped == 1  # the second grandchild, past max_tasks
        assert backend.tracking.recorder.dropped == 1


# --- What yappi keeps alive (sumerc/yappi#217, #220), and the per-process limit ---------------

_COROUTINE_KINDS = (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)


async def step(index: int) -> int:
    await asyncio.sleep(0)
    return index


def gathering(count: int, refs: list[weakref.ref[Any]]) -> Callable[[], Awaitable[None]]:
    """A request body gathering ``count`` coroutines, each weakly referenced in ``refs``."""

    async def body() -> None:
        coroutines = [step(index) for index in range(count)]
        refs.extend(weakref.ref(coroutine) for coroutine in coroutines)
        await asyncio.gather(*coroutines)

    return body


def alive(refs: list[weakref.ref[Any]]) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def installed_yappi_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("yappi").split(".")[:3])


class TestYappiKeepsCoroutines:
    """The upstream bug this all works around, reproduced with the real yappi.

    If a yappi release fixes it, the first test fails on purpose: the limit, its default and
    the docs (docs/async-profiler-yappi.md) should then be revisited.
    """

    @pytest.mark.asyncio
    async def test_every_coroutine_a_profiled_request_ran_outlives_it(self, yappi: Any) -> None:
        if installed_yappi_version() > (1, 7, 6):
            pytest.fail(
                "yappi is newer than 1.7.6: check whether it still keeps coroutines, then "
                "revisit async_yappi_max_requests and docs/async-profiler-yappi.md"
            )
        unprofiled: list[weakref.ref[Any]] = []
        await in_request_without_yappi(gathering(20, unprofiled))
        profiled: list[weakref.ref[Any]] = []
        await in_request(YappiBackend(session=YappiSession()), gathering(20, profiled))

        assert (len(unprofiled), alive(unprofiled)) == (20, 0)
        # Stopped and cleared, yet kept (Python 3.11+; on 3.10 yappi takes no reference).
        kept = 20 if YAPPI_KEEPS_COROUTINES else 0
        assert (len(profiled), alive(profiled)) == (20, kept)
        assert not yappi.is_running()

    @pytest.mark.asyncio
    async def test_the_count_is_the_coroutines_really_kept(self, yappi: Any) -> None:
        """Counted from yappi's own call counts; the truth is what survives a collection."""
        session = YappiSession()
        for count in (5, 20):
            gc.collect()
            before = {id(obj) for obj in gc.get_objects() if isinstance(obj, _COROUTINE_KINDS)}
            counted_before = session.retention().coroutines
            refs: list[weakref.ref[Any]] = []
            await in_request(YappiBackend(session=session), gathering(count, refs))
            gc.collect()
            kept = [
                obj
                for obj in gc.get_objects()
                if isinstance(obj, _COROUTINE_KINDS) and id(obj) not in before
            ]
            counted = session.retention().coroutines - counted_before
            if YAPPI_KEEPS_COROUTINES:
                # Each step, its asyncio.sleep and that one's __sleep0, the body and the request.
                assert len(kept) == 3 * count + 2
                assert counted == len(kept)
            else:  # Python 3.10: yappi keeps none of the request's coroutines, and says so
                assert [c for c in kept if "step" in c.__qualname__] == []
                assert counted == 0
        assert session.retention().requests == 2

    @pytest.mark.asyncio
    async def test_the_estimate_is_near_what_tracemalloc_measures(self, yappi: Any) -> None:
        """Within a factor of 1.5 either way, on a request keeping ~200 coroutines."""
        session = YappiSession()
        refs: list[weakref.ref[Any]] = []
        await in_request(YappiBackend(session=session), gathering(60, refs))  # warm-up
        estimated_before = session.retention().approx_bytes
        gc.collect()
        tracemalloc.start()
        try:
            traced_before = tracemalloc.get_traced_memory()[0]
            for _ in range(20):
                await in_request(YappiBackend(session=session), gathering(60, refs))
            refs.clear()  # the list of weak references is the test's, not yappi's
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - traced_before
        finally:
            tracemalloc.stop()
        estimated = session.retention().approx_bytes - estimated_before
        if YAPPI_KEEPS_COROUTINES:  # it is real: at least 150 bytes per gathered coroutine
            assert traced > 20 * 150 * 60
        assert traced / 1.5 < estimated < traced * 1.5, (estimated, traced)


async def in_request_without_yappi(body: Callable[[], Awaitable[None]]) -> None:
    await asyncio.create_task(body())


class TestProcessLimit:
    @pytest.mark.asyncio
    async def test_past_the_limit_requests_get_tasks_and_say_why(self, yappi: Any) -> None:
        session = YappiSession()

        async def body() -> None:
            await asyncio.create_task(shared_step())

        backends = [YappiBackend(session=session, max_process_requests=2) for _ in range(3)]
        for backend in backends:
            await in_request(backend, body)

        assert [b.functions_error for b in backends[:2]] == [None, None]
        assert all("shared_step" in functions_by_name(b) for b in backends[:2])
        over = function_profile(backends[2])
        assert over.functions == ()
        assert "async_yappi_max_requests" in str(over.error)
        assert "already profiled 2 requests" in str(over.error)
        assert [task["coro_name"] for task in task_dicts(backends[2])] == ["shared_step"]
        assert session.profiled == 2
        assert session.retention().requests == 2
        with pytest.raises(YappiLimitError):
            session.acquire(limit=2)
        assert session.acquire(limit=None) > 0  # the limit is the caller's, not the session's
        session.release(0)

    @pytest.mark.asyncio
    async def test_requests_arriving_together_cannot_overshoot_it(self, yappi: Any) -> None:
        session = YappiSession(max_requests=50)
        release = asyncio.Event()
        entered = [asyncio.Event() for _ in range(5)]

        def held(event: asyncio.Event) -> Callable[[], Awaitable[None]]:
            async def body() -> None:
                event.set()
                await release.wait()

            return body

        backends = [YappiBackend(session=session, max_process_requests=3) for _ in range(5)]
        requests = [
            asyncio.create_task(in_request(backend, held(event)))
            for backend, event in zip(backends, entered, strict=True)
        ]
        await asyncio.gather(*(event.wait() for event in entered))
        assert session.users == 3
        release.set()
        await asyncio.gather(*requests)

        errors = [backend.functions_error for backend in backends]
        assert errors[:3] == [None, None, None]
        assert all("async_yappi_max_requests" in str(error) for error in errors[3:])
        assert session.profiled == 3

    def test_a_limit_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_process_requests"):
            YappiBackend(max_process_requests=0)

    def test_retention_is_process_wide_and_starts_empty(self) -> None:
        fresh = YappiSession().retention()
        assert fresh.to_dict() == {"requests": 0, "coroutines": 0, "approx_bytes": 0}
        assert yappi_session.retention().requests == yappi_session.profiled
