"""Framework-agnostic core: config, request context, panels, toolbar, history, rendering."""

from __future__ import annotations

from debug_toolbar.core.config import DebugToolbarConfig, is_loopback_client
from debug_toolbar.core.context import RequestContext, get_current_request
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.records import PanelRecord, RequestRecord
from debug_toolbar.core.storage import RequestHistory
from debug_toolbar.core.toolbar import DebugToolbar

__all__ = (
    "DebugToolbar",
    "DebugToolbarConfig",
    "Panel",
    "PanelRecord",
    "RequestContext",
    "RequestHistory",
    "RequestRecord",
    "get_current_request",
    "is_loopback_client",
)
