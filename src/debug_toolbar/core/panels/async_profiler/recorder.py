"""TaskRecorder: one request's tasks, recorded on the hot path of task creation.

The loop's shared task factory (``task_hooks``) hands every task created under a request's
context to that request's recorder. The per-task work (``track`` and its done callback) is the
hot path: a few list appends, one dict insert and pop, and, when enabled, a creation stack that
is walked once per creating site (a ``gather`` of 100 walks the stack once). It is benchmarked
against its floor (a bare task factory and one done callback) in
``benchmarks/bench_async_panel.py``.

What it costs a request is estimated, not timed task by task: two clock reads per event were a
tenth of the whole per-task cost. One task in ``SAMPLE_EVERY`` is timed (its creation and, apart,
its completion), and a request's figure is its number of tasks times the mean of this process's
samples (``TaskCalibration``), labelled as estimated wherever it is shown.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.calibration import SAMPLE_EVERY
from debug_toolbar.core.panels.async_profiler.calibration import calibration as _calibration
from debug_toolbar.core.panels.async_profiler.stacks import RawStack, is_machinery
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import CodeType, FrameType

    from debug_toolbar.core.panels.async_profiler.step_recorder import StepRecorder

    TaskFactory = Callable[..., asyncio.Future[Any]]

__all__ = (
    "TaskFactory",
    "TaskRecorder",
    "current_task",
)

_perf_ns = time.perf_counter_ns
_getframe = sys._getframe
current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
# asyncio.current_task is a Python wrapper around this dict (3.10-3.13): read the dict directly
# on the hot path, and use the public function where the dict is gone.
_current_tasks = getattr(asyncio.tasks, "_current_tasks", None)
current_task = _current_tasks.get if isinstance(_current_tasks, dict) else asyncio.current_task
_current_task = current_task
_Task = asyncio.Task
# CPython 3.13.0-3.13.2 rename every task made by a task factory after the factory returns:
# ``loop.create_task`` calls ``task.set_name(name)`` even when no name was given, so installing
# our factory would turn the app's "Task-7" into "None" (CPython gh-130033). There the name is
# also read at creation, and a later "None" does not replace it.
_NAME_LOST_AFTER_FACTORY = (3, 13) <= sys.version_info[:3] < (3, 13, 3)
_is_machinery = is_machinery


def _describe(exc: BaseException) -> tuple[str, str]:
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ fails must not break the recording
        message = "<unprintable>"
    return type(exc).__qualname__, message


class TaskRecorder:
    """Collects the tasks of one request, on the hot path.

    Storage is columnar (parallel lists indexed by ``task_id - 1``): beyond what asyncio
    allocates itself, a task costs no container object, which keeps both the per-task time and
    the garbage collector's work down. A task's state is derived when the events are built: not
    finished is pending, and only the rare cancelled and failed tasks are stored apart. Only
    ever written from its loop's thread; the blocking-call watchdog only calls the read-only
    ``owns``.

    Creation stacks are cached per creating site. While a frame runs, the frames above it do not
    change, so tasks created again by the same frame at the same instruction through the same
    asyncio function (a ``gather`` of 100, a loop of ``create_task``) reuse the stack of the
    first one: a cache hit costs three ``sys._getframe`` look-ups instead of a frame walk, and
    the tasks share one stack tuple, resolved once at render time.
    """

    __slots__ = (
        "_creating",
        "_finished_eagerly",
        "_on_done_callback",
        "_site_below",
        "_site_depth",
        "_site_frame",
        "_site_lasti",
        "_site_stack",
        "_site_top",
        "_site_top_depth",
        "active",
        "cancelled",
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
        "parents",
        "per_task_ns",
        "root_task",
        "stacks",
        "starts",
        "steps",
    )

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
    ) -> None:
        self.max_tasks = max_tasks
        self.capture_stacks = capture_stacks
        self.max_stack_depth = max_stack_depth
        self.active = True
        self.parents: list[int] = []
        """The creating task's id, 0 when it is not tracked (the request's own task)."""
        self.coro_names: list[str] = []
        self.starts: list[int] = []
        self.ends: dict[int, int] = {}
        """Finished tasks: index -> perf_counter_ns at completion."""
        self.names: dict[int, str] = {}
        """Read when the task finishes or at ``stop``: asyncio may name a task after creating it."""
        self.stacks: list[RawStack] = []
        self.cancelled: set[int] = set()
        self.exceptions: dict[int, tuple[str, str]] = {}
        """Failed tasks only: index -> (exception type, message)."""
        self.live: dict[asyncio.Future[Any], int] = {}
        """Tracked tasks not yet done (-> index): the only strong references held to tasks."""
        self.dropped = 0
        self.overhead_ns = 0
        """What recording the tasks cost, estimated at ``stop``: tasks x ``per_task_ns``."""
        self.per_task_ns = 0.0
        """This process's calibrated cost per task (``TaskCalibration``) at ``stop``."""
        self.root_task: asyncio.Future[Any] | None = None
        self.steps: StepRecorder | None = None
        """The request's step timing, told about every task recorded (None: steps not timed)."""
        self._creating: list[int] = []
        self._finished_eagerly: list[tuple[asyncio.Future[Any], int]] = []
        self._on_done_callback = self._on_done  # one bound method, not one per task
        self._forget_site()

    def __len__(self) -> int:
        return len(self.starts)

    def owns(self, task: asyncio.Future[Any] | None) -> bool:
        """Whether ``task`` runs for this request; safe to call from another thread.

        The request's own task, one of its live children, or any task while one of this
        request's task creations is in progress: with ``asyncio.eager_task_factory`` (3.12+) a
        new task runs its first step inside the factory call, before it could be registered.
        """
        return task is not None and (
            task is self.root_task or task in self.live or bool(self._creating)
        )

    def track(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """Create the task (a plain ``asyncio.Task``) and record it.

        Called by the loop's task factory when no other factory is chained (``track_chained``
        is the other case), with frames: this method, the factory, asyncio's callers
        (``create_task``, ``gather``, ...), then the code that created the task.
        """
        # A plain Task only schedules its first step, so nothing re-enters here while it is
        # created: create it first, then do all the bookkeeping in one measured piece. The
        # moment creation returns is the task's start.
        task: asyncio.Future[Any] = (
            _Task(coro, loop=loop, **kwargs) if kwargs else _Task(coro, loop=loop)
        )
        start = _perf_ns()
        starts = self.starts
        index = len(starts)
        if index >= self.max_tasks:
            self.dropped += 1
            return task
        live = self.live
        self.parents.append(live.get(_current_task(loop), -1) + 1)  # type: ignore[arg-type]
        try:
            self.coro_names.append(coro.__qualname__)  # type: ignore[attr-defined]
        except AttributeError:
            self.coro_names.append(type(coro).__name__)
        starts.append(start)
        if self.capture_stacks:
            # The inline form of _cached_or_walk (see the class docstring); frame 0 is here.
            depth = self._site_depth
            try:
                frame = _getframe(depth)
                hit = (
                    frame is self._site_frame
                    and frame.f_lasti == self._site_lasti
                    and _getframe(depth - 1).f_code is self._site_below
                    and _getframe(self._site_top_depth) is self._site_top
                )
            except ValueError:  # the stack is shallower than the cached site
                hit = False
            self.stacks.append(self._site_stack if hit else self._walk(1))
        if _NAME_LOST_AFTER_FACTORY:
            self.names[index] = task.get_name()  # type: ignore[attr-defined]
        live[task] = index
        task.add_done_callback(self._on_done_callback)
        steps = self.steps
        if steps is not None:
            steps.watch_task(index + 1, coro)
        calibrating = _calibration
        countdown = calibrating.track_countdown - 1
        if countdown:
            calibrating.track_countdown = countdown
        else:
            calibrating.track_countdown = SAMPLE_EVERY
            calibrating.add_track(_perf_ns() - start)
        return task

    def track_chained(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        create: TaskFactory,
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """``track`` through another factory (``create``), which may run the task's first step
        (eager): the bookkeeping is split around the call, so the step is not counted."""
        t0 = _perf_ns()
        starts = self.starts
        index = len(starts)
        if index >= self.max_tasks:
            self.dropped += 1
            return create(loop, coro, **kwargs)
        parent_index = self.live.get(_current_task(loop))  # type: ignore[arg-type]
        if parent_index is None and self._creating and _current_task(loop) is not self.root_task:
            # An eager task creating children during its first step runs inside our own
            # create call, before it could be registered: its parent is the one being created.
            parent_index = self._creating[-1]
        self.parents.append(0 if parent_index is None else parent_index + 1)
        self.coro_names.append(getattr(coro, "__qualname__", None) or type(coro).__name__)
        starts.append(t0)
        if self.capture_stacks:
            self.stacks.append(self._cached_or_walk(2))
        self._creating.append(index)
        steps = self.steps
        if steps is not None:  # before creating: an eager task runs its first step at once
            steps.watch_task(index + 1, coro)
        before_create = _perf_ns()
        try:
            task = create(loop, coro, **kwargs)
        except BaseException:
            self._forget_last()
            if steps is not None:
                steps.forget_task(index + 1)
            raise
        finally:
            self._creating.pop()
        after_create = _perf_ns()
        if task.done():  # an eager task that finished during creation
            self._finish(index, task, after_create)
            # asyncio names the task only after the factory returns: read it at stop.
            self._finished_eagerly.append((task, index))
        else:
            if _NAME_LOST_AFTER_FACTORY:
                self.names[index] = _task_name(task)
            self.live[task] = index
            task.add_done_callback(self._on_done_callback)
        # Timed anyway (the clock reads around the creation are needed): every chained task
        # is a sample of the calibration.
        _calibration.add_track((before_create - t0) + (_perf_ns() - after_create))
        return task

    def _forget_last(self) -> None:
        """Undo the record of a task whose creation raised."""
        for column in (self.parents, self.coro_names, self.starts):
            column.pop()
        if self.capture_stacks:
            self.stacks.pop()

    def _forget_site(self) -> None:
        self._site_frame: FrameType | None = None
        self._site_lasti = -1
        self._site_below: CodeType | None = None
        self._site_depth = 1
        self._site_top: FrameType | None = None
        self._site_top_depth = 1
        self._site_stack: RawStack = ()

    def _cached_or_walk(self, skip: int) -> RawStack:
        """The creation stack; ``skip`` is the number of frames above ``track`` (excluded)."""
        depth = self._site_depth + skip
        try:
            frame = _getframe(depth)
            if (
                frame is self._site_frame
                and frame.f_lasti == self._site_lasti
                and _getframe(depth - 1).f_code is self._site_below
                and _getframe(self._site_top_depth + skip) is self._site_top
            ):
                return self._site_stack
        except ValueError:
            pass
        return self._walk(skip + 1)

    def _walk(self, skip: int) -> RawStack:
        """Walk the stack from the creating frame and remember the site for the next task.

        ``skip`` frames separate this method from ``track``; depths are kept relative to
        ``track`` so that the inline check there can use them.
        """
        below: FrameType = _getframe(skip + 1)  # the task factory
        frame = below.f_back
        depth = 2
        while frame is not None and _is_machinery(frame.f_code):
            below, frame = frame, frame.f_back
            depth += 1
        if frame is None:
            return ()
        stack = [(frame.f_code, frame.f_lineno)]
        top, top_depth = frame, depth
        remaining = self.max_stack_depth - 1
        back = frame.f_back
        while back is not None and remaining > 0:
            stack.append((back.f_code, back.f_lineno))
            top, top_depth = back, top_depth + 1
            back = back.f_back
            remaining -= 1
        raw = tuple(stack)
        self._site_frame = frame
        self._site_lasti = frame.f_lasti
        self._site_below = below.f_code
        self._site_depth = depth
        self._site_top = top
        self._site_top_depth = top_depth
        self._site_stack = raw
        return raw

    def _on_done(self, task: asyncio.Future[Any]) -> None:
        now = _perf_ns()
        index = self.live.pop(task, None)
        if index is None:
            return
        self.ends[index] = now
        try:
            name = task.get_name()  # type: ignore[attr-defined]
            # The private slot: task.exception() would mark the exception as retrieved and
            # silence asyncio's "Task exception was never retrieved" for the app's own bugs.
            exc = task._exception
        except AttributeError:  # a Future-like object from a custom task factory
            name = _task_name(task)
            exc = getattr(task, "_exception", None)
        if _NAME_LOST_AFTER_FACTORY and name == "None":
            name = self.names.get(index, name)
        self.names[index] = name
        if exc is not None:
            self.exceptions[index] = _describe(exc)
        elif task.cancelled():
            self.cancelled.add(index)
        if self.steps is not None:
            self.steps.task_done(index + 1)
        calibrating = _calibration
        countdown = calibrating.done_countdown - 1
        if countdown:
            calibrating.done_countdown = countdown
        else:
            calibrating.done_countdown = SAMPLE_EVERY
            calibrating.add_done(_perf_ns() - now)

    def _finish(self, index: int, task: asyncio.Future[Any], end_ns: int) -> None:
        """``_on_done``'s work, for a task found finished outside its callback (eager, stop)."""
        self.ends[index] = end_ns
        self._store_name(index, task)
        if self.steps is not None:
            self.steps.task_done(index + 1)
        exc = getattr(task, "_exception", None)
        if exc is not None:
            self.exceptions[index] = _describe(exc)
        elif task.cancelled():
            self.cancelled.add(index)

    def stop(self) -> None:
        """Stop recording; tasks still running are kept as pending, and released."""
        if not self.active:
            return
        self.active = False
        self.per_task_ns = _calibration.per_task_ns()
        self.overhead_ns = round(len(self.starts) * self.per_task_ns)
        now = _perf_ns()
        for task, index in self.live.items():
            task.remove_done_callback(self._on_done_callback)
            if task.done():  # finished, but the loop has not run its callback yet
                self._finish(index, task, now)
            else:
                self._store_name(index, task)
        self.live.clear()
        for task, index in self._finished_eagerly:
            self._store_name(index, task)
        self._finished_eagerly.clear()
        self.root_task = None
        self._forget_site()

    def _store_name(self, index: int, task: asyncio.Future[Any]) -> None:
        name = _task_name(task)
        if name == "None" and _NAME_LOST_AFTER_FACTORY:
            name = self.names.get(index, name)  # the name it had at creation
        self.names[index] = name

    def table(self, origin_ns: int) -> TaskTable:
        """The recorded tasks, frozen: the columns copied (a few C-level copies, whatever the
        number of tasks), the stacks left unresolved. Call after ``stop``."""
        return TaskTable(
            origin_ns=origin_ns,
            parents=tuple(self.parents),
            coro_names=tuple(self.coro_names),
            starts_ns=tuple(self.starts),
            ends_ns=dict(self.ends),
            names=dict(self.names),
            cancelled=frozenset(self.cancelled),
            exceptions=dict(self.exceptions),
            stacks=tuple(self.stacks) if self.capture_stacks else None,
            dropped=self.dropped,
        )


def _task_name(task: asyncio.Future[Any]) -> str:
    get_name = getattr(task, "get_name", None)
    return str(get_name()) if get_name is not None else type(task).__name__
