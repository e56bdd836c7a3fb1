"""The contract every async profiler backend fulfils, so the panel can swap them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

__all__ = ("AsyncProfilerBackend",)


class AsyncProfilerBackend(ABC):
    """Collects one request's async activity on one event loop.

    ``start`` runs inside the request's own task (so ContextVars it sets reach every task the
    request spawns); ``stop`` must be idempotent and safe after a failed ``start``, because the
    panel calls it from ``process_response`` whatever happened before.
    """

    name: ClassVar[str]
    """Shown in the panel, so the developer knows which backend produced the numbers."""

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """Whether the backend's dependencies can be imported here."""

    @abstractmethod
    def start(self, loop: AbstractEventLoop) -> None:
        """Begin collecting for the current request on ``loop``."""

    @abstractmethod
    def stop(self) -> None:
        """Stop collecting; everything shared is released when the last user stops."""

    @abstractmethod
    def owns_task(self, task: Future[Any]) -> bool:
        """Whether ``task`` runs for this request (its own task or one it spawned, while
        collecting). Called from the blocking-call watchdog's thread: reads only."""

    @abstractmethod
    def get_summary(self) -> dict[str, Any]:
        """The figures the panel needs while the response waits, cheap to read after ``stop``.

        Keys: ``completed``, ``cancelled``, ``failed``, ``pending`` (task counts by state),
        ``dropped`` (tasks beyond the cap) and ``overhead_ms`` (what profiling cost the request
        itself). Nothing here may cost per task: the full stats are built later, on demand.
        """

    @abstractmethod
    def get_stats(self) -> dict[str, Any]:
        """JSON-compatible stats of what was collected (call after ``stop``).

        May cost per task (the task list is built here): the panel calls it only when someone
        reads the request's record. The data it reads must not change after ``stop``.
        """
