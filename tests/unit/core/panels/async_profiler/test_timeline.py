"""generate_timeline / timeline_of: hand-built records in, the Gantt's view model out."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
from typing import Any

import pytest

from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagSample,
    LagStats,
    StackFrame,
    TaskEvent,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.step_findings import StepFindings
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.core.panels.async_profiler.step_report import await_sites
from debug_toolbar.core.panels.async_profiler.steps import AwaitTarget, RequestTask, Step, StepTable
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from debug_toolbar.core.panels.async_profiler.timeline import (
    MIN_BAR_PCT,
    MIN_WINDOW_MS,
    generate_timeline,
    timeline_of,
)
from debug_toolbar.core.panels.async_profiler.timeline_model import (
    TaskCounts,
    Timeline,
    TimelineRow,
    format_duration,
    format_tick,
)
from debug_toolbar.core.panels.async_profiler.timeline_segments import (
    NOMINAL_TRACK_PX,
    site_indexes,
    site_key,
)
from support import marked_line, profiled
from support import task_event as task

CREATION_STACK = [
    StackFrame("/srv/app/services/users.py", 88, "load_profile", "asyncio.create_task(fetch())"),
    StackFrame("/srv/app/views.py", 31, "profile_view", "await load_profile(user_id)"),
]


def rows_by_id(timeline: Timeline) -> dict[int, TimelineRow]:
    return {row.task_id: row for row in timeline.rows}


def order(timeline: Timeline) -> list[tuple[int, int]]:
    return [(row.task_id, row.depth) for row in timeline.rows]


class TestPositions:
    def test_bar_is_a_percentage_of_the_request_window(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 25.0, 75.0)])
        (row,) = timeline.rows
        assert row.left_pct == 25.0
        assert row.width_pct == 50.0
        assert row.duration_ms == 50.0
        assert (row.bar_start_ms, row.bar_end_ms) == (25.0, 75.0)
        assert row.clipped is False
        assert row.instant is False
        assert timeline.window_ms == 100.0

    def test_same_task_in_a_longer_request_is_narrower(self) -> None:
        timeline = generate_timeline(duration_ms=400.0, tasks=[task(1, 25.0, 75.0)])
        assert (timeline.rows[0].left_pct, timeline.rows[0].width_pct) == (6.25, 12.5)

    def test_overlapping_tasks_keep_their_own_positions(self) -> None:
        timeline = generate_timeline(
            duration_ms=200.0, tasks=[task(1, 20.0, 120.0), task(2, 60.0, 180.0)]
        )
        rows = rows_by_id(timeline)
        assert (rows[1].left_pct, rows[1].width_pct) == (10.0, 50.0)
        assert (rows[2].left_pct, rows[2].width_pct) == (30.0, 60.0)

    def test_percentages_are_rounded_to_four_decimals(self) -> None:
        timeline = generate_timeline(duration_ms=30.0, tasks=[task(1, 10.0, 20.0)])
        assert (timeline.rows[0].left_pct, timeline.rows[0].width_pct) == (33.3333, 33.3333)

    def test_start_before_the_request_clamps_to_zero(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, -5.0, 30.0)])
        (row,) = timeline.rows
        assert (row.left_pct, row.width_pct) == (0.0, 30.0)
        assert row.bar_start_ms == 0.0
        assert row.start_ms == -5.0
        assert row.duration_ms == 35.0

    def test_very_short_task_is_drawn_at_the_minimum_width(self) -> None:
        timeline = generate_timeline(duration_ms=1000.0, tasks=[task(1, 500.0, 500.5)])
        (row,) = timeline.rows
        assert row.width_pct == MIN_BAR_PCT
        assert row.left_pct == 50.0
        assert row.instant is False


class TestTreeOrder:
    def test_children_under_their_parent_with_depth(self) -> None:
        tasks = [
            task(3, 12.0, 30.0, parent_id=2, name="grandchild"),
            task(5, 3.0, 40.0, name="second root"),
            task(2, 10.0, 50.0, parent_id=1, name="late child"),
            task(1, 0.0, 90.0, name="first root"),
            task(4, 5.0, 20.0, parent_id=1, name="early child"),
        ]
        timeline = generate_timeline(duration_ms=100.0, tasks=tasks)
        assert order(timeline) == [(1, 0), (4, 1), (2, 1), (3, 2), (5, 0)]
        rows = rows_by_id(timeline)
        assert (rows[1].children, rows[2].children, rows[3].children) == (2, 1, 0)
        assert rows[3].parent_id == 2

    def test_siblings_starting_together_go_by_id(self) -> None:
        tasks = [task(9, 5.0, 6.0), task(7, 5.0, 8.0), task(8, 1.0, 2.0)]
        assert order(generate_timeline(duration_ms=10.0, tasks=tasks)) == [
            (8, 0),
            (7, 0),
            (9, 0),
        ]

    def test_task_whose_parent_was_not_recorded_is_a_root(self) -> None:
        tasks = [
            task(1, 0.0, 10.0),
            task(2, 2.0, 4.0, parent_id=99),
            task(3, 1.0, 3.0, parent_id=1),
        ]
        timeline = generate_timeline(duration_ms=10.0, tasks=tasks)
        assert order(timeline) == [(1, 0), (3, 1), (2, 0)]
        assert rows_by_id(timeline)[2].parent_id == 99

    def test_cycle_is_drawn_once_per_task(self) -> None:
        tasks = [
            task(1, 4.0, 9.0, parent_id=2),
            task(2, 2.0, 9.0, parent_id=1),
            task(3, 0.0, 1.0),
            task(4, 1.0, 2.0, parent_id=4),
        ]
        timeline = generate_timeline(duration_ms=10.0, tasks=tasks)
        assert order(timeline) == [(3, 0), (4, 0), (2, 0), (1, 1)]
        assert timeline.hidden_rows == 0

    def test_a_chain_of_thousands_does_not_recurse(self) -> None:
        tasks = [task(1, 0.0, 100.0)] + [
            task(i, i / 100, 100.0, parent_id=i - 1) for i in range(2, 3001)
        ]
        timeline = generate_timeline(duration_ms=100.0, tasks=tasks, max_rows=None)
        assert len(timeline.rows) == 3000
        assert timeline.rows[-1].task_id == 3000
        assert timeline.rows[-1].depth == 2999


class TestClipping:
    def test_task_still_running_at_response_end_stops_at_the_window_end(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 80.0, None)])
        (row,) = timeline.rows
        assert row.state == "pending"
        assert row.clipped is True
        assert row.duration_ms is None
        assert (row.left_pct, row.width_pct) == (80.0, 20.0)
        assert row.bar_end_ms == 100.0
        assert row.label == "Task-1 · start 80.0 ms · still running at response end · pending"

    def test_task_that_ended_after_the_response_is_clipped_but_keeps_its_duration(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 60.0, 150.0)])
        (row,) = timeline.rows
        assert row.clipped is True
        assert (row.left_pct, row.width_pct) == (60.0, 40.0)
        assert row.duration_ms == 90.0
        assert row.end_ms == 150.0
        assert "90.0 ms, ended after the response" in row.label

    def test_task_created_after_the_response_sits_at_the_end(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 120.0, 130.0)])
        (row,) = timeline.rows
        assert row.clipped is True
        assert row.left_pct + row.width_pct == 100.0
        assert row.width_pct == MIN_BAR_PCT

    def test_task_ending_exactly_at_the_window_end_is_not_clipped(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 0.0, 100.0)])
        assert timeline.rows[0].clipped is False
        assert timeline.rows[0].width_pct == 100.0


class TestZeroLength:
    def test_zero_length_task_is_flagged_and_visible(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 40.0, 40.0)])
        (row,) = timeline.rows
        assert row.instant is True
        assert row.duration_ms == 0.0
        assert (row.left_pct, row.width_pct) == (40.0, MIN_BAR_PCT)
        assert "0.0 ms" in row.label

    def test_zero_length_task_at_the_window_end_stays_inside(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 100.0, 100.0)])
        (row,) = timeline.rows
        assert (row.left_pct, row.width_pct) == (100.0 - MIN_BAR_PCT, MIN_BAR_PCT)
        assert row.clipped is False


class TestRowCap:
    @staticmethod
    def _tasks() -> list[TaskEvent]:
        # root 1 with children 2..6, root 7 with children 8..12
        tasks = []
        for root, first in ((1, 0.0), (7, 50.0)):
            tasks.append(task(root, first, first + 40.0))
            tasks.extend(
                task(root + i, first + i, first + i + 5.0, parent_id=root) for i in range(1, 6)
            )
        tasks[3] = task(4, 3.0, 8.0, parent_id=1, state="failed", exception=("KeyError", "'x'"))
        tasks[10] = task(11, 54.0, None, parent_id=7)
        return tasks

    def test_first_rows_in_tree_order_and_the_rest_counted(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=self._tasks(), max_rows=8)
        assert order(timeline) == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 0), (8, 1)]
        assert timeline.hidden_rows == 4

    def test_counts_cover_every_task_not_only_the_drawn_rows(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=self._tasks(), max_rows=3)
        assert timeline.counts == TaskCounts(
            total=12, completed=10, cancelled=0, failed=1, pending=1
        )
        assert len(timeline.rows) == 3
        assert timeline.hidden_rows == 9

    def test_none_draws_every_row(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=self._tasks(), max_rows=None)
        assert len(timeline.rows) == 12
        assert timeline.hidden_rows == 0

    def test_zero_rows_still_counts(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=self._tasks(), max_rows=0)
        assert timeline.rows == ()
        assert timeline.hidden_rows == 12

    def test_negative_cap_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_rows must be >= 0"):
            generate_timeline(duration_ms=100.0, tasks=[], max_rows=-1)

    def test_default_cap_is_500(self) -> None:
        tasks = [task(i, i * 0.01, i * 0.01 + 1.0) for i in range(1, 601)]
        timeline = generate_timeline(duration_ms=100.0, tasks=tasks)
        assert len(timeline.rows) == 500
        assert timeline.hidden_rows == 100

    def test_tasks_the_collector_dropped_are_passed_through(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[task(1, 0.0, 1.0)], dropped_tasks=7)
        assert timeline.dropped_tasks == 7
        assert timeline.hidden_rows == 0


class TestEmpty:
    def test_request_without_tasks(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[])
        assert timeline.rows == ()
        assert timeline.hidden_rows == 0
        assert timeline.counts == TaskCounts(0, 0, 0, 0, 0)
        assert timeline.blocking == ()
        assert timeline.lag == ()
        assert timeline.empty is True
        assert [tick.label for tick in timeline.ticks] == [
            "0 ms",
            "20 ms",
            "40 ms",
            "60 ms",
            "80 ms",
            "100 ms",
        ]

    def test_a_stall_alone_is_not_empty(self) -> None:
        call = BlockingCall(10.0, 50.0, "/srv/app/views.py", 12, "view", "time.sleep(0.05)")
        assert generate_timeline(duration_ms=100.0, tasks=[], blocking_calls=[call]).empty is False


class TestWindow:
    def test_zero_duration_without_records_uses_the_minimal_window(self) -> None:
        timeline = generate_timeline(duration_ms=0.0, tasks=[])
        assert timeline.window_ms == MIN_WINDOW_MS
        assert timeline.duration_ms == 0.0
        assert [tick.label for tick in timeline.ticks] == [
            "0 ms",
            "0.2 ms",
            "0.4 ms",
            "0.6 ms",
            "0.8 ms",
            "1 ms",
        ]

    @pytest.mark.parametrize("duration", [0.0, -3.0, None, math.nan, math.inf])
    def test_unknown_duration_spans_the_records(self, duration: float | None) -> None:
        tasks = [task(1, 10.0, 40.0), task(2, 20.0, None)]
        timeline = generate_timeline(
            duration_ms=duration,
            tasks=tasks,
            blocking_calls=[BlockingCall(5.0, 30.0, None, None, None, None)],
        )
        assert timeline.window_ms == 40.0
        rows = rows_by_id(timeline)
        assert (rows[1].left_pct, rows[1].width_pct) == (25.0, 75.0)
        assert rows[2].clipped is True
        assert (rows[2].left_pct, rows[2].width_pct) == (50.0, 50.0)

    def test_a_late_stall_widens_an_unknown_window(self) -> None:
        timeline = generate_timeline(
            duration_ms=0.0,
            tasks=[task(1, 0.0, 10.0)],
            blocking_calls=[BlockingCall(30.0, 20.0, None, None, None, None)],
            lag_samples=[LagSample(at_ms=45.0, lag_ms=20.0)],
        )
        assert timeline.window_ms == 50.0

    def test_records_never_widen_a_known_window(self) -> None:
        timeline = generate_timeline(duration_ms=50.0, tasks=[task(1, 0.0, 500.0)])
        assert timeline.window_ms == 50.0
        assert timeline.rows[0].width_pct == 100.0


class TestTicks:
    @pytest.mark.parametrize(
        ("window", "labels"),
        [
            (250.0, ["0 ms", "50 ms", "100 ms", "150 ms", "200 ms", "250 ms"]),
            (130.0, ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms", "120 ms"]),
            (7.0, ["0 ms", "1 ms", "2 ms", "3 ms", "4 ms", "5 ms", "6 ms", "7 ms"]),
            (
                3721.0,
                ["0 ms", "500 ms", "1 s", "1.5 s", "2 s", "2.5 s", "3 s", "3.5 s"],
            ),
            (10_000.0, ["0 s", "2 s", "4 s", "6 s", "8 s", "10 s"]),
            (0.05, ["0 ms", "0.01 ms", "0.02 ms", "0.03 ms", "0.04 ms", "0.05 ms"]),
        ],
    )
    def test_readable_labels(self, window: float, labels: list[str]) -> None:
        timeline = generate_timeline(duration_ms=window, tasks=[])
        assert [tick.label for tick in timeline.ticks] == labels

    def test_positions_and_alignment(self) -> None:
        ticks = generate_timeline(duration_ms=250.0, tasks=[]).ticks
        assert [tick.at_ms for tick in ticks] == [0.0, 50.0, 100.0, 150.0, 200.0, 250.0]
        assert [tick.left_pct for tick in ticks] == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        assert [tick.align for tick in ticks] == ["start", *["center"] * 4, "end"]

    @pytest.mark.parametrize(
        "window", [0.3, 1.0, 3.7, 9.99, 10.0, 42.0, 99.0, 101.0, 777.0, 1234.5, 86_400_000.0]
    )
    def test_five_to_ten_ticks_on_a_one_two_five_step(self, window: float) -> None:
        ticks = generate_timeline(duration_ms=window, tasks=[]).ticks
        assert 5 <= len(ticks) <= 10
        step = ticks[1].at_ms - ticks[0].at_ms
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0)
        assert ticks[-1].at_ms <= window
        assert window - ticks[-1].at_ms < step

    def test_format_tick(self) -> None:
        assert format_tick(0.0, 50.0) == "0 ms"
        assert format_tick(1250.0, 250.0) == "1.25 s"
        assert format_tick(2000.0, 500.0) == "2 s"
        assert format_tick(0.4, 0.2) == "0.4 ms"
        assert format_tick(120_000.0, 20_000.0) == "120 s"


OWN_STALL = BlockingCall(
    start_ms=20.0,
    duration_ms=30.0,
    filename="/srv/app/views.py",
    lineno=42,
    function="report",
    code="time.sleep(0.03)",
    stack=[StackFrame("/srv/app/views.py", 42, "report", "time.sleep(0.03)")],
)
SUFFERED_STALL = BlockingCall(
    start_ms=70.0,
    duration_ms=10.0,
    filename="/srv/app/export.py",
    lineno=7,
    function="build_csv",
    code="rows = list(cursor)",
    relation="suffered",
    culprit_request_id="1a2b3c4d5e6f",
    culprit_method="GET",
    culprit_path="/export",
)


class TestBlockingOverlays:
    def test_own_and_suffered_are_told_apart(self) -> None:
        timeline = generate_timeline(
            duration_ms=100.0, tasks=[], blocking_calls=[SUFFERED_STALL, OWN_STALL]
        )
        own, suffered = timeline.blocking
        assert (own.relation, suffered.relation) == ("own", "suffered")
        assert (timeline.own_blocking, timeline.suffered_blocking) == (1, 1)
        assert timeline.unknown_blocking == 0
        assert (own.left_pct, own.width_pct) == (20.0, 30.0)
        assert (suffered.left_pct, suffered.width_pct) == (70.0, 10.0)
        assert own.culprit_label == "this request"
        assert suffered.culprit_label == "GET /export (request 1a2b3c4d)"
        assert own.location == "/srv/app/views.py:42"
        assert own.stack == (StackFrame("/srv/app/views.py", 42, "report", "time.sleep(0.03)"),)
        assert own.label == (
            "loop blocked 30.0 ms · start 20.0 ms · views.py:42 in report · by this request"
        )
        assert suffered.label == (
            "loop blocked 10.0 ms · start 70.0 ms · export.py:7 in build_csv"
            " · suffered, caused by GET /export (request 1a2b3c4d)"
        )

    def test_stall_outside_any_profiled_request(self) -> None:
        call = BlockingCall(5.0, 12.0, None, None, None, None, relation="suffered")
        (band,) = generate_timeline(duration_ms=100.0, tasks=[], blocking_calls=[call]).blocking
        assert band.culprit_label == "code outside any profiled request"
        assert band.location is None
        assert "unknown location" in band.label

    def test_stall_nobody_could_sample_names_no_culprit(self) -> None:
        call = BlockingCall(40.0, 25.0, None, None, None, None, relation="unknown")
        timeline = generate_timeline(duration_ms=100.0, tasks=[], blocking_calls=[call])
        (band,) = timeline.blocking
        assert band.relation == "unknown"
        assert band.culprit_label == (
            "unknown (not sampled in time, or several requests' short steps added up)"
        )
        assert band.label == (
            "loop blocked 25.0 ms · start 40.0 ms · unknown location · culprit unknown"
        )
        assert (timeline.own_blocking, timeline.suffered_blocking) == (0, 0)
        assert timeline.unknown_blocking == 1

    def test_stall_still_open_at_response_end_is_clipped(self) -> None:
        call = BlockingCall(90.0, 40.0, "/srv/app/views.py", 3, "f", None)
        (band,) = generate_timeline(duration_ms=100.0, tasks=[], blocking_calls=[call]).blocking
        assert band.clipped is True
        assert (band.left_pct, band.width_pct) == (90.0, 10.0)
        assert (band.end_ms, band.bar_end_ms) == (130.0, 100.0)


class TestLagMarks:
    def test_drawn_over_the_delay_that_ended_at_the_sample(self) -> None:
        timeline = generate_timeline(
            duration_ms=100.0,
            tasks=[],
            lag_samples=[LagSample(at_ms=80.0, lag_ms=5.0), LagSample(at_ms=50.0, lag_ms=20.0)],
            lag_threshold_ms=10.0,
        )
        big, small = timeline.lag
        assert (big.start_ms, big.left_pct, big.width_pct) == (30.0, 30.0, 20.0)
        assert (big.intensity, big.height_pct, big.over_threshold) == (1.0, 100.0, True)
        assert (small.start_ms, small.left_pct, small.width_pct) == (75.0, 75.0, 5.0)
        assert (small.intensity, small.height_pct, small.over_threshold) == (0.25, 25.0, False)
        assert timeline.max_lag_ms == 20.0
        assert timeline.lag_scale_ms == 20.0
        assert timeline.lag_threshold_pct == 50.0
        assert big.label == "loop lag 20.0 ms at 50.0 ms"

    def test_scale_is_the_threshold_when_every_lag_is_below_it(self) -> None:
        timeline = generate_timeline(
            duration_ms=100.0,
            tasks=[],
            lag_samples=[LagSample(at_ms=10.0, lag_ms=2.0)],
            lag_threshold_ms=8.0,
        )
        assert timeline.lag_scale_ms == 8.0
        assert timeline.lag[0].height_pct == 25.0
        assert timeline.lag_threshold_pct == 100.0

    def test_delay_longer_than_the_elapsed_time_starts_at_zero(self) -> None:
        (mark,) = generate_timeline(
            duration_ms=100.0, tasks=[], lag_samples=[LagSample(at_ms=5.0, lag_ms=12.0)]
        ).lag
        assert (mark.start_ms, mark.left_pct, mark.width_pct) == (0.0, 0.0, 5.0)
        assert mark.over_threshold is False

    def test_no_samples_no_threshold(self) -> None:
        timeline = generate_timeline(duration_ms=100.0, tasks=[])
        assert (timeline.max_lag_ms, timeline.lag_scale_ms) == (0.0, 0.0)
        assert timeline.lag_threshold_pct is None


class TestHoverAndDetails:
    def test_hover_label_names_task_coroutine_start_duration_state(self) -> None:
        timeline = generate_timeline(
            duration_ms=100.0,
            tasks=[task(1, 12.0, 47.25, name="fetch_user", coro_name="UserRepo.fetch")],
        )
        assert timeline.rows[0].label == (
            "fetch_user · UserRepo.fetch · start 12.0 ms · 35.2 ms · completed"
        )

    def test_failed_task_shows_its_exception_type(self) -> None:
        failing = task(
            1, 0.5, 3.0, state="failed", coro_name="charge", exception=("TimeoutError", "card")
        )
        (row,) = generate_timeline(duration_ms=10.0, tasks=[failing]).rows
        assert row.label == "Task-1 · charge · start 0.50 ms · 2.5 ms · failed: TimeoutError"
        assert (row.exception_type, row.exception_message) == ("TimeoutError", "card")

    def test_creation_site_and_stack(self) -> None:
        (row,) = generate_timeline(
            duration_ms=10.0, tasks=[task(1, 0.0, 1.0, stack=CREATION_STACK)]
        ).rows
        assert row.created_at == "/srv/app/services/users.py:88"
        assert row.stack == tuple(CREATION_STACK)

    def test_no_stack_captured(self) -> None:
        (row,) = generate_timeline(duration_ms=10.0, tasks=[task(1, 0.0, 1.0)]).rows
        assert row.created_at is None
        assert row.stack == ()

    def test_format_duration(self) -> None:
        assert format_duration(1234.56) == "1,234.6 ms"
        assert format_duration(0.25) == "0.25 ms"
        assert format_duration(0.0) == "0.0 ms"


STATS_TASKS = [
    task(1, 0.0, 80.0, coro_name="handler", stack=CREATION_STACK),
    task(2, 5.0, 30.0, parent_id=1, state="failed", exception=("ValueError", "bad id")),
    task(3, 6.0, None, parent_id=1, coro_name="audit"),
    task(4, 7.0, 9.0, parent_id=1, state="cancelled"),
]
STATS_CALLS = [
    OWN_STALL,
    SUFFERED_STALL,
    BlockingCall(85.0, 3.0, None, None, None, None, relation="suffered"),
    BlockingCall(95.0, 4.0, None, None, None, None, relation="unknown"),
]
STATS_SAMPLES = [LagSample(at_ms=50.0, lag_ms=31.5), LagSample(at_ms=60.0, lag_ms=1.25)]


STATS_TABLE = TaskTable.from_events(STATS_TASKS, dropped=3)


def stored(stats: dict[str, Any]) -> AsyncProfile:
    """The profile of stats as the history holds them (a JSON round trip first)."""
    return AsyncProfile.from_dict(json.loads(json.dumps(stats)))


class TestOfAProfile:
    def _profile(self) -> AsyncProfile:
        return AsyncProfile(
            backend="taskfactory",
            tasks=STATS_TABLE,
            blocking_calls=tuple(STATS_CALLS),
            lag=LagStats(
                samples=list(STATS_SAMPLES), max_lag_ms=31.5, threshold_ms=10.0, interval_ms=10.0
            ),
        )

    def test_records_survive_the_round_trip_through_json(self) -> None:
        profile = stored(self._profile().to_dict())
        assert list(profile.tasks.events()) == STATS_TASKS
        assert list(profile.blocking_calls) == STATS_CALLS
        assert profile.lag is not None
        assert profile.lag.samples == STATS_SAMPLES
        assert profile.tasks.dropped == 3

    @pytest.mark.parametrize("as_stored", [False, True])
    def test_same_timeline_as_from_the_records(self, as_stored: bool) -> None:
        profile = self._profile()
        if as_stored:
            profile = stored(profile.to_dict())
        of_profile = timeline_of(profile, duration_ms=100.0, max_rows=3)
        from_records = generate_timeline(
            duration_ms=100.0,
            tasks=STATS_TASKS,
            blocking_calls=STATS_CALLS,
            lag_samples=STATS_SAMPLES,
            lag_threshold_ms=10.0,
            max_rows=3,
            dropped_tasks=3,
        )
        assert of_profile == from_records
        assert of_profile.hidden_rows == 1
        assert of_profile.dropped_tasks == 3
        assert of_profile.lag_threshold_ms == 10.0
        assert (of_profile.own_blocking, of_profile.suffered_blocking) == (1, 2)
        assert of_profile.unknown_blocking == 1
        assert of_profile.blocking[2].culprit_label == "code outside any profiled request"
        assert of_profile.blocking[3].relation == "unknown"
        assert of_profile.rows[0].stack == tuple(CREATION_STACK)

    def test_each_drawn_row_carries_its_own_tasks_stack(self) -> None:
        tasks = [task(1, 0.0, 10.0, stack=CREATION_STACK)] + [
            task(i, 1.0, 2.0, parent_id=1, stack=[StackFrame("/srv/app/x.py", i, "f")])
            for i in range(2, 6)
        ]
        timeline = timeline_of(
            AsyncProfile(backend="taskfactory", tasks=TaskTable.from_events(tasks)),
            duration_ms=10.0,
            max_rows=2,
        )
        assert [row.stack for row in timeline.rows] == [
            tuple(CREATION_STACK),
            (StackFrame("/srv/app/x.py", 2, "f"),),
        ]

    def test_missing_optional_keys(self) -> None:
        stats = {"tasks": [{"task_id": 1, "start_ms": 2.0, "name": "t"}]}
        timeline = timeline_of(stored(stats), duration_ms=10.0)
        (row,) = timeline.rows
        assert (row.state, row.clipped, row.parent_id, row.stack) == ("pending", True, None, ())
        assert (row.name, row.start_ms) == ("t", 2.0)
        assert timeline.blocking == ()
        assert timeline.lag == ()
        assert timeline.lag_threshold_ms is None
        assert timeline.dropped_tasks == 0

    def test_dropped_count_from_the_panel_summary(self) -> None:
        stats = {"summary": {"total_tasks": 9, "dropped": 9}, "tasks": []}
        assert timeline_of(stored(stats), duration_ms=10.0).dropped_tasks == 9

    def test_empty_stats(self) -> None:
        timeline = timeline_of(stored({}), duration_ms=25.0)
        assert timeline.empty is True
        assert timeline.window_ms == 25.0

    def test_unknown_state_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="unknown task state 'zombie'"):
            stored({"tasks": [{"task_id": 1, "start_ms": 0.0, "state": "zombie"}]})


class TestRowNames:
    def test_an_unnamed_task_is_called_by_its_coroutine(self) -> None:
        tasks = [
            task(1, 0.0, 5.0, name="Task-287", coro_name="fetch_rows"),
            task(2, 0.0, 5.0, name="loader", coro_name="load"),
            task(3, 0.0, 5.0, name="Task-9", coro_name=""),
            task(4, 0.0, 5.0, name="Task-12-retry", coro_name="retry"),
        ]
        rows = generate_timeline(duration_ms=10.0, tasks=tasks).rows
        assert [(row.name, row.display_name) for row in rows] == [
            ("Task-287", "fetch_rows"),
            ("loader", "loader"),
            ("Task-9", "Task-9"),  # nothing better to show
            ("Task-12-retry", "Task-12-retry"),  # a name the app gave
        ]

    def test_the_request_task_is_called_this_request(self) -> None:
        # Its coroutine is the server's (uvicorn's RequestResponseCycle.run_asgi): the label
        # says what the row is; the hover keeps the task's and the coroutine's names.
        tasks = [
            task(0, 0.0, 9.0, name="Task-3", coro_name="RequestResponseCycle.run_asgi"),
            task(1, 1.0, 5.0, parent_id=0, name="Task-4", coro_name="fetch_rows"),
        ]
        rows = generate_timeline(duration_ms=10.0, tasks=tasks).rows
        assert [(row.task_id, row.display_name, row.is_request) for row in rows] == [
            (0, "this request", True),
            (1, "fetch_rows", False),
        ]
        assert rows[0].name == "Task-3"
        assert rows[0].coro_name == "RequestResponseCycle.run_asgi"


# ---------------------------------------------------------------- steps drawn over the bars

QUERY = StackFrame("/app/views.py", 12, "show_user", "await db.fetch(user_id)")
CALL = StackFrame("/app/views.py", 14, "show_user", "await client.get(url)")
CHILD = StackFrame("/app/avatars.py", 30, "load_avatar", "await asyncio.sleep(0.008)")
SLEEP = AwaitTarget("sleep", delay_ms=8.0)
HTTPX = AwaitTarget("library", library="httpx", function="AsyncClient.get")


def story_profile(*, duration_ms: float = 40.0, end_ms: float = 31.0) -> AsyncProfile:
    """The request's task runs 0-2, sleeps (ready at 10), is queued until 12, runs to 13, awaits
    httpx until 30 (readiness unknown), runs from 30 to the end. Its child (task 1) runs 2-3,
    sleeps (ready at 11), is queued until 20, runs 20-21 and returns. Read back from the stored
    stats, as the page does."""
    table = StepTable(
        origin_ns=0,
        end_ns=round(end_ms * 1e6),
        rows=(
            Step(0, 0.0, 2.0, "await", site=QUERY, awaited=SLEEP, resumed_ms=12.0, ready_ms=10.0),
            Step(1, 2.0, 3.0, "await", site=CHILD, awaited=SLEEP, resumed_ms=20.0, ready_ms=11.0),
            Step(0, 12.0, 13.0, "await", site=CALL, awaited=HTTPX, resumed_ms=30.0),
            Step(1, 20.0, 21.0, "return"),
            Step(0, 30.0, end_ms, "running"),
        ),
    )
    profile = AsyncProfile(
        backend="taskfactory",
        tasks=TaskTable.from_events([task(1, 1.5, 21.0, name="avatar")]),
        request_task=RequestTask("Task-9", "run_asgi", 0.0, end_ms),
        steps=table,
        findings=StepFindings(table),
    )
    return stored(json.loads(json.dumps(profile.to_dict())))


def spans(row: TimelineRow) -> list[tuple[str, float, float, float, float]]:
    return [
        (seg.kind, seg.start_ms, seg.end_ms, seg.left_pct, seg.width_pct) for seg in row.segments
    ]


def own_task_profile(table: StepTable, *, end_ms: float) -> AsyncProfile:
    """A profile of the request's own task alone, running from 0 to ``end_ms`` with ``table``'s
    steps."""
    return AsyncProfile(
        backend="taskfactory",
        tasks=TaskTable.empty(),
        request_task=RequestTask("Task-1", "run_asgi", 0.0, end_ms),
        steps=table,
        findings=StepFindings(table),
    )


def long_task_profile(steps: int, *, run_ms: float, wait_ms: float) -> AsyncProfile:
    """The request's own task alone, ``steps`` times: runs ``run_ms``, sleeps ``wait_ms``."""
    rows = []
    at = 0.0
    for _ in range(steps):
        resumed = at + run_ms + wait_ms
        rows.append(
            Step(0, at, at + run_ms, "await", site=QUERY, awaited=SLEEP, resumed_ms=resumed)
        )
        at = resumed
    table = StepTable(origin_ns=0, end_ns=round(at * 1e6), rows=tuple(rows))
    return own_task_profile(table, end_ms=at)


