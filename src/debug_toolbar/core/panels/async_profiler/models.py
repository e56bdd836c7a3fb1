"""Plain records produced by the async profiler: JSON-serialisable, one clock.

Every time is in milliseconds from the request's start (``time.perf_counter_ns`` based), so
tasks, blocking calls and lag samples share one axis on the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "TASK_STATES",
    "BlockingCall",
    "BlockingRelation",
    "LagSample",
    "LagStats",
    "StackFrame",
    "TaskEvent",
    "TaskState",
)

TaskState = Literal["pending", "completed", "cancelled", "failed"]
"""``pending``: still running when the response ended (it escaped the request)."""

TASK_STATES: frozenset[str] = frozenset(get_args(TaskState))

BlockingRelation = Literal["own", "suffered", "unknown"]
"""How a stall relates to the request. ``own``: its own code blocked the loop. ``suffered``:
another request's code did, or code outside any profiled request. ``unknown``: the stall is
real but nobody can be named (the watchdog could not look in time, or several requests' short
steps added up)."""


@dataclass(slots=True, frozen=True)
class StackFrame:
    """One resolved frame: where a task was created or where the loop was blocked."""

    filename: str
    lineno: int
    function: str
    code: str | None = None
    """The source line, when the file could be read."""

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every field (30x slower), and a report holds
        # a frame per task and stack level.
        return {
            "filename": self.filename,
            "lineno": self.lineno,
            "function": self.function,
            "code": self.code,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackFrame:
        """Rebuild from ``to_dict()`` output: stats live in the history as JSON-like dicts."""
        return cls(
            filename=str(data.get("filename") or "<unknown>"),
            lineno=int(data.get("lineno") or 0),
            function=str(data.get("function") or "<unknown>"),
            code=data.get("code"),
        )


@dataclass(slots=True)
class TaskEvent:
    """One asyncio task spawned by the request."""

    task_id: int
    """A per-request sequence number (1, 2, ...), stable and readable, unlike ``id()``."""
    parent_id: int | None
    """The creating task's id when that task is tracked too; None for the request's own task."""
    name: str
    coro_name: str
    state: TaskState
    start_ms: float
    end_ms: float | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    stack: list[StackFrame] = field(default_factory=list)
    """Creation stack, innermost frame first (empty when stack capture is off)."""

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_ms is None else self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "coro_name": self.coro_name,
            "state": self.state,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.duration_ms,
            "exception": (
                None
                if self.exception_type is None
                else {"type": self.exception_type, "message": self.exception_message or ""}
            ),
            "stack": [frame.to_dict() for frame in self.stack],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskEvent:
        """Rebuild from ``to_dict()`` output; ``duration_ms`` is derived, so it is not read.

        Optional keys may be missing (stats written by an older or thinner backend); an
        unknown ``state`` is an error rather than a guess.
        """
        end_ms = data.get("end_ms")
        state = data.get("state") or ("pending" if end_ms is None else "completed")
        if state not in TASK_STATES:
            raise ValueError(f"unknown task state {state!r}")
        parent_id = data.get("parent_id")
        exception = data.get("exception") or None
        return cls(
            task_id=int(data["task_id"]),
            parent_id=None if parent_id is None else int(parent_id),
            name=str(data.get("name") or ""),
            coro_name=str(data.get("coro_name") or ""),
            state=cast("TaskState", state),
            start_ms=float(data["start_ms"]),
            end_ms=None if end_ms is None else float(end_ms),
            exception_type=None if exception is None else str(exception.get("type") or ""),
            exception_message=None if exception is None else exception.get("message"),
            stack=[StackFrame.from_dict(frame) for frame in data.get("stack") or ()],
        )


@dataclass(slots=True)
class BlockingCall:
    """A stall of the event loop longer than the blocking threshold."""

    start_ms: float
    duration_ms: float
    filename: str | None
    lineno: int | None
    function: str | None
    code: str | None
    stack: list[StackFrame] = field(default_factory=list)
    relation: BlockingRelation = "own"
    culprit_request_id: str | None = None
    culprit_method: str | None = None
    culprit_path: str | None = None
    """For a ``suffered`` stall: the request that caused it (all None when the loop was
    blocked outside any profiled request)."""

    def to_dict(self) -> dict[str, Any]:
        # ``culprit`` and ``sampled`` are the API's older spelling of ``relation``: kept.
        culprit: bool | dict[str, str | None] | None
        if self.relation == "unknown":
            culprit = None
        elif self.relation == "own":
            culprit = True
        else:
            culprit = {
                "request_id": self.culprit_request_id,
                "method": self.culprit_method,
                "path": self.culprit_path,
            }
        return {
            "start_ms": self.start_ms,
            "duration_ms": self.duration_ms,
            "filename": self.filename,
            "lineno": self.lineno,
            "function": self.function,
            "code": self.code,
            "stack": [frame.to_dict() for frame in self.stack],
            "relation": self.relation,
            "culprit": culprit,
            "sampled": self.relation != "unknown",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockingCall:
        """Rebuild from ``to_dict()`` output (or its older form, without ``relation``)."""
        culprit = data.get("culprit", True)
        details: Mapping[str, Any] = culprit if isinstance(culprit, dict) else {}
        relation = data.get("relation")
        if relation is None:
            sampled = bool(data.get("sampled", culprit is not None))
            relation = "unknown" if not sampled else "own" if culprit is True else "suffered"
        elif relation not in ("own", "suffered", "unknown"):
            raise ValueError(f"unknown blocking-call relation {relation!r}")
        lineno = data.get("lineno")
        return cls(
            start_ms=float(data["start_ms"]),
            duration_ms=float(data["duration_ms"]),
            filename=data.get("filename"),
            lineno=None if lineno is None else int(lineno),
            function=data.get("function"),
            code=data.get("code"),
            stack=[StackFrame.from_dict(frame) for frame in data.get("stack") or ()],
            relation=cast("BlockingRelation", relation),
            culprit_request_id=details.get("request_id"),
            culprit_method=details.get("method"),
            culprit_path=details.get("path"),
        )


@dataclass(slots=True, frozen=True)
class LagSample:
    """How late the loop heartbeat ran, at a moment of the request."""

    at_ms: float
    lag_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "lag_ms": self.lag_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LagSample:
        return cls(at_ms=float(data["at_ms"]), lag_ms=float(data["lag_ms"]))


@dataclass(slots=True)
class LagStats:
    """The event-loop lag seen during one request."""

    samples: list[LagSample]
    """Beats later than ``threshold_ms``, in order (at most the monitor's cap)."""
    max_lag_ms: float
    """The worst lateness over every beat of the request, kept or not (0.0 without beats)."""
    threshold_ms: float
    interval_ms: float
    """How often the heartbeat was asked to run: the resolution of the measure."""
    beats: int = 0
    dropped: int = 0
    """Samples over the threshold that the cap did not keep."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": [sample.to_dict() for sample in self.samples],
            "max_lag_ms": self.max_lag_ms,
            "threshold_ms": self.threshold_ms,
            "interval_ms": self.interval_ms,
            "beats": self.beats,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LagStats:
        return cls(
            samples=[LagSample.from_dict(sample) for sample in data.get("samples") or ()],
            max_lag_ms=float(data.get("max_lag_ms") or 0.0),
            threshold_ms=float(data["threshold_ms"]),
            interval_ms=float(data["interval_ms"]),
            beats=int(data.get("beats") or 0),
            dropped=int(data.get("dropped") or 0),
        )
