"""One task-tracking instrumentation per event loop, shared by every profiled request on it.

Installing and restoring ``loop.set_task_factory`` per request is wrong under concurrency: the
second request saves the first one's factory, the first restores the original, the second then
restores the first's, and the factories end up calling each other forever. Here the first
profiled request on a loop installs one factory (chained to whatever was there: the app's own,
``asyncio.eager_task_factory``, uvloop's), the last one to finish restores exactly that, and in
between each new task is attributed through a ContextVar to the request it was created under.
asyncio copies the context into every task, so children, grandchildren, ``TaskGroup``,
``gather`` and ``ensure_future`` are all attributed without any bookkeeping per request.

The per-task work (``TaskRecorder.track`` and its done callback) is the hot path: a handful of
attribute writes, one dict insert, and, when enabled, a frame walk that is shared by all tasks
created from the same running frame (a ``gather`` of 100 walks the stack once).
"""

from __future__ import annotations

import asyncio
import contextlib
import linecache
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from debug_toolbar.core.panels.async_profiler.models import StackFrame, TaskEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import CodeType, FrameType

    TaskFactory = Callable[..., asyncio.Future[Any]]

__all__ = (
    "LoopHook",
    "LoopTaskHooks",
    "PerLoopRegistry",
    "RawStack",
    "TaskRecorder",
    "TaskTracking",
    "resolve_stack",
    "task_hooks",
)

logger = logging.getLogger("debug_toolbar.async_profiler")

RawStack = tuple[tuple["CodeType", int], ...]
"""A creation stack as captured on the hot path: (code object, line) pairs, innermost first."""

_perf_ns = time.perf_counter_ns
_current_task = asyncio.current_task
_Task = asyncio.Task

_current_recorder: ContextVar[TaskRecorder | None] = ContextVar(
    "debug_toolbar_task_recorder", default=None
)

# Frames in these directories are machinery (asyncio's and ours), not where a task was created.
_MACHINERY_DIRS = (
    os.path.dirname(asyncio.__file__) + os.sep,
    os.path.dirname(__file__) + os.sep,
)
_is_machinery_cache: dict[CodeType, bool] = {}
_MACHINERY_CACHE_LIMIT = 4096


def _is_machinery(code: CodeType) -> bool:
    known = _is_machinery_cache.get(code)
    if known is None:
        if len(_is_machinery_cache) >= _MACHINERY_CACHE_LIMIT:
            _is_machinery_cache.clear()
        known = _is_machinery_cache[code] = code.co_filename.startswith(_MACHINERY_DIRS)
    return known


def resolve_stack(raw: RawStack) -> list[StackFrame]:
    """Turn captured (code, line) pairs into readable frames; done at render time, not per task."""
    frames = []
    for code, lineno in raw:
        source = linecache.getline(code.co_filename, lineno).strip() if lineno else ""
        frames.append(
            StackFrame(
                filename=code.co_filename,
                lineno=lineno,
                function=getattr(code, "co_qualname", code.co_name),
                code=source or None,
            )
        )
    return frames


_PENDING, _COMPLETED, _CANCELLED, _FAILED = "pending", "completed", "cancelled", "failed"


