"""The profiler's records: JSON-serialisable, and rebuilt unchanged from their dicts."""

from __future__ import annotations

import json

import pytest

from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagSample,
    LagStats,
    StackFrame,
    TaskEvent,
)

FRAME = StackFrame(filename="/app/views.py", lineno=42, function="Orders.list", code="await q()")


def failed_task() -> TaskEvent:
    return TaskEvent(
        task_id=3,
        parent_id=1,
        name="fetch-orders",
        coro_name="fetch_orders",
        state="failed",
        start_ms=1.25,
        end_ms=4.0,
        exception_type="TimeoutError",
        exception_message="db did not answer",
        stack=[FRAME, StackFrame("/app/main.py", 7, "main")],
    )


class TestStackFrame:
    def test_to_dict(self) -> None:
        assert FRAME.to_dict() == {
            "filename": "/app/views.py",
            "lineno": 42,
            "function": "Orders.list",
            "code": "await q()",
        }

    def test_round_trip_and_defaults(self) -> None:
        assert StackFrame.from_dict(FRAME.to_dict()) == FRAME
        assert StackFrame.from_dict({}) == StackFrame("<unknown>", 0, "<unknown>", None)


class TestTaskEvent:
    def test_to_dict_is_the_panel_task_format(self) -> None:
        data = failed_task().to_dict()
        assert data == {
            "task_id": 3,
            "parent_id": 1,
            "name": "fetch-orders",
            "coro_name": "fetch_orders",
            "state": "failed",
            "start_ms": 1.25,
            "end_ms": 4.0,
            "duration_ms": 2.75,
            "exception": {"type": "TimeoutError", "message": "db did not answer"},
            "stack": [
                FRAME.to_dict(),
                {"filename": "/app/main.py", "lineno": 7, "function": "main", "code": None},
            ],
        }
        assert json.loads(json.dumps(data)) == data

    def test_pending_has_no_end_or_duration(self) -> None:
        task = TaskEvent(1, None, "bg", "poll", "pending", start_ms=0.5)
        assert task.duration_ms is None
        data = task.to_dict()
        assert (data["end_ms"], data["duration_ms"], data["exception"], data["stack"]) == (
            None,
            None,
            None,
            [],
        )

    def test_round_trip(self) -> None:
        task = failed_task()
        assert TaskEvent.from_dict(task.to_dict()) == task

    def test_unknown_state_is_refused(self) -> None:
        data = failed_task().to_dict() | {"state": "sleeping"}
        with pytest.raises(ValueError, match="unknown task state 'sleeping'"):
            TaskEvent.from_dict(data)


class TestBlockingCall:
    def test_own_stall_victim_and_unsampled(self) -> None:
        own = BlockingCall(10.0, 120.0, "/app/views.py", 42, "Orders.list", "time.sleep(0.12)")
        assert own.to_dict()["culprit"] is True
        victim = BlockingCall(
            10.0,
            120.0,
            None,
            None,
            None,
            None,
            relation="suffered",
            culprit_request_id="abc",
            culprit_method="POST",
            culprit_path="/slow",
        )
        assert victim.to_dict()["culprit"] == {
            "request_id": "abc",
            "method": "POST",
            "path": "/slow",
        }
        unsampled = BlockingCall(1.0, 150.0, None, None, None, None, relation="unknown")
        assert unsampled.to_dict()["culprit"] is None
        for call in (own, victim):
            assert BlockingCall.from_dict(json.loads(json.dumps(call.to_dict()))) == call
        # Unsampled, "who" is unknown: the dict round-trips, culprit stays unknown.
        rebuilt = BlockingCall.from_dict(json.loads(json.dumps(unsampled.to_dict())))
        assert rebuilt == unsampled
        assert [c.to_dict()["relation"] for c in (own, victim, unsampled)] == [
            "own",
            "suffered",
            "unknown",
        ]
        assert [c.to_dict()["sampled"] for c in (own, victim, unsampled)] == [True, True, False]

    @pytest.mark.parametrize(
        ("culprit", "sampled", "relation"),
        [
            (True, True, "own"),
            ({"request_id": "abc", "method": "GET", "path": "/"}, True, "suffered"),
            (None, False, "unknown"),
        ],
    )
    def test_records_stored_before_relation_existed_still_load(
        self, culprit: object, sampled: bool, relation: str
    ) -> None:
        data = {"start_ms": 1.0, "duration_ms": 150.0, "culprit": culprit, "sampled": sampled}
        assert BlockingCall.from_dict(data).relation == relation

    def test_an_unknown_relation_is_refused(self) -> None:
        with pytest.raises(ValueError, match="relation 'blamed'"):
            BlockingCall.from_dict({"start_ms": 1.0, "duration_ms": 2.0, "relation": "blamed"})


class TestLag:
    def test_round_trip(self) -> None:
        stats = LagStats(
            samples=[LagSample(5.0, 12.5), LagSample(30.0, 48.0)],
            max_lag_ms=48.0,
            threshold_ms=10.0,
            interval_ms=10.0,
            beats=9,
            dropped=1,
        )
        data = stats.to_dict()
        assert data["samples"] == [{"at_ms": 5.0, "lag_ms": 12.5}, {"at_ms": 30.0, "lag_ms": 48.0}]
        assert LagStats.from_dict(json.loads(json.dumps(data))) == stats
