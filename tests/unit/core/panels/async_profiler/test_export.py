"""Chrome trace export: the structure Perfetto and chrome://tracing load, with real values."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from debug_toolbar.core.panels.async_profiler.export import (
    LAG_COUNTER_NAME,
    LOOP_TID,
    PID,
    REQUEST_TID,
    chrome_trace,
    to_chrome_trace,
)
from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagSample,
    StackFrame,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.timeline import (
    generate_timeline,
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
