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

``yappi`` is imported only inside functions: the package imports without the extra installed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import debug_toolbar
from debug_toolbar.core.panels.async_profiler.backends import BackendUnavailableError
from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future
    from collections.abc import Iterable

    from debug_toolbar.core.panels.async_profiler.task_hooks import TaskTracking

__all__ = (
    "YAPPI_COST_NOTE",
    "FunctionStat",
    "YappiBackend",
    "YappiBusyError",
    "YappiSession",
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

_OWN_DIR = os.path.dirname(debug_toolbar.__file__) + os.sep
_COROUTINE_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE


class YappiBusyError(RuntimeError):
    """yappi cannot profile this request's functions now; the message says why."""


class YappiSession:
    """The one yappi run of the process, shared by every profiled request (reference-counted).

    Requests in different threads (one event loop per thread) may start and stop at the same
    time, so every transition happens under one lock. Collecting a request's stats and
    releasing its share happen under that same lock, so the last user cannot clear the stats
    between another request's collection and its release.
    """

    def __init__(self, *, max_requests: int = 200) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {max_requests}")
        self.max_requests = max_requests
        """Requests one run accepts before it must drain (bounds yappi's memory)."""
        self._lock = threading.Lock()
        self._tags = itertools.count(1)
        self._users = 0
        self._served = 0
        self._saved_clock_type: str | None = None
        self._saved_thread_profile: Any = None

    @property
    def users(self) -> int:
        """Profiled requests currently sharing the run (0: yappi is not ours right now)."""
        return self._users

    def acquire(self) -> int:
        """Join (or start) the run; returns this request's tag.

        Raises ``BackendUnavailableError`` when yappi cannot be imported and ``YappiBusyError``
        when it belongs to someone else or the run is draining.
        """
        try:
            import yappi
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the yappi backend needs the yappi package ({exc}); install the extra: "
                f"{YAPPI_EXTRA}"
            ) from exc
        with self._lock:
            if self._users == 0:
                self._start(yappi)
            elif self._served >= self.max_requests:
                raise YappiBusyError(
                    f"the shared yappi run has profiled {self._served} requests and is "
                    "draining; function stats resume once the requests in flight finish"
                )
            self._users += 1
            self._served += 1
            return next(self._tags)

    def _start(self, yappi: Any) -> None:
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
        self._served = 0

    def release(self, tag: int) -> list[Any]:
        """Leave the run, returning this request's yappi stats (``YFuncStat``s) first.

        The last user stops yappi, clears every stat (yappi cannot clear one tag) and restores
        what the run changed.
        """
        import yappi

        with self._lock:
            if self._users == 0:
                return []
            try:
                stats = list(yappi.get_func_stats(filter={"tag": tag}))
            finally:
                self._users -= 1
                if self._users == 0:
                    self._stop(yappi)
            return stats

    def _stop(self, yappi: Any) -> None:
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
        self._served = 0


yappi_session = YappiSession()
"""The process-wide session every ``YappiBackend`` joins unless given another."""


@dataclass(slots=True, frozen=True)
class FunctionStat:
    """One function's wall-clock stats within one request."""

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


def summarize(stats: Iterable[Any], limit: int) -> tuple[list[FunctionStat], int]:
    """The top ``limit`` functions by total wall time, and how many there were in all.

    The toolbar's own functions (the profiler at work, not the app) are left out; yappi leaves
    out its own.
    """
    import yappi

    # yappi keeps each function's code object here (its documented stats carry no flags);
    # without it, nothing is marked as a coroutine rather than guessing from names.
    descriptors: dict[str, Any] = getattr(yappi, "_fn_descriptor_dict", {})
    functions = []
    for stat in stats:
        filename = str(stat.module)
        if filename.startswith(_OWN_DIR):
            continue
        code = descriptors.get(stat.full_name)
        flags = getattr(code, "co_flags", 0)
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
    return functions[:limit], len(functions)


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
        owner: object | None = None,
        origin_ns: int | None = None,
        max_functions: int = 50,
        session: YappiSession | None = None,
    ) -> None:
        self._tasks = TaskFactoryBackend(
            max_tasks=max_tasks,
            capture_stacks=capture_stacks,
            max_stack_depth=max_stack_depth,
            owner=owner,
            origin_ns=origin_ns,
        )
        if max_functions < 1:
            raise ValueError(f"max_functions must be at least 1, got {max_functions}")
        self.max_functions = max_functions
        self.session = yappi_session if session is None else session
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
            self.tag = self.session.acquire()
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
        self.functions, self.functions_total = summarize(stats, self.max_functions)
        self.profiler_ns += time.perf_counter_ns() - began

    def get_summary(self) -> dict[str, Any]:
        summary = self._tasks.get_summary()
        summary["overhead_ms"] += self.profiler_ns / 1e6
        return summary

    def get_stats(self) -> dict[str, Any]:
        stats = self._tasks.get_stats()
        profiler_ms = self.profiler_ns / 1e6
        stats["overhead_ms"] += profiler_ms
        stats["overhead"]["profiler_ms"] = profiler_ms
        stats.update(
            {
                "clock": "wall",
                "functions": [function.to_dict() for function in self.functions],
                "functions_total": self.functions_total,
                "max_functions": self.max_functions,
                "functions_error": self.functions_error,
                "cost_note": YAPPI_COST_NOTE,
            }
        )
        return stats
    def owns_task(self, task: Future[Any]) -> bool:
        return self._tasks.owns_task(task)

