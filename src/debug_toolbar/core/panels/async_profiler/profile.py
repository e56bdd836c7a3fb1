"""The frozen async profile of one request: what the page, the JSON API and the trace all read.

``AsyncRequestProfiler`` (``profiler.py``) collects while the request runs; when it stops it
freezes everything into one ``AsyncProfile``: plain tuples, numbers and strings, no collector,
loop or task. It becomes a dict only at the history/API boundary, through ``to_dict`` and
``from_dict``, which round-trip.

One thing stays unresolved on purpose: the tasks' creation stacks are kept as (code object,
line) pairs until someone reads them (``TaskTable.events``). Resolving file names and source
lines costs about a microsecond per task, and most requests are never inspected; a code object
keeps no collector, loop or request alive.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.models import (
    TASK_STATES as _TASK_STATES,
)
from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagStats,
    StackFrame,
    TaskEvent,
    TaskState,
)
from debug_toolbar.core.panels.async_profiler.stacks import RawStack, resolve_stack

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = (
    "AsyncProfile",
    "BackendProfile",
    "FunctionProfile",
    "FunctionStat",
    "Overhead",
    "ProfileSummary",
    "TaskTable",
    "YappiRetention",
)

StackColumn = RawStack | Sequence[StackFrame] | Sequence[Mapping[str, Any]]
"""A task's creation stack: (code, line) pairs while the profile is fresh, the frames' dicts
once loaded from the history (or frames, built by hand); resolved only when read."""


@dataclass(frozen=True, slots=True)
class TaskTable:
    """The tasks a request spawned, in columns indexed by ``task_id - 1``.

    Columns, not one object per task: freezing the recorder's lists costs a few copies in C,
    whatever the number of tasks, while the request waits. ``events()`` builds the typed tasks
    when someone looks.
    """

    origin_ns: int
    """The request's start: task times are in ms from it."""
    parents: tuple[int, ...]
    """The creating task's id, 0 when it is not among the recorded tasks."""
    coro_names: tuple[str, ...]
    starts_ns: tuple[int, ...]
    ends_ns: Mapping[int, int]
    """Finished tasks only: index -> end."""
    names: Mapping[int, str]
    cancelled: frozenset[int]
    exceptions: Mapping[int, tuple[str, str]]
    """Failed tasks only: index -> (exception type, message)."""
    stacks: tuple[StackColumn, ...] | None
    """None when creation stacks were not captured."""
    dropped: int = 0
    """Tasks past the cap: counted, not recorded."""

    @classmethod
    def empty(cls, origin_ns: int = 0) -> TaskTable:
        return cls(origin_ns, (), (), (), {}, {}, frozenset(), {}, None)

    def __len__(self) -> int:
        return len(self.starts_ns)

    def state(self, index: int) -> TaskState:
        if index not in self.ends_ns:
            return "pending"
        if index in self.cancelled:
            return "cancelled"
        if index in self.exceptions:
            return "failed"
        return "completed"

    def state_counts(self) -> dict[TaskState, int]:
        """Tasks per state, without building anything per task (the disjoint sets say it)."""
        finished = len(self.ends_ns)
        cancelled, failed = len(self.cancelled), len(self.exceptions)
        return {
            "completed": finished - cancelled - failed,
            "cancelled": cancelled,
            "failed": failed,
            "pending": len(self.starts_ns) - finished,
        }

    def frames(self, index: int) -> tuple[StackFrame, ...]:
        """The creation stack of the task at ``index`` (``task_id - 1``), resolved."""
        return () if self.stacks is None else tuple(_resolve(self.stacks[index]))

    def events(self, *, stacks: bool = True) -> tuple[TaskEvent, ...]:
        """The tasks, typed; their stacks resolved (each distinct stack once), or left empty
        (``stacks=False``: the timeline resolves only the rows it draws, with ``frames``)."""
        origin = self.origin_ns
        resolved: dict[int, list[StackFrame]] = {}
        events = []
        for index, start in enumerate(self.starts_ns):
            end = self.ends_ns.get(index)
            exc_type, exc_message = self.exceptions.get(index, (None, None))
            events.append(
                TaskEvent(
                    task_id=index + 1,
                    parent_id=self.parents[index] or None,
                    name=self.names.get(index, ""),
                    coro_name=self.coro_names[index],
                    state=self.state(index),
                    start_ms=(start - origin) / 1e6,
                    end_ms=None if end is None else (end - origin) / 1e6,
                    exception_type=exc_type,
                    exception_message=exc_message,
                    stack=list(self._frames(index, resolved)) if stacks else [],
                )
            )
        return tuple(events)

    def _frames(self, index: int, resolved: dict[int, list[StackFrame]]) -> list[StackFrame]:
        if self.stacks is None:
            return []
        stack = self.stacks[index]
        known = resolved.get(id(stack))
        if known is None:
            known = resolved[id(stack)] = _resolve(stack)
        return known

    def to_dicts(self) -> list[dict[str, Any]]:
        """The tasks as ``TaskEvent.to_dict()`` gives them, built straight from the columns.

        The same values as ``[e.to_dict() for e in self.events()]`` (a test holds the two
        equal) without an object per task and per frame on the way. Tasks created at one site
        share one list of frame dicts: treat the result as read-only.
        """
        tasks = []
        origin = self.origin_ns
        stacks = self.stacks
        shared: dict[int, list[dict[str, Any]]] = {}
        ends, names, exceptions, cancelled = (
            self.ends_ns,
            self.names,
            self.exceptions,
            self.cancelled,
        )
        parents, coro_names = self.parents, self.coro_names
        for index, start in enumerate(self.starts_ns):
            start_ms = (start - origin) / 1e6
            end = ends.get(index)
            exception = exceptions.get(index)
            end_ms: float | None
            duration_ms: float | None
            if end is None:
                end_ms = duration_ms = None
                state = "pending"
            else:
                end_ms = (end - origin) / 1e6
                duration_ms = end_ms - start_ms
                if index in cancelled:
                    state = "cancelled"
                elif exception is not None:
                    state = "failed"
                else:
                    state = "completed"
            stack: list[dict[str, Any]] = []
            if stacks is not None:
                raw = stacks[index]
                known = shared.get(id(raw))
                if known is None:
                    known = shared[id(raw)] = [frame.to_dict() for frame in _resolve(raw)]
                stack = known
            tasks.append(
                {
                    "task_id": index + 1,
                    "parent_id": parents[index] or None,
                    "name": names.get(index, ""),
                    "coro_name": coro_names[index],
                    "state": state,
                    "start_ms": start_ms,
                    "end_ms": end_ms,
                    "duration_ms": duration_ms,
                    "exception": (
                        None
                        if exception is None
                        else {"type": exception[0], "message": exception[1]}
                    ),
                    "stack": stack,
                }
            )
        return tasks

    @classmethod
    def from_dicts(cls, tasks: Sequence[Mapping[str, Any]], *, dropped: int = 0) -> TaskTable:
        """The table of ``to_dicts()`` output (as stored), on a 0 ms origin.

        The frames stay dicts until someone reads them: a page draws a few hundred rows of a
        request's thousands of tasks. An unknown ``state`` is an error rather than a guess.
        """
        parents, coro_names, starts = [], [], []
        ends: dict[int, int] = {}
        names: dict[int, str] = {}
        cancelled: set[int] = set()
        exceptions: dict[int, tuple[str, str]] = {}
        for index, task in enumerate(tasks):
            # The stored ids are 1, 2, ... in order (``task_id - 1`` indexes the columns).
            if int(task["task_id"]) != index + 1:
                raise ValueError(f"task {index + 1} is stored as task_id {task['task_id']!r}")
            parents.append(int(task.get("parent_id") or 0))
            coro_names.append(str(task.get("coro_name") or ""))
            starts.append(round(float(task["start_ms"]) * 1e6))
            names[index] = str(task.get("name") or "")
            end_ms = task.get("end_ms")
            state = task.get("state") or ("pending" if end_ms is None else "completed")
            if state not in _TASK_STATES:
                raise ValueError(f"unknown task state {state!r}")
            if end_ms is not None:
                ends[index] = round(float(end_ms) * 1e6)
            if state == "cancelled":
                cancelled.add(index)
            elif state == "failed":
                exception = task.get("exception") or {}
                exceptions[index] = (
                    str(exception.get("type") or ""),
                    str(exception.get("message") or ""),
                )
        return cls(
            origin_ns=0,
            parents=tuple(parents),
            coro_names=tuple(coro_names),
            starts_ns=tuple(starts),
            ends_ns=ends,
            names=names,
            cancelled=frozenset(cancelled),
            exceptions=exceptions,
            stacks=tuple(task.get("stack") or () for task in tasks),
            dropped=dropped,
        )

    @classmethod
    def from_events(cls, events: Iterable[TaskEvent], *, dropped: int = 0) -> TaskTable:
        """A table of hand-built tasks (tests, tools); ids must be 1, 2, ... in order."""
        return cls.from_dicts([event.to_dict() for event in events], dropped=dropped)


