"""What the steps say, from hand-built steps (every Python version): the time breakdown, the
await-site table, the slow steps, their dict round trips, the timeline's first row and the
options that turn it all on and off."""

from __future__ import annotations

import asyncio
import inspect
import os
import sysconfig
from dataclasses import replace
from typing import Any

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler.await_chain import package_of
from debug_toolbar.core.panels.async_profiler.models import BlockingCall, StackFrame
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile, ProfileSummary
from debug_toolbar.core.panels.async_profiler.step_findings import (
    SlowStep,
    StepFindings,
    slow_steps,
)
from debug_toolbar.core.panels.async_profiler.step_report import (
    AwaitSiteRow,
    SlowestAwait,
    TimeBreakdown,
    await_sites,
    slowest_await,
    time_breakdown,
)
from debug_toolbar.core.panels.async_profiler.steps import (
    AwaitTarget,
    RequestTask,
    Step,
    StepTable,
)
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from debug_toolbar.core.panels.async_profiler.timeline import timeline_of
from support import task_event

QUERY = StackFrame("/app/views.py", 12, "show_user", "await db.fetch(user_id)")
CALL = StackFrame("/app/views.py", 14, "show_user", "await client.get(url)")
CHILD = StackFrame("/app/views.py", 30, "load_avatar", "await asyncio.sleep(0.01)")
SLEEP = AwaitTarget("sleep", delay_ms=8.0)
HTTPX = AwaitTarget(
    "library",
    library="httpx",
    function="AsyncClient.get",
    via=StackFrame("/venv/site-packages/anyio/_sockets.py", 90, "SocketStream.receive"),
)


def stall(start_ms: float, duration_ms: float, **fields: Any) -> BlockingCall:
    fields.setdefault("relation", "suffered")
    return BlockingCall(
        start_ms=start_ms,
        duration_ms=duration_ms,
        filename=fields.pop("filename", None),
        lineno=fields.pop("lineno", None),
        function=fields.pop("function", None),
        code=None,
        **fields,
    )


def story_table() -> StepTable:
    """The request's task: runs 0-2, sleeps (ready at 10), resumes at 12, runs to 13, awaits
    httpx until 30, runs to 31 (still running at the end, 31). A child (task 1) runs 2-3,
    sleeps until 20, returns at 21."""
    return StepTable(
        origin_ns=0,
        end_ns=31_000_000,
        rows=(
            Step(0, 0.0, 2.0, "await", site=QUERY, awaited=SLEEP, resumed_ms=12.0, ready_ms=10.0),
            Step(1, 2.0, 3.0, "await", site=CHILD, awaited=SLEEP, resumed_ms=20.0, ready_ms=11.0),
            Step(0, 12.0, 13.0, "await", site=CALL, awaited=HTTPX, resumed_ms=30.0),
            Step(1, 20.0, 21.0, "return"),
            Step(0, 30.0, 31.0, "running"),
        ),
    )


class TestTimeBreakdown:
    def test_parts_add_up_along_the_request_task(self) -> None:
        culprit = {"culprit_request_id": "b" * 32, "culprit_method": "GET", "culprit_path": "/x"}
        breakdown = time_breakdown(story_table(), start_ms=0.0, suffered=[stall(15, 5, **culprit)])
        assert breakdown.wall_ms == 31.0
        assert breakdown.running_ms == 4.0  # 0-2, 12-13, 30-31
        assert breakdown.queued_ms == 2.0  # ready at 10, resumed at 12
        assert breakdown.blocked_ms == 5.0  # another request held the loop 15-20
        assert breakdown.waiting_ms == 8.0 + 12.0  # 2-10, and 13-30 less the stall
        assert breakdown.unrecorded_ms == 0.0
        assert breakdown.steps == 3
        assert [(wait.site, wait.awaited, wait.waiting_ms) for wait in breakdown.by_site] == [
            (CALL, "httpx AsyncClient.get", 12.0),
            (QUERY, "sleep 8.0 ms", 8.0),
        ]

    def test_overlapping_stalls_count_once(self) -> None:
        stalls = [stall(15, 5), stall(17, 6), stall(100, 5)]
        breakdown = time_breakdown(story_table(), start_ms=0.0, suffered=stalls)
        assert breakdown.blocked_ms == 8.0  # 15-23
        assert breakdown.waiting_ms == 8.0 + 17.0 - 8.0

    def test_past_the_cap_the_time_is_unrecorded(self) -> None:
        table = StepTable(
            origin_ns=0,
            end_ns=31_000_000,
            rows=story_table().rows[:2],
            dropped=3,
            dropped_from_ns=12_000_000,
        )
        breakdown = time_breakdown(table, start_ms=0.0)
        assert (breakdown.running_ms, breakdown.waiting_ms, breakdown.queued_ms) == (2.0, 8.0, 2.0)
        assert breakdown.unrecorded_ms == 19.0
        assert breakdown.running_ms + breakdown.waiting_ms + breakdown.queued_ms + (
            breakdown.unrecorded_ms
        ) == pytest.approx(breakdown.wall_ms)

    def test_round_trip(self) -> None:
        breakdown = time_breakdown(story_table(), start_ms=0.0, suffered=[stall(15, 5)])
        assert TimeBreakdown.from_dict(breakdown.to_dict()) == breakdown


