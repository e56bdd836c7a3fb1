"""Steps: where a request's time went, one run of a coroutine between two suspensions at a time.

A task's life is a series of steps: the loop resumes its coroutine, the coroutine runs until it
suspends at an ``await`` that has to wait (or returns), then the task waits until what it
awaited is ready and the loop gets round to resuming it. ``step_recorder`` records the steps of
a request's own task and of every task it spawned, exactly (``sys.monitoring``, Python 3.12+);
this module holds them frozen, like ``task_table.TaskTable`` holds the tasks.

A step is kept raw while the profile is fresh: (task, start, end, site, awaited) with the await
site as (code object, instruction offset) and what was awaited as a small tuple. Readable
frames, labels and the wait that followed each suspension are built when someone reads them
(``StepTable.steps``, ``to_dicts``), so a request nobody inspects never pays for them.

Ids: the request's own task is task 0; spawned tasks keep their ``TaskTable`` ids (1, 2, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from debug_toolbar.core.panels.async_profiler.models import StackFrame
from debug_toolbar.core.panels.async_profiler.stacks import resolve_frame

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import CodeType

__all__ = (
    "AWAIT_KINDS",
    "REQUEST_TASK_ID",
    "STEP_ENDS",
    "AwaitKind",
    "AwaitTarget",
    "RawSiteStack",
    "RawStep",
    "RequestTask",
    "Step",
    "StepEnd",
    "StepTable",
    "await_target",
    "format_ms",
    "ready_ns",
    "resolve_site",
)

REQUEST_TASK_ID = 0
"""The request's own task: the root of the task tree, the first row of the timeline."""

AwaitKind = Literal["task", "gather", "thread", "sleep", "library", "future", "other"]
"""What a suspended task waited for. ``task``: one task (``task_ids`` names it when it belongs
to the request); ``gather``: ``asyncio.gather`` of tasks; ``thread``: a thread-pool call
(``asyncio.to_thread``, ``loop.run_in_executor``); ``sleep``: ``asyncio.sleep``; ``library``:
something a library awaited for the application (I/O in ``httpx``, an ``asyncio`` Event or
Lock...), named by the library function the application called; ``future``: a bare Future the
application awaited itself; ``other``: anything else (an async generator's next item...)."""
AWAIT_KINDS: frozenset[str] = frozenset(get_args(AwaitKind))

StepEnd = Literal["await", "return", "raise", "running"]
"""How a step ended. ``await``: the task suspended (and waited); ``return``: its coroutine
returned; ``raise``: it ended with an exception or was cancelled (then the end is when asyncio
ran the task's done callbacks: local monitoring events do not report unwinding);
``running``: still running when collection stopped (the request's own task always is)."""
STEP_ENDS: frozenset[str] = frozenset(get_args(StepEnd))

RawSite = tuple["CodeType", int, bool]
"""An await site as recorded: (code object, instruction offset, is application code)."""
RawAwaited = tuple[str, Any, Any]
"""What was awaited as recorded: (kind, detail, extra); see ``_target``."""
RawSiteStack = tuple[tuple["CodeType", int], ...]
"""Part of an await chain, innermost first: (code object, instruction offset) pairs."""
RawStep = tuple[int, int, int, RawSite | None, RawAwaited | None]
"""(task id, start ns, end ns, await site, awaited); site and awaited are None unless the step
ended in an await."""

_lines: dict[tuple[int, int], tuple[CodeType, int]] = {}
_LINES_LIMIT = 4096


def _line_at(code: CodeType, offset: int) -> int:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line or code.co_firstlineno
    return code.co_firstlineno


def resolve_site(code: CodeType, offset: int) -> StackFrame:
    """The frame of an instruction: file, line, function, source (cached per process).

    The hot path keeps the instruction offset (``frame.f_lasti``): reading the line there
    would cost a walk of the line table for every suspension. Keyed by the code object's
    identity, as ``stacks.resolve_frame`` explains.
    """
    key = (id(code), offset)
    known = _lines.get(key)
    if known is None or known[0] is not code:
        if len(_lines) >= _LINES_LIMIT:
            _lines.clear()
        known = _lines[key] = (code, _line_at(code, offset))
    return resolve_frame(code, known[1])


def format_ms(ms: float) -> str:
    """A duration for a label: two decimals below 1 ms, one above."""
    return f"{ms:,.2f} ms" if abs(ms) < 1 else f"{ms:,.1f} ms"


