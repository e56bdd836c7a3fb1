"""Standard panels: timer, request, response, logging and versions."""

from __future__ import annotations

from debug_toolbar.core.panels.logging import LoggingPanel
from debug_toolbar.core.panels.request import RequestPanel
from debug_toolbar.core.panels.response import ResponsePanel
from debug_toolbar.core.panels.timer import TimerPanel
from debug_toolbar.core.panels.versions import VersionsPanel

__all__ = (
    "LoggingPanel",
    "RequestPanel",
    "ResponsePanel",
    "TimerPanel",
    "VersionsPanel",
)
