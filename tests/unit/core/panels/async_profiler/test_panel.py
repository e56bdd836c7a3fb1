"""AsyncProfilerPanel: metadata, lifecycle through the toolbar, stats, subtitle, backends."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import types
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import debug_toolbar
from debug_toolbar.core import panels as core_panels
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE, RequestContext
from debug_toolbar.core.panels import async_profiler
from debug_toolbar.core.panels.async_profiler import backends
from debug_toolbar.core.panels.async_profiler.backends import (
    BackendUnavailableError,
    select_backend,
)
from debug_toolbar.core.panels.async_profiler.export import chrome_trace
from debug_toolbar.core.panels.async_profiler.panel import BACKEND_COOKIE, AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler
from debug_toolbar.core.panels.async_profiler.task_hooks import task_hooks
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.watchdog import running_watchdogs
from debug_toolbar.core.panels.timer import TimerPanel
from debug_toolbar.core.records import RequestRecord
from debug_toolbar.core.rendering import render_panel
from debug_toolbar.core.toolbar import DebugToolbar
from support import live_objects_reachable, marked_line

App = Callable[[], Awaitable[Any]]
CONFIG = DebugToolbarConfig(panels=[AsyncProfilerPanel])
"""What the pages pass to render_panel: the panel's class adds its timeline."""


async def noop() -> None:
    return None


async def fails() -> None:
    raise KeyError("missing")


async def spawning_app() -> None:
    """Two gathered children (one of them with a child), a failure and a cancellation."""

    async def parent() -> None:
        await asyncio.create_task(noop(), name="grandchild")

    await asyncio.gather(  # gather children
        asyncio.create_task(parent(), name="parent"), asyncio.create_task(noop(), name="sibling")
    )
    failing = asyncio.create_task(fails(), name="failing")
    with pytest.raises(KeyError):
        await failing  # await failing
    cancelled = asyncio.create_task(asyncio.sleep(3600), name="cancelled")
    await asyncio.sleep(0)  # await sleep
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled  # await cancelled


async def profile(
    app: App,
    *,
    headers: list[tuple[str, str]] | None = None,
    panels: tuple[type[Any], ...] = (AsyncProfilerPanel,),
    config: DebugToolbarConfig | None = None,
    **options: Any,
) -> tuple[DebugToolbar, RequestRecord]:
    """One request through the toolbar, in its own task, the way the middleware runs it.

    ``config`` replaces the one built from ``panels`` and ``options``.
    """
    if config is None:
        options.setdefault("async_profiler_backend", "taskfactory")
        config = DebugToolbarConfig(panels=panels, **options)
    context = RequestContext(
        method="GET", path="/spawn", client_host="127.0.0.1", headers=headers or []
    )
    toolbar = DebugToolbar(config, context)

    async def request() -> tuple[DebugToolbar, RequestRecord]:
        await toolbar.process_request()
        try:
            await app()
        finally:
            context.status_code = 200
            await toolbar.process_response()
        await toolbar.generate_stats()
        return toolbar, toolbar.build_record()

    return await asyncio.create_task(request())


class TestMetadata:
    def test_ids_titles_and_template(self) -> None:
        assert AsyncProfilerPanel.panel_id == "AsyncProfilerPanel"
        assert AsyncProfilerPanel.title == "Async"
        assert AsyncProfilerPanel.nav_title == "Async"
        assert AsyncProfilerPanel.template == "panels/async_profiler.html"
        assert AsyncProfilerPanel.has_content is True

    def test_exported_from_every_level(self) -> None:
        assert debug_toolbar.AsyncProfilerPanel is AsyncProfilerPanel
        assert core_panels.AsyncProfilerPanel is AsyncProfilerPanel
        assert async_profiler.AsyncProfilerPanel is AsyncProfilerPanel
        assert "AsyncProfilerPanel" in debug_toolbar.__all__
        assert "AsyncProfilerPanel" in core_panels.__all__

    def test_enabled_through_extra_panels_by_path_or_class(self) -> None:
        by_path = DebugToolbarConfig(
            extra_panels=["debug_toolbar.core.panels.async_profiler.AsyncProfilerPanel"]
        )
        by_class = DebugToolbarConfig(extra_panels=[AsyncProfilerPanel])
        assert by_path.panel_classes[-1] is AsyncProfilerPanel
        assert by_class.panel_classes == by_path.panel_classes


