"""DebugToolbarPlugin: what it adds to a Litestar app's config, and what it leaves alone."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.config.app import AppConfig
from litestar.handlers.asgi_handlers import ASGIRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.testing import create_test_client

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panel import Panel
from debug_toolbar.litestar import (
    PAGES_OPT_KEY,
    DebugToolbarPlugin,
    LitestarDebugToolbarMiddleware,
)


class QuietPanel(Panel):
    title = "Quiet"


class HeadersPanel(Panel):
    title = "Headers"

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        return {"headers": [[name, value] for name, value in context.response_headers]}


LOCAL = "http://app.localhost"
"""Litestar's test client names ``testserver.local`` by default, not a Host the toolbar allows;
``*.localhost`` is (and Litestar wants a dot in the name)."""


def allow_all(context: Any) -> bool:
    return True


@get("/")
async def index() -> dict[str, int]:
    return {"a": 1}


def user_middleware(app: Any) -> Any:
    return app


class TestOnAppInit:
    def test_is_an_init_plugin(self) -> None:
        assert isinstance(DebugToolbarPlugin(), InitPluginProtocol)

    def test_adds_the_outermost_middleware_and_the_pages_mount(self) -> None:
        config = DebugToolbarConfig(panels=[QuietPanel], url_prefix="/_dt")
        plugin = DebugToolbarPlugin(config)
        app_config = AppConfig(route_handlers=[index], middleware=[user_middleware])
        result = plugin.on_app_init(app_config)
        assert result is app_config
        first = app_config.middleware[0]
        assert isinstance(first, DefineMiddleware)
        assert first.middleware is LitestarDebugToolbarMiddleware
        assert first.kwargs == {"config": config, "history": plugin.history}
        assert app_config.middleware[1] is user_middleware
        handler = app_config.route_handlers[-1]
        assert isinstance(handler, ASGIRouteHandler)
        assert handler.paths == {"/_dt"}
        assert handler.is_mount is True
        assert handler.opt[PAGES_OPT_KEY] is True

    def test_disabled_adds_nothing(self) -> None:
        plugin = DebugToolbarPlugin(DebugToolbarConfig(panels=[QuietPanel], enabled=False))
        app_config = AppConfig(route_handlers=[index])
        plugin.on_app_init(app_config)
        assert app_config.middleware == []
        assert app_config.route_handlers == [index]

    def test_default_config_and_one_shared_history(self) -> None:
        plugin = DebugToolbarPlugin()
        assert plugin.config.url_prefix == "/_debug_toolbar"
        assert plugin.history.max_size == plugin.config.max_request_history
        assert plugin.pages.history is plugin.history


class TestInApp:
    def test_pages_are_left_out_of_the_openapi_schema(self) -> None:
        app = Litestar(
            [index], plugins=[DebugToolbarPlugin(DebugToolbarConfig(panels=[QuietPanel]))]
        )
        assert app.openapi_schema.paths is not None
        assert set(app.openapi_schema.paths) == {"/"}

    def test_custom_prefix(self) -> None:
        config = DebugToolbarConfig(
            panels=[QuietPanel], url_prefix="/debug", show_toolbar=allow_all
        )
        plugin = DebugToolbarPlugin(config)
        with create_test_client([index], plugins=[plugin], base_url=LOCAL) as client:
            response = client.get("/")
            request_id = response.headers[REQUEST_ID_HEADER]
            detail = client.get(f"/debug/requests/{request_id}")
            old_prefix = client.get("/_debug_toolbar/")
        assert detail.status_code == 200
        assert 'href="/debug/"' in detail.text
        assert old_prefix.status_code == 404
        assert len(plugin.history) == 1

    def test_user_middleware_runs_inside_the_toolbar(self) -> None:
        def add_header(app: Any) -> Any:
            async def wrapped(scope: Any, receive: Any, send: Any) -> None:
                async def send_with_header(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message["headers"], (b"x-user", b"1")]
                    await send(message)

                await app(scope, receive, send_with_header)

            return wrapped

        plugin = DebugToolbarPlugin(
            DebugToolbarConfig(panels=[HeadersPanel], show_toolbar=allow_all)
        )
        with create_test_client(
            [index], plugins=[plugin], middleware=[add_header], base_url=LOCAL
        ) as client:
            response = client.get("/")
        assert response.headers["x-user"] == "1"
        record = plugin.history.get(response.headers[REQUEST_ID_HEADER])
        assert record is not None
        panel = record.panel("HeadersPanel")
        assert panel is not None
        # The toolbar is outermost: it saw the header the user's middleware added.
        assert ["x-user", "1"] in panel.stats["headers"]


class TestMountFallback:
    @pytest.mark.asyncio
    async def test_the_mounted_handler_serves_the_pages(self) -> None:
        # Normally the middleware answers first; the mount still works on its own.
        plugin = DebugToolbarPlugin(DebugToolbarConfig(panels=[QuietPanel]))
        handler = plugin._pages_route()
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": b"",
            "headers": [(b"host", b"localhost:8000")],
            "client": ("127.0.0.1", 1),
        }
        await handler.fn(scope=scope, receive=receive, send=send)
        assert sent[0]["status"] == 200
        assert b"No requests recorded yet" in sent[1]["body"]


class TestMissingLitestar:
    def test_import_error_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in list(sys.modules):
            if name == "debug_toolbar.litestar" or name.startswith("debug_toolbar.litestar."):
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "litestar", None)  # what an absent package looks like
        with pytest.raises(ImportError, match=r"pip install 'debug-toolbar\[litestar\]'"):
            importlib.import_module("debug_toolbar.litestar")
