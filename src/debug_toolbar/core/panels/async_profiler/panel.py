"""AsyncProfilerPanel: the tasks a request spawned, how they ended, and where they were created.

The panel is per request like every panel; what must be shared per loop (the task factory) is
in ``loop_hooks``, reached through the backend. ``generate_stats`` is built from sections
(``backend``, ``summary``, ``tasks``) so later parts (blocking calls, loop lag, the timeline)
add their own keys without reshaping these.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panel import Panel
from debug_toolbar.core.panels.async_profiler.backends import select_backend

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend

__all__ = ("AsyncProfilerPanel",)

_STATES = ("completed", "cancelled", "failed", "pending")
_SUMMARIZED_KEYS = frozenset({"tasks", "dropped", "overhead_ms", "overhead"})
"""Backend stats that the panel reshapes into ``summary``/``tasks``/``overhead``."""


class AsyncProfilerPanel(Panel):
    """Tracks the asyncio tasks spawned while the request runs (children, grandchildren, ...)."""

    panel_id = "AsyncProfilerPanel"
    title = "Async"
    nav_title = "Async"
    template = "panels/async_profiler.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend: AsyncProfilerBackend | None = None

    def create_backend(self, context: RequestContext) -> AsyncProfilerBackend:
        """The configured backend for this request (raises when it cannot run here)."""
        config = self.config
        backend_class = select_backend(config.async_profiler_backend)
        # Every backend takes these keyword options (the ABC cannot declare a constructor).
        return backend_class(  # type: ignore[call-arg]
            max_tasks=config.async_max_tasks,
            capture_stacks=config.async_capture_task_stacks,
            max_stack_depth=config.async_max_stack_depth,
            owner=context,
            origin_ns=context.start_ns,
        )

    async def process_request(self, context: RequestContext) -> None:
        # Runs in the request's own task: the backend records it as the root and sets the
        # ContextVar that every task spawned from here inherits.
        backend = self.create_backend(context)
        self.backend = backend
        backend.start(asyncio.get_running_loop())

    async def process_response(self, context: RequestContext) -> None:
        # Idempotent and safe after a failed start: the backend's stop checks what it holds.
        if self.backend is not None:
            self.backend.stop()

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        backend = self.backend
        if backend is None:
            return {}
        backend.stop()  # stats are only read from a stopped backend
        collected = backend.get_stats()
        stats = {
            "backend": backend.name,
            "summary": self._summary(collected),
            "tasks": collected["tasks"],
            "overhead": collected.get("overhead", {}),
        }
        # Sections only one backend has (yappi's function stats) pass through under their name.
        stats.update(
            (key, value) for key, value in collected.items() if key not in _SUMMARIZED_KEYS
        )
        return stats

    @staticmethod
    def _summary(collected: dict[str, Any]) -> dict[str, Any]:
        counts = dict.fromkeys(_STATES, 0)
        for task in collected["tasks"]:
            counts[task["state"]] += 1
        dropped = int(collected.get("dropped", 0))
        return {
            "total_tasks": len(collected["tasks"]) + dropped,
            **counts,
            "dropped": dropped,
            "profiling_overhead_ms": float(collected.get("overhead_ms", 0.0)),
        }

    def get_nav_subtitle(self) -> str:
        summary = self.get_stats().get("summary")
        if not summary:
            return ""
        total = summary["total_tasks"]
        return f"{total:,} task" if total == 1 else f"{total:,} tasks"