class TestStats:
    @pytest.mark.asyncio
    async def test_real_tasks_summary_and_subtitle(self) -> None:
        _toolbar, record = await profile(spawning_app)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is None
        stats = panel.stats
        assert set(stats) == {
            "backend",
            "backend_note",
            "yappi_retention",
            "summary",
            "blocking_calls",
            "lag",
            "tasks",
            "overhead",
            "request_task",
            "steps_unavailable",
            "time_breakdown",
            "slow_steps",
            *(() if stats["steps_unavailable"] else ("steps", "await_sites")),
        }
        assert stats["backend"] == "taskfactory"
        overhead = stats["overhead"]
        # The summary is what the request paid; building the task list came later (report).
        assert stats["summary"] == {
            "total_tasks": 5,
            "completed": 3,
            "cancelled": 1,
            "failed": 1,
            "pending": 0,
            "dropped": 0,
            "profiling_overhead_ms": pytest.approx(
                overhead["tracking_ms"]
                + overhead["setup_ms"]
                + overhead.get("steps_ms", 0.0)
                + overhead["heartbeat_ms"]
            ),
            "blocking_calls": 0,
            "suffered_blocking_calls": 0,
            "max_lag_ms": stats["lag"]["max_lag_ms"],
            "overhead_estimated": True,
            # The request's own task's longest await (checked below): none without steps.
            "slowest_await": None
            if stats["steps_unavailable"]
            else stats["summary"]["slowest_await"],
        }
        if not stats["steps_unavailable"]:
            # It awaited the gather, the failing task, a sleep(0) and the cancelled task.
            slowest = stats["summary"]["slowest_await"]
            assert slowest["filename"] == __file__
            assert slowest["function"] == "spawning_app"
            markers = ("gather children", "await failing", "await sleep", "await cancelled")
            assert slowest["lineno"] in {marked_line(__file__, marker) for marker in markers}
            assert slowest["duration_ms"] > 0
        assert stats["summary"]["profiling_overhead_ms"] > 0
        # The tasks' share is estimated (5 tasks at this process's calibrated cost); the fixed
        # costs are the panel's hooks, measured, so more than the task factory's part alone.
        assert overhead["tracking_estimated"] is True
        assert overhead["per_task_ns"] > 0
        assert overhead["tracking_ms"] == pytest.approx(5 * overhead["per_task_ns"] / 1e6, abs=1e-6)
        assert overhead["setup_ms"] > 0
        assert overhead["heartbeat_ms"] >= 0
        rows = [(t["task_id"], t["parent_id"], t["name"], t["state"]) for t in stats["tasks"]]
        assert rows == [
            (1, None, "parent", "completed"),
            (2, None, "sibling", "completed"),
            (3, 1, "grandchild", "completed"),
            (4, None, "failing", "failed"),
            (5, None, "cancelled", "cancelled"),
        ]
        failing = stats["tasks"][3]
        assert failing["exception"] == {"type": "KeyError", "message": "'missing'"}
        assert set(failing) == {
            "task_id",
            "parent_id",
            "name",
            "coro_name",
            "state",
            "start_ms",
            "end_ms",
            "duration_ms",
            "exception",
            "stack",
        }
        assert set(failing["stack"][0]) == {"filename", "lineno", "function", "code"}
        assert (
            failing["stack"][0]["code"] == 'failing = asyncio.create_task(fails(), name="failing")'
        )
        assert panel.nav_subtitle == "5 tasks"
        assert overhead["report_ms"] > 0

    @pytest.mark.asyncio
    async def test_all_times_lie_within_the_request(self) -> None:
        _toolbar, record = await profile(spawning_app)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        for task in panel.stats["tasks"]:
            assert 0 <= task["start_ms"] <= task["end_ms"] <= record.duration_ms

    @pytest.mark.asyncio
    async def test_subtitle_singular_and_none(self) -> None:
        async def one() -> None:
            await asyncio.create_task(noop())

        _toolbar, record = await profile(one)
        assert record.panel("AsyncProfilerPanel").nav_subtitle == "1 task"  # type: ignore[union-attr]
        _toolbar, record = await profile(noop)
        assert record.panel("AsyncProfilerPanel").nav_subtitle == "0 tasks"  # type: ignore[union-attr]

    @pytest.mark.asyncio
    async def test_cap_from_the_config(self) -> None:
        async def many() -> None:
            await asyncio.gather(*(noop() for _ in range(12)))

        _toolbar, record = await profile(many, async_max_tasks=10)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert len(panel.stats["tasks"]) == 10
        assert panel.stats["summary"]["dropped"] == 2
        assert panel.stats["summary"]["total_tasks"] == 12
        assert panel.nav_subtitle == "12 tasks"

    @pytest.mark.asyncio
    async def test_stack_options_from_the_config(self) -> None:
        async def nested(level: int = 5) -> None:
            if level:
                await nested(level - 1)
            else:
                await asyncio.create_task(noop())

        _toolbar, record = await profile(nested, async_max_stack_depth=2)
        (task,) = record.panel("AsyncProfilerPanel").stats["tasks"]  # type: ignore[union-attr]
        assert [frame["function"].rsplit(".", 1)[-1] for frame in task["stack"]] == [
            "nested",
            "nested",
        ]
        _toolbar, record = await profile(nested, async_capture_task_stacks=False)
        (task,) = record.panel("AsyncProfilerPanel").stats["tasks"]  # type: ignore[union-attr]
        assert task["stack"] == []

    @pytest.mark.asyncio
    async def test_collection_stops_at_process_response(self) -> None:
        config = DebugToolbarConfig(
            panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory"
        )
        context = RequestContext(method="GET", path="/", client_host="127.0.0.1")
        toolbar = DebugToolbar(config, context)
        loop = asyncio.get_running_loop()

        async def request() -> None:
            await toolbar.process_request()
            await asyncio.create_task(noop(), name="during")
            await toolbar.process_response()
            assert loop.get_task_factory() is None
            await asyncio.create_task(noop(), name="after")
            await toolbar.generate_stats()

        await asyncio.create_task(request())
        panel = toolbar.build_record().panel("AsyncProfilerPanel")
        assert panel is not None
        assert [task["name"] for task in panel.stats["tasks"]] == ["during"]


