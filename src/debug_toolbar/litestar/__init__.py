"""Litestar integration: ``DebugToolbarPlugin`` wires the toolbar into a Litestar app.

Usage: ``Litestar(route_handlers=[...], plugins=[DebugToolbarPlugin()])``.
"""

from __future__ import annotations

try:
    import litestar  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides litestar
    raise ImportError(
        "debug_toolbar.litestar needs Litestar, which is not installed: "
        "pip install 'debug-toolbar[litestar]'"
    ) from exc

from debug_toolbar.litestar.middleware import LitestarDebugToolbarMiddleware
from debug_toolbar.litestar.plugin import PAGES_OPT_KEY, DebugToolbarPlugin

__all__ = ("PAGES_OPT_KEY", "DebugToolbarPlugin", "LitestarDebugToolbarMiddleware")