def assert_laid_out(row: TimelineRow) -> None:
    """At most a segment per nominal pixel, each at least a pixel wide (the last may be cut by
    the window's end), none overlapping, all inside the window."""
    pixel_pct = 100.0 / NOMINAL_TRACK_PX
    assert len(row.segments) <= NOMINAL_TRACK_PX
    for before, after in zip(row.segments, row.segments[1:], strict=False):
        assert before.left_pct + before.width_pct <= after.left_pct + 1e-3, (before, after)
        assert before.width_pct >= pixel_pct - 1e-3, before
    for seg in row.segments:
        assert seg.left_pct >= 0.0
        assert seg.left_pct + seg.width_pct <= 100.0 + 1e-3


class TestSegments:
    def test_runs_waits_and_queued_parts_on_the_bars_scale(self) -> None:
        timeline = timeline_of(story_profile(), duration_ms=40.0)
        request, child = timeline.rows
        assert (request.task_id, request.steps, request.merged_steps) == (0, 3, 0)
        # The window is 40 ms: 1 ms is 2.5 % of the track, like the bars.
        assert spans(request) == [
            ("run", 0.0, 2.0, 0.0, 5.0),
            ("wait", 2.0, 10.0, 5.0, 20.0),
            ("queued", 10.0, 12.0, 25.0, 5.0),
            ("run", 12.0, 13.0, 30.0, 2.5),
            ("wait", 13.0, 30.0, 32.5, 42.5),  # httpx: readiness unknown, all of it waiting
            ("run", 30.0, 31.0, 75.0, 2.5),
        ]
        assert (child.task_id, child.steps) == (1, 2)
        assert spans(child) == [
            ("run", 2.0, 3.0, 5.0, 2.5),
            ("wait", 3.0, 11.0, 7.5, 20.0),
            ("queued", 11.0, 20.0, 27.5, 22.5),
            ("run", 20.0, 21.0, 50.0, 2.5),
        ]
        assert child.left_pct == 3.75  # the bar: from its creation at 1.5 ms
        assert timeline.segmented is True

    def test_hover_text_of_waits_queued_parts_and_runs(self) -> None:
        request, child = timeline_of(story_profile(), duration_ms=40.0).rows
        labels = [seg.label for seg in request.segments]
        assert labels == [
            "running 2.0 ms · start 0.0 ms · then suspended at views.py:12 in show_user"
            " (sleep 8.0 ms)",
            "waited 8.0 ms at views.py:12 in show_user · for sleep 8.0 ms"
            " · then queued 2.0 ms (ready → resumed)",
            "queued 2.0 ms: ready, the loop busy with other work"
            " · after waiting at views.py:12 in show_user · for sleep 8.0 ms",
            "running 1.0 ms · start 12.0 ms · then suspended at views.py:14 in show_user"
            " (httpx AsyncClient.get)",
            "waited 17.0 ms at views.py:14 in show_user · for httpx AsyncClient.get"
            " · queued: not known (when it was ready is not recorded)",
            "running 1.0 ms · start 30.0 ms · still running when profiling stopped",
        ]
        assert child.segments[-1].label == "running 1.0 ms · start 20.0 ms · then returned"
        # The bar's own hover text keeps its parts and says how many steps it has.
        assert request.label.endswith(" · completed · 3 steps")
        assert child.label.split(" · ")[0] == "avatar"

    def test_each_wait_points_at_its_row_of_the_await_site_table(self) -> None:
        profile = story_profile()
        sites = profile.await_sites()
        assert len(sites) == 3
        request, child = timeline_of(profile, duration_ms=40.0).rows
        pointed = {}
        for row in (request, child):
            for seg in row.segments:
                if seg.site is not None:
                    site = sites[seg.site]
                    assert site.awaited is not None
                    pointed[seg.kind, seg.start_ms] = (site.site, site.awaited.label)
        assert pointed == {
            # A run that ended in an await opens the site it suspended at.
            ("run", 0.0): (QUERY, "sleep 8.0 ms"),
            ("wait", 2.0): (QUERY, "sleep 8.0 ms"),
            ("queued", 10.0): (QUERY, "sleep 8.0 ms"),
            ("run", 12.0): (CALL, "httpx AsyncClient.get"),
            ("wait", 13.0): (CALL, "httpx AsyncClient.get"),
            ("run", 2.0): (CHILD, "sleep 8.0 ms"),
            ("wait", 3.0): (CHILD, "sleep 8.0 ms"),
            ("queued", 11.0): (CHILD, "sleep 8.0 ms"),
        }
        # Runs that returned or were still running belong to no suspension.
        assert request.segments[-1].site is None
        assert child.segments[-1].site is None

    def test_site_indexes_group_as_the_await_site_table_does(self) -> None:
        other = AwaitTarget("sleep", delay_ms=1.0)
        steps = [
            Step(0, 0.0, 1.0, "await", site=QUERY, awaited=SLEEP, resumed_ms=10.0),
            Step(0, 10.0, 11.0, "await", site=QUERY, awaited=other, resumed_ms=12.0),
            Step(0, 12.0, 13.0, "await", site=QUERY, site_is_app=False, resumed_ms=14.0),
            Step(0, 14.0, 15.0, "return"),
        ]
        table = StepTable(origin_ns=0, end_ns=15_000_000, rows=tuple(steps))
        rows = await_sites(table)
        indexes = site_indexes(rows)
        # One line, three rows: what was awaited and whose code it is tell them apart.
        assert [site_key(step) for step in steps[:3]] == [
            (QUERY, True, "sleep 8.0 ms"),
            (QUERY, True, "sleep 1.0 ms"),
            (QUERY, False, None),
        ]
        assert sorted(indexes.values()) == [0, 1, 2]
        for step in steps[:3]:
            row = rows[indexes[site_key(step)]]
            assert (row.site, row.site_is_app) == (step.site, step.site_is_app)
            assert row.awaited == step.awaited

    def test_a_wait_never_resumed_runs_to_the_end_clipped_at_the_window(self) -> None:
        table = StepTable(
            origin_ns=0,
            end_ns=50_000_000,
            rows=(Step(1, 5.0, 6.0, "await", site=CHILD, awaited=SLEEP, ready_ms=14.0),),
        )
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events([task(1, 5.0, None, name="escaped")]),
            steps=table,
            findings=StepFindings(table),
        )
        (row,) = timeline_of(stored(profile.to_dict()), duration_ms=40.0).rows
        assert row.clipped is True
        # Waiting until ready at 14, then queued until profiling stopped at 50: cut at 40.
        assert spans(row) == [
            ("run", 5.0, 6.0, 12.5, 2.5),
            ("wait", 6.0, 14.0, 15.0, 20.0),
            ("queued", 14.0, 40.0, 35.0, 65.0),
        ]
        assert row.segments[1].label == (
            "waited 8.0 ms at avatars.py:30 in load_avatar · for sleep 8.0 ms"
            " · still waiting when profiling stopped"
        )
        assert row.segments[2].label.startswith("queued 36.0 ms: ready")

    def test_parts_outside_the_window_are_left_out(self) -> None:
        table = StepTable(
            origin_ns=0,
            end_ns=80_000_000,
            rows=(
                Step(1, 30.0, 50.0, "await", site=CHILD, awaited=SLEEP, resumed_ms=60.0),
                Step(1, 60.0, 70.0, "return"),
            ),
        )
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events([task(1, 30.0, 70.0)]),
            steps=table,
            findings=StepFindings(table),
        )
        (row,) = timeline_of(profile, duration_ms=40.0).rows
        assert spans(row) == [("run", 30.0, 40.0, 75.0, 25.0)]
        assert row.steps == 2

    def test_a_narrow_run_alone_keeps_its_kind_one_pixel_wide(self) -> None:
        steps = (
            Step(0, 0.0, 100.0, "await", site=QUERY, awaited=SLEEP, resumed_ms=500.0),
            Step(0, 500.0, 500.2, "await", site=CALL, awaited=HTTPX, resumed_ms=900.0),
            Step(0, 900.0, 1000.0, "running"),
        )
        table = StepTable(origin_ns=0, end_ns=1_000_000_000, rows=steps)
        profile = own_task_profile(table, end_ms=1000.0)
        (row,) = timeline_of(profile, duration_ms=1000.0).rows
        # A pixel of the nominal 1,000 px track is 1 ms here: the 0.2 ms run is drawn that wide,
        # taken from the start of the wait after it, and keeps its own hover text.
        assert spans(row) == [
            ("run", 0.0, 100.0, 0.0, 10.0),
            ("wait", 100.0, 500.0, 10.0, 40.0),
            ("run", 500.0, 500.2, 50.0, 0.1),
            ("wait", 500.2, 900.0, 50.1, 39.9),
            ("run", 900.0, 1000.0, 90.0, 10.0),
        ]
        assert row.segments[2].label.startswith("running 0.20 ms · start 500.0 ms")
        assert row.merged_steps == 0
        assert "merged" not in row.label

    def test_thousands_of_steps_shorter_than_a_pixel_are_merged_and_counted(self) -> None:
        profile = long_task_profile(10_000, run_ms=0.02, wait_ms=0.08)
        (row,) = timeline_of(profile, duration_ms=1000.0).rows
        assert row.steps == 10_000
        assert row.merged_steps == 10_000
        assert_laid_out(row)
        assert len(row.segments) == NOMINAL_TRACK_PX
        assert {seg.kind for seg in row.segments} == {"mixed"}
        assert sum(seg.steps for seg in row.segments) >= 10_000  # a step may span two pixels
        assert row.label.endswith(" · 10,000 steps · 10,000 steps shorter than a pixel merged")
        first = row.segments[0]
        assert (first.left_pct, first.width_pct, first.site) == (0.0, 0.1, None)
        assert first.label == (
            "10 steps shorter than a pixel, merged · 0.0 ms to 1.00 ms"
            " · running 0.20 ms, waiting 0.80 ms"
        )

    def test_a_lone_step_shorter_than_a_pixel_is_one_merged_segment(self) -> None:
        steps = (
            Step(0, 0.0, 0.2, "await", site=QUERY, awaited=SLEEP, resumed_ms=0.5),
            Step(0, 0.5, 100.0, "return"),
        )
        table = StepTable(origin_ns=0, end_ns=100_000_000, rows=steps)
        profile = own_task_profile(table, end_ms=100.0)
        (row,) = timeline_of(profile, duration_ms=1000.0).rows
        # Its run and its wait are not told apart: one pixel says what it holds.
        assert spans(row) == [("mixed", 0.0, 0.5, 0.0, 0.1), ("run", 0.5, 100.0, 0.1, 9.9)]
        assert row.segments[0].label == (
            "1 step shorter than a pixel, merged · 0.0 ms to 0.50 ms"
            " · running 0.20 ms, waiting 0.30 ms"
        )
        assert (row.segments[0].steps, row.segments[0].site) == (1, None)
        assert row.merged_steps == 1
        assert row.label.endswith(" · 2 steps · 1 step shorter than a pixel merged")

    def test_a_long_wait_before_a_short_last_step_keeps_its_own_segment(self) -> None:
        # As a real request awaiting a child task: the wait ends a hair before the window's
        # last pixel, then a short queue and a short last run. The wait gives that pixel up;
        # merged into it, the timeline lost the line and what was awaited.
        steps = (
            Step(0, 0.0, 0.5, "await", site=QUERY, awaited=SLEEP, resumed_ms=21.4),
            Step(
                0, 21.4, 21.5, "await", site=CALL, awaited=HTTPX, ready_ms=32.03, resumed_ms=32.052
            ),
            Step(0, 32.052, 32.06, "return"),
        )
        table = StepTable(origin_ns=0, end_ns=32_060_000, rows=steps)
        profile = own_task_profile(table, end_ms=32.06)
        (row,) = timeline_of(profile, duration_ms=32.06).rows
        assert_laid_out(row)
        assert [seg.kind for seg in row.segments] == ["run", "wait", "run", "wait", "mixed"]
        wait = row.segments[3]
        assert wait.label.startswith("waited 10.5 ms at views.py:14 in show_user")
        assert wait.site is not None
        last = row.segments[-1]
        assert last.left_pct + last.width_pct == pytest.approx(100.0)
        assert wait.left_pct + wait.width_pct == pytest.approx(last.left_pct)
        assert row.merged_steps == 2  # the queue of the second step and the third, in one pixel

    def test_merged_parts_leave_the_wide_ones_alone(self) -> None:
        # Ten steps of 0.1 ms (a pixel in all), then a 2 ms run and a long wait, drawn apart.
        profile = long_task_profile(10, run_ms=0.05, wait_ms=0.05)
        table = profile.steps
        assert table is not None
        last = Step(0, 1.0, 3.0, "await", site=CALL, awaited=HTTPX, resumed_ms=1000.0)
        table = StepTable(
            origin_ns=0,
            end_ns=1_000_000_000,
            rows=(*table.steps(), last, Step(0, 1000.0, 1000.0, "return")),
        )
        profile = own_task_profile(table, end_ms=1000.0)
        (row,) = timeline_of(profile, duration_ms=1000.0).rows
        assert [seg.kind for seg in row.segments] == ["mixed", "run", "wait"]
        assert row.segments[0].steps == 10
        assert row.merged_steps == 10
        assert "10 steps shorter than a pixel merged" in row.label
        assert row.segments[-1].label.startswith("waited 997.0 ms at views.py:14 in show_user")

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_a_row_never_has_more_segments_than_pixels(self, seed: int) -> None:
        """Whatever the mix of narrow and wide parts (random, seeded)."""
        rng = random.Random(seed)
        rows = []
        at = 0.0
        while at < 1000.0:
            run = rng.choice((0.001, 0.3, 0.9, 1.2, 2.5))
            wait = rng.choice((0.0005, 0.2, 0.95, 1.0, 1.6))
            ready = at + run + wait * rng.random()
            rows.append(
                Step(
                    0,
                    at,
                    at + run,
                    "await",
                    site=QUERY,
                    awaited=SLEEP,
                    resumed_ms=at + run + wait,
                    ready_ms=ready,
                )
            )
            at += run + wait
        table = StepTable(origin_ns=0, end_ns=round(at * 1e6), rows=tuple(rows))
        profile = own_task_profile(table, end_ms=at)
        (row,) = timeline_of(profile, duration_ms=1000.0).rows
        assert_laid_out(row)
        assert row.steps == len(rows)
        assert 0 < row.merged_steps < len(rows)

    def test_without_steps_the_bar_is_drawn_alone(self) -> None:
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events([task(1, 0.0, 10.0)]),
            request_task=RequestTask("Task-1", "run_asgi", 0.0, 20.0),
            steps_unavailable="step timing needs Python 3.12+ (sys.monitoring)",
        )
        timeline = timeline_of(stored(profile.to_dict()), duration_ms=20.0)
        assert [(row.segments, row.steps, row.merged_steps) for row in timeline.rows] == [
            ((), 0, 0),
            ((), 0, 0),
        ]
        assert timeline.segmented is False
        assert "step" not in timeline.rows[0].label

    def test_left_out_on_request(self) -> None:
        timeline = timeline_of(story_profile(), duration_ms=40.0, segments=False)
        assert [row.segments for row in timeline.rows] == [(), ()]
        assert timeline.rows[0].label.endswith(" · completed")

    def test_the_request_task_alone_is_worth_drawing_with_its_steps(self) -> None:
        profile = long_task_profile(3, run_ms=1.0, wait_ms=9.0)
        timeline = timeline_of(profile, duration_ms=30.0)
        assert timeline.counts.total == 0
        assert timeline.empty is False
        without = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.empty(),
            request_task=RequestTask("Task-1", "run_asgi", 0.0, 30.0),
        )
        assert timeline_of(without, duration_ms=30.0).empty is True

    def test_only_the_drawn_rows_get_segments(self) -> None:
        steps = tuple(Step(task_id, 1.0, 2.0, "return") for task_id in range(1, 6))
        table = StepTable(origin_ns=0, end_ns=10_000_000, rows=steps)
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.from_events([task(i, 1.0, 2.0) for i in range(1, 6)]),
            steps=table,
            findings=StepFindings(table),
        )
        timeline = timeline_of(profile, duration_ms=10.0, max_rows=2)
        assert [(row.task_id, len(row.segments)) for row in timeline.rows] == [(1, 1), (2, 1)]
        assert timeline.hidden_rows == 3


