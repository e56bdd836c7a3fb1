"""debug-toolbar: an async-native debug toolbar for ASGI apps."""

from __future__ import annotations

from debug_toolbar.core import (
    DebugToolbar,
    DebugToolbarConfig,
    Panel,
    RequestContext,
    RequestHistory,
    get_current_request,
)
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel

__all__ = (
    "AsyncProfilerPanel",
    "DebugToolbar",
    "DebugToolbarConfig",
    "Panel",
    "RequestContext",
    "RequestHistory",
    "get_current_request",
)
__version__ = "0.1.0"
