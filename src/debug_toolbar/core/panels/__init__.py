"""Standard panels: timer, request, response, logging, versions, and the async profiler."""

from __future__ import annotations

from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.logging import LoggingPanel
from debug_toolbar.core.panels.request import RequestPanel
from debug_toolbar.core.panels.response import ResponsePanel
from debug_toolbar.core.panels.timer import TimerPanel
from debug_toolbar.core.panels.versions import VersionsPanel

__all__ = (
    "AsyncProfilerPanel",
    "LoggingPanel",
    "RequestPanel",
    "ResponsePanel",
    "TimerPanel",
    "VersionsPanel",
)