class TestSegmentsOfRecordedSteps:
    @pytest.mark.skipif(STEPS_UNAVAILABLE is not None, reason="step timing needs Python 3.12+")
    def test_a_real_requests_waits_name_their_lines(self) -> None:
        async def child() -> None:
            await asyncio.sleep(0.01)  # child sleep

        async def body() -> None:
            await asyncio.sleep(0.02)  # request sleep
            await asyncio.create_task(child(), name="child")  # await child

        profile = stored(json.loads(json.dumps(asyncio.run(profiled(body)).to_dict())))
        assert profile.steps is not None
        timeline = timeline_of(profile, duration_ms=profile.steps.end_ms)
        request, spawned = timeline.rows
        assert (request.task_id, spawned.task_id, spawned.name) == (0, 1, "child")
        sites = profile.await_sites()
        this_file = os.path.basename(__file__)
        waits = {}
        for row in (request, spawned):
            for seg in row.segments:
                if seg.kind == "wait":
                    assert seg.site is not None
                    site = sites[seg.site].site
                    assert site is not None
                    waits[site.lineno] = seg
        sleep = waits[line_of("request sleep")]
        assert f"at {this_file}:{line_of('request sleep')} in " in sleep.label
        assert "for sleep 20.0 ms" in sleep.label
        assert sleep.end_ms - sleep.start_ms >= 19.0
        awaited = waits[line_of("await child")]
        assert "for task 1" in awaited.label
        assert f"{this_file}:{line_of('child sleep')}" in waits[line_of("child sleep")].label


def line_of(marker: str) -> int:
    return marked_line(__file__, marker)