def _resolve(stack: StackColumn) -> list[StackFrame]:
    if not stack:
        return []
    first = stack[0]
    if isinstance(first, StackFrame):
        return list(stack)  # type: ignore[arg-type]
    if isinstance(first, Mapping):
        return [StackFrame.from_dict(frame) for frame in stack]  # type: ignore[arg-type]
    return resolve_stack(stack)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Overhead:
    """What profiling cost, in ms: measured, never estimated."""

    tracking_ms: float = 0.0
    """The per-task work on the hot path (factory and done callbacks)."""
    setup_ms: float = 0.0
    """Installing and removing the shared hooks, setting the ContextVars."""
    report_ms: float = 0.0
    """Building the report (resolving stacks): paid when the record is read, not by the request."""
    profiler_ms: float | None = None
    """yappi's own bookkeeping (joining and leaving the run, collecting), when it ran."""

    @property
    def request_ms(self) -> float:
        """What the request itself paid: everything but building the report."""
        return self.tracking_ms + self.setup_ms + (self.profiler_ms or 0.0)

    def to_dict(self) -> dict[str, float]:
        data = {
            "tracking_ms": self.tracking_ms,
            "setup_ms": self.setup_ms,
            "report_ms": self.report_ms,
        }
        if self.profiler_ms is not None:
            data["profiler_ms"] = self.profiler_ms
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Overhead:
        profiler = data.get("profiler_ms")
        return cls(
            tracking_ms=float(data.get("tracking_ms") or 0.0),
            setup_ms=float(data.get("setup_ms") or 0.0),
            report_ms=float(data.get("report_ms") or 0.0),
            profiler_ms=None if profiler is None else float(profiler),
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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileSummary:
        max_lag = data.get("max_lag_ms")
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
        )

    # The history/API boundary. The record keeps the cheap part at once (``head_dict``) and
    # the part that costs per task when it is first read (``detail_dict``).

    def head_dict(self) -> dict[str, Any]:
        """What the toolbar needs while the response waits: nothing here costs per task."""
        return {
            "backend": self.backend,
            "backend_note": self.backend_note,
            "yappi_retention": (
                None if self.yappi_retention is None else self.yappi_retention.to_dict()
            ),
            "summary": self.summary.to_dict(),
            "blocking_calls": [call.to_dict() for call in self.blocking_calls],
            "lag": None if self.lag is None else self.lag.to_dict(),
        }

    def detail_dict(self) -> dict[str, Any]:
        """The tasks (their stacks resolved here), the overhead and yappi's function table.

        ``overhead.report_ms`` is what building this cost: paid by whoever reads the record,
        not by the request.
        """
        started = time.perf_counter_ns()
        tasks = self.tasks.to_dicts()
        overhead = replace(self.overhead, report_ms=(time.perf_counter_ns() - started) / 1e6)
        data: dict[str, Any] = {"tasks": tasks, "overhead": overhead.to_dict()}
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
        )