class TestAwaitSites:
    def test_one_row_per_site_and_awaited_largest_first(self) -> None:
        rows = await_sites(story_table())
        # Equal totals keep the order the sites were first met.
        assert [(row.site, row.count, row.total_ms, row.max_ms) for row in rows] == [
            (CHILD, 1, 17.0, 17.0),
            (CALL, 1, 17.0, 17.0),
            (QUERY, 1, 10.0, 10.0),
        ]
        by_site = {row.site: row for row in rows}
        assert by_site[QUERY].queued_ms == 2.0
        assert by_site[CHILD].queued_ms == 9.0  # ready at 11, resumed at 20
        assert by_site[CALL].queued_ms == 0.0  # readiness unknown: all of it is waiting
        assert by_site[CHILD].task_ids == (1,)

    def test_a_wait_never_resumed_counts_until_the_end_and_as_pending(self) -> None:
        table = StepTable(
            origin_ns=0,
            end_ns=50_000_000,
            rows=(Step(2, 0.0, 1.0, "await", site=CHILD, awaited=SLEEP),),
        )
        [row] = await_sites(table)
        assert (row.count, row.pending, row.total_ms) == (1, 1, 49.0)

    def test_round_trip(self) -> None:
        for row in await_sites(story_table()):
            assert AwaitSiteRow.from_dict(row.to_dict()) == row


class TestSlowSteps:
    def test_the_sampled_line_of_the_stall_it_overlaps(self) -> None:
        table = StepTable(
            origin_ns=0,
            end_ns=200_000_000,
            rows=(
                Step(0, 0.0, 1.0, "await", site=QUERY, awaited=SLEEP, resumed_ms=9.0),
                Step(0, 9.0, 130.0, "await", site=CALL, awaited=HTTPX),
            ),
        )
        sampled = stall(
            8.0, 122.0, relation="own", filename="/app/views.py", lineno=13, function="show_user"
        )
        elsewhere = stall(150.0, 20.0, relation="own", filename="/app/jobs.py", lineno=7)
        found = slow_steps(
            table, [(1, None)], own_stalls=[sampled, elsewhere], blocking_threshold_ms=100
        )
        assert [(step.task_id, step.start_ms, step.duration_ms) for step in found] == [
            (0, 9.0, 121.0),
            (None, 150.0, 20.0),  # a stall no step explains is listed on its own
        ]
        first, second = found
        assert first.ran_to == CALL
        assert first.held_at is not None
        assert (first.held_at.filename, first.held_at.lineno) == ("/app/views.py", 13)
        assert (first.blocking, second.blocking) == (True, False)
        assert first.sampled
        for step in found:
            assert SlowStep.from_dict(step.to_dict()) == step

    def test_without_steps_the_sampled_stalls_are_the_slow_steps(self) -> None:
        sampled = stall(5.0, 40.0, relation="own", filename="/app/views.py", lineno=20)
        [only] = slow_steps(None, [], own_stalls=[sampled])
        assert (only.task_id, only.ran_from, only.ran_to) == (None, None, None)
        assert only.held_at is not None
        assert only.held_at.lineno == 20


