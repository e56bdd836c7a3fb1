"""AsyncRequestProfiler: one request's collectors started and stopped together, on real loops.

Requests run the way the panel runs them: in their own task, ``start`` there, ``stop`` after.
Every test runs on asyncio and on uvloop. What is checked is what a user relies on: a request
sees its own tasks and nobody else's, a failure to start leaves nothing installed on the loop
and says why, and the profile a request leaves in the history keeps nothing alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest
import uvloop

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.backends import BackendUnavailableError
from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.heartbeat import (
    LoopHeartbeat,
    heartbeats,
    installed_heartbeats,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile, Overhead, YappiRetention
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler, _final_overhead
from debug_toolbar.core.panels.async_profiler.recorder import TaskRecorder
from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.watchdog import (
    WATCHDOG_THREAD_NAME,
    Watchdog,
    running_watchdogs,
    stop_watchdogs,
)
from debug_toolbar.core.shared_hooks import hooks_in_use
from support import Rendezvous, in_request, live_objects_reachable

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.fixture(
    params=["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)],
)
def new_loop(request: pytest.FixtureRequest) -> LoopFactory:
    if request.param == "uvloop":
        return uvloop.new_event_loop
    return asyncio.new_event_loop


@pytest.fixture(autouse=True)
def _end_parked_watchdogs() -> Iterator[None]:
    yield
    stop_watchdogs()


def run(new_loop: LoopFactory, main: Callable[[], Awaitable[T]]) -> T:
    loop = new_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def watching() -> list[Watchdog]:
    """Watchdogs watching a heartbeat (a parked one waits for the next request: normal)."""
    return [watchdog for watchdog in running_watchdogs() if not watchdog.parked]


def nothing_installed(loop: asyncio.AbstractEventLoop) -> dict[str, object]:
    """Everything a request may install on its loop or process, as a comparable dict."""
    return {
        "task factory": loop.get_task_factory(),
        "heartbeats": installed_heartbeats(),
        "watching watchdogs": len(watching()),
        "shared hooks": hooks_in_use(),
    }


NOTHING: dict[str, object] = {
    "task factory": None,
    "heartbeats": 0,
    "watching watchdogs": 0,
    "shared hooks": {},
}


def profiler_for(
    path: str = "/",
    backend: AsyncProfilerBackend | None = None,
    **options: Any,
) -> AsyncRequestProfiler:
    context = RequestContext(method="GET", path=path, client_host="127.0.0.1")
    if backend is None:
        backend = TaskFactoryBackend(origin_ns=context.start_ns)
    return AsyncRequestProfiler(context, DebugToolbarConfig(**options), backend)


async def noop() -> None:
    return None


class TestLifecycle:
    def test_start_and_stop_on_a_real_loop(self, new_loop: LoopFactory) -> None:
        seen: dict[str, object] = {}

        async def body() -> None:
            loop = asyncio.get_running_loop()
            seen["factory installed"] = loop.get_task_factory() is not None
            seen["heartbeats"] = installed_heartbeats()
            # One acquisition for the detector and the lag monitor together.
            seen["heartbeat users"] = heartbeats.users(loop)
            seen["watching"] = len(watching())
            await asyncio.create_task(noop(), name="child")

        async def main() -> tuple[AsyncProfile, dict[str, object]]:
            profiler = profiler_for()
            profile = await in_request(profiler, body)
            seen["running after stop"] = profiler.running
            return profile, nothing_installed(asyncio.get_running_loop())

        profile, after = run(new_loop, main)
        assert seen == {
            "factory installed": True,
            "heartbeats": 1,
            "heartbeat users": 1,
            "watching": 1,
            "running after stop": False,
        }
        assert after == NOTHING
        assert profile.backend == "taskfactory"
        assert [event.name for event in profile.tasks.events()] == ["child"]
        assert profile.lag is not None
        assert profile.lag.threshold_ms == DebugToolbarConfig().async_event_loop_lag_threshold_ms

    def test_stop_is_idempotent_and_returns_the_same_profile(self, new_loop: LoopFactory) -> None:
        async def main() -> tuple[AsyncProfile, AsyncProfile, list[str]]:
            profiler = profiler_for()
            first = await in_request(profiler, lambda: asyncio.create_task(noop(), name="one"))
            await asyncio.create_task(noop(), name="after the request")
            second = profiler.stop()
            return first, second, [event.name for event in second.tasks.events()]

        first, second, names = run(new_loop, main)
        assert second is first
        assert names == ["one"]

    def test_a_second_start_is_refused_and_the_first_goes_on(self, new_loop: LoopFactory) -> None:
        errors: list[str] = []
        profiler = profiler_for()

        async def body() -> None:
            with pytest.raises(RuntimeError, match="already being profiled") as refused:
                profiler.start()
            errors.append(str(refused.value))
            await asyncio.create_task(noop(), name="still tracked")

        async def main() -> tuple[AsyncProfile, dict[str, object]]:
            profile = await in_request(profiler, body)
            return profile, nothing_installed(asyncio.get_running_loop())

        profile, after = run(new_loop, main)
        assert errors == ["this request is already being profiled"]
        assert [event.name for event in profile.tasks.events()] == ["still tracked"]
        assert after == NOTHING
        with pytest.raises(RuntimeError, match="already being profiled"):
            profiler.start()  # stopped: its profile is final

    def test_the_profile_is_frozen_once_with_the_callers_fixed_costs(
        self, new_loop: LoopFactory
    ) -> None:
        retention = YappiRetention(requests=2, coroutines=80, approx_bytes=32_000, limit=500)
        reads: list[str] = []

        def own_ms() -> float:
            reads.append("read")
            return 7.5

        async def main() -> tuple[AsyncProfile, AsyncProfile]:
            profiler = profiler_for()
            profiler.start()
            await asyncio.create_task(noop(), name="child")
            profiler.stop_collecting()
            profiler.stop_collecting()  # idempotent, as the panel may call it twice
            assert not profiler.running
            profile = profiler.stop(own_ms=own_ms, heartbeat_ms=0.25, yappi_retention=retention)
            return profile, profiler.stop(own_ms=own_ms, heartbeat_ms=9.0)

        profile, again = run(new_loop, main)
        assert again is profile
        assert reads == ["read"]
        assert (profile.overhead.setup_ms, profile.overhead.heartbeat_ms) == (7.5, 0.25)
        assert profile.yappi_retention is retention
        assert profile.summary.profiling_overhead_ms >= 7.75
        assert [event.name for event in profile.tasks.events()] == ["child"]

    def test_the_final_overhead_keeps_what_the_backend_measured(self) -> None:
        collected = Overhead(
            tracking_ms=0.25,
            setup_ms=0.5,
            report_ms=4.0,
            profiler_ms=2.0,
            steps_ms=1.0,
            heartbeat_ms=None,
            tracking_estimated=True,
            per_task_ns=2_500.0,
        )
        final = _final_overhead(collected, steps_ms=None, own_ms=lambda: 3.0, heartbeat_ms=0.125)
        # Every fixed cost of the caller's hooks but yappi's own part, which has its field.
        assert final == replace(collected, setup_ms=1.0, heartbeat_ms=0.125)
        # Never less than the backend's own setup; nothing measured: as collected.
        assert _final_overhead(
            collected, steps_ms=1.5, own_ms=lambda: 2.25, heartbeat_ms=None
        ) == replace(collected, steps_ms=1.5)
        assert (
            _final_overhead(collected, steps_ms=None, own_ms=None, heartbeat_ms=None) == collected
        )

    def test_stop_without_start_is_an_empty_profile(self) -> None:
        profile = profiler_for().stop()
        assert (len(profile.tasks), profile.blocking_calls) == (0, ())
        assert profile.lag is not None
        assert (profile.lag.samples, profile.lag.beats, profile.lag.max_lag_ms) == ([], 0, 0.0)
        assert profile.summary.total_tasks == 0

    def test_switched_off_collectors_are_not_created(self, new_loop: LoopFactory) -> None:
        profiler = profiler_for(
            async_enable_blocking_detection=False, async_enable_event_loop_monitoring=False
        )
        assert (profiler.detector, profiler.lag_monitor) == (None, None)

        async def body() -> None:
            assert (installed_heartbeats(), len(watching())) == (0, 0)

        profile = run(new_loop, lambda: in_request(profiler, body))
        assert (profile.lag, profile.blocking_calls) == (None, ())
        assert profile.summary.max_lag_ms is None


class CannotStartThreads:
    """``threading.Thread.start`` for the watchdog thread fails, as at the process's limit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refused = 0
        real_start = threading.Thread.start

        def start(thread: threading.Thread) -> None:
            if thread.name == WATCHDOG_THREAD_NAME:
                self.refused += 1
                raise RuntimeError("can't start new thread")
            real_start(thread)

        monkeypatch.setattr(threading.Thread, "start", start)


