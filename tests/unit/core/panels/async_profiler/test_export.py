"""Chrome trace export: the structure Perfetto and chrome://tracing load, with real values."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.export import (
    LAG_COUNTER_NAME,
    LOOP_TID,
    PID,
    REQUEST_TID,
    RUN_CATEGORY,
    RUN_NAME,
    WAIT_CATEGORY,
    chrome_trace,
    to_chrome_trace,
)
from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagSample,
    StackFrame,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler
from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE
from debug_toolbar.core.panels.async_profiler.steps import AwaitTarget, RequestTask, Step
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.panels.async_profiler.timeline import (
    generate_timeline,
    timeline_of,
)
from support import task_event as task

REQUEST_ID = "9f0c2d7e4b1a4c3d8e6f5a4b3c2d1e0f"
METADATA_NAMES = {"process_name", "process_labels", "thread_name", "thread_sort_index"}

SLEEP_FRAME = StackFrame("/srv/app/views.py", 42, "report", "time.sleep(0.03)")
OWN_STALL = BlockingCall(
    start_ms=20.0,
    duration_ms=30.0,
    filename="/srv/app/views.py",
    lineno=42,
    function="report",
    code="time.sleep(0.03)",
    stack=[SLEEP_FRAME],
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


TASKS = [
    task(1, 0.0, 90.0, name="handler-fanout", coro_name="fan_out"),
    task(3, 25.0, 75.0, parent_id=1, coro_name="fetch_orders"),
    task(2, 10.0, 40.0, parent_id=1, coro_name="fetch_user", stack=[SLEEP_FRAME]),
    task(4, 30.0, 35.0, parent_id=2, state="failed", exception=("KeyError", "'avatar'")),
    task(5, 80.0, None, name="audit-log", coro_name="write_audit"),
    task(6, 60.0, 60.0, parent_id=1, state="cancelled", coro_name="prefetch"),
]
SAMPLES = [LagSample(at_ms=50.0, lag_ms=20.0), LagSample(at_ms=80.0, lag_ms=5.0)]


def full_trace(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "duration_ms": 100.0,
        "tasks": TASKS,
        "blocking_calls": [OWN_STALL, SUFFERED_STALL],
        "lag_samples": SAMPLES,
        "lag_threshold_ms": 10.0,
        "max_rows": None,
    }
    arguments.update(overrides)
    return to_chrome_trace(
        generate_timeline(**arguments), request_id=REQUEST_ID, method="GET", path="/dashboard"
    )


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_trace(trace: dict[str, Any]) -> None:
    """Assert the JSON object form of the Trace Event Format, phase by phase, and that every
    span and instant lies within the request's window (the export clips them to it)."""
    assert set(trace) == {"traceEvents", "displayTimeUnit", "metadata"}
    assert trace["displayTimeUnit"] == "ms"
    assert isinstance(trace["metadata"], dict)
    events = trace["traceEvents"]
    assert isinstance(events, list)
    assert events
    window_us = round(trace["metadata"]["window_ms"] * 1000.0, 3)
    for event in events:
        for key in ("name", "ph", "ts", "pid", "tid"):
            assert key in event, (key, event)
        assert isinstance(event["name"], str)
        assert event["name"]
        assert isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
        assert is_number(event["ts"])
        phase = event["ph"]
        assert phase in {"M", "X", "C", "i"}, event
        if phase in {"X", "i"}:
            assert event["ts"] + event.get("dur", 0.0) <= window_us + 0.001, (window_us, event)
        if phase == "X":
            assert is_number(event["dur"])
            assert isinstance(event.get("args", {}), dict)
        elif phase == "C":
            assert isinstance(event["args"], dict)
            assert event["args"]
            assert all(is_number(value) for value in event["args"].values())
        elif phase == "M":
            assert event["name"] in METADATA_NAMES
            assert isinstance(event["args"], dict)
            if event["name"] in {"thread_name", "process_name"}:
                assert isinstance(event["args"]["name"], str)
            if event["name"] == "thread_sort_index":
                assert isinstance(event["args"]["sort_index"], int)
        else:
            assert event["s"] in {"g", "p", "t"}
    assert json.loads(json.dumps(trace)) == trace


