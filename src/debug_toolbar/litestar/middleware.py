"""The ASGI middleware, taught to recognise the toolbar's Litestar mount.

Litestar runs app-level middleware only after routing, and hands a mounted app the path that
remains after the mount point (``/requests/…/`` instead of ``/_debug_toolbar/requests/…``). The
plain middleware would then take a toolbar page for an app request and profile it; this subclass
recognises the mount by the route handler's ``opt`` and serves the pages unprofiled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from debug_toolbar.asgi.middleware import DebugToolbarMiddleware

if TYPE_CHECKING:
    from debug_toolbar.asgi.types import Scope

__all__ = ("PAGES_OPT_KEY", "LitestarDebugToolbarMiddleware")

PAGES_OPT_KEY = "debug_toolbar_pages"
"""``opt`` key marking the route handler that mounts the toolbar's pages."""


class LitestarDebugToolbarMiddleware(DebugToolbarMiddleware):
    """``DebugToolbarMiddleware`` that also knows the toolbar's pages by their route handler."""

    def is_toolbar_request(self, scope: Scope, path: str) -> bool:
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", None)
        if isinstance(opt, dict) and opt.get(PAGES_OPT_KEY) is True:
            return True
        return super().is_toolbar_request(scope, path)
