"""YappiBackend: the task timeline plus per-request function stats measured by yappi.

yappi is a tracing profiler whose wall clock measures coroutines correctly (the time spent
awaiting counts, and a coroutine resumed ten times is one call, not ten). It is also
process-wide and costly, which shapes everything here:

- One yappi run is shared by all profiled requests (``YappiSession``): the first one sets the
  wall clock, installs the tag callback and starts yappi; the last one to finish stops it,
  clears its stats and puts back the clock type and the thread profile hook it found.
- Each request gets a unique integer tag in a ContextVar. yappi's tag callback is that
  ContextVar's bound ``get`` (a C method: no Python frame, cannot raise, default 0), evaluated
  on every function entry and coroutine resumption. asyncio copies the context into every task,
  so a request's tasks, and the worker threads reached through ``asyncio.to_thread``, carry its
  tag, and ``get_func_stats(filter={"tag": tag})`` returns that request's functions only.
- yappi cannot clear one tag, so a finished request's stats are collected in ``stop`` and stay
  in yappi until the run ends. A run that never ends (overlapping requests forever, or a
  long-lived streaming response) would grow without bound, so a run accepts at most
  ``max_requests`` requests; later ones get the task timeline without function stats until the
  run drains and the next request starts a fresh one.
- yappi already running (or holding stats) when a run would start belongs to someone else, who
  is profiling with it: we do not stop, reconfigure or clear it. Such requests get the task
  timeline and a ``functions_error`` saying why there are no function stats.
- yappi (1.7.6, the newest release) keeps memory of every run alive for good, whatever we call:
  a reference to every coroutine it saw suspend or return (sumerc/yappi#217), and the names of
  the functions it profiled (sumerc/yappi#220); both are fixed upstream but not released. No use
  of its API avoids them (``docs/async-profiler-yappi.md`` lists what was tried), so the session
  counts what each request left behind (``YappiRetention``) and takes at most a given number of
  requests per process (``acquire(limit=...)``, the panel's ``async_yappi_max_requests``).

``yappi`` is imported only inside functions: the package imports without the extra installed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.backends import BackendUnavailableError
from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.profile import (
    BackendProfile,
    FunctionProfile,
    FunctionStat,
    YappiRetention,
)
from debug_toolbar.core.panels.async_profiler.stacks import is_toolbar_file
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend
from debug_toolbar.core.shared_hooks import SharedHooks

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future
    from collections.abc import Iterable

    from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking

__all__ = (
    "RETAINED_BYTES_PER_COROUTINE",
    "RETAINED_BYTES_PER_FUNCTION",
    "RETAINED_BYTES_PER_REQUEST",
    "YAPPI_COST_NOTE",
    "YAPPI_KEEPS_COROUTINES",
    "YappiBackend",
    "YappiBusyError",
    "YappiLimitError",
    "YappiRetention",
    "YappiSession",
    "limit_note",
    "summarize",
    "yappi_session",
)

YAPPI_EXTRA = "pip install 'debug-toolbar[yappi]'"

YAPPI_COST_NOTE = (
    "yappi traces every Python function call in the process while a profiled request is in "
    "flight, on its wall clock: async code runs several times slower (more with concurrency), "
    "so read these durations relative to each other, not as production figures."
)
"""Plain text the panel shows beside yappi's numbers."""

_request_tag: ContextVar[int] = ContextVar("debug_toolbar_yappi_tag", default=0)
"""The profiled request's yappi tag; 0 (yappi's own default) for everything else."""

_CONTEXT_NAME = functools.partial(str, "thread")
"""yappi's thread-name callback while the toolbar runs it: C code only, like the tag callback.

yappi calls these callbacks from inside its profile hook, where it keeps the running thread's
context in a global. Its default name callback is Python code, and the interpreter may switch
threads in the middle of it: another thread's hook then replaces that global, or the last
request's stop clears the contexts, and the first thread resumes on the wrong context or freed
memory (yappi's "Internal Error 15", and crashes). A C callable never gives up the GIL there.
The toolbar reads function stats by tag, never thread names, so a constant name loses nothing.
"""

