"""StepRecorder: one request's steps, recorded on the hot path of every suspension.

``step_monitor`` calls a task's ``TaskSteps`` when its outermost frame starts, resumes,
suspends or returns; ``TaskSteps`` appends one row per step to its request's ``StepRecorder``:
(task, start, end, await site, awaited), the site and what was awaited read from the task's
await chain (``await_chain.AwaitChain``, walked only below what did not change). A row is one
tuple; everything readable (file names, lines, labels, waits) is built when the profile is
read (``steps.StepTable``).

When a suspension's awaited thing becomes ready is recorded where it can be known exactly and
cheaply: a sleep's timer is due ``delay`` after it was armed; a task is ready when its last step
ends (seen here); a thread-pool call when its ``concurrent.futures.Future`` completes (a done
callback in the worker thread). Sockets, Events, Locks and foreign Futures give no such moment
without patching asyncio: their whole suspension counts as waiting.

Everything here runs on the loop's thread, except the thread-pool done callbacks, which only
store one number.
"""

from __future__ import annotations

import functools
import time
import types
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.await_chain import AwaitChain, thread_source
from debug_toolbar.core.panels.async_profiler.stacks import is_app_code
from debug_toolbar.core.panels.async_profiler.step_monitor import (
    PROCESS,
    STEPS_UNAVAILABLE,
    NoFreeToolError,
    step_monitors,
)
from debug_toolbar.core.panels.async_profiler.steps import REQUEST_TASK_ID, StepTable

if TYPE_CHECKING:
    import asyncio
    from types import FrameType

    from debug_toolbar.core.panels.async_profiler.step_monitor import StepMonitor
    from debug_toolbar.core.panels.async_profiler.steps import (
        RawSite,
        RawSiteStack,
        RawStep,
        StepEnd,
    )

__all__ = ("StepRecorder", "TaskSteps")

_perf_ns = time.perf_counter_ns
_Coroutine = types.CoroutineType


def _mark_ready(ready: dict[int, int], index: int, _future: object) -> None:
    ready[index] = _perf_ns()


class TaskSteps:
    """The steps of one task, told by the step monitor (a ``StepWatcher``)."""

    __slots__ = ("begin_ns", "chain", "coro", "frame", "last_site", "recorder", "task_id")

    def __init__(self, recorder: StepRecorder, task_id: int, coro: Any, frame: FrameType) -> None:
        self.recorder = recorder
        self.task_id = task_id
        self.coro = coro
        self.frame = frame
        self.begin_ns = 0
        self.chain: AwaitChain | None = None
        """Built at the first suspension: most tasks of a gather never suspend."""
        self.last_site: RawSite | None = None
        """Where the task last suspended: where its next step runs from."""

    def suspend(self, now_ns: int, value: object) -> None:
        recorder = self.recorder
        rows = recorder.rows
        index = len(rows)
        begin = self.begin_ns
        self.begin_ns = 0
        if index >= recorder.max_steps:
            recorder.drop(self.task_id, begin or now_ns)
            return
        chain = self.chain
        if chain is None:
            chain = self.chain = AwaitChain(self.coro)
        site, awaited = chain.suspended(value, recorder.task_ids)
        callers = recorder.callers
        if id(site[0]) not in callers:  # by id: a code object's hash hashes its whole body
            callers[id(site[0])] = chain.callers(recorder.max_stack_depth - 1)
        if not begin:
            begin = now_ns
            recorder.unknown_starts.add(index)
        rows.append((self.task_id, begin, now_ns, site, awaited))
        if awaited[0] == "thread":
            recorder.watch_thread(index, value)
        if now_ns - begin >= recorder.slow_ns:
            recorder.slow.append((index, self.ran_from()))
        if self.task_id == REQUEST_TASK_ID:
            recorder.root_rows.append(index)
        self.last_site = site
        recorder.overhead_ns += _perf_ns() - now_ns

    def finish(self, now_ns: int) -> None:
        """The coroutine returned (``PY_RETURN``): the task's last step ends now.

        ``close``'s work, inline: every task of a ``gather`` of trivial tasks comes here."""
        recorder = self.recorder
        task_id = self.task_id
        recorder.watched.pop(task_id, None)
        recorder.task_ends[task_id] = now_ns
        begin = self.begin_ns
        rows = recorder.rows
        index = len(rows)
        if index >= recorder.max_steps:
            recorder.drop(task_id, begin or now_ns)
            return
        if not begin:
            begin = now_ns
            recorder.unknown_starts.add(index)
        rows.append((task_id, begin, now_ns, None, None))
        recorder.endings[index] = "return"
        if now_ns - begin >= recorder.slow_ns:
            recorder.slow.append((index, self.ran_from()))

    def close(self, now_ns: int, ended: StepEnd) -> None:
        """End the step going on (if any) without a suspension."""
        recorder = self.recorder
        begin = self.begin_ns
        self.begin_ns = 0
        if not begin and ended == "running":
            return  # suspended: nothing is running
        rows = recorder.rows
        index = len(rows)
        if index >= recorder.max_steps:
            recorder.drop(self.task_id, begin or now_ns)
            return
        if not begin:
            begin = now_ns
            recorder.unknown_starts.add(index)
        rows.append((self.task_id, begin, now_ns, None, None))
        recorder.endings[index] = ended
        if now_ns - begin >= recorder.slow_ns:
            recorder.slow.append((index, self.ran_from()))
        if self.task_id == REQUEST_TASK_ID:
            recorder.root_rows.append(index)

    def broken(self) -> None:
        """Recording this task's step raised (a bug): stop timing it, keep what was recorded."""
        self.recorder.watched.pop(self.task_id, None)

    def ran_from(self) -> RawSite:
        """Where the step going on resumed: the last await site, else the coroutine's start."""
        site = self.last_site
        if site is None:
            code = self.coro.cr_code
            site = (code, 0, is_app_code(code))
        return site


