"""DebugToolbarPlugin: adds the toolbar's middleware and pages to a Litestar app.

Two things are needed because Litestar runs app-level middleware only for requests that match a
route: the middleware (outermost, so it sees the response as the client gets it and can time the
whole handling) and a mount for the toolbar's pages at ``config.url_prefix``, which gives the
pages' URLs a route. The mount is an ASGI route, which Litestar leaves out of the OpenAPI schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from litestar.handlers import asgi
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol

from debug_toolbar.asgi.pages import ToolbarPages
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.storage import RequestHistory
from debug_toolbar.core.toolbar import shutdown_panels
from debug_toolbar.litestar.middleware import PAGES_OPT_KEY, LitestarDebugToolbarMiddleware

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.config.app import AppConfig
    from litestar.handlers.asgi_handlers import ASGIRouteHandler
    from litestar.types import ASGIApp

__all__ = ("PAGES_OPT_KEY", "DebugToolbarPlugin")

PAGES_HANDLER_NAME = "debug_toolbar_pages"


class DebugToolbarPlugin(InitPluginProtocol):
    """Puts the debug toolbar on a Litestar app.

    ``config`` defaults to ``DebugToolbarConfig()``. ``history`` keeps the recorded requests;
    it is shared by the middleware and the pages (read it in tests or tools). With
    ``config.enabled`` False the plugin adds nothing at all.
    """

    __slots__ = ("config", "history", "pages")

    def __init__(self, config: DebugToolbarConfig | None = None) -> None:
        self.config = config if config is not None else DebugToolbarConfig()
        self.history = RequestHistory.for_config(self.config)
        self.pages = ToolbarPages(self.config, self.history)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        if not self.config.enabled:
            return app_config
        middleware = DefineMiddleware(
            cast("Callable[..., ASGIApp]", LitestarDebugToolbarMiddleware),
            config=self.config,
            history=self.history,
        )
        # First in the list is outermost: it wraps every other app-level middleware.
        app_config.middleware.insert(0, middleware)
        app_config.route_handlers.append(self._pages_route())
        # Litestar answers the lifespan itself (app middleware never sees it): shut the panels
        # down from its own hook.
        app_config.on_shutdown.append(self._shutdown_panels)
        return app_config

    def _shutdown_panels(self) -> None:
        shutdown_panels(self.config)

    def _pages_route(self) -> ASGIRouteHandler:
        pages = self.pages

        # Annotated loosely: Litestar resolves these annotations at runtime, and the pages app
        # reads the scope as plain ASGI.
        async def debug_toolbar_pages(scope: Any, receive: Any, send: Any) -> None:
            await pages(scope, receive, send)

        return asgi(
            path=self.config.url_prefix,
            is_mount=True,
            copy_scope=True,
            name=PAGES_HANDLER_NAME,
            opt={PAGES_OPT_KEY: True},
        )(debug_toolbar_pages)