_COROUTINE_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE
_KEPT_ALIVE_FLAGS = _COROUTINE_FLAGS | inspect.CO_ASYNC_GENERATOR
"""Code whose frames yappi 1.7.6 keeps alive: it takes a reference to the coroutine (or async
generator, or ``types.coroutine`` generator) each time one of its frames is left, and never
gives it back (sumerc/yappi#217)."""
YAPPI_KEEPS_COROUTINES = sys.version_info >= (3, 11)
"""The reference is taken through ``PyFrame_GetGenerator``, yappi's path on Python 3.11+; on
3.10 it reads the frame's generator without one, and the coroutines are freed (measured: none
of 20 kept). What every version keeps is the function names (sumerc/yappi#220)."""

RETAINED_BYTES_PER_COROUTINE = 210
RETAINED_BYTES_PER_FUNCTION = 220
RETAINED_BYTES_PER_REQUEST = 5_000
"""What a yappi-profiled request leaves in memory for good, by what its stats show.

Fitted to tracemalloc on CPython 3.11 (``benchmarks/bench_yappi.py --leak`` measures it again):
a finished coroutine is about 210 bytes; each function in the request's stats leaves about 220
(yappi's copy of its name or argument names, and the C functions it called, which the stats
leave out); the rest (yappi's per-run tables) about 5 KB. An estimate, to show the order of
magnitude in the panel; the count of coroutines comes straight from yappi's call counts.
"""


class YappiBusyError(RuntimeError):
    """yappi cannot profile this request's functions now; the message says why."""


class YappiLimitError(YappiBusyError):
    """This process has profiled as many requests with yappi as it was allowed to."""


class YappiRun:
    """One run of yappi, shared by the requests it profiles (a ``SharedHook``).

    Installed by the first request (yappi started, the tag callback set), uninstalled by the
    last one (yappi stopped and cleared, what the run changed restored). While it runs it admits
    at most ``max_requests`` requests, then drains: new requests get no function stats until
    the requests in flight finish and the next run starts with empty tables.
    """

    def __init__(self, max_requests: int) -> None:
        self.max_requests = max_requests
        self.served = 0
        self._saved_clock_type: str | None = None
        self._saved_thread_profile: Any = None

    def install(self) -> None:
        import yappi

        if yappi.is_running():
            raise YappiBusyError(
                "yappi was already running, started outside debug-toolbar; it is left to its "
                "owner (no function stats here, so as not to stop or clear their profile)"
            )
        if not yappi.get_func_stats().empty():
            raise YappiBusyError(
                "yappi holds stats from a profile taken outside debug-toolbar; they are left "
                "alone (call yappi.clear_stats() to let the toolbar use yappi)"
            )
        self._saved_clock_type = str(yappi.get_clock_type())
        self._saved_thread_profile = threading.getprofile()
        yappi.set_clock_type("wall")
        yappi.set_tag_callback(_request_tag.get)
        yappi.set_context_name_callback(_CONTEXT_NAME)
        try:
            yappi.start(builtins=False, profile_threads=True)
        except BaseException:
            self._restore(yappi)
            raise
        self.served = 1

    def admit(self) -> None:
        """One more request joins the run, unless the run is draining."""
        if self.served >= self.max_requests:
            raise YappiBusyError(
                f"the shared yappi run has profiled {self.served} requests and is "
                "draining; function stats resume once the requests in flight finish"
            )
        self.served += 1

    def uninstall(self) -> None:
        import yappi

        yappi.stop()
        self._restore(yappi)

    def _restore(self, yappi: Any) -> None:
        yappi.clear_stats()
        yappi.set_tag_callback(None)
        yappi.set_context_name_callback(None)  # yappi's default
        if self._saved_clock_type is not None:
            yappi.set_clock_type(self._saved_clock_type)
        # yappi.stop() sets every new thread's profile hook to None: put back what was there.
        threading.setprofile(self._saved_thread_profile)
        self._saved_thread_profile = None


_RUN = "yappi"
"""The one key of the yappi runs' registry: yappi profiles the whole process."""


