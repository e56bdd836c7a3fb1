"""AsyncProfile and TaskTable: the frozen profile, its summary, and its one dict form.

The history and the JSON API hold a profile as ``to_dict()`` gives it; the page, the timeline
and the trace read it back with ``from_dict``. The pair must round-trip, for a profile taken
from a real request and for one with every section filled in by hand.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagSample,
    LagStats,
    StackFrame,
    TaskEvent,
)
from debug_toolbar.core.panels.async_profiler.profile import (
    AsyncProfile,
    FunctionProfile,
    FunctionStat,
    Overhead,
    ProfileSummary,
    YappiRetention,
)
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from support import in_request

VIEW = StackFrame("/srv/app/views.py", 12, "dashboard", "await asyncio.gather(*jobs)")
JOBS = StackFrame("/srv/app/jobs.py", 40, "fan_out", "asyncio.create_task(work(item))")

TASKS = [
    TaskEvent(1, None, "fan-out", "fan_out", "completed", 0.5, 80.25, stack=[VIEW]),
    TaskEvent(2, 1, "Task-2", "work", "failed", 1.0, 3.5, "KeyError", "'id'", [JOBS, VIEW]),
    TaskEvent(3, 1, "Task-3", "work", "cancelled", 1.25, 2.0, stack=[JOBS, VIEW]),
    TaskEvent(4, None, "audit", "write_audit", "pending", 60.0, None),
]
"""One task per state; times are whole nanoseconds, as a recorder takes them."""

CALLS = (
    BlockingCall(20.0, 30.0, VIEW.filename, VIEW.lineno, VIEW.function, VIEW.code, stack=[VIEW]),
    BlockingCall(
        55.0,
        12.5,
        "/srv/app/export.py",
        7,
        "build_csv",
        "rows = list(cursor)",
        stack=[StackFrame("/srv/app/export.py", 7, "build_csv", "rows = list(cursor)")],
        relation="suffered",
        culprit_request_id="1a2b3c4d5e6f",
        culprit_method="GET",
        culprit_path="/export.csv",
    ),
    BlockingCall(70.0, 11.0, None, None, None, None, relation="suffered"),
    BlockingCall(90.0, 15.0, None, None, None, None, relation="unknown"),
)
"""Own, suffered (another request's), suffered (outside any request), unknown."""

FUNCTIONS = FunctionProfile(
    functions=(
        FunctionStat("fan_out", "/srv/app/jobs.py", 38, 1, 79.75, 0.5, 79.75, True),
        FunctionStat("parse_row", "/srv/app/jobs.py", 90, 400, 12.0, 12.0, 0.03, False),
    ),
    total=37,
    max_functions=2,
    cost_note="yappi makes the profiled code several times slower",
)


def hand_built(**changes: Any) -> AsyncProfile:
    """A profile with every section filled in."""
    profile = AsyncProfile(
        backend="yappi",
        backend_note="the browser asked for yappi",
        tasks=TaskTable.from_events(TASKS, dropped=5),
        blocking_calls=CALLS,
        lag=LagStats(
            samples=[LagSample(at_ms=50.0, lag_ms=30.5), LagSample(at_ms=105.0, lag_ms=15.25)],
            max_lag_ms=30.5,
            threshold_ms=10.0,
            interval_ms=5.0,
            beats=21,
            dropped=2,
        ),
        overhead=Overhead(tracking_ms=0.125, setup_ms=0.0625, profiler_ms=1.5),
        functions=FUNCTIONS,
        yappi_retention=YappiRetention(requests=3, coroutines=120, approx_bytes=48_000, limit=500),
    )
    return replace(profile, **changes)


async def noop() -> None:
    return None


async def fails() -> None:
    raise LookupError("no such row")


async def spawning() -> None:
    """Tasks of every state from a real request; one escapes it."""
    await asyncio.gather(noop(), noop())
    with pytest.raises(LookupError):
        await asyncio.create_task(fails(), name="failing")
    cancelled = asyncio.create_task(asyncio.sleep(3600), name="cancelled")
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    asyncio.create_task(asyncio.sleep(0.01), name="escaped")  # noqa: RUF006


async def profile_request(
    body: Callable[[], Awaitable[None]],
    backend: Callable[[int], AsyncProfilerBackend] | None = None,
    **options: Any,
) -> AsyncProfile:
    """``body`` as a request under ``AsyncRequestProfiler``, started in the request's task."""
    context = RequestContext(method="GET", path="/profile", client_host="127.0.0.1")
    make = backend or (lambda origin: TaskFactoryBackend(origin_ns=origin))
    profiler = AsyncRequestProfiler(context, DebugToolbarConfig(**options), make(context.start_ns))
    profile = await in_request(profiler, body)
    await asyncio.sleep(0.02)  # the escaped task ends
    return profile


def round_trip(profile: AsyncProfile) -> tuple[dict[str, Any], AsyncProfile]:
    """The profile's dict form, checked to survive JSON and to come back unchanged."""
    data = profile.to_dict()
    assert json.loads(json.dumps(data)) == data
    back = AsyncProfile.from_dict(data)
    assert back.to_dict() == data
    return data, back


class TestRoundTrip:
    def test_a_profile_with_every_section(self) -> None:
        profile = hand_built()
        data, back = round_trip(profile)

        assert {task["state"] for task in data["tasks"]} == {
            "completed",
            "failed",
            "cancelled",
            "pending",
        }
        assert [call["relation"] for call in data["blocking_calls"]] == [
            "own",
            "suffered",
            "suffered",
            "unknown",
        ]
        assert list(back.tasks.events()) == TASKS
        assert back.tasks.dropped == 5
        assert back.blocking_calls == CALLS
        assert back.lag == profile.lag
        assert back.functions == FUNCTIONS
        assert back.yappi_retention == profile.yappi_retention
        assert (back.backend, back.backend_note) == ("yappi", "the browser asked for yappi")
        assert back.summary == profile.summary
        # What building the report cost is measured once, and kept by the stored form.
        assert data["overhead"]["report_ms"] > 0
        assert back.overhead == replace(profile.overhead, report_ms=data["overhead"]["report_ms"])

    @pytest.mark.asyncio
    async def test_a_profile_from_a_real_request(self) -> None:
        async def body() -> None:
            await spawning()
            time.sleep(0.06)  # noqa: ASYNC251  a stall the detector sees

        profile = await profile_request(
            body, async_blocking_threshold_ms=20.0, async_event_loop_lag_threshold_ms=5.0
        )
        data, back = round_trip(profile)

        assert data["backend"] == "taskfactory"
        assert [task["name"] for task in data["tasks"]][2:] == ["failing", "cancelled", "escaped"]
        assert data["tasks"][2]["stack"][0]["filename"] == __file__
        assert data["blocking_calls"]  # the stall, with where it happened
        assert data["lag"]["max_lag_ms"] >= 50.0
        assert list(back.tasks.events()) == list(profile.tasks.events())
        assert back.blocking_calls == profile.blocking_calls

    @pytest.mark.asyncio
    async def test_a_profile_from_a_real_request_under_yappi(self) -> None:
        pytest.importorskip("yappi", reason="yappi is not installed here")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend

        profile = await profile_request(
            spawning, backend=lambda origin: YappiBackend(origin_ns=origin)
        )
        data, back = round_trip(profile)

        assert data["backend"] == "yappi"
        assert "noop" in {function["name"] for function in data["profile"]["functions"]}
        assert back.functions == profile.functions
        assert back.overhead.profiler_ms == profile.overhead.profiler_ms
        assert back.overhead.profiler_ms is not None
        assert back.overhead.profiler_ms > 0

    def test_missing_sections_come_back_empty(self) -> None:
        empty = AsyncProfile.from_dict({})
        assert (empty.backend, empty.backend_note) == ("", None)
        assert (len(empty.tasks), empty.tasks.dropped) == (0, 0)
        assert (empty.blocking_calls, empty.lag, empty.functions) == ((), None, None)
        assert empty.yappi_retention is None
        assert empty.summary.to_dict() == {
            "total_tasks": 0,
            "completed": 0,
            "cancelled": 0,
            "failed": 0,
            "pending": 0,
            "dropped": 0,
            "profiling_overhead_ms": 0.0,
            "blocking_calls": 0,
            "suffered_blocking_calls": 0,
            "max_lag_ms": None,
            "overhead_estimated": False,
            "slowest_await": None,
        }

    def test_a_summary_stored_without_its_overhead(self) -> None:
        """Stats written before the overhead had its own section still show what it cost."""
        profile = AsyncProfile.from_dict({"summary": {"profiling_overhead_ms": 2.5}})
        assert profile.overhead.tracking_ms == 2.5
        assert profile.summary.profiling_overhead_ms == 2.5


class TestTaskTable:
    def test_to_dicts_is_the_events_to_dict(self) -> None:
        for table in (
            TaskTable.from_events(TASKS),
            AsyncProfile.from_dict(hand_built().to_dict()).tasks,
        ):
            assert table.to_dicts() == [event.to_dict() for event in table.events()]

    @pytest.mark.asyncio
    async def test_to_dicts_is_the_events_to_dict_for_recorded_tasks(self) -> None:
        table = (await profile_request(spawning)).tasks
        assert table.stacks is not None  # raw (code, line) pairs, resolved when read
        dicts = table.to_dicts()
        assert dicts == [event.to_dict() for event in table.events()]
        assert [task["state"] for task in dicts] == [
            "completed",
            "completed",
            "failed",
            "cancelled",
            "pending",
        ]

    def test_events_without_stacks_and_frames_of_one_task(self) -> None:
        table = TaskTable.from_events(TASKS)
        assert [event.stack for event in table.events(stacks=False)] == [[], [], [], []]
        assert table.frames(1) == (JOBS, VIEW)
        assert table.frames(3) == ()
        assert TaskTable.from_dicts([{"task_id": 1, "start_ms": 0.0}]).frames(0) == ()
        uncaptured = replace(table, stacks=None)  # stack capture was off
        assert uncaptured.frames(0) == ()
        assert [event.stack for event in uncaptured.events()] == [[], [], [], []]
        assert [task["stack"] for task in uncaptured.to_dicts()] == [[], [], [], []]

    def test_an_unknown_state_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown task state 'zombie'"):
            TaskTable.from_dicts([{"task_id": 1, "start_ms": 0.0, "state": "zombie"}])

    @pytest.mark.parametrize(
        ("ids", "message"),
        [
            ([2], "task 1 is stored as task_id 2"),
            ([1, 3], "task 2 is stored as task_id 3"),
            ([1, 1], "task 2 is stored as task_id 1"),
            ([2, 1], "task 1 is stored as task_id 2"),
        ],
    )
    def test_ids_out_of_order_are_refused(self, ids: list[int], message: str) -> None:
        tasks = [{"task_id": task_id, "start_ms": 1.0, "end_ms": 2.0} for task_id in ids]
        with pytest.raises(ValueError, match=message):
            TaskTable.from_dicts(tasks)

    def test_counts_by_state(self) -> None:
        table = TaskTable.from_events(TASKS, dropped=5)
        assert len(table) == 4
        assert table.state_counts() == {"completed": 1, "cancelled": 1, "failed": 1, "pending": 1}
        assert [table.state(index) for index in range(4)] == [
            "completed",
            "failed",
            "cancelled",
            "pending",
        ]
        assert TaskTable.empty().state_counts() == {
            "completed": 0,
            "cancelled": 0,
            "failed": 0,
            "pending": 0,
        }


class TestSummary:
    def test_counts_what_the_profile_holds(self) -> None:
        summary = hand_built().summary
        assert summary == ProfileSummary(
            completed=1,
            cancelled=1,
            failed=1,
            pending=1,
            dropped=5,
            profiling_overhead_ms=0.125 + 0.0625 + 1.5,
            blocking_calls=1,
            suffered_blocking_calls=3,
            max_lag_ms=30.5,
        )
        assert summary.total_tasks == 9
        assert summary.to_dict()["total_tasks"] == 9
        assert ProfileSummary.from_dict(summary.to_dict()) == summary

    def test_without_lag_monitoring_or_blocking_calls(self) -> None:
        summary = hand_built(lag=None, blocking_calls=()).summary
        assert summary.max_lag_ms is None
        assert (summary.blocking_calls, summary.suffered_blocking_calls) == (0, 0)

    def test_overhead_is_what_the_request_paid(self) -> None:
        overhead = Overhead(tracking_ms=2.0, setup_ms=0.5, report_ms=40.0, profiler_ms=3.0)
        assert overhead.request_ms == 5.5  # building the report is not the request's
        assert Overhead(tracking_ms=2.0, setup_ms=0.5).request_ms == 2.5
        assert Overhead.from_dict(overhead.to_dict()) == overhead
        assert "profiler_ms" not in Overhead(tracking_ms=1.0).to_dict()

    def test_an_estimated_overhead_says_so_and_round_trips(self) -> None:
        overhead = Overhead(
            tracking_ms=0.25,
            setup_ms=0.5,
            heartbeat_ms=0.125,
            tracking_estimated=True,
            per_task_ns=2_500.0,
        )
        assert overhead.request_ms == 0.875  # the heartbeat's beats are the request's too
        assert overhead.to_dict() == {
            "tracking_ms": 0.25,
            "setup_ms": 0.5,
            "report_ms": 0.0,
            "tracking_estimated": True,
            "heartbeat_ms": 0.125,
            "per_task_ns": 2_500.0,
        }
        assert Overhead.from_dict(overhead.to_dict()) == overhead
        profile = hand_built(overhead=overhead)
        assert profile.summary.overhead_estimated is True
        assert profile.summary.to_dict()["overhead_estimated"] is True
        assert ProfileSummary.from_dict(profile.summary.to_dict()) == profile.summary
        # A record written before the flag existed reads back as measured, as it was.
        assert Overhead.from_dict({"tracking_ms": 1.0}).tracking_estimated is False


class TestHeadAndDetail:
    def test_the_head_holds_what_the_nav_and_the_history_read_and_no_more(self) -> None:
        profile = hand_built()
        head = profile.head_dict()
        assert head == {
            "summary": profile.summary.to_dict(),
            "steps_unavailable": profile.steps_unavailable,
        }
        detail = profile.detail_dict()
        assert detail["yappi_retention"] == {
            "requests": 3,
            "coroutines": 120,
            "approx_bytes": 48_000,
            "limit": 500,
        }
        rest = {"backend", "backend_note", "yappi_retention", "blocking_calls", "lag"}
        rest |= {"request_task", "tasks", "overhead", "time_breakdown", "slow_steps"}
        assert set(detail) == {*rest, "profile"}
        assert set(hand_built(functions=None).detail_dict()) == rest
        assert set(head).isdisjoint(detail)

    def test_detail_measures_what_building_it_cost(self) -> None:
        tasks = [
            TaskEvent(i, None, f"Task-{i}", "work", "completed", 1.0, 2.0, stack=[JOBS, VIEW])
            for i in range(1, 2001)
        ]
        profile = hand_built(tasks=TaskTable.from_events(tasks))
        assert profile.overhead.report_ms == 0.0  # nothing built yet
        started = time.perf_counter_ns()
        detail = profile.detail_dict()
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        report_ms = detail["overhead"]["report_ms"]
        assert 0.0 < report_ms <= elapsed_ms
        assert len(detail["tasks"]) == 2000
        assert profile.overhead.report_ms == 0.0  # frozen: the profile itself is unchanged
        assert detail["overhead"]["tracking_ms"] == profile.overhead.tracking_ms

    def test_a_profile_read_back_keeps_its_report_cost(self) -> None:
        stored = hand_built().to_dict()
        stored["overhead"]["report_ms"] = 7.25
        assert AsyncProfile.from_dict(stored).detail_dict()["overhead"]["report_ms"] == 7.25