class TestRoundTrips:
    @pytest.mark.parametrize(
        ("target", "label"),
        [
            (AwaitTarget("task", task_ids=(3,)), "task 3"),
            (AwaitTarget("task"), "a task of another request"),
            (AwaitTarget("gather", task_ids=(1, 2), count=3), "gather of 3"),
            (AwaitTarget("thread"), "thread pool"),
            (AwaitTarget("sleep", delay_ms=0.0), "sleep 0.00 ms"),
            (AwaitTarget("sleep", delay_ms=50.0), "sleep 50.0 ms"),
            (HTTPX, "httpx AsyncClient.get"),
            (AwaitTarget("future", function="Future"), "Future"),
            (AwaitTarget("other", function="async_generator_asend"), "async_generator_asend"),
        ],
    )
    def test_await_targets(self, target: AwaitTarget, label: str) -> None:
        assert target.label == label
        assert AwaitTarget.from_dict(target.to_dict()) == target

    def test_steps_and_the_request_task(self) -> None:
        for step in story_table().rows:
            assert isinstance(step, Step)
            assert Step.from_dict(step.to_dict(31.0)) == step
        task = RequestTask(name="Task-9", coro_name="run_asgi", start_ms=0.5, end_ms=31.0)
        assert RequestTask.from_dict(task.to_dict()) == task
        assert task.to_task_dict()["task_id"] == 0

    def test_unknown_values_are_errors(self) -> None:
        with pytest.raises(ValueError, match="await kind"):
            AwaitTarget.from_dict({"kind": "teleport"})
        with pytest.raises(ValueError, match="step end"):
            Step.from_dict({"task_id": 0, "start_ms": 0, "end_ms": 1, "ended": "vanished"})

    def test_the_profile_with_steps(self) -> None:
        table = story_table()
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events([task_event(1, 2.0, 21.0, name="avatar")]),
            request_task=RequestTask("Task-9", "run_asgi", 0.0, 31.0),
            steps=table,
            findings=StepFindings(table, own_stalls=[stall(1, 20, relation="own")]),
        )
        assert profile.time_breakdown == time_breakdown(table, start_ms=0.0)
        assert [step.start_ms for step in profile.slow_steps] == [1.0]
        # Computed when read: the head (kept while the response waits) has none of it.
        assert "time_breakdown" not in profile.head_dict()
        data = profile.to_dict()
        assert [row["total_ms"] for row in data["await_sites"]] == [17.0, 17.0, 10.0]
        again = AsyncProfile.from_dict(data)
        assert again.to_dict() == data
        assert again.steps is not None
        assert again.steps.steps() == table.steps()


class TestTimeline:
    def test_the_request_task_is_the_first_row_and_the_root(self) -> None:
        library = StackFrame("/venv/lib/site-packages/anyio/_core.py", 80, "start_soon")
        app = StackFrame("/app/views.py", 44, "show_user", "tg.start_soon(load_avatar)")
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events(
                [
                    task_event(1, 2.0, 21.0, name="avatar", stack=[library, app]),
                    task_event(2, 3.0, 5.0, parent_id=1, name="thumb", stack=[library]),
                ]
            ),
            request_task=RequestTask("Task-9", "run_asgi", 0.5, 31.0),
        )
        timeline = timeline_of(profile, duration_ms=31.0)
        assert [(row.task_id, row.depth, row.is_request) for row in timeline.rows] == [
            (0, 0, True),
            (1, 1, False),
            (2, 2, False),
        ]
        assert timeline.rows[0].children == 1
        assert timeline.counts.total == 2  # the spawned tasks; the request's is not one
        # The one-line site skips library frames; with none of the app's, the innermost.
        assert (timeline.rows[1].site, timeline.rows[1].created_at) == (app, "/app/views.py:44")
        assert timeline.rows[2].site == library
        assert timeline.rows[1].stack == (library, app)

    def test_without_the_request_task_nothing_changes(self) -> None:
        profile = AsyncProfile(
            backend="taskfactory", tasks=TaskTable.from_events([task_event(1, 0.0, 1.0)])
        )
        [row] = timeline_of(profile, duration_ms=2.0).rows
        assert (row.task_id, row.depth, row.is_request) == (1, 0, False)


class TestOptions:
    def test_defaults(self) -> None:
        config = DebugToolbarConfig()
        assert (config.async_step_timing, config.async_max_steps) == (True, 10_000)

    @pytest.mark.parametrize("value", [1, "yes", None])
    def test_step_timing_is_a_boolean(self, value: Any) -> None:
        with pytest.raises(ValueError, match="async_step_timing"):
            DebugToolbarConfig(async_step_timing=value)

    @pytest.mark.parametrize("value", [0, -1, 1_000_001, 2.5, True])
    def test_max_steps_range(self, value: Any) -> None:
        with pytest.raises(ValueError, match="async_max_steps"):
            DebugToolbarConfig(async_max_steps=value)


class TestPackages:
    def test_libraries_are_named_by_their_top_package(self) -> None:
        site = os.path.join(sysconfig.get_paths()["purelib"], "httpx", "_client.py")
        assert package_of(site) == "httpx"
        assert package_of(asyncio.sleep.__code__.co_filename) == "asyncio"
        assert package_of("/srv/app/views.py") == "views"