class YappiSession:
    """yappi's runs in this process (reference-counted in ``runs``) and what they cost so far.

    A request joins the current run (``acquire``), or starts one, and leaves it (``release``)
    after reading its own stats: while it holds its share, the run cannot end, so no other
    request can clear the stats between its reading and its leaving.
    """

    def __init__(self, *, max_requests: int = 200) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {max_requests}")
        self.max_requests = max_requests
        """Requests one run accepts before it must drain (bounds yappi's memory)."""
        self.runs: SharedHooks[str, YappiRun] = SharedHooks(
            "yappi", lambda _key: YappiRun(self.max_requests)
        )
        self._lock = threading.Lock()
        self._tags = itertools.count(1)
        self._profiled = 0
        self._kept_coroutines = 0
        self._kept_bytes = 0

    @property
    def profiled(self) -> int:
        """Requests given a tag in this process, all runs together (never goes down)."""
        return self._profiled

    def retention(self) -> YappiRetention:
        """What this process's yappi runs have left in memory so far."""
        with self._lock:
            return YappiRetention(self._profiled, self._kept_coroutines, self._kept_bytes)

    @property
    def users(self) -> int:
        """Profiled requests currently sharing the run (0: yappi is not ours right now)."""
        return self.runs.users(_RUN)

    def acquire(self, limit: int | None = None) -> int:
        """Join (or start) the run; returns this request's tag.

        ``limit`` is how many requests this process may profile with yappi in all (``None``: no
        limit); checked under the lock, so requests arriving together cannot overshoot it.
        Raises ``BackendUnavailableError`` when yappi cannot be imported, ``YappiLimitError``
        past the limit, and ``YappiBusyError`` when yappi belongs to someone else or the run is
        draining.
        """
        try:
            import yappi  # noqa: F401  (only checking that it imports)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the yappi backend needs the yappi package ({exc}); install the extra: "
                f"{YAPPI_EXTRA}"
            ) from exc
        with self._lock:
            if limit is not None and self._profiled >= limit:
                raise YappiLimitError(limit_note(self._profiled))
            self.runs.acquire(_RUN)
            self._profiled += 1
            return next(self._tags)

    def release(self, tag: int) -> list[Any]:
        """Leave the run, returning this request's yappi stats (``YFuncStat``s) first.

        The last user stops yappi, clears every stat (yappi cannot clear one tag) and restores
        what the run changed.
        """
        import yappi

        if self.runs.users(_RUN) == 0:
            return []
        try:
            return list(yappi.get_func_stats(filter={"tag": tag}))
        finally:
            self.runs.release(_RUN)

    def record_kept(self, *, functions: int, coroutines: int) -> None:
        """Add what one released request left in yappi to the process's totals.

        Counted by the caller after ``release``, from the stats it reads anyway: inside
        ``release`` yappi may still be running and would trace the counting itself.
        """
        with self._lock:
            self._kept_coroutines += coroutines
            self._kept_bytes += (
                RETAINED_BYTES_PER_REQUEST
                + RETAINED_BYTES_PER_FUNCTION * functions
                + RETAINED_BYTES_PER_COROUTINE * coroutines
            )


yappi_session = YappiSession()
"""The process-wide session every ``YappiBackend`` joins unless given another."""


def limit_note(profiled: int) -> str:
    """Why a request is not profiled with yappi once the process reached its limit.

    Short: the panel explains what yappi keeps, and how to get yappi back, right below it.
    """
    return (
        f"yappi was not used: this process has already profiled {profiled:,} requests with it, "
        "its limit (async_yappi_max_requests), because yappi keeps memory of each one."
    )


def summarize(stats: Iterable[Any], limit: int) -> tuple[list[FunctionStat], int, int]:
    """The top ``limit`` functions by total wall time, how many there were, and kept coroutines.

    The toolbar's own functions (the profiler at work, not the app) are left out of the first
    two; yappi leaves out its own. The third counts them all: the coroutines yappi keeps alive
    (sumerc/yappi#217). It keeps one from the first time it is left (a suspension or its
    return), and counts a call when it returns, so the calls of coroutine functions count the
    coroutines kept; one still suspended at the end is kept but not counted.
    """
    import yappi

    # yappi keeps each function's code object here (its documented stats carry no flags);
    # without it, nothing is marked as a coroutine rather than guessing from names.
    descriptors: dict[str, Any] = getattr(yappi, "_fn_descriptor_dict", {})
    functions = []
    kept = 0
    for stat in stats:
        flags = getattr(descriptors.get(stat.full_name), "co_flags", 0)
        if YAPPI_KEEPS_COROUTINES and flags & _KEPT_ALIVE_FLAGS:
            kept += stat.ncall
        filename = str(stat.module)
        if is_toolbar_file(filename):
            continue
        functions.append(
            FunctionStat(
                name=str(stat.name),
                filename=filename,
                lineno=int(stat.lineno),
                calls=int(stat.ncall),
                total_ms=stat.ttot * 1000.0,
                own_ms=stat.tsub * 1000.0,
                avg_ms=stat.tavg * 1000.0,
                is_coroutine=bool(flags & _COROUTINE_FLAGS),
            )
        )
    functions.sort(key=lambda function: function.total_ms, reverse=True)
    return functions[:limit], len(functions), int(kept)


