"""The frozen async profile of one request: what the page, the JSON API and the trace all read.

``AsyncRequestProfiler`` (``profiler.py``) collects while the request runs; when it stops it
freezes everything into one ``AsyncProfile``: plain tuples, numbers and strings, no collector,
loop or task. It becomes a dict only at the history/API boundary, through ``to_dict`` and
``from_dict``, which round-trip.

One thing stays unresolved on purpose: the tasks' creation stacks are kept as (code object,
line) pairs until someone reads them (``task_table.TaskTable``). Resolving file names and source
lines costs about a microsecond per task, and most requests are never inspected; a code object
keeps no collector, loop or request alive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagStats,
)
from debug_toolbar.core.panels.async_profiler.step_findings import SlowStep, StepFindings
from debug_toolbar.core.panels.async_profiler.step_report import (
    AwaitSiteRow,
    SlowestAwait,
    TimeBreakdown,
)
from debug_toolbar.core.panels.async_profiler.steps import RequestTask, StepTable
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "AsyncProfile",
    "BackendProfile",
    "FunctionProfile",
    "FunctionStat",
    "Overhead",
    "ProfileSummary",
    "YappiRetention",
)


@dataclass(frozen=True, slots=True)
class Overhead:
    """What profiling cost, in ms: measured, except ``tracking_ms`` when ``tracking_estimated``.

    Not counted: the loop's dispatch of each task's done callback, the watchdog's samples (on
    its own thread, during stalls), building the head of the record and its bounded copy.
    """

    tracking_ms: float = 0.0
    """The per-task work on the hot path (factory and done callbacks): the request's tasks
    times a cost per task calibrated in this process when ``tracking_estimated``."""
    setup_ms: float = 0.0
    """The fixed cost, measured: installing and removing the shared hooks, setting the
    ContextVars; with the Async panel, everything its request hooks do (building, starting and
    stopping every collector, freezing the profile), yappi's ``profiler_ms`` excepted."""
    report_ms: float = 0.0
    """Building the report (resolving stacks): paid when the record is read, not by the request."""
    profiler_ms: float | None = None
    """yappi's own bookkeeping (joining and leaving the run, collecting), when it ran."""
    steps_ms: float | None = None
    """Step timing's work at each suspension (walking the await chain, recording), when steps
    were timed; the monitoring calls themselves (under 1 µs a step) cannot be timed inside."""
    heartbeat_ms: float | None = None
    """The loop's heartbeat (blocking detection, lag) beating during the request, measured;
    requests in flight together share it, and each is charged all of it."""
    tracking_estimated: bool = False
    """``tracking_ms`` is estimated (tasks x ``per_task_ns``), not timed task by task."""
    per_task_ns: float | None = None
    """The per-task cost the estimate used: the mean of this process's timed samples."""

    @property
    def request_ms(self) -> float:
        """What the request itself paid: everything but building the report."""
        return (
            self.tracking_ms
            + self.setup_ms
            + (self.profiler_ms or 0.0)
            + (self.steps_ms or 0.0)
            + (self.heartbeat_ms or 0.0)
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tracking_ms": self.tracking_ms,
            "setup_ms": self.setup_ms,
            "report_ms": self.report_ms,
            "tracking_estimated": self.tracking_estimated,
        }
        if self.profiler_ms is not None:
            data["profiler_ms"] = self.profiler_ms
        if self.steps_ms is not None:
            data["steps_ms"] = self.steps_ms
        if self.heartbeat_ms is not None:
            data["heartbeat_ms"] = self.heartbeat_ms
        if self.per_task_ns is not None:
            data["per_task_ns"] = self.per_task_ns
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Overhead:
        profiler, steps = data.get("profiler_ms"), data.get("steps_ms")
        heartbeat, per_task = data.get("heartbeat_ms"), data.get("per_task_ns")
        return cls(
            tracking_ms=float(data.get("tracking_ms") or 0.0),
            setup_ms=float(data.get("setup_ms") or 0.0),
            report_ms=float(data.get("report_ms") or 0.0),
            profiler_ms=None if profiler is None else float(profiler),
            steps_ms=None if steps is None else float(steps),
            heartbeat_ms=None if heartbeat is None else float(heartbeat),
            tracking_estimated=bool(data.get("tracking_estimated")),
            per_task_ns=None if per_task is None else float(per_task),
        )