@dataclass(frozen=True, slots=True)
class AwaitTarget:
    """What a task waited for at one suspension."""

    kind: AwaitKind
    task_ids: tuple[int, ...] = ()
    """``task``: the awaited task's id (empty: a task of another request or of the server);
    ``gather``: the ids of the gathered tasks that belong to the request."""
    count: int | None = None
    """``gather``: how many awaitables were gathered."""
    delay_ms: float | None = None
    """``sleep``: the delay asked for."""
    library: str | None = None
    """``library``: the top-level package of the library function the application called."""
    function: str | None = None
    """``library``: that function's qualified name; ``future``/``other``: the awaited type."""
    via: StackFrame | None = None
    """``library``: the library frame nearest the suspension (what really waited)."""

    @property
    def label(self) -> str:
        """Short and readable: ``task 3``, ``sleep 50.0 ms``, ``httpx AsyncClient.get``."""
        kind = self.kind
        if kind == "task":
            return f"task {self.task_ids[0]}" if self.task_ids else "a task of another request"
        if kind == "gather":
            return f"gather of {self.count if self.count is not None else len(self.task_ids)}"
        if kind == "thread":
            return "thread pool"
        if kind == "sleep":
            return "sleep" if self.delay_ms is None else f"sleep {format_ms(self.delay_ms)}"
        if kind == "library":
            return " ".join(part for part in (self.library, self.function) if part) or "library"
        if kind == "future":
            return self.function or "Future"
        return self.function or "other"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "task_ids": list(self.task_ids),
            "count": self.count,
            "delay_ms": self.delay_ms,
            "library": self.library,
            "function": self.function,
            "via": None if self.via is None else self.via.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AwaitTarget:
        kind = data.get("kind") or "other"
        if kind not in AWAIT_KINDS:
            raise ValueError(f"unknown await kind {kind!r}")
        count, delay, via = data.get("count"), data.get("delay_ms"), data.get("via")
        return cls(
            kind=cast("AwaitKind", kind),
            task_ids=tuple(int(task_id) for task_id in data.get("task_ids") or ()),
            count=None if count is None else int(count),
            delay_ms=None if delay is None else float(delay),
            library=data.get("library"),
            function=data.get("function"),
            via=None if via is None else StackFrame.from_dict(via),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One run of a task's coroutine, and the suspension that ended it (if one did)."""

    task_id: int
    start_ms: float
    end_ms: float
    ended: StepEnd
    start_known: bool = True
    """False when the step began with an exception thrown into the task (a cancellation): local
    monitoring events do not report that, so the step is shown from its end only."""
    site: StackFrame | None = None
    """Where the task suspended: the innermost application frame of its await chain (the
    innermost frame when none is the application's)."""
    site_is_app: bool = True
    awaited: AwaitTarget | None = None
    resumed_ms: float | None = None
    """When the task ran again (the next step's start); None: still waiting when collection
    stopped (the wait then runs to ``StepTable.end_ms``)."""
    ready_ms: float | None = None
    """When what it awaited was ready, where that is known exactly (a sleep's timer, a task's
    or a thread call's end); from then on the task was queued behind other work."""

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms

    def waited_ms(self, end_ms: float) -> float | None:
        """How long the suspension lasted (to ``end_ms`` if never resumed); None without one."""
        if self.ended != "await":
            return None
        return (end_ms if self.resumed_ms is None else self.resumed_ms) - self.end_ms

    def resume_delay_ms(self, end_ms: float) -> float | None:
        """Ready -> resumed: time spent queued behind other work; None when unknown."""
        if self.ended != "await" or self.ready_ms is None:
            return None
        resumed = end_ms if self.resumed_ms is None else self.resumed_ms
        return max(resumed - max(self.ready_ms, self.end_ms), 0.0)

    def to_dict(self, end_ms: float) -> dict[str, Any]:
        """``end_ms``: when collection stopped (where a wait never resumed ends)."""
        return {
            "task_id": self.task_id,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.duration_ms,
            "ended": self.ended,
            "start_known": self.start_known,
            "site": None if self.site is None else self.site.to_dict(),
            "site_is_app": self.site_is_app,
            "awaited": None if self.awaited is None else self.awaited.to_dict(),
            "resumed_ms": self.resumed_ms,
            "ready_ms": self.ready_ms,
            "waited_ms": self.waited_ms(end_ms),
            "resume_delay_ms": self.resume_delay_ms(end_ms),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        ended = data.get("ended") or "return"
        if ended not in STEP_ENDS:
            raise ValueError(f"unknown step end {ended!r}")
        site, awaited = data.get("site"), data.get("awaited")
        resumed, ready = data.get("resumed_ms"), data.get("ready_ms")
        return cls(
            task_id=int(data["task_id"]),
            start_ms=float(data["start_ms"]),
            end_ms=float(data["end_ms"]),
            ended=cast("StepEnd", ended),
            start_known=bool(data.get("start_known", True)),
            site=None if site is None else StackFrame.from_dict(site),
            site_is_app=bool(data.get("site_is_app", True)),
            awaited=None if awaited is None else AwaitTarget.from_dict(awaited),
            resumed_ms=None if resumed is None else float(resumed),
            ready_ms=None if ready is None else float(ready),
        )


@dataclass(frozen=True, slots=True)
class RequestTask:
    """The request's own task: the one running the handler, from profiling's start to stop.

    Known on every Python version (its steps need 3.12+). It has the shape of a spawned
    task's record (``to_task_dict``), so the timeline draws it as the root of the tree.
    """

    name: str
    coro_name: str
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": REQUEST_TASK_ID,
            "name": self.name,
            "coro_name": self.coro_name,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.duration_ms,
        }

    def to_task_dict(self) -> dict[str, Any]:
        """As ``TaskEvent.to_dict()`` gives a task: the timeline's first row."""
        return {
            **self.to_dict(),
            "parent_id": None,
            "state": "completed",
            "exception": None,
            "stack": [],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestTask:
        return cls(
            name=str(data.get("name") or ""),
            coro_name=str(data.get("coro_name") or ""),
            start_ms=float(data["start_ms"]),
            end_ms=float(data["end_ms"]),
        )


def _target(raw: RawAwaited, cache: dict[int, AwaitTarget]) -> AwaitTarget:
    """The readable form of a recorded awaited tuple (equal tuples share one target)."""
    known = cache.get(id(raw))
    if known is not None:
        return known
    kind, detail, extra = raw
    if kind == "task":
        target = AwaitTarget("task", task_ids=(detail,) if detail else ())
    elif kind == "gather":
        target = AwaitTarget("gather", task_ids=tuple(detail), count=extra)
    elif kind == "sleep":
        target = AwaitTarget("sleep", delay_ms=detail / 1e6)
    elif kind == "library":
        via = None if extra is None else resolve_site(extra[0], extra[1])
        target = AwaitTarget("library", library=detail[0], function=detail[1], via=via)
    elif kind in ("future", "other"):
        target = AwaitTarget(cast("AwaitKind", kind), function=detail)
    else:
        target = AwaitTarget("thread")
    cache[id(raw)] = target
    return target


def await_target(raw: RawAwaited) -> AwaitTarget:
    """The readable form of one recorded awaited tuple (for a single step: no shared cache)."""
    return _target(raw, {})


def ready_ns(awaited: RawAwaited, end_ns: int, task_ends_ns: Mapping[int, int]) -> int | None:
    """When what a suspension awaited was ready, where the recording tells without a thread
    call's own record: a sleep ``delay`` after it was armed (``end_ns``), an awaited task (or
    every gathered task) when its last step ended, if it is the request's (``task_ends_ns``).
    """
    kind, detail, extra = awaited
    if kind == "sleep":
        return end_ns + int(detail)
    if kind == "task":
        return task_ends_ns.get(detail) if detail else None
    if kind == "gather" and detail and len(detail) == extra:
        found = [task_ends_ns[task_id] for task_id in detail if task_id in task_ends_ns]
        return max(found) if len(found) == len(detail) else None
    return None


@dataclass(frozen=True, slots=True)
class StepTable:
    """The steps of a request's tasks, frozen when collection stopped.

    ``rows`` are raw tuples (``RawStep``) while the profile is fresh and ``Step`` objects once
    loaded from the history; ``steps()`` gives ``Step`` objects either way.
    """

    origin_ns: int
    """The request's start: step times are in ms from it."""
    end_ns: int
    """When collection stopped: a wait that never resumed ends here."""
    rows: tuple[RawStep | Step, ...] = ()
    endings: Mapping[int, StepEnd] = field(default_factory=dict)
    """Row index -> how the step ended, for the steps that did not end in an await."""
    unknown_starts: frozenset[int] = frozenset()
    ready_ns: Mapping[int, int] = field(default_factory=dict)
    """Row index -> when the thread call the step's suspension awaited returned. A sleep is
    ready ``delay`` after the suspension, an awaited task when its last step ended."""
    task_ends_ns: Mapping[int, int] = field(default_factory=dict)
    """Task id -> when its last step ended: an awaited task was ready from then."""
    dropped: int = 0
    """Steps past the cap (``async_max_steps``): counted, not recorded."""
    dropped_from_ns: int | None = None
    """When the request's own task lost its first step to the cap: its time from there on is
    not broken down (``TimeBreakdown.unrecorded_ms``)."""
    start_ns: int = 0
    """When step timing began for the request's own task (the breakdown's start)."""
    root_rows: tuple[int, ...] | None = None
    """The rows of the request's own task, as the recorder kept them (None: look them up)."""
    callers: Mapping[int, RawSiteStack] = field(default_factory=dict)
    """id of an awaiting function's code -> the await chain above it (its callers, innermost
    first), the first time it awaited in this request."""

    def site_stack(self, row: RawStep | Step) -> tuple[StackFrame, ...]:
        """A fresh row's await site and its callers, resolved (empty when not kept)."""
        if isinstance(row, Step) or row[3] is None:
            return ()
        code, offset, _app = row[3]
        raw = ((code, offset), *self.callers.get(id(code), ()))
        return tuple(resolve_site(code, offset) for code, offset in raw)

    @property
    def end_ms(self) -> float:
        return (self.end_ns - self.origin_ns) / 1e6

    @property
    def dropped_from_ms(self) -> float | None:
        start = self.dropped_from_ns
        return None if start is None else (start - self.origin_ns) / 1e6

    def __len__(self) -> int:
        return len(self.rows)

    def steps(self, indexes: Sequence[int] | None = None) -> tuple[Step, ...]:
        """The steps (or those at ``indexes``), typed, each linked to when its task resumed."""
        rows = self.rows
        resumed = self._resumed_after()
        targets: dict[int, AwaitTarget] = {}
        wanted = range(len(rows)) if indexes is None else indexes
        return tuple(self._step(index, resumed, targets) for index in wanted)

    def _resumed_after(self) -> dict[int, int]:
        """Row index -> row index of the same task's next step."""
        following: dict[int, int] = {}
        last: dict[int, int] = {}
        for index, row in enumerate(self.rows):
            task_id = row.task_id if isinstance(row, Step) else row[0]
            previous = last.get(task_id)
            if previous is not None:
                following[previous] = index
            last[task_id] = index
        return following

    def _step(
        self, index: int, resumed: Mapping[int, int], targets: dict[int, AwaitTarget]
    ) -> Step:
        row = self.rows[index]
        if isinstance(row, Step):
            return row
        origin = self.origin_ns
        task_id, start, end, site, awaited = row
        following = resumed.get(index)
        ready = self.ready_ns.get(index)
        if ready is None and awaited is not None:
            ready = ready_ns(awaited, end, self.task_ends_ns)
        resumed_ms: float | None = None
        if following is not None:
            next_row = self.rows[following]
            next_start = next_row.start_ms if isinstance(next_row, Step) else next_row[1]
            resumed_ms = next_start if isinstance(next_row, Step) else (next_start - origin) / 1e6
        return Step(
            task_id=task_id,
            start_ms=(start - origin) / 1e6,
            end_ms=(end - origin) / 1e6,
            ended=self.endings.get(index, "await"),
            start_known=index not in self.unknown_starts,
            site=None if site is None else resolve_site(site[0], site[1]),
            site_is_app=True if site is None else site[2],
            awaited=None if awaited is None else _target(awaited, targets),
            resumed_ms=resumed_ms if self.endings.get(index, "await") == "await" else None,
            ready_ms=None if ready is None else (ready - origin) / 1e6,
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        end_ms = self.end_ms
        return [step.to_dict(end_ms) for step in self.steps()]

    @classmethod
    def from_dicts(
        cls,
        steps: Sequence[Mapping[str, Any]],
        *,
        end_ms: float,
        start_ms: float = 0.0,
        dropped: int = 0,
        dropped_from_ms: float | None = None,
    ) -> StepTable:
        """The table of ``to_dicts()`` output (as stored), on a 0 ms origin."""
        return cls(
            origin_ns=0,
            start_ns=round(start_ms * 1e6),
            end_ns=round(end_ms * 1e6),
            rows=tuple(Step.from_dict(step) for step in steps),
            dropped=dropped,
            dropped_from_ns=None if dropped_from_ms is None else round(dropped_from_ms * 1e6),
        )
