"""The Async Profiler panel: the tasks a request spawns, attributed exactly under concurrency."""

from __future__ import annotations

from debug_toolbar.core.panels.async_profiler.panel import AsyncProfilerPanel

__all__ = ("AsyncProfilerPanel",)