_LIVE = (
    asyncio.AbstractEventLoop,
    asyncio.Future,
    types.FrameType,
    types.CoroutineType,
    RequestContext,
)
"""What a record waiting to be read must not keep alive: its builders hold plain data."""


class TestDeferredTaskList:
    @pytest.mark.asyncio
    async def test_the_task_list_is_built_when_the_record_is_read(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        built: list[int] = []
        to_dicts = TaskTable.to_dicts

        def counting_to_dicts(self: TaskTable) -> list[dict[str, Any]]:
            built.append(len(self))
            return to_dicts(self)

        monkeypatch.setattr(TaskTable, "to_dicts", counting_to_dicts)
        toolbar, record = await profile(spawning_app)
        # The request is answered and recorded with the counts only...
        (live_panel,) = toolbar.panels
        assert "tasks" not in live_panel.get_stats()
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.nav_subtitle == "5 tasks"
        assert built == []
        # ...and the first read builds the list once, agreeing with the counts.
        tasks = panel.stats["tasks"]
        assert panel.stats["tasks"] is tasks
        assert built == [5]
        summary = panel.stats["summary"]
        for state in ("completed", "cancelled", "failed", "pending"):
            assert summary[state] == sum(1 for task in tasks if task["state"] == state)
        assert summary["total_tasks"] == len(tasks)

    @pytest.mark.asyncio
    async def test_the_profile_is_frozen_once_when_the_head_or_the_detail_is_first_read(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        frozen: list[AsyncProfile] = []
        stop = AsyncRequestProfiler.stop

        def counting_stop(self: AsyncRequestProfiler, **kwargs: Any) -> AsyncProfile:
            profile = stop(self, **kwargs)
            frozen.append(profile)
            return profile

        monkeypatch.setattr(AsyncRequestProfiler, "stop", counting_stop)
        toolbar, record = await profile(spawning_app)
        (live_panel,) = toolbar.panels
        assert live_panel.get_stats() == {}  # nothing recorded while the request was answered
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.nav_subtitle == "5 tasks"  # counted, not built
        assert frozen == []
        summary = panel.head["summary"]  # the history's columns read this
        assert (summary["total_tasks"], summary["failed"], summary["cancelled"]) == (5, 1, 1)
        assert len(frozen) == 1
        stats = panel.stats
        assert stats["summary"] == summary
        assert len(stats["tasks"]) == 5
        assert len(frozen) == 1  # the detail is read from the same profile
        # The fixed costs were measured while the request was answered, not when read.
        assert summary["profiling_overhead_ms"] == pytest.approx(
            AsyncProfile.from_dict(stats).overhead.request_ms
        )

    @pytest.mark.asyncio
    async def test_a_request_that_kept_a_stall_is_frozen_at_once(self) -> None:
        toolbar, record = await profile(
            blocking_app(0.06),
            async_blocking_threshold_ms=30.0,
            async_event_loop_lag_threshold_ms=5.0,
        )
        # Its stall names the request that held the loop: resolved now, so that no other
        # request's context lives on in this record.
        (live_panel,) = toolbar.panels
        assert live_panel.get_stats()["summary"]["blocking_calls"] == 1
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.nav_subtitle == "0 tasks · ⚠ 1 blocking"

    def test_a_record_waiting_to_be_read_keeps_no_loop_or_request_alive(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            toolbar, record = loop.run_until_complete(profile(spawning_app))
        finally:
            loop.close()
        loop_ref = weakref.ref(loop)
        del loop, toolbar
        gc.collect()
        assert loop_ref() is None
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        # Nor its tasks, coroutines, frames or context (headers, cookies): the builders
        # waiting in the record hold the stopped collectors' plain data only.
        assert live_objects_reachable(panel, _LIVE) == []
        assert panel.head["summary"]["total_tasks"] == 5  # frozen now, from plain data only
        assert len(panel.stats["tasks"]) == 5


class TestRobustness:
    @pytest.mark.asyncio
    async def test_response_and_stats_without_a_start(self) -> None:
        config = DebugToolbarConfig(panels=[AsyncProfilerPanel])
        toolbar = DebugToolbar(config, RequestContext(method="GET", path="/"))
        panel = toolbar.get_panel("AsyncProfilerPanel")
        assert isinstance(panel, AsyncProfilerPanel)
        await panel.process_response(toolbar.context)
        await panel.process_response(toolbar.context)
        assert await panel.generate_stats(toolbar.context) == {}
        assert panel.get_nav_subtitle() == ""

    @pytest.mark.asyncio
    async def test_an_app_that_raises_still_restores_the_loop(self) -> None:
        async def broken() -> None:
            asyncio.create_task(asyncio.sleep(3600), name="left-behind")  # noqa: RUF006
            raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError, match="handler failed"):
            await profile(broken)
        assert asyncio.get_running_loop().get_task_factory() is None
        assert task_hooks.get(asyncio.get_running_loop()) is None
        for task in asyncio.all_tasks():
            if task.get_name() == "left-behind":
                task.cancel()

    @pytest.mark.asyncio
    async def test_turned_off_by_this_browser_installs_nothing(self) -> None:
        loop = asyncio.get_running_loop()
        factories: list[Any] = []

        async def app() -> None:
            factories.append(loop.get_task_factory())
            await asyncio.create_task(noop())

        _toolbar, record = await profile(
            app, headers=[("cookie", f"{DISABLED_PANELS_COOKIE}=AsyncProfilerPanel")]
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.enabled is False
        assert panel.stats == {}
        assert factories == [None]


class TestBackendSelection:
    def test_taskfactory(self) -> None:
        assert select_backend("taskfactory") is TaskFactoryBackend

    def test_auto_without_yappi_is_the_task_factory(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)  # makes `import yappi` fail
        assert select_backend("auto") is TaskFactoryBackend

    def test_yappi_without_yappi_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        with pytest.raises(BackendUnavailableError, match=r"pip install 'debug-toolbar\[yappi\]'"):
            select_backend("yappi")

    def test_yappi_and_auto_with_yappi_installed(self) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend

        assert select_backend("yappi") is YappiBackend
        assert select_backend("auto") is YappiBackend

    def test_yappi_backend_module_missing_is_a_clear_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("yappi")
        monkeypatch.setattr(
            backends, "YAPPI_BACKEND_MODULE", "debug_toolbar.core.panels.async_profiler.nowhere"
        )
        with pytest.raises(BackendUnavailableError, match="not available in this version"):
            select_backend("yappi")
        assert select_backend("auto") is TaskFactoryBackend

    def test_unknown_name(self) -> None:
        with pytest.raises(ValueError, match="async_profiler_backend"):
            select_backend("perf")

    @pytest.mark.asyncio
    async def test_yappi_requested_without_yappi_fails_the_panel_not_the_request(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Such a config is refused when it is built (test_config); this is the panel's own
        # guard, for a config changed after it was checked.
        config = DebugToolbarConfig(panels=[TimerPanel, AsyncProfilerPanel])
        config.async_profiler_backend = "yappi"
        monkeypatch.setitem(sys.modules, "yappi", None)
        served: list[bool] = []

        async def app() -> None:
            await asyncio.create_task(noop())
            served.append(True)

        _toolbar, record = await profile(app, config=config)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is not None
        assert panel.error.startswith("BackendUnavailableError: ")
        assert "pip install 'debug-toolbar[yappi]'" in panel.error
        assert panel.nav_subtitle == "error"
        assert served == [True]
        timer = record.panel("TimerPanel")
        assert timer is not None
        assert timer.error is None
        assert timer.stats["total_ms"] > 0

    @pytest.mark.asyncio
    async def test_the_panel_shows_which_backend_ran(self) -> None:
        pytest.importorskip("yappi")

        async def app() -> None:
            await asyncio.create_task(noop(), name="under-yappi")

        _toolbar, record = await profile(app, async_profiler_backend="yappi")
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats["backend"] == "yappi"
        assert [task["name"] for task in panel.stats["tasks"]] == ["under-yappi"]
        functions = panel.stats["profile"]  # yappi's function profile, under one key
        assert functions["clock"] == "wall"
        assert functions["error"] is None
        assert any(function["name"].endswith("noop") for function in functions["functions"])
        assert functions["cost_note"]


class TestYappiFunctionTable:
    @pytest.mark.asyncio
    async def test_the_toolbars_own_work_is_not_the_requests(self) -> None:
        """Detection and lag on: installing the heartbeat and waking the watchdog (threading's
        Event.set, Thread.start...) happen outside yappi's tag, so none is listed."""
        pytest.importorskip("yappi")

        async def app() -> None:
            await asyncio.create_task(noop(), name="under-yappi")
            await asyncio.sleep(0.01)

        _toolbar, record = await profile(
            app,
            async_profiler_backend="yappi",
            async_enable_blocking_detection=True,
            async_enable_event_loop_monitoring=True,
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        functions = panel.resolve().stats["profile"]["functions"]
        assert any(function["name"].endswith("noop") for function in functions)
        listed = {(function["filename"], function["name"]) for function in functions}
        assert [f for f in listed if f[0].endswith("threading.py")] == []
        assert [f for f in listed if "debug_toolbar" in f[0]] == []


class TestBackendCookie:
    """A browser switches backends from the panel; the config stays the default for others."""

    @pytest.mark.asyncio
    async def test_cookie_selects_yappi_over_the_config(self) -> None:
        pytest.importorskip("yappi")
        _toolbar, record = await profile(
            spawning_app, headers=[("cookie", f"{BACKEND_COOKIE}=yappi")]
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats["backend"] == "yappi"
        assert "profile" in panel.stats

    @pytest.mark.asyncio
    async def test_cookie_selects_taskfactory_over_a_yappi_config(self) -> None:
        pytest.importorskip("yappi")
        _toolbar, record = await profile(
            spawning_app,
            headers=[("cookie", f"{BACKEND_COOKIE}=taskfactory")],
            async_profiler_backend="yappi",
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["backend"] == "taskfactory"
        assert "profile" not in panel.stats

    @pytest.mark.asyncio
    async def test_cookie_asking_for_missing_yappi_falls_back_with_a_note(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        _toolbar, record = await profile(
            spawning_app, headers=[("cookie", f"{BACKEND_COOKIE}=yappi")]
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats["backend"] == "taskfactory"
        assert "debug-toolbar[yappi]" in panel.stats["backend_note"]

    @pytest.mark.asyncio
    async def test_the_cookie_among_the_apps_own_cookies(self) -> None:
        pytest.importorskip("yappi")
        headers = [
            ("cookie", "session=abc; theme=dark"),
            ("Cookie", f"a=1; {BACKEND_COOKIE}=taskfactory"),
        ]
        _toolbar, record = await profile(
            spawning_app, headers=headers, async_profiler_backend="yappi"
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["backend"] == "taskfactory"

    @pytest.mark.asyncio
    async def test_the_apps_own_cookies_alone_leave_the_config(self) -> None:
        pytest.importorskip("yappi")
        _toolbar, record = await profile(
            spawning_app,
            headers=[("cookie", "session=abc; theme=dark")],
            async_profiler_backend="yappi",
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["backend"] == "yappi"

    @pytest.mark.asyncio
    async def test_unknown_cookie_value_is_ignored(self) -> None:
        _toolbar, record = await profile(
            spawning_app, headers=[("cookie", f"{BACKEND_COOKIE}=bogus")]
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["backend"] == "taskfactory"
        assert panel.stats["backend_note"] is None


class TestYappiProcessLimit:
    """yappi keeps memory of every request it profiles: after the limit, the task factory."""

    @pytest.mark.asyncio
    async def test_past_the_limit_requests_fall_back_with_a_note(self) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import (
            YAPPI_KEEPS_COROUTINES,
            yappi_session,
        )

        # The count is per process: earlier tests profiled some requests already.
        limit = yappi_session.profiled + 2
        panels = []
        for _ in range(3):
            _toolbar, record = await profile(
                spawning_app, async_profiler_backend="yappi", async_yappi_max_requests=limit
            )
            panel = record.panel("AsyncProfilerPanel")
            assert panel is not None
            assert panel.error is None
            panels.append(panel.stats)

        assert [stats["backend"] for stats in panels] == ["yappi", "yappi", "taskfactory"]
        assert [stats["backend_note"] for stats in panels[:2]] == [None, None]
        note = panels[2]["backend_note"]
        assert f"already profiled {limit:,} requests" in note
        assert "async_yappi_max_requests" in note
        assert "profile" not in panels[2]
        assert [task["name"] for task in panels[2]["tasks"]][:2] == ["parent", "sibling"]
        retention = [stats["yappi_retention"] for stats in panels]
        assert [r["requests"] for r in retention] == [limit - 1, limit, limit]
        assert [r["limit"] for r in retention] == [limit] * 3
        if YAPPI_KEEPS_COROUTINES:  # Python 3.11+: yappi keeps the request's coroutines
            assert retention[1]["coroutines"] > retention[0]["coroutines"]
        else:
            assert retention[1]["coroutines"] == retention[0]["coroutines"] == 0
        assert retention[2]["coroutines"] == retention[1]["coroutines"]  # nothing more kept
        assert retention[1]["approx_bytes"] > retention[0]["approx_bytes"] > 0
        assert yappi_session.profiled == limit

    @pytest.mark.asyncio
    async def test_the_browsers_yappi_choice_is_limited_too(self) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import yappi_session

        if yappi_session.profiled == 0:  # run alone: profile one first, the limit is >= 1
            await profile(noop, async_profiler_backend="yappi")
        limit = yappi_session.profiled
        _toolbar, record = await profile(
            spawning_app,
            headers=[("cookie", f"{BACKEND_COOKIE}=yappi")],
            async_yappi_max_requests=limit,
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["backend"] == "taskfactory"
        assert "async_yappi_max_requests" in panel.stats["backend_note"]
        assert panel.stats["yappi_retention"]["requests"] == limit == yappi_session.profiled

    def test_the_limit_reaches_the_backend_that_enforces_it(self) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend

        config = DebugToolbarConfig(
            panels=[AsyncProfilerPanel],
            async_profiler_backend="yappi",
            async_yappi_max_requests=1234,
        )
        context = RequestContext(method="GET", path="/", client_host="127.0.0.1", headers=[])
        panel = DebugToolbar(config, context).get_panel("AsyncProfilerPanel")
        assert isinstance(panel, AsyncProfilerPanel)
        backend = panel.create_backend(context)
        assert isinstance(backend, YappiBackend)
        assert backend.max_process_requests == 1234
        assert DebugToolbarConfig().async_yappi_max_requests == 500

    @pytest.mark.asyncio
    async def test_task_factory_requests_say_nothing_about_yappi(self) -> None:
        _toolbar, record = await profile(spawning_app, async_profiler_backend="taskfactory")
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["backend"] == "taskfactory"
        assert panel.stats["yappi_retention"] is None


def blocking_app(seconds: float) -> App:
    async def app() -> None:
        await asyncio.sleep(0.02)
        time.sleep(seconds)  # noqa: ASYNC251  the blocking statement
        await asyncio.sleep(0.02)

    return app


class TestDetection:
    @pytest.mark.asyncio
    async def test_own_block_counted_located_and_badged(self) -> None:
        _toolbar, record = await profile(
            blocking_app(0.12),
            async_blocking_threshold_ms=40.0,
            async_event_loop_lag_threshold_ms=5.0,
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is None
        stats = panel.stats
        assert stats["summary"]["blocking_calls"] == 1
        (call,) = stats["blocking_calls"]
        assert call["culprit"] is True
        assert call["duration_ms"] >= 100
        assert call["filename"] == __file__
        assert call["code"] == "time.sleep(seconds)  # noqa: ASYNC251  the blocking statement"
        assert stats["lag"]["max_lag_ms"] >= 100
        assert stats["summary"]["max_lag_ms"] == stats["lag"]["max_lag_ms"]
        assert any(sample["lag_ms"] >= 100 for sample in stats["lag"]["samples"])
        assert panel.nav_subtitle == "0 tasks · ⚠ 1 blocking"
        # The loop's watchdog outlives the request, parked: nothing watches any more.
        assert [watchdog for watchdog in running_watchdogs() if not watchdog.parked] == []

    @pytest.mark.asyncio
    async def test_toggles_off_mean_no_thread_and_no_samples(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        started: list[threading.Thread] = []
        original_start = threading.Thread.start

        def recording_start(thread: threading.Thread) -> None:
            started.append(thread)
            original_start(thread)

        monkeypatch.setattr(threading.Thread, "start", recording_start)
        _toolbar, record = await profile(
            blocking_app(0.06),
            async_blocking_threshold_ms=20.0,
            async_enable_blocking_detection=False,
            async_enable_event_loop_monitoring=False,
        )
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["blocking_calls"] == []
        assert panel.stats["lag"] is None
        assert panel.stats["summary"]["max_lag_ms"] is None
        assert started == []

    @pytest.mark.asyncio
    async def test_fast_async_code_reports_nothing(self) -> None:
        _toolbar, record = await profile(spawning_app)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.stats["blocking_calls"] == []
        assert panel.nav_subtitle == "5 tasks"


class TestTemplateContext:
    @pytest.mark.asyncio
    async def test_timeline_and_links_built_at_render_time(self) -> None:
        _toolbar, record = await profile(spawning_app, async_max_timeline_rows=2)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        config = DebugToolbarConfig(panels=[AsyncProfilerPanel], async_max_timeline_rows=2)
        context = AsyncProfilerPanel.get_template_context(panel.stats, record, config)
        stored = context["profile"]
        assert isinstance(stored, AsyncProfile)
        assert stored.summary.to_dict() == panel.stats["summary"]
        assert [event.name for event in stored.tasks.events(stacks=False)] == [
            "parent",
            "sibling",
            "grandchild",
            "failing",
            "cancelled",
        ]
        timeline = context["timeline"]
        # The request's own task is the first row (and counts against the limit).
        assert [(row.task_id, row.is_request) for row in timeline.rows] == [(0, True), (1, False)]
        assert timeline.hidden_rows == 4
        assert context["backend_cookie"] == BACKEND_COOKIE
        # Links are the pages' job (``Panel.downloads``): the panel builds no URL.
        assert "trace_url" not in context

    def test_no_stats_no_profile_and_no_timeline(self) -> None:
        record = RequestRecord(
            request_id="r1",
            method="GET",
            path="/",
            query_string="",
            status_code=200,
            duration_ms=1.0,
            started_at=0.0,
            panels=(),
        )
        context = AsyncProfilerPanel.get_template_context({}, record, CONFIG)
        assert (context["profile"], context["timeline"]) == (None, None)


class TestTraceDownload:
    @pytest.mark.asyncio
    async def test_the_trace_is_the_export_of_the_stored_stats(self) -> None:
        _toolbar, record = await profile(spawning_app)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        download = AsyncProfilerPanel.get_download("async-trace.json")
        assert download is not None
        assert download.media_type == "application/json"
        assert download.title == "Download trace (Perfetto)"
        assert download.filename(record.request_id) == f"async-trace-{record.request_id}.json"
        trace = download.build(panel.stats, record)
        assert trace == chrome_trace(
            AsyncProfile.from_dict(panel.stats),
            duration_ms=record.duration_ms,
            request_id=record.request_id,
            method=record.method,
            path=record.path,
        )
        assert isinstance(trace, dict)
        names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
        assert {"request", "event loop"} <= names

    def test_a_request_without_stats_has_no_trace(self) -> None:
        download = AsyncProfilerPanel.get_download("async-trace.json")
        assert download is not None
        record = RequestRecord(
            request_id="r1",
            method="GET",
            path="/",
            query_string="",
            status_code=200,
            duration_ms=1.0,
            started_at=0.0,
            panels=(),
        )
        assert download.build({}, record) is None
        assert AsyncProfilerPanel.get_download("async-trace.zip") is None


class TestConfigValidation:
    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("async_profiler_backend", "perf"),
            ("async_blocking_threshold_ms", 0),
            ("async_blocking_threshold_ms", -5.0),
            ("async_event_loop_lag_threshold_ms", 0),
            ("async_enable_blocking_detection", "yes"),
            ("async_enable_event_loop_monitoring", 1),
            ("async_capture_task_stacks", None),
            ("async_max_stack_depth", 0),
            ("async_max_stack_depth", 2.5),
            ("async_max_tasks", 0),
        ],
    )
    def test_invalid_values_name_the_option(self, option: str, value: Any) -> None:
        with pytest.raises(ValueError, match=option):
            DebugToolbarConfig(**{option: value})

    def test_defaults(self) -> None:
        config = DebugToolbarConfig()
        assert (
            config.async_profiler_backend,
            config.async_blocking_threshold_ms,
            config.async_enable_blocking_detection,
            config.async_enable_event_loop_monitoring,
            config.async_event_loop_lag_threshold_ms,
            config.async_capture_task_stacks,
            config.async_max_stack_depth,
            config.async_max_tasks,
        ) == ("taskfactory", 100.0, True, True, 10.0, True, 10, 1000)


class TestTemplate:
    @pytest.mark.asyncio
    async def test_renders_tasks_escaped_with_state_badges(self) -> None:
        async def app() -> None:
            await asyncio.create_task(noop(), name="<script>alert(1)</script>")
            failing = asyncio.create_task(fails(), name="failing")
            with pytest.raises(KeyError):
                await failing

        _toolbar, record = await profile(app)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar", CONFIG)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert '<span class="dt-badge dt-badge-error">failed</span>' in html
        assert '<span class="dt-badge dt-badge-ok">completed</span>' in html
        assert "KeyError" in html
        assert "test_panel.py:" in html  # the creation site in the summary of <details>
        assert 'data-task-id="2"' in html  # one Gantt bar per task
        # The tasks' share of the overhead is estimated, and the panel says so and how.
        assert "Overhead (estimated)" in html
        assert "Measured overhead" not in html
        assert "a cost per task calibrated in this process" in html

    @pytest.mark.asyncio
    async def test_renders_dropped_and_empty(self) -> None:
        async def many() -> None:
            await asyncio.gather(*(noop() for _ in range(3)))

        _toolbar, record = await profile(many, async_max_tasks=1)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar", CONFIG)
        assert "2 more tasks were not recorded" in html
        _toolbar, record = await profile(noop)
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert "This request spawned no asyncio tasks." in render_panel(
            panel, record, "/_debug_toolbar", CONFIG
        )