class TaskRecorder:
    """Collects the tasks of one request, on the hot path.

    Storage is columnar (parallel lists of ints and strings, indexed by ``task_id - 1``): no
    object is allocated per task beyond what asyncio allocates itself, which keeps both the
    per-task cost and the garbage collector's work down. Only ever written from its loop's
    thread; the blocking-call watchdog only calls the read-only ``owns``.
    """

    __slots__ = (
        "_above_cache",
        "_creating",
        "_finished_eagerly",
        "_frame_cache",
        "_on_done_callback",
        "active",
        "capture_stacks",
        "coro_names",
        "dropped",
        "ends",
        "exceptions",
        "live",
        "max_stack_depth",
        "max_tasks",
        "names",
        "overhead_ns",
        "owner",
        "parents",
        "root_task",
        "stacks",
        "starts",
        "states",
    )

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
        owner: object | None = None,
    ) -> None:
        self.max_tasks = max_tasks
        self.capture_stacks = capture_stacks
        self.max_stack_depth = max_stack_depth
        self.owner = owner
        """Who the tasks belong to (the request's context), for naming a culprit."""
        self.active = True
        self.parents: list[int] = []
        """The creating task's id, 0 when it is not tracked (the request's own task)."""
        self.coro_names: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        """perf_counter_ns at completion, 0 while running."""
        self.names: list[str] = []
        self.states: list[str] = []
        self.stacks: list[RawStack] = []
        self.exceptions: dict[int, tuple[str, str]] = {}
        """Failed tasks only: index -> (exception type, message)."""
        self.live: dict[asyncio.Future[Any], int] = {}
        """Tracked tasks not yet done (-> index): the only strong references held to tasks."""
        self.dropped = 0
        self.overhead_ns = 0
        self.root_task: asyncio.Future[Any] | None = None
        self._creating: list[int] = []
        self._finished_eagerly: list[tuple[asyncio.Future[Any], int]] = []
        self._frame_cache: tuple[FrameType, FrameType | None] | None = None
        self._above_cache: RawStack = ()
        self._on_done_callback = self._on_done  # one bound method, not one per task

    def __len__(self) -> int:
        return len(self.starts)

    def owns(self, task: asyncio.Future[Any] | None) -> bool:
        """Whether ``task`` is this request's own task or one of its live children."""
        return task is not None and (task is self.root_task or task in self.live)

    def track(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        create: TaskFactory | None,
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """Create the task (through ``create``, the chained factory, if any) and record it."""
        t0 = _perf_ns()
        starts = self.starts
        index = len(starts)
        if index >= self.max_tasks:
            self.dropped += 1
            return (
                _Task(coro, loop=loop, **kwargs) if create is None else create(loop, coro, **kwargs)
            )
        parent_index = self.live.get(_current_task(loop))  # type: ignore[arg-type]
        if parent_index is None and self._creating and _current_task(loop) is not self.root_task:
            # An eager task creating children during its first step runs inside our own
            # create call, before it could be registered: its parent is the one being created.
            parent_index = self._creating[-1]
        self.parents.append(0 if parent_index is None else parent_index + 1)
        self.coro_names.append(getattr(coro, "__qualname__", None) or type(coro).__name__)
        starts.append(t0)
        self.ends.append(0)
        self.names.append("")
        self.states.append(_PENDING)
        if self.capture_stacks:
            self.stacks.append(self._capture_stack())
        if create is None:
            # A plain Task only schedules its first step: nothing can re-enter us here.
            before_create = _perf_ns()
            task: asyncio.Future[Any] = _Task(coro, loop=loop, **kwargs)
            after_create = _perf_ns()
        else:
            before_create, task, after_create = self._create_chained(loop, coro, create, kwargs)
            if task.done():  # an eager task that finished during creation
                self._finish(index, task, after_create)
                # asyncio names the task only after the factory returns: read it at stop.
                self._finished_eagerly.append((task, index))
                self.overhead_ns += (before_create - t0) + (_perf_ns() - after_create)
                return task
        self.live[task] = index
        task.add_done_callback(self._on_done_callback)
        self.overhead_ns += (before_create - t0) + (_perf_ns() - after_create)
        return task

    def _create_chained(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        create: TaskFactory,
        kwargs: dict[str, Any],
    ) -> tuple[int, asyncio.Future[Any], int]:
        index = len(self.starts) - 1
        self._creating.append(index)
        before_create = _perf_ns()
        try:
            task = create(loop, coro, **kwargs)
        except BaseException:
            self._forget_last()
            raise
        finally:
            self._creating.pop()
        return before_create, task, _perf_ns()

    def _forget_last(self) -> None:
        """Undo the record of a task whose creation raised."""
        for column in (self.parents, self.coro_names, self.starts, self.ends, self.names):
            column.pop()  # type: ignore[attr-defined]
        self.states.pop()
        if self.capture_stacks:
            self.stacks.pop()

    def _capture_stack(self) -> RawStack:
        frame: FrameType | None = sys._getframe(2)
        while frame is not None and _is_machinery(frame.f_code):
            frame = frame.f_back
        if frame is None:
            return ()
        innermost = ((frame.f_code, frame.f_lineno),)
        back = frame.f_back
        cached = self._frame_cache
        # While a frame runs, its callers stay the same frames at the same lines: tasks created
        # from one running frame (a gather, a loop of create_task) share the walk above it.
        if cached is not None and cached[0] is frame and cached[1] is back:
            return innermost + self._above_cache
        above: list[tuple[CodeType, int]] = []
        remaining = self.max_stack_depth - 1
        while back is not None and remaining > 0:
            above.append((back.f_code, back.f_lineno))
            back = back.f_back
            remaining -= 1
        self._frame_cache = (frame, frame.f_back)
        self._above_cache = tuple(above)
        return innermost + self._above_cache

    def _on_done(self, task: asyncio.Future[Any]) -> None:
        now = _perf_ns()
        index = self.live.pop(task, None)
        if index is not None:
            self._finish(index, task, now)
            self.overhead_ns += _perf_ns() - now

    def _finish(self, index: int, task: asyncio.Future[Any], end_ns: int) -> None:
        self.ends[index] = end_ns
        self.names[index] = _task_name(task)
        if task.cancelled():
            self.states[index] = _CANCELLED
            return
        # Read the private slot: task.exception() would mark the exception as retrieved and
        # silence asyncio's "Task exception was never retrieved" for the app's own bugs.
        exc = getattr(task, "_exception", None)
        if exc is None:
            self.states[index] = _COMPLETED
        else:
            self.states[index] = _FAILED
            self.exceptions[index] = (type(exc).__qualname__, str(exc))

    def stop(self) -> None:
        """Stop recording; tasks still running are kept as pending, and released."""
        if not self.active:
            return
        self.active = False
        for task, index in self.live.items():
            self.names[index] = _task_name(task)
            task.remove_done_callback(self._on_done_callback)
        self.live.clear()
        for task, index in self._finished_eagerly:
            self.names[index] = _task_name(task)
        self._finished_eagerly.clear()
        self.root_task = None
        self._frame_cache = None
        self._above_cache = ()

    def events(self, origin_ns: int) -> list[TaskEvent]:
        """The recorded tasks as ``TaskEvent``s, times in ms from ``origin_ns``."""
        events = []
        for index, start in enumerate(self.starts):
            end = self.ends[index]
            exc_type, exc_message = self.exceptions.get(index, (None, None))
            events.append(
                TaskEvent(
                    task_id=index + 1,
                    parent_id=self.parents[index] or None,
                    name=self.names[index],
                    coro_name=self.coro_names[index],
                    state=self.states[index],  # type: ignore[arg-type]
                    start_ms=(start - origin_ns) / 1e6,
                    end_ms=(end - origin_ns) / 1e6 if end else None,
                    exception_type=exc_type,
                    exception_message=exc_message,
                    stack=resolve_stack(self.stacks[index]) if self.capture_stacks else [],
                )
            )
        return events


def _task_name(task: asyncio.Future[Any]) -> str:
    get_name = getattr(task, "get_name", None)
    return str(get_name()) if get_name is not None else type(task).__name__


class LoopHook(Protocol):
    """Something installed once per loop while at least one request uses it."""

    def install(self) -> None: ...

    def uninstall(self) -> None: ...


H = TypeVar("H", bound=LoopHook)


class PerLoopRegistry(Generic[H]):
    """Reference-counts one hook per event loop across concurrent users.

    The first ``acquire`` on a loop builds and installs the hook; the matching last ``release``
    uninstalls it and forgets the loop, so no strong reference to a loop outlives its use.
    Loops in different threads may acquire at the same time, hence the lock.
    """

    def __init__(self, build: Callable[[asyncio.AbstractEventLoop], H]) -> None:
        self._build = build
        self._hooks: dict[asyncio.AbstractEventLoop, tuple[H, int]] = {}
        self._lock = threading.Lock()

    def acquire(self, loop: asyncio.AbstractEventLoop) -> H:
        with self._lock:
            current = self._hooks.get(loop)
            if current is not None:
                hook, users = current
                self._hooks[loop] = (hook, users + 1)
                return hook
            hook = self._build(loop)
            hook.install()
            self._hooks[loop] = (hook, 1)
            return hook

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            current = self._hooks.get(loop)
            if current is None:
                return
            hook, users = current
            if users > 1:
                self._hooks[loop] = (hook, users - 1)
                return
            del self._hooks[loop]
        hook.uninstall()

    def get(self, loop: asyncio.AbstractEventLoop) -> H | None:
        current = self._hooks.get(loop)
        return None if current is None else current[0]

    def users(self, loop: asyncio.AbstractEventLoop) -> int:
        current = self._hooks.get(loop)
        return 0 if current is None else current[1]


class LoopTaskHooks:
    """The task factory installed on one loop, chained to the one that was there before."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous: TaskFactory | None = None
        self.factory: TaskFactory | None = None
        self.recorders: set[TaskRecorder] = set()
        """Recorders of the requests in flight on this loop."""

    def install(self) -> None:
        previous = self.loop.get_task_factory()
        recorder_var = _current_recorder

        def tracking_task_factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Future[Any]:
            context = kwargs.get("context")
            recorder = recorder_var.get() if context is None else context.get(recorder_var)
            if recorder is None or not recorder.active:
                if previous is None:
                    return _Task(coro, loop=loop, **kwargs)
                return previous(loop, coro, **kwargs)
            return recorder.track(loop, coro, previous, kwargs)

        self.previous = previous
        self.factory = tracking_task_factory
        self.loop.set_task_factory(tracking_task_factory)  # type: ignore[arg-type]

    def uninstall(self) -> None:
        current = self.loop.get_task_factory()
        if current is self.factory:
            self.loop.set_task_factory(self.previous)
        else:
            logger.warning(
                "the loop's task factory was replaced while the async profiler was tracking "
                "tasks; leaving the new factory %r in place",
                current,
            )
        self.factory = None

    def owner_of(self, task: asyncio.Future[Any] | None) -> TaskRecorder | None:
        """The recorder whose request ``task`` belongs to; safe to call from another thread."""
        if task is None:
            return None
        for recorder in tuple(self.recorders):
            if recorder.owns(task):
                return recorder
        return None


task_hooks: PerLoopRegistry[LoopTaskHooks] = PerLoopRegistry(LoopTaskHooks)
"""The process-wide registry of task hooks, one per loop."""


class TaskTracking:
    """One request's use of its loop's shared task hooks: start, stop, read the tasks.

    ``start`` must run in the request's own task: it records that task as the request's root
    and sets the ContextVar that the tasks it spawns inherit.
    """

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
        owner: object | None = None,
    ) -> None:
        self.recorder = TaskRecorder(
            max_tasks=max_tasks,
            capture_stacks=capture_stacks,
            max_stack_depth=max_stack_depth,
            owner=owner,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hooks: LoopTaskHooks | None = None
        self._token: Any = None
        self.setup_ns = 0
        """Time spent starting and stopping (install, ContextVar), part of the overhead."""

    @property
    def running(self) -> bool:
        return self._hooks is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._hooks is not None:
            raise RuntimeError("task tracking already started for this request")
        started = _perf_ns()
        self._hooks = task_hooks.acquire(loop)
        self._loop = loop
        self.recorder.root_task = _current_task(loop)
        self._hooks.recorders.add(self.recorder)
        self._token = _current_recorder.set(self.recorder)
        self.setup_ns += _perf_ns() - started

    def stop(self) -> None:
        """Idempotent; safe after a failed or missing ``start``."""
        hooks, loop = self._hooks, self._loop
        if hooks is None or loop is None:
            return
        started = _perf_ns()
        self._hooks = None
        self.recorder.stop()
        hooks.recorders.discard(self.recorder)
        self._reset_context()
        task_hooks.release(loop)
        self.setup_ns += _perf_ns() - started

    def _reset_context(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        # Stopped from another context than the one that started: the recorder is inactive,
        # so whatever still sees it records nothing.
        with contextlib.suppress(ValueError):
            _current_recorder.reset(token)

    @property
    def overhead_ns(self) -> int:
        return self.recorder.overhead_ns + self.setup_ns

    def events(self, origin_ns: int) -> list[TaskEvent]:
        return self.recorder.events(origin_ns)