class StepRecorder:
    """Collects the steps of one request's tasks; only its loop's thread writes to it.

    ``start`` (in the request's own task) installs the shared step monitor and times that task
    from now on; ``watch_task`` is called by the task recorder for every task it records;
    ``stop`` closes what is still running and releases the monitor.
    """

    def __init__(
        self,
        *,
        max_steps: int = 10_000,
        slow_threshold_ms: float = 10.0,
        max_stack_depth: int = 10,
    ) -> None:
        self.max_steps = max_steps
        self.max_stack_depth = max_stack_depth
        self.callers: dict[int, RawSiteStack] = {}
        """id of an awaiting function's code -> the chain above it the first time it awaited
        (the site's code object is held by the rows: the id stays its own)."""
        self.slow_ns = max(1, round(slow_threshold_ms * 1e6))
        self.rows: list[RawStep] = []
        self.endings: dict[int, StepEnd] = {}
        self.unknown_starts: set[int] = set()
        self.ready: dict[int, int] = {}
        """Row index -> when the thread call its suspension awaited returned."""
        self.task_ends: dict[int, int] = {}
        """Task id -> when its last step ended (a task is ready to be awaited from then)."""
        self.slow: list[tuple[int, RawSite]] = []
        """Steps at least ``slow_ns`` long: (row index, where the task resumed from)."""
        self.root_rows: list[int] = []
        self.watched: dict[int, TaskSteps] = {}
        self.task_ids: dict[Any, int] = {}
        """The request's tasks -> index (the task recorder's ``live``): names awaited tasks."""
        self.dropped = 0
        self.dropped_from_ns: int | None = None
        self.overhead_ns = 0
        """Time spent in ``suspend`` (walks and records); the monitor's calls themselves, some
        0.5 to 1 µs a step, are not included: they cannot be timed from inside."""
        self._codes: set[int] = set()
        """Ids of the code objects this request had instrumented (held by its tasks)."""
        self.unavailable: str | None = STEPS_UNAVAILABLE
        """Why this request has no steps (None: it has them)."""
        self.start_ns = 0
        self.end_ns = 0
        self._monitor: StepMonitor | None = None

    @property
    def active(self) -> bool:
        return self._monitor is not None

    def start(self, task: asyncio.Future[Any] | None, task_ids: dict[Any, int]) -> None:
        """Time ``task`` (the request's own, running now) and, through ``watch_task``, its
        children. Leaves ``unavailable`` saying why when steps cannot be timed here."""
        self.start_ns = _perf_ns()
        if self.unavailable is not None or self._monitor is not None:
            return
        coro = None if task is None else getattr(task, "get_coro", lambda: None)()
        if type(coro) is not _Coroutine:
            self.unavailable = "the request's task does not run a Python coroutine"
            return
        try:
            monitor = step_monitors.acquire(PROCESS)
        except NoFreeToolError as exc:
            self.unavailable = str(exc)
            return
        self._monitor = monitor
        self.task_ids = task_ids
        try:
            self._watch(REQUEST_TASK_ID, coro).begin_ns = self.start_ns
        except BaseException:
            self.stop()
            raise

    def _watch(self, task_id: int, coro: Any) -> TaskSteps:
        monitor = self._monitor
        assert monitor is not None
        frame = coro.cr_frame
        steps = TaskSteps(self, task_id, coro, frame)
        monitor.watch(frame, coro.cr_code, steps)
        self.watched[task_id] = steps
        return steps

    def watch_task(self, task_id: int, coro: Any) -> None:
        """Time a task the request spawned, before its first step (eager tasks run it at once).

        Once per task, so ``_watch`` inline: a code object already instrumented (the 100
        tasks of a gather share one) costs a set look-up, not a call into the monitor."""
        monitor = self._monitor
        if monitor is None or type(coro) is not _Coroutine:
            return
        frame = coro.cr_frame
        if frame is None:
            return
        steps = TaskSteps(self, task_id, coro, frame)
        code = coro.cr_code
        if id(code) in self._codes:
            monitor.frames[frame] = steps
        else:
            monitor.watch(frame, code, steps)
            self._codes.add(id(code))
        self.watched[task_id] = steps

    def forget_task(self, task_id: int) -> None:
        """The task's creation failed: nothing to time."""
        steps = self.watched.pop(task_id, None)
        if steps is not None and self._monitor is not None:
            self._monitor.unwatch(steps.frame)

    def task_done(self, task_id: int) -> None:
        """A task's done callback ran: if its coroutine did not return (it raised or was
        cancelled, which local events do not report), its last step ends now."""
        steps = self.watched.pop(task_id, None)
        if steps is None:
            return
        now = _perf_ns()
        if self._monitor is not None:
            self._monitor.unwatch(steps.frame)
        self.task_ends.setdefault(task_id, now)
        steps.close(now, "raise")

    def watch_thread(self, index: int, future: object) -> None:
        source = thread_source(future)
        if source is not None:
            source.add_done_callback(functools.partial(_mark_ready, self.ready, index))

    def drop(self, task_id: int, begin_ns: int) -> None:
        self.dropped += 1
        if task_id == REQUEST_TASK_ID and self.dropped_from_ns is None:
            self.dropped_from_ns = begin_ns

    def stop(self) -> None:
        """Close the steps still running, stop watching, release the monitor (idempotent)."""
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        now = self.end_ns = _perf_ns()
        try:
            for steps in self.watched.values():
                monitor.unwatch(steps.frame)
                steps.close(now, "running")
            self.watched.clear()
        finally:
            self.task_ids = {}
            step_monitors.release(PROCESS)

    def table(self, origin_ns: int) -> StepTable | None:
        """The steps, frozen (after ``stop``); None when steps were not timed."""
        if self.unavailable is not None:
            return None
        return StepTable(
            origin_ns=origin_ns,
            start_ns=self.start_ns,
            root_rows=tuple(self.root_rows),
            end_ns=self.end_ns or _perf_ns(),
            rows=tuple(self.rows),
            endings=dict(self.endings),
            unknown_starts=frozenset(self.unknown_starts),
            ready_ns=dict(self.ready),
            task_ends_ns=dict(self.task_ends),
            callers=dict(self.callers),
            dropped=self.dropped,
            dropped_from_ns=self.dropped_from_ns,
        )
