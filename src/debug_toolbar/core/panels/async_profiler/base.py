"""The contract every async profiler backend fulfils, so the panel can swap them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

    from debug_toolbar.core.panels.async_profiler.profile import BackendProfile

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
    def collected(self) -> BackendProfile:
        """What was collected, frozen (call after ``stop``).

        Called while the response waits: nothing here may cost per task beyond copying the
        recorder's columns. Stacks stay unresolved (``TaskTable``) until someone reads them.
        """