class TestAFailedStartLeavesNothing:
    """Whichever collector fails to start, the others are stopped and the error propagates."""

    @staticmethod
    def failed_start(
        new_loop: LoopFactory, profiler: AsyncRequestProfiler, error: type[BaseException]
    ) -> tuple[str, dict[str, object], dict[str, object], AsyncProfile]:
        async def main() -> tuple[str, dict[str, object], dict[str, object], AsyncProfile]:
            loop = asyncio.get_running_loop()
            message = ""

            async def request() -> AsyncProfile:
                nonlocal message
                with pytest.raises(error) as raised:
                    profiler.start()
                message = str(raised.value)
                state = nothing_installed(loop)
                await asyncio.create_task(noop(), name="not tracked")
                installed.update(state)
                return profiler.stop()  # as the panel does, whatever start did

            installed: dict[str, object] = {}
            profile = await asyncio.create_task(request())
            return message, installed, nothing_installed(loop), profile

        return run(new_loop, main)

    def test_the_detector_cannot_start_its_watchdog(
        self, new_loop: LoopFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads = CannotStartThreads(monkeypatch)
        profiler = profiler_for()
        message, during, after, profile = self.failed_start(new_loop, profiler, RuntimeError)
        assert message == "can't start new thread"
        assert threads.refused == 1
        assert during == after == NOTHING
        assert len(profile.tasks) == 0
        assert profile.summary.total_tasks == 0

    def test_the_lag_monitor_cannot_start(
        self, new_loop: LoopFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A seam: nothing in the lag monitor fails on its own; the heartbeat refusing it does.
        def refuse(heartbeat: LoopHeartbeat, listener: object) -> None:
            raise OSError("lag monitor refused")

        monkeypatch.setattr(LoopHeartbeat, "add_lag_listener", refuse)
        profiler = profiler_for()
        message, during, after, profile = self.failed_start(new_loop, profiler, OSError)
        assert message == "lag monitor refused"
        assert during == after == NOTHING  # the detector, started first, was stopped
        assert len(profile.tasks) == 0

    def test_the_backend_cannot_start(
        self, new_loop: LoopFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend

        monkeypatch.setitem(sys.modules, "yappi", None)  # `import yappi` fails
        profiler = profiler_for(backend=YappiBackend())
        message, during, after, profile = self.failed_start(
            new_loop, profiler, BackendUnavailableError
        )
        assert "pip install 'debug-toolbar[yappi]'" in message
        assert during == after == NOTHING  # the detector and the lag monitor were stopped
        assert (len(profile.tasks), profile.backend) == (0, "yappi")


FORBIDDEN = (
    asyncio.AbstractEventLoop,
    asyncio.Future,
    threading.Thread,
    types.FrameType,
    RequestContext,
    TaskRecorder,
    TaskTracking,
    AsyncProfilerBackend,
    BlockingCallDetector,
    EventLoopLagMonitor,
    LoopHeartbeat,
    Watchdog,
    AsyncRequestProfiler,
)


class TestTheProfileKeepsNothingAlive:
    def test_loop_backend_and_collectors_are_freed(self, new_loop: LoopFactory) -> None:
        refs: dict[str, weakref.ref[Any]] = {}

        async def body() -> None:
            await asyncio.gather(noop(), noop())

        async def main() -> AsyncProfile:
            profiler = profiler_for()
            refs["backend"] = weakref.ref(profiler.backend)
            refs["detector"] = weakref.ref(profiler.detector)
            refs["lag monitor"] = weakref.ref(profiler.lag_monitor)
            refs["profiler"] = weakref.ref(profiler)
            return await in_request(profiler, body)

        loop = new_loop()
        try:
            profile = loop.run_until_complete(main())
        finally:
            loop.close()
        refs["loop"] = weakref.ref(loop)
        del loop
        gc.collect()

        assert {name: ref() is None for name, ref in refs.items()} == {
            "backend": True,
            "detector": True,
            "lag monitor": True,
            "profiler": True,
            "loop": True,
        }
        assert len(profile.tasks) == 2  # the profile itself is intact
        assert [event.coro_name for event in profile.tasks.events()] == ["noop", "noop"]

    def test_nothing_live_is_reachable_from_a_profile(self, new_loop: LoopFactory) -> None:
        async def body() -> None:
            await asyncio.gather(noop(), noop())
            with contextlib.suppress(ValueError):
                await asyncio.create_task(failing())

        async def failing() -> None:
            raise ValueError("bad row")

        async def main() -> tuple[AsyncProfile, list[str], list[str]]:
            profiler = profiler_for()
            profile = await in_request(profiler, body)
            # The walk sees through the profile's frozen dataclasses, tuples and dicts: a loop
            # slipped into a column deep inside would be found.
            tainted = replace(
                profile,
                tasks=replace(profile.tasks, names={0: asyncio.get_running_loop()}),  # type: ignore[dict-item]
            )
            # Checked while the loop, the tasks and the collectors are all still alive.
            return (
                profile,
                live_objects_reachable(profile, FORBIDDEN),
                live_objects_reachable(tainted, FORBIDDEN),
            )

        profile, found, found_in_tainted = run(new_loop, main)
        assert found == []
        assert found_in_tainted in (["_UnixSelectorEventLoop"], ["Loop"])
        assert [event.state for event in profile.tasks.events()] == [
            "completed",
            "completed",
            "failed",
        ]


class TestOverlappingRequests:
    REQUESTS = 20

    def test_each_request_sees_only_its_own_tasks(self, new_loop: LoopFactory) -> None:
        started = Rendezvous(self.REQUESTS)
        spawned = Rendezvous(self.REQUESTS * 3)

        async def grandchild() -> None:
            await asyncio.sleep(0)

        async def child(request: int, index: int) -> None:
            await spawned.wait()  # every request's children are alive at once
            await asyncio.create_task(grandchild(), name=f"r{request}-c{index}-g")

        def body(request: int) -> Callable[[], Awaitable[None]]:
            async def handler() -> None:
                await started.wait()  # every request is being profiled
                await asyncio.gather(
                    *(
                        asyncio.create_task(child(request, index), name=f"r{request}-c{index}")
                        for index in range(3)
                    )
                )

            return handler

        async def main() -> tuple[list[AsyncProfile], dict[str, object]]:
            profiles = await asyncio.gather(
                *(
                    in_request(profiler_for(f"/r{request}"), body(request))
                    for request in range(self.REQUESTS)
                )
            )
            return list(profiles), nothing_installed(asyncio.get_running_loop())

        profiles, after = run(new_loop, main)
        assert after == NOTHING
        for request, profile in enumerate(profiles):
            events = profile.tasks.events(stacks=False)
            names = {event.task_id: event.name for event in events}
            assert sorted(names.values()) == sorted(
                [f"r{request}-c{index}" for index in range(3)]
                + [f"r{request}-c{index}-g" for index in range(3)]
            ), request
            # Each grandchild's parent is its own child, in this request's numbering.
            parents = {event.name: names.get(event.parent_id or 0) for event in events}
            assert parents == {
                **{f"r{request}-c{index}": None for index in range(3)},
                **{f"r{request}-c{index}-g": f"r{request}-c{index}" for index in range(3)},
            }
            assert profile.summary.completed == 6


class TestYappiBookkeeping:
    @pytest.mark.asyncio
    async def test_the_toolbars_own_hooks_are_not_the_requests_functions(self) -> None:
        """With yappi, the request's tag is set only around the request's code: installing the
        detector's watchdog and heartbeat and unwinding the collectors (threading, contextlib)
        is the toolbar's work, not the request's."""
        pytest.importorskip("yappi", reason="yappi is not installed here")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend

        async def body() -> None:
            await asyncio.gather(noop(), noop())

        profile = await in_request(profiler_for(backend=YappiBackend()), body)
        assert profile.functions is not None
        assert profile.functions.error is None
        names = {function.name for function in profile.functions.functions}
        assert {"noop", "body"} <= names
        bookkeeping = {
            function.name
            for function in profile.functions.functions
            if function.filename in (threading.__file__, contextlib.__file__)
        }
        assert bookkeeping == set()