@dataclass(slots=True, frozen=True)
class FunctionStat:
    """One function's wall-clock stats within one request (the yappi backend's)."""

    name: str
    """Qualified name (``Class.method``)."""
    filename: str
    lineno: int
    calls: int
    """Real calls: a coroutine resumed after each ``await`` still counts once."""
    total_ms: float
    """Wall time from call to return, awaits and callees included."""
    own_ms: float
    """``total_ms`` minus the time spent in profiled callees."""
    avg_ms: float
    is_coroutine: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filename": self.filename,
            "lineno": self.lineno,
            "calls": self.calls,
            "total_ms": self.total_ms,
            "own_ms": self.own_ms,
            "avg_ms": self.avg_ms,
            "is_coroutine": self.is_coroutine,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionStat:
        return cls(
            name=str(data["name"]),
            filename=str(data["filename"]),
            lineno=int(data["lineno"]),
            calls=int(data["calls"]),
            total_ms=float(data["total_ms"]),
            own_ms=float(data["own_ms"]),
            avg_ms=float(data["avg_ms"]),
            is_coroutine=bool(data["is_coroutine"]),
        )


@dataclass(frozen=True, slots=True)
class FunctionProfile:
    """The yappi backend's function table for one request."""

    functions: tuple[FunctionStat, ...]
    """The slowest functions by total time, at most ``max_functions``."""
    total: int
    """How many functions the request ran (before the cap)."""
    max_functions: int
    error: str | None = None
    """Why there is no table (yappi busy, or the process reached its yappi limit)."""
    cost_note: str | None = None
    clock: str = "wall"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "functions": [function.to_dict() for function in self.functions],
            "total": self.total,
            "max_functions": self.max_functions,
            "error": self.error,
            "cost_note": self.cost_note,
            "clock": self.clock,
        }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionProfile:
        return cls(
            functions=tuple(FunctionStat.from_dict(f) for f in data.get("functions") or ()),
            total=int(data.get("total") or 0),
            max_functions=int(data.get("max_functions") or 0),
            error=data.get("error"),
            cost_note=data.get("cost_note"),
            clock=str(data.get("clock") or "wall"),
        )


@dataclass(slots=True, frozen=True)
class YappiRetention:
    """What the yappi runs of this process have left in memory so far (a snapshot).

    yappi keeps it until the process exits, stopped and cleared or not (sumerc/yappi#217):
    restarting the process is the only way to get it back.
    """

    requests: int
    """Requests given a yappi tag (profiled by yappi) in this process."""
    coroutines: int
    """Coroutines of those requests that yappi keeps alive: their completed calls, as yappi
    counted them. A lower bound: coroutines of unprofiled code that ran meanwhile are kept too."""
    approx_bytes: int
    """Estimated from the counts (``yappi_backend.RETAINED_BYTES_PER_*``)."""
    limit: int | None = None
    """``async_yappi_max_requests``: past it, the process stops using yappi."""

    def to_dict(self) -> dict[str, int]:
        data = {
            "requests": self.requests,
            "coroutines": self.coroutines,
            "approx_bytes": self.approx_bytes,
        }
        if self.limit is not None:
            data["limit"] = self.limit
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> YappiRetention:
        limit = data.get("limit")
        return cls(
            requests=int(data["requests"]),
            coroutines=int(data["coroutines"]),
            approx_bytes=int(data["approx_bytes"]),
            limit=None if limit is None else int(limit),
        )


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """The figures the toolbar shows while the response waits (nav subtitle, badges)."""

    completed: int
    cancelled: int
    failed: int
    pending: int
    dropped: int
    profiling_overhead_ms: float
    """What profiling cost the request itself (``Overhead.request_ms`` at the time)."""
    blocking_calls: int
    """Stalls this request's own code caused."""
    suffered_blocking_calls: int
    """The other stalls in its window (another request's, outside any request, or unknown)."""
    max_lag_ms: float | None
    """None when lag monitoring was off."""
    overhead_estimated: bool = False
    """``profiling_overhead_ms`` includes an estimate (``Overhead.tracking_estimated``)."""
    slowest_await: SlowestAwait | None = None
    """The request's own task's longest await (None: no steps, or it never waited): here so
    that the history lists it for every request without building a record's detail."""

    @property
    def total_tasks(self) -> int:
        return self.completed + self.cancelled + self.failed + self.pending + self.dropped

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_tasks": self.total_tasks,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "pending": self.pending,
            "dropped": self.dropped,
            "profiling_overhead_ms": self.profiling_overhead_ms,
            "blocking_calls": self.blocking_calls,
            "suffered_blocking_calls": self.suffered_blocking_calls,
            "max_lag_ms": self.max_lag_ms,
            "overhead_estimated": self.overhead_estimated,
            "slowest_await": None if self.slowest_await is None else self.slowest_await.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileSummary:
        max_lag, slowest = data.get("max_lag_ms"), data.get("slowest_await")
        return cls(
            completed=int(data.get("completed") or 0),
            cancelled=int(data.get("cancelled") or 0),
            failed=int(data.get("failed") or 0),
            pending=int(data.get("pending") or 0),
            dropped=int(data.get("dropped") or 0),
            profiling_overhead_ms=float(data.get("profiling_overhead_ms") or 0.0),
            blocking_calls=int(data.get("blocking_calls") or 0),
            suffered_blocking_calls=int(data.get("suffered_blocking_calls") or 0),
            max_lag_ms=None if max_lag is None else float(max_lag),
            overhead_estimated=bool(data.get("overhead_estimated")),
            slowest_await=None if slowest is None else SlowestAwait.from_dict(slowest),
        )


