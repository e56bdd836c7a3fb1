"""TaskTable: the tasks a request spawned, frozen in columns when collection stops.

One object per task would cost the request a microsecond per task while it waits; columns cost
a few copies in C. The typed tasks (``TaskEvent``) and their resolved creation stacks are built
when someone reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.models import TASK_STATES, StackFrame, TaskEvent
from debug_toolbar.core.panels.async_profiler.stacks import RawStack, resolve_stack

if TYPE_CHECKING:
    from collections.abc import Iterable

    from debug_toolbar.core.panels.async_profiler.models import TaskState

__all__ = ("StackColumn", "TaskTable")

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
            if state not in TASK_STATES:
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