class YappiBackend(AsyncProfilerBackend):
    """The task-factory backend's timeline, plus this request's functions timed by yappi.

    Task tracking is the task-factory backend itself (composed, not copied), so the task part
    of the stats has exactly its shape and the panel treats both backends alike; the yappi
    part adds ``functions``. When yappi cannot profile this request (someone else's yappi run,
    or a draining one), the request still gets its tasks and ``functions_error`` says why.
    """

    name = "yappi"

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        capture_stacks: bool = True,
        max_stack_depth: int = 10,
        origin_ns: int | None = None,
        max_functions: int = 50,
        session: YappiSession | None = None,
        max_process_requests: int | None = None,
    ) -> None:
        self._tasks = TaskFactoryBackend(
            max_tasks=max_tasks,
            capture_stacks=capture_stacks,
            max_stack_depth=max_stack_depth,
            origin_ns=origin_ns,
        )
        if max_functions < 1:
            raise ValueError(f"max_functions must be at least 1, got {max_functions}")
        if max_process_requests is not None and max_process_requests < 1:
            raise ValueError(
                f"max_process_requests must be at least 1 or None, got {max_process_requests}"
            )
        self.max_functions = max_functions
        self.session = yappi_session if session is None else session
        self.max_process_requests = max_process_requests
        """Requests the session may profile in this process in all (``None``: no limit)."""
        self.tag: int | None = None
        """This request's yappi tag while it holds a share of the run."""
        self.functions: list[FunctionStat] = []
        self.functions_total = 0
        self.functions_error: str | None = None
        self.profiler_ns = 0
        """Joining and leaving the yappi run and collecting this request's stats."""
        self._token: Any = None
        self._started = False

    @property
    def tracking(self) -> TaskTracking:
        """The request's task tracking, as on ``TaskFactoryBackend`` (the detector asks it)."""
        return self._tasks.tracking

    @property
    def origin_ns(self) -> int:
        return self._tasks.origin_ns

    @classmethod
    def is_available(cls) -> bool:
        try:
            import yappi  # noqa: F401  (only checking that it imports)
        except ImportError:
            return False
        return True

    def start(self, loop: AbstractEventLoop) -> None:
        """Start tracking tasks and join the yappi run; must run in the request's own task.

        The tag is set last and reset first (in ``stop``), so the toolbar's own bookkeeping
        and the stdlib code it calls are not counted as the request's functions.
        """
        if self._started:
            raise RuntimeError("the yappi backend already started for this request")
        self._started = True
        self._tasks.start(loop)
        began = time.perf_counter_ns()
        try:
            self.tag = self.session.acquire(self.max_process_requests)
        except YappiBusyError as exc:
            self.functions_error = str(exc)
        except BaseException:
            self._tasks.stop()
            raise
        else:
            self._token = _request_tag.set(self.tag)
        self.profiler_ns += time.perf_counter_ns() - began

    def stop(self) -> None:
        """Idempotent; collects this request's function stats before leaving the run."""
        tag, self.tag = self.tag, None
        token, self._token = self._token, None
        if token is not None:
            # Not contextlib.suppress: its __enter__ would run, and count, under the tag.
            try:  # noqa: SIM105
                _request_tag.reset(token)
            except ValueError:
                # Stopped from another context than the one that started: that context keeps
                # the retired tag, whose stats nobody reads and the run's end clears.
                pass
        self._tasks.stop()
        if tag is None:
            return
        began = time.perf_counter_ns()
        stats = self.session.release(tag)
        self.functions, self.functions_total, kept = summarize(stats, self.max_functions)
        self.session.record_kept(functions=len(stats), coroutines=kept)
        self.profiler_ns += time.perf_counter_ns() - began

    def owns_task(self, task: Future[Any]) -> bool:
        return self._tasks.owns_task(task)

    def collected(self) -> BackendProfile:
        tasks = self._tasks.collected()
        return BackendProfile(
            tasks=tasks.tasks,
            overhead=replace(tasks.overhead, profiler_ms=self.profiler_ns / 1e6),
            functions=FunctionProfile(
                functions=tuple(self.functions),
                total=self.functions_total,
                max_functions=self.max_functions,
                error=self.functions_error,
                cost_note=YAPPI_COST_NOTE,
            ),
        )