async def awaits_twice() -> None:
    await asyncio.sleep(0)  # first await
    await asyncio.sleep(0)  # second await


def offset_line(marker: str) -> int:
    """The line of ``awaits_twice`` ending with ``# marker``."""
    lines = inspect.getsource(awaits_twice).splitlines()
    start = awaits_twice.__code__.co_firstlineno
    return start + next(i for i, text in enumerate(lines) if text.endswith(marker))


def offset_at(marker: str) -> int:
    """An instruction offset of ``awaits_twice`` on that line (what the recorder keeps)."""
    wanted = offset_line(marker)
    return next(start for start, _end, line in awaits_twice.__code__.co_lines() if line == wanted)


def raw_table(**changes: Any) -> StepTable:
    """The story as the recorder leaves it (raw rows, ns): the request's task awaits a sleep
    at the first line (2 -> 12 ms), then httpx at the second (13 -> 30 ms), runs to 31."""
    code, ms = awaits_twice.__code__, 1_000_000
    first, second = (code, offset_at("first await"), True), (code, offset_at("second await"), True)
    fields: dict[str, Any] = {
        "origin_ns": 0,
        "end_ns": 31 * ms,
        "rows": (
            (0, 0, 2 * ms, first, ("sleep", 8 * ms, None)),
            (1, 2 * ms, 3 * ms, first, ("sleep", 30 * ms, None)),  # longer, not the request's
            (0, 12 * ms, 13 * ms, second, ("library", ("httpx", "AsyncClient.get"), None)),
            (0, 30 * ms, 31 * ms, None, None),
        ),
        "endings": {3: "running"},
        "root_rows": (0, 2, 3),
    }
    fields.update(changes)
    return StepTable(**fields)


class TestSlowestAwait:
    def test_the_request_tasks_longest_suspension_and_its_line(self) -> None:
        slowest = slowest_await(raw_table())
        assert slowest is not None
        assert slowest.duration_ms == 17.0
        assert slowest.site is not None
        assert (slowest.site.filename, slowest.site.function) == (__file__, "awaits_twice")
        assert slowest.site.code == "await asyncio.sleep(0)  # second await"
        assert slowest.awaited == "httpx AsyncClient.get"

    def test_the_rows_are_found_without_the_recorders_list(self) -> None:
        assert slowest_await(raw_table(root_rows=None)) == slowest_await(raw_table())

    def test_a_table_read_back_from_the_history(self) -> None:
        slowest = slowest_await(story_table())
        assert slowest is not None
        assert (slowest.duration_ms, slowest.site, slowest.awaited) == (
            17.0,
            CALL,
            "httpx AsyncClient.get",
        )

    def test_a_wait_not_resumed_lasts_until_the_end_or_the_cap(self) -> None:
        rows = raw_table().rows[:3]
        slowest = slowest_await(raw_table(rows=rows, endings={}, root_rows=(0, 2)))
        assert slowest is not None
        assert slowest.duration_ms == 18.0  # 13 -> 31, the end
        capped = raw_table(rows=rows, endings={}, root_rows=(0, 2), dropped_from_ns=25_000_000)
        assert slowest_await(capped) == replace(slowest, duration_ms=12.0)  # 13 -> 25

    def test_none_when_the_request_task_never_waited(self) -> None:
        only_running = raw_table(rows=raw_table().rows[3:], endings={0: "running"}, root_rows=(0,))
        assert slowest_await(only_running) is None
        assert slowest_await(StepTable(origin_ns=0, end_ns=1)) is None

    def test_in_the_summary_and_back_from_the_history(self) -> None:
        table = raw_table()
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events([]),
            steps=table,
            findings=StepFindings(table),
        )
        head = profile.head_dict()["summary"]["slowest_await"]
        assert head == {
            "duration_ms": 17.0,
            "filename": __file__,
            "lineno": offset_line("second await"),
            "function": "awaits_twice",
            "code": "await asyncio.sleep(0)  # second await",
            "site_is_app": True,
            "awaited": "httpx AsyncClient.get",
        }
        again = AsyncProfile.from_dict(profile.to_dict())
        assert again.summary == profile.summary
        assert SlowestAwait.from_dict(head) == profile.summary.slowest_await

    def test_a_summary_stored_before_it_existed(self) -> None:
        old = {"total_tasks": 2, "completed": 2, "blocking_calls": 1}
        assert ProfileSummary.from_dict(old).slowest_await is None
        assert AsyncProfile.from_dict({"summary": old}).summary.slowest_await is None
