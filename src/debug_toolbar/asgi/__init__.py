"""Pure ASGI integration: the middleware that runs the toolbar, and the toolbar's own pages.

Works with any ASGI framework; ``debug_toolbar.litestar`` wires it into Litestar.
"""

from __future__ import annotations

from debug_toolbar.asgi.middleware import DebugToolbarMiddleware
from debug_toolbar.asgi.pages import ToolbarPages
from debug_toolbar.asgi.responder import REQUEST_ID_HEADER

__all__ = ("REQUEST_ID_HEADER", "DebugToolbarMiddleware", "ToolbarPages")