@dataclass(frozen=True, slots=True)
class BackendProfile:
    """What a backend collected for one request (``AsyncProfilerBackend.collected``)."""

    tasks: TaskTable
    overhead: Overhead
    functions: FunctionProfile | None = None


@dataclass(frozen=True, slots=True)
class AsyncProfile:
    """One request's async profile, frozen when collection stopped."""

    backend: str
    """Which backend collected it (``taskfactory`` or ``yappi``)."""
    tasks: TaskTable
    blocking_calls: tuple[BlockingCall, ...] = ()
    lag: LagStats | None = None
    """None when lag monitoring was off."""
    overhead: Overhead = field(default_factory=Overhead)
    functions: FunctionProfile | None = None
    """yappi's function table; None with the task-factory backend."""
    backend_note: str | None = None
    """Why another backend than the configured one ran (a stale cookie, yappi's limit)."""
    yappi_retention: YappiRetention | None = None
    """For a request that asked for yappi: what yappi keeps in this process so far."""
    request_task: RequestTask | None = None
    """The request's own task (the root of the task tree); None when it was not recorded."""
    steps: StepTable | None = None
    """Every step of the request's own task and of the tasks it spawned (``steps.py``)."""
    steps_unavailable: str | None = None
    """Why there are no steps: an older Python, ``async_step_timing`` off, no free
    ``sys.monitoring`` tool id. None when steps were timed."""
    findings: StepFindings = field(default_factory=StepFindings, compare=False, repr=False)
    """The breakdown and the slow steps, computed when first read (``step_report.py``)."""

    @property
    def time_breakdown(self) -> TimeBreakdown | None:
        """Where the request's own task spent its time; None without steps."""
        return self.findings.breakdown

    @property
    def slow_steps(self) -> tuple[SlowStep, ...]:
        """Steps (or, without steps, stalls the watchdog saw) of at least the lag threshold."""
        return self.findings.slow_steps

    def await_sites(self) -> tuple[AwaitSiteRow, ...]:
        """The await-site table (every step is read: built with the detail, not the head)."""
        return self.findings.await_sites

    @property
    def summary(self) -> ProfileSummary:
        counts = self.tasks.state_counts()
        own = sum(1 for call in self.blocking_calls if call.relation == "own")
        return ProfileSummary(
            completed=counts["completed"],
            cancelled=counts["cancelled"],
            failed=counts["failed"],
            pending=counts["pending"],
            dropped=self.tasks.dropped,
            profiling_overhead_ms=self.overhead.request_ms,
            blocking_calls=own,
            suffered_blocking_calls=len(self.blocking_calls) - own,
            max_lag_ms=None if self.lag is None else self.lag.max_lag_ms,
            overhead_estimated=self.overhead.tracking_estimated,
            slowest_await=self.findings.slowest_await,
        )

    # The history/API boundary. The record keeps the cheap part at once (``head_dict``) and
    # the part that costs per task when it is first read (``detail_dict``).

    def head_dict(self) -> dict[str, Any]:
        """What the toolbar reads while the response waits: the nav subtitle and the history's
        columns (``history.py``) need the summary, and why there are no steps.

        Nothing more: the record bounds every value of its head on the request path
        (``bounds.bound``, about 30 bytecodes a field), and the lag samples, the blocking
        calls with their stacks and the request task's names were a third of the panel's
        fixed cost on a noop request. They are built with the detail, on first read.
        """
        return {
            "summary": self.summary.to_dict(),
            "steps_unavailable": self.steps_unavailable,
        }

    def detail_dict(self) -> dict[str, Any]:
        """All but the head: the backend, the blocking calls and the lag, the request's own
        task, every task (their stacks resolved here), the steps, the overhead and yappi's
        function table.

        ``overhead.report_ms`` is what building this cost: paid by whoever reads the record,
        not by the request. It is measured the first time only: a profile read back from the
        history (``from_dict``) keeps the cost it had then, so the pair round-trips.
        """
        started = time.perf_counter_ns()
        tasks = self.tasks.to_dicts()
        steps = self.steps
        breakdown = self.time_breakdown
        step_data: dict[str, Any] = {
            "time_breakdown": None if breakdown is None else breakdown.to_dict(),
            "slow_steps": [step.to_dict() for step in self.slow_steps],
        }
        if steps is not None:
            step_data["steps"] = {
                "start_ms": (steps.start_ns - steps.origin_ns) / 1e6,
                "end_ms": steps.end_ms,
                "dropped": steps.dropped,
                "dropped_from_ms": steps.dropped_from_ms,
                "rows": steps.to_dicts(),
            }
            step_data["await_sites"] = [row.to_dict() for row in self.await_sites()]
        overhead = self.overhead
        if not overhead.report_ms:
            overhead = replace(overhead, report_ms=(time.perf_counter_ns() - started) / 1e6)
        data: dict[str, Any] = {
            "backend": self.backend,
            "backend_note": self.backend_note,
            "yappi_retention": (
                None if self.yappi_retention is None else self.yappi_retention.to_dict()
            ),
            "blocking_calls": [call.to_dict() for call in self.blocking_calls],
            "lag": None if self.lag is None else self.lag.to_dict(),
            "request_task": None if self.request_task is None else self.request_task.to_dict(),
            "tasks": tasks,
            "overhead": overhead.to_dict(),
            **step_data,
        }
        if self.functions is not None:
            data["profile"] = self.functions.to_dict()
        return data

    def to_dict(self) -> dict[str, Any]:
        return {**self.head_dict(), **self.detail_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AsyncProfile:
        """Rebuild from ``to_dict()`` output, as stored in the history and served as JSON.

        Sections may be missing (an empty record, a panel that failed halfway): they come
        back empty rather than as an error.
        """
        summary = data.get("summary") or {}
        lag = data.get("lag")
        profile = data.get("profile")
        retention = data.get("yappi_retention")
        request_task, breakdown = data.get("request_task"), data.get("time_breakdown")
        slowest = summary.get("slowest_await")
        overhead = Overhead.from_dict(data.get("overhead") or {})
        if "profiling_overhead_ms" in summary and not data.get("overhead"):
            overhead = Overhead(tracking_ms=float(summary["profiling_overhead_ms"] or 0.0))
        return cls(
            backend=str(data.get("backend") or ""),
            backend_note=data.get("backend_note"),
            tasks=TaskTable.from_dicts(
                data.get("tasks") or (), dropped=int(summary.get("dropped") or 0)
            ),
            blocking_calls=tuple(
                BlockingCall.from_dict(call) for call in data.get("blocking_calls") or ()
            ),
            lag=None if lag is None else LagStats.from_dict(lag),
            overhead=overhead,
            functions=None if profile is None else FunctionProfile.from_dict(profile),
            yappi_retention=None if retention is None else YappiRetention.from_dict(retention),
            request_task=None if request_task is None else RequestTask.from_dict(request_task),
            steps=_steps_from_dict(data.get("steps")),
            steps_unavailable=data.get("steps_unavailable"),
            findings=StepFindings.loaded(
                None if breakdown is None else TimeBreakdown.from_dict(breakdown),
                tuple(SlowStep.from_dict(step) for step in data.get("slow_steps") or ()),
                tuple(AwaitSiteRow.from_dict(row) for row in data.get("await_sites") or ()),
                slowest=None if slowest is None else SlowestAwait.from_dict(slowest),
            ),
        )


def _steps_from_dict(data: Mapping[str, Any] | None) -> StepTable | None:
    if data is None:
        return None
    dropped_from = data.get("dropped_from_ms")
    return StepTable.from_dicts(
        data.get("rows") or (),
        start_ms=float(data.get("start_ms") or 0.0),
        end_ms=float(data.get("end_ms") or 0.0),
        dropped=int(data.get("dropped") or 0),
        dropped_from_ms=None if dropped_from is None else float(dropped_from),
    )