def phase(trace: dict[str, Any], ph: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        event
        for event in trace["traceEvents"]
        if event["ph"] == ph and (name is None or event["name"] == name)
    ]


def thread_names(trace: dict[str, Any]) -> dict[int, str]:
    return {event["tid"]: event["args"]["name"] for event in phase(trace, "M", "thread_name")}


def task_events(trace: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {
        event["args"]["task_id"]: event
        for event in phase(trace, "X")
        if event["cat"].startswith("task")
    }


class TestStructure:
    def test_valid_trace_event_format(self) -> None:
        validate_trace(full_trace())

    def test_every_track_with_events_is_named_once(self) -> None:
        trace = full_trace()
        names = phase(trace, "M", "thread_name")
        assert len({event["tid"] for event in names}) == len(names)
        named = thread_names(trace)
        assert {event["tid"] for event in phase(trace, "X")} <= set(named)
        assert all(event["pid"] == PID for event in trace["traceEvents"])

    def test_one_track_per_task_named_after_it(self) -> None:
        trace = full_trace()
        events = task_events(trace)
        named = thread_names(trace)
        assert len(events) == len(TASKS)
        assert len({event["tid"] for event in events.values()}) == len(TASKS)
        assert named[events[1]["tid"]] == "handler-fanout (fan_out)"
        assert named[events[3]["tid"]] == "Task-3 (fetch_orders)"
        assert named[events[4]["tid"]] == "Task-4"
        assert named[REQUEST_TID] == "request"
        assert named[LOOP_TID] == "event loop"

    def test_sort_index_keeps_the_tree_order(self) -> None:
        trace = full_trace()
        events = task_events(trace)
        sort_index = {
            event["tid"]: event["args"]["sort_index"]
            for event in phase(trace, "M", "thread_sort_index")
        }
        by_track_order = sorted(events, key=lambda task_id: sort_index[events[task_id]["tid"]])
        # handler 1 > fetch_user 2 > its failing child 4 > fetch_orders 3 > prefetch 6; audit 5
        assert by_track_order == [1, 2, 4, 3, 6, 5]
        assert (
            sort_index[REQUEST_TID]
            < sort_index[LOOP_TID]
            < min(sort_index[event["tid"]] for event in events.values())
        )

    def test_process_is_the_request(self) -> None:
        trace = full_trace()
        (process,) = phase(trace, "M", "process_name")
        assert process["args"]["name"] == "GET /dashboard · 9f0c2d7e"
        (request,) = [event for event in phase(trace, "X") if event["cat"] == "request"]
        assert (request["name"], request["ts"], request["dur"]) == ("GET /dashboard", 0.0, 1e5)
        assert request["args"]["request_id"] == REQUEST_ID
        (end,) = phase(trace, "i")
        assert (end["name"], end["ts"], end["tid"]) == ("response end", 1e5, REQUEST_TID)

    def test_metadata_summarises_the_request(self) -> None:
        meta = full_trace()["metadata"]
        assert meta["request_id"] == REQUEST_ID
        assert (meta["method"], meta["path"]) == ("GET", "/dashboard")
        assert (meta["duration_ms"], meta["window_ms"]) == (100.0, 100.0)
        assert meta["tasks"] == {
            "total": 6,
            "completed": 3,
            "cancelled": 1,
            "failed": 1,
            "pending": 1,
        }
        assert meta["tasks_not_exported"] == 0
        assert meta["blocking_calls"] == {"own": 1, "suffered": 1, "unknown": 0}
        assert (meta["max_lag_ms"], meta["lag_threshold_ms"]) == (20.0, 10.0)


class TestTaskEvents:
    def test_times_in_microseconds(self) -> None:
        events = task_events(full_trace())
        assert (events[3]["ts"], events[3]["dur"]) == (25_000.0, 50_000.0)
        assert (events[2]["ts"], events[2]["dur"]) == (10_000.0, 30_000.0)
        assert events[3]["name"] == "fetch_orders"
        assert events[3]["cat"] == "task,completed"

    def test_sub_microsecond_precision_is_kept(self) -> None:
        trace = full_trace(tasks=[task(1, 1.2345678, 2.5)])
        (event,) = task_events(trace).values()
        assert (event["ts"], event["dur"]) == (1234.568, 1265.432)

    def test_pending_task_ends_at_the_window_end_and_says_so(self) -> None:
        event = task_events(full_trace())[5]
        assert (event["ts"], event["dur"]) == (80_000.0, 20_000.0)
        assert event["args"]["clipped"] is True
        assert event["args"]["state"] == "pending"
        assert event["args"]["end_ms"] is None
        assert "still running" in event["args"]["note"]

    def test_task_that_ended_after_the_response_keeps_its_real_end_in_args(self) -> None:
        trace = full_trace(tasks=[task(1, 60.0, 180.0)])
        (event,) = task_events(trace).values()
        assert (event["ts"], event["dur"]) == (60_000.0, 40_000.0)
        assert (event["args"]["end_ms"], event["args"]["duration_ms"]) == (180.0, 120.0)
        assert event["args"]["clipped"] is True

    def test_task_started_before_the_request_starts_at_zero(self) -> None:
        trace = full_trace(tasks=[task(1, -5.0, 30.0)])
        validate_trace(trace)
        (event,) = task_events(trace).values()
        assert (event["ts"], event["dur"]) == (0.0, 30_000.0)
        assert (event["args"]["start_ms"], event["args"]["duration_ms"]) == (-5.0, 35.0)

    def test_zero_length_task_has_zero_duration(self) -> None:
        event = task_events(full_trace())[6]
        assert (event["ts"], event["dur"]) == (60_000.0, 0.0)
        assert event["args"]["clipped"] is False
        assert "note" not in event["args"]

    def test_failure_tree_and_creation_site_in_args(self) -> None:
        events = task_events(full_trace())
        failed = events[4]["args"]
        assert failed["exception"] == {"type": "KeyError", "message": "'avatar'"}
        assert (failed["parent_id"], failed["depth"]) == (2, 2)
        assert events[2]["args"]["created_at"] == "/srv/app/views.py:42"
        assert events[2]["args"]["creation_stack"] == ["/srv/app/views.py:42 in report"]
        assert "exception" not in events[2]["args"]


class TestBlockingTrack:
    def test_own_and_suffered_stalls_on_the_event_loop_track(self) -> None:
        blocking = [event for event in phase(full_trace(), "X") if event["tid"] == LOOP_TID]
        own, suffered = blocking
        assert (own["ts"], own["dur"]) == (20_000.0, 30_000.0)
        assert (suffered["ts"], suffered["dur"]) == (70_000.0, 10_000.0)
        assert (own["cat"], suffered["cat"]) == ("blocking,own", "blocking,suffered")
        assert own["args"]["location"] == "/srv/app/views.py:42"
        assert own["args"]["code"] == "time.sleep(0.03)"
        assert own["args"]["culprit"] == "this request"
        assert own["args"]["stack"] == ["/srv/app/views.py:42 in report"]
        assert suffered["args"]["culprit"] == {
            "request_id": "1a2b3c4d5e6f",
            "method": "GET",
            "path": "/export",
            "label": "GET /export (request 1a2b3c4d)",
        }

    def test_stall_that_was_not_sampled_blames_nobody(self) -> None:
        stall = BlockingCall(40.0, 25.0, None, None, None, None, relation="unknown")
        trace = full_trace(blocking_calls=[stall])
        validate_trace(trace)
        (event,) = [event for event in phase(trace, "X") if event["tid"] == LOOP_TID]
        assert (event["name"], event["cat"]) == ("blocked (culprit unknown)", "blocking,unknown")
        assert (event["args"]["culprit"], event["args"]["sampled"]) == (None, False)
        assert event["args"]["location"] is None
        assert trace["metadata"]["blocking_calls"] == {"own": 0, "suffered": 0, "unknown": 1}

    def test_stall_open_at_response_end_is_clipped(self) -> None:
        stall = BlockingCall(90.0, 40.0, "/srv/app/views.py", 3, "f", None)
        trace = full_trace(blocking_calls=[stall])
        (event,) = [event for event in phase(trace, "X") if event["tid"] == LOOP_TID]
        assert (event["ts"], event["dur"]) == (90_000.0, 10_000.0)
        assert (event["args"]["clipped"], event["args"]["duration_ms"]) == (True, 40.0)


class TestLagCounter:
    def test_each_delay_is_drawn_over_its_span(self) -> None:
        counter = phase(full_trace(), "C", LAG_COUNTER_NAME)
        assert [(event["ts"], event["args"]["lag_ms"]) for event in counter] == [
            (0.0, 0.0),
            (30_000.0, 20.0),
            (50_000.0, 0.0),
            (75_000.0, 5.0),
            (80_000.0, 0.0),
        ]

    def test_back_to_back_delays_do_not_reset_the_second(self) -> None:
        samples = [LagSample(at_ms=20.0, lag_ms=10.0), LagSample(at_ms=35.0, lag_ms=15.0)]
        counter = phase(full_trace(lag_samples=samples), "C")
        assert [(event["ts"], event["args"]["lag_ms"]) for event in counter] == [
            (0.0, 0.0),
            (10_000.0, 10.0),
            (20_000.0, 0.0),
            (20_000.0, 15.0),
            (35_000.0, 0.0),
        ]

    def test_a_delay_longer_than_the_request_so_far_starts_at_zero(self) -> None:
        counter = phase(full_trace(lag_samples=[LagSample(at_ms=5.0, lag_ms=12.0)]), "C")
        assert [(event["ts"], event["args"]["lag_ms"]) for event in counter] == [
            (0.0, 0.0),
            (0.0, 12.0),
            (5_000.0, 0.0),
        ]

    def test_no_samples_no_counter(self) -> None:
        assert phase(full_trace(lag_samples=[]), "C") == []


class TestEmptyAndCapped:
    def test_request_without_tasks_still_loads(self) -> None:
        trace = full_trace(tasks=[], blocking_calls=[], lag_samples=[])
        validate_trace(trace)
        assert set(thread_names(trace)) == {REQUEST_TID, LOOP_TID}
        assert [event["cat"] for event in phase(trace, "X")] == ["request"]

    def test_capped_timeline_says_what_it_left_out(self) -> None:
        trace = full_trace(max_rows=2)
        validate_trace(trace)
        assert len(task_events(trace)) == 2
        assert trace["metadata"]["tasks_not_exported"] == 4

    @pytest.mark.parametrize("duration", [0.0, None])
    def test_unknown_duration_spans_the_records(self, duration: float | None) -> None:
        trace = full_trace(duration_ms=duration, blocking_calls=[], lag_samples=[])
        validate_trace(trace)
        (request,) = [event for event in phase(trace, "X") if event["cat"] == "request"]
        assert request["dur"] == 90_000.0


class TestOfAProfile:
    def test_every_task_is_exported_beyond_the_panel_cap(self) -> None:
        tasks = [task(1, 0.0, 500.0)] + [
            task(i, i * 0.5, i * 0.5 + 2.0, parent_id=1) for i in range(2, 701)
        ]
        stats = json.loads(
            json.dumps(
                {
                    "tasks": [event.to_dict() for event in tasks],
                    "blocking_calls": [OWN_STALL.to_dict(), SUFFERED_STALL.to_dict()],
                    "lag": {
                        "samples": [s.to_dict() for s in SAMPLES],
                        "threshold_ms": 10.0,
                        "interval_ms": 10.0,
                    },
                    "summary": {"total_tasks": 712, "dropped": 12},
                }
            )
        )
        trace = chrome_trace(
            AsyncProfile.from_dict(stats),
            duration_ms=500.0,
            request_id=REQUEST_ID,
            method="POST",
            path="/import",
        )
        validate_trace(trace)
        assert len(task_events(trace)) == 700
        assert Counter(event["ph"] for event in trace["traceEvents"]) == {
            "M": 6 + 2 * 700,
            "X": 1 + 2 + 700,
            "C": 5,
            "i": 1,
        }
        assert trace["metadata"]["tasks_not_exported"] == 0
        assert trace["metadata"]["tasks_not_recorded"] == 12
        assert task_events(trace)[700]["ts"] == 350_000.0


# ------------------------------------------------------------------------------- steps

QUERY = StackFrame("/srv/app/views.py", 12, "show_user", "await db.fetch(user_id)")
CALL = StackFrame("/srv/app/views.py", 14, "show_user", "await client.get(url)")
CHILD = StackFrame("/srv/app/avatars.py", 30, "load_avatar", "await asyncio.sleep(0.008)")
HTTPX = AwaitTarget("library", library="httpx", function="AsyncClient.get")
REQUEST_TASK = RequestTask(name="Task-7", coro_name="show_user", start_ms=1.0, end_ms=90.0)
REQUEST_TRACK, CHILD_TRACK = 3, 4
"""The request's own task is the first task track (tid 3), the avatar task the next."""


def story_steps() -> list[Step]:
    """The request's task runs 1-3, waits for a 50 ms sleep (ready at 53, resumed at 55), runs
    to 60, waits for httpx until 80 (readiness unknown), runs until profiling stops at 90. Its
    child (task 1) runs 10-11, sleeps until 20 (ready at 19), runs 20-40 and returns."""
    return [
        Step(0, 1.0, 3.0, "await", site=QUERY, awaited=AwaitTarget("sleep", delay_ms=50.0),
             resumed_ms=55.0, ready_ms=53.0),
        Step(1, 10.0, 11.0, "await", site=CHILD, awaited=AwaitTarget("sleep", delay_ms=8.0),
             resumed_ms=20.0, ready_ms=19.0),
        Step(1, 20.0, 40.0, "return"),
        Step(0, 55.0, 60.0, "await", site=CALL, awaited=HTTPX, resumed_ms=80.0),
        Step(0, 80.0, 90.0, "running"),
    ]  # fmt: skip


def stored_profile(steps: list[Step], *, tasks: list[Any] | None = None) -> AsyncProfile:
    """A profile as the download reads it: its stored dict, through JSON."""
    rows = [step.to_dict(90.0) for step in steps]
    stats = {
        "request_task": REQUEST_TASK.to_dict(),
        "tasks": [
            event.to_dict()
            for event in (tasks if tasks is not None else [task(1, 10.0, 40.0, name="avatar")])
        ],
        "steps": {"start_ms": 1.0, "end_ms": 90.0, "rows": rows, "dropped": 2},
    }
    return AsyncProfile.from_dict(json.loads(json.dumps(stats)))


def steps_trace(profile: AsyncProfile, duration_ms: float | None = 100.0) -> dict[str, Any]:
    trace = chrome_trace(
        profile, duration_ms=duration_ms, request_id=REQUEST_ID, method="GET", path="/user"
    )
    validate_trace(trace)
    return trace


def slices(trace: dict[str, Any], cat: str, tid: int | None = None) -> list[dict[str, Any]]:
    return [
        event
        for event in phase(trace, "X")
        if event["cat"] == cat and (tid is None or event["tid"] == tid)
    ]


def is_task(event: dict[str, Any]) -> bool:
    return bool(event["cat"].startswith("task,"))


def us(ms: float) -> float:
    return round(ms * 1000.0, 3)


def spans(events: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    return [(event["name"], event["ts"], event["dur"]) for event in events]


class TestSteps:
    def test_runs_and_waits_on_each_tasks_track_in_microseconds(self) -> None:
        trace = steps_trace(stored_profile(story_steps()))
        names = thread_names(trace)
        assert names[REQUEST_TRACK] == "Task-7 (show_user)"
        assert names[CHILD_TRACK] == "avatar"
        assert spans(slices(trace, RUN_CATEGORY, REQUEST_TRACK)) == [
            (RUN_NAME, 1_000.0, 2_000.0),
            (RUN_NAME, 55_000.0, 5_000.0),
            (RUN_NAME, 80_000.0, 10_000.0),
        ]
        assert spans(slices(trace, WAIT_CATEGORY, REQUEST_TRACK)) == [
            ("await views.py:12", 3_000.0, 52_000.0),
            ("await views.py:14", 60_000.0, 20_000.0),
        ]
        assert spans(slices(trace, RUN_CATEGORY, CHILD_TRACK)) == [
            (RUN_NAME, 10_000.0, 1_000.0),
            (RUN_NAME, 20_000.0, 20_000.0),
        ]
        assert spans(slices(trace, WAIT_CATEGORY, CHILD_TRACK)) == [
            ("await avatars.py:30", 11_000.0, 9_000.0),
        ]

    def test_a_wait_says_what_was_awaited_how_long_and_how_long_it_queued(self) -> None:
        trace = steps_trace(stored_profile(story_steps()))
        sleep, call = slices(trace, WAIT_CATEGORY, REQUEST_TRACK)
        assert sleep["args"] == {
            "task_id": 0,
            "site": "/srv/app/views.py:12 in show_user",
            "code": "await db.fetch(user_id)",
            "site_is_app": True,
            "awaited": "sleep 50.0 ms",
            "awaited_kind": "sleep",
            "awaited_task_ids": [],
            "start_ms": 3.0,
            "waited_ms": 52.0,
            "queued_ms": 2.0,
            "ready_ms": 53.0,
            "resumed": True,
        }
        assert (call["args"]["awaited"], call["args"]["awaited_kind"]) == (
            "httpx AsyncClient.get",
            "library",
        )
        assert (call["args"]["waited_ms"], call["args"]["queued_ms"]) == (20.0, None)
        (child_wait,) = slices(trace, WAIT_CATEGORY, CHILD_TRACK)
        assert (child_wait["args"]["waited_ms"], child_wait["args"]["queued_ms"]) == (9.0, 1.0)

    def test_a_run_says_how_it_ended_and_where_it_suspended(self) -> None:
        trace = steps_trace(stored_profile(story_steps()))
        first, _, last = slices(trace, RUN_CATEGORY, REQUEST_TRACK)
        assert first["args"] == {
            "task_id": 0,
            "start_ms": 1.0,
            "duration_ms": 2.0,
            "ended": "await",
            "start_known": True,
            "suspended_at": "/srv/app/views.py:12 in show_user",
        }
        assert (last["args"]["ended"], last["args"]["suspended_at"]) == ("running", None)
        assert [run["args"]["ended"] for run in slices(trace, RUN_CATEGORY, CHILD_TRACK)] == [
            "await",
            "return",
        ]

    def test_step_slices_nest_inside_their_tasks_slice(self) -> None:
        """A child task clipped at the response's end clips its steps too (Perfetto drops a
        slice that spills out of its parent's)."""
        steps = [
            *story_steps()[:2],
            Step(1, 20.0, 30.0, "await", site=CHILD, awaited=AwaitTarget("sleep", delay_ms=60.0)),
        ]
        trace = steps_trace(
            stored_profile(steps, tasks=[task(1, 10.0, None, name="avatar")]), duration_ms=25.0
        )
        tasks = {event["tid"]: event for event in phase(trace, "X") if is_task(event)}
        parent = tasks[CHILD_TRACK]
        assert (parent["ts"], parent["dur"]) == (10_000.0, 15_000.0)
        child_slices = [
            event
            for event in phase(trace, "X")
            if event["tid"] == CHILD_TRACK and event is not parent
        ]
        assert spans(child_slices) == [
            (RUN_NAME, 10_000.0, 1_000.0),
            ("await avatars.py:30", 11_000.0, 9_000.0),
            (RUN_NAME, 20_000.0, 5_000.0),
            ("await avatars.py:30", 25_000.0, 0.0),
        ]
        # What the wait really lasted stays in its args: never resumed, it ran to the end (90).
        assert child_slices[-1]["args"]["waited_ms"] == 60.0
        assert child_slices[-1]["args"]["resumed"] is False
        for event in phase(trace, "X"):
            if event["cat"].startswith("step,"):
                owner = tasks[event["tid"]]
                assert owner["ts"] <= event["ts"]
                assert event["ts"] + event["dur"] <= owner["ts"] + owner["dur"] + 0.001

    def test_the_task_events_are_those_of_a_trace_without_steps(self) -> None:
        profile = stored_profile(story_steps())
        with_steps = steps_trace(profile)
        timeline_only = to_chrome_trace(
            timeline_of(profile, duration_ms=100.0, max_rows=None),
            request_id=REQUEST_ID,
            method="GET",
            path="/user",
        )
        added = [
            event
            for event in with_steps["traceEvents"]
            if str(event.get("cat", "")).startswith("step,")
        ]
        kept = [event for event in with_steps["traceEvents"] if event not in added]
        assert kept == timeline_only["traceEvents"]
        assert len(added) == 5 + 3
        assert with_steps["metadata"]["steps"] == {"recorded": 5, "exported": 5, "not_recorded": 2}
        assert timeline_only["metadata"]["steps"] == {
            "recorded": 0,
            "exported": 0,
            "not_recorded": 0,
        }

    def test_steps_of_a_task_without_a_track_are_left_out(self) -> None:
        steps = [*story_steps(), Step(9, 30.0, 31.0, "return")]
        trace = steps_trace(stored_profile(steps))
        assert {event["tid"] for event in slices(trace, RUN_CATEGORY)} == {
            REQUEST_TRACK,
            CHILD_TRACK,
        }
        assert trace["metadata"]["steps"]["recorded"] == 6
        assert trace["metadata"]["steps"]["exported"] == 5


# Await sites of the recorded request below, found by the marker at the end of their lines.
SOURCE = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# {marker}"))


async def child_sleeps() -> None:
    await asyncio.sleep(0.01)  # child sleep


async def request_body() -> None:
    await asyncio.sleep(0.02)  # request sleep
    await asyncio.create_task(child_sleeps(), name="child")  # await child


@pytest.mark.skipif(
    STEPS_UNAVAILABLE is not None, reason="step timing needs Python 3.12+ (sys.monitoring)"
)
class TestStepsOfARecordedRequest:
    @pytest.mark.asyncio
    async def test_the_download_shows_each_tasks_runs_and_waits(self) -> None:
        context = RequestContext(method="GET", path="/steps", client_host="127.0.0.1")
        profiler = AsyncRequestProfiler(
            context, DebugToolbarConfig(), TaskFactoryBackend(origin_ns=context.start_ns)
        )

        async def request() -> AsyncProfile:
            profiler.start()
            try:
                await request_body()
            finally:
                profile = profiler.stop()
            return profile

        recorded = await asyncio.create_task(request(), name="the-request")
        assert recorded.steps is not None
        # As the download builds it: from the stored dict.
        profile = AsyncProfile.from_dict(json.loads(json.dumps(recorded.to_dict())))
        assert profile.steps is not None
        trace = steps_trace(profile, duration_ms=None)
        names = thread_names(trace)
        assert names[REQUEST_TRACK].startswith("the-request")
        assert names[CHILD_TRACK].startswith("child")
        steps = profile.steps.steps()
        for task_id, tid in ((0, REQUEST_TRACK), (1, CHILD_TRACK)):
            own = [step for step in steps if step.task_id == task_id]
            assert len(own) >= 2
            runs = slices(trace, RUN_CATEGORY, tid)
            assert [(run["ts"], run["dur"]) for run in runs] == [
                (us(step.start_ms), round(us(step.end_ms) - us(step.start_ms), 3)) for step in own
            ]
        waits = {(event["tid"], event["name"]): event for event in slices(trace, WAIT_CATEGORY)}
        here = Path(__file__).name
        sleep = waits[(REQUEST_TRACK, f"await {here}:{line_of('request sleep')}")]
        assert sleep["args"]["awaited"] == "sleep 20.0 ms"
        assert sleep["dur"] >= 19_000
        assert sleep["args"]["waited_ms"] == pytest.approx(sleep["dur"] / 1000, abs=0.001)
        child = waits[(REQUEST_TRACK, f"await {here}:{line_of('await child')}")]
        assert child["args"]["awaited"] == "task 1"
        assert child["args"]["awaited_task_ids"] == [1]
        child_sleep = waits[(CHILD_TRACK, f"await {here}:{line_of('child sleep')}")]
        assert child_sleep["dur"] >= 9_000
        # The child's sleep lies within the request task's wait for the child.
        assert child["ts"] <= child_sleep["ts"]
        assert child_sleep["ts"] + child_sleep["dur"] <= child["ts"] + child["dur"]
