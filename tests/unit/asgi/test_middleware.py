"""DebugToolbarMiddleware: lifecycle, pass-through, failures, through real ASGI calls."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import (
    DISABLED_PANELS_COOKIE,
    RequestContext,
    current_request,
    get_current_request,
)
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.storage import RequestHistory

LOOPBACK = ("127.0.0.1", 5000)
PAGE = b"<!doctype html><html><head></head><body><h1>Hello</h1></body></html>"
TOOLBAR_BLOCK = re.compile(rb"<!-- debug-toolbar -->.*<!-- /debug-toolbar -->\n?", re.DOTALL)


class StepsPanel(Panel):
    """Notes each lifecycle step, and the task it ran in, in the request's scratch state."""

    title = "Steps"

    def _note(self, context: RequestContext, step: str) -> None:
        context.state.setdefault("steps", []).append(step)
        context.state.setdefault("tasks", []).append(id(asyncio.current_task()))

    async def process_request(self, context: RequestContext) -> None:
        self._note(context, "process_request")

    async def process_response(self, context: RequestContext) -> None:
        self._note(context, "process_response")

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        self._note(context, "generate_stats")
        return {"steps": list(context.state["steps"]), "tasks": list(context.state["tasks"])}

    def get_nav_subtitle(self) -> str:
        return f"{len(self.get_stats()['steps'])} steps"


class OtherPanel(Panel):
    title = "Other"

    async def process_request(self, context: RequestContext) -> None:
        context.state["other_ran"] = True

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        return {"ran": True}


def html_app(page: bytes = PAGE) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        context = get_current_request()
        if context is not None:
            context.state.setdefault("steps", []).append("app")
            context.state.setdefault("tasks", []).append(id(asyncio.current_task()))
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page})

    return app


async def json_app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"7")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"a":1}'})


def make(app: Any, **config: Any) -> DebugToolbarMiddleware:
    config.setdefault("panels", [StepsPanel, OtherPanel])
    return DebugToolbarMiddleware(app, DebugToolbarConfig(**config))


def client(app: Any, peer: tuple[str, int] = LOOPBACK, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


class Messages:
    """A server's receive/send for direct ASGI calls."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))


def http_scope(path: str = "/", **extra: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": LOOPBACK,
        "server": ("localhost", 80),
    }
    scope.update(extra)
    return scope


class TestConstruction:
    def test_defaults(self) -> None:
        middleware = DebugToolbarMiddleware(json_app, DebugToolbarConfig(panels=[StepsPanel]))
        assert middleware.app is json_app
        assert middleware.history.max_size == 50
        assert middleware.pages.history is middleware.history
        assert middleware.pages.config is middleware.config

    def test_shared_history(self) -> None:
        history = RequestHistory(3)
        middleware = DebugToolbarMiddleware(json_app, DebugToolbarConfig(), history)
        assert middleware.history is history
        assert middleware.config.panel_classes  # the standard panels resolve


class TestLifecycle:
    @pytest.mark.asyncio
    async def test_order_task_and_context_variable(self) -> None:
        middleware = make(html_app())
        async with client(middleware) as c:
            response = await c.get("/page?x=1")
        assert current_request.get() is None  # reset after the request
        record = middleware.history.get(response.headers[REQUEST_ID_HEADER])
        assert record is not None
        steps = record.panel("StepsPanel")
        assert steps is not None
        assert steps.stats["steps"] == [
            "process_request",
            "app",
            "process_response",
            "generate_stats",
        ]
        # Everything ran in the request's own task.
        assert len(set(steps.stats["tasks"])) == 1
        assert steps.nav_subtitle == "4 steps"
        assert record.path == "/page"
        assert record.query_string == "x=1"
        assert record.status_code == 200
        assert record.duration_ms > 0

    @pytest.mark.asyncio
    async def test_child_tasks_see_the_request(self) -> None:
        seen: list[RequestContext | None] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async def child() -> None:
                seen.append(get_current_request())

            await asyncio.gather(child(), asyncio.create_task(child()))
            await json_app(scope, receive, send)

        middleware = make(app)
        async with client(middleware) as c:
            response = await c.get("/")
        assert len(seen) == 2
        assert seen[0] is not None
        assert seen[0] is seen[1]
        assert seen[0].request_id == response.headers[REQUEST_ID_HEADER]

    @pytest.mark.asyncio
    async def test_html_record_is_stored_before_the_page_is_sent(self) -> None:
        # The toolbar in the page fetches its panels by request id: the record must exist first.
        middleware = make(html_app())
        messages = Messages()
        stored_when_sent: list[bool] = []

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                request_id = dict(message["headers"])[b"x-debug-toolbar-request-id"]
                stored_when_sent.append(request_id.decode() in middleware.history)
            await messages.send(message)

        await middleware(http_scope(), messages.receive, send)
        assert stored_when_sent == [True]
        assert b'id="debug-toolbar"' in messages.sent[1]["body"]

    @pytest.mark.asyncio
    async def test_json_record_is_stored_when_the_app_returns(self) -> None:
        middleware = make(json_app)
        messages = Messages()
        await middleware(http_scope(), messages.receive, messages.send)
        request_id = dict(messages.sent[0]["headers"])[b"x-debug-toolbar-request-id"]
        assert request_id.decode() in middleware.history


class TestInjection:
    @pytest.mark.asyncio
    async def test_html_gets_the_toolbar_and_a_correct_length(self) -> None:
        middleware = make(html_app())
        async with client(middleware) as c:
            response = await c.get("/")
        request_id = response.headers[REQUEST_ID_HEADER]
        body = response.content
        assert int(response.headers["content-length"]) == len(body)
        assert TOOLBAR_BLOCK.sub(b"", body) == PAGE
        assert body.index(b'id="debug-toolbar"') < body.rindex(b"</body>")
        assert f'data-request-id="{request_id}"'.encode() in body
        assert f"/_debug_toolbar/requests/{request_id}/panels/StepsPanel".encode() in body
        assert b'data-cookie-name="debug_toolbar_disabled"' in body

    @pytest.mark.asyncio
    async def test_json_is_untouched_but_has_the_header(self) -> None:
        middleware = make(json_app)
        async with client(middleware) as c:
            response = await c.get("/api")
        assert response.content == b'{"a":1}'
        assert response.headers["content-length"] == "7"
        assert response.headers[REQUEST_ID_HEADER] in middleware.history

    @pytest.mark.asyncio
    async def test_links_follow_the_root_path(self) -> None:
        middleware = make(html_app())
        async with client(middleware, root_path="/app") as c:
            response = await c.get("/app/page")
        assert b'data-prefix="/app/_debug_toolbar"' in response.content
        record = middleware.history.records()[0]
        assert record.path == "/app/page"

    @pytest.mark.asyncio
    async def test_toolbar_render_failure_sends_the_page_unchanged(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(*args: Any, **kwargs: Any) -> str:
            raise RuntimeError("template exploded")

        monkeypatch.setattr("debug_toolbar.asgi.middleware.render_toolbar", broken)
        middleware = make(html_app())
        async with client(middleware) as c:
            response = await c.get("/")
        assert response.content == PAGE
        assert response.headers["content-length"] == str(len(PAGE))
        assert response.headers[REQUEST_ID_HEADER] in middleware.history
        assert "template exploded" in caplog.text


class TestPassThrough:
    @pytest.mark.asyncio
    async def test_disabled(self) -> None:
        received: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            received.append((receive, send))
            await html_app()(scope, receive, send)

        middleware = make(app, enabled=False)
        messages = Messages()
        await middleware(http_scope(), messages.receive, messages.send)
        assert received == [(messages.receive, messages.send)]  # the server's own callables
        assert messages.sent[1]["body"] == PAGE
        assert len(middleware.history) == 0

    @pytest.mark.asyncio
    async def test_disabled_does_not_serve_pages(self) -> None:
        middleware = make(json_app, enabled=False)
        async with client(middleware) as c:
            response = await c.get("/_debug_toolbar/")
        assert response.content == b'{"a":1}'  # the app answered

    @pytest.mark.asyncio
    async def test_excluded_path(self) -> None:
        middleware = make(html_app(), exclude_paths=["/health"])
        async with client(middleware) as c:
            excluded = await c.get("/health/live")
            profiled = await c.get("/other")
        assert excluded.content == PAGE
        assert REQUEST_ID_HEADER not in excluded.headers
        assert REQUEST_ID_HEADER in profiled.headers
        assert [r.path for r in middleware.history.records()] == ["/other"]

    @pytest.mark.asyncio
    async def test_non_loopback_client_gets_nothing(self) -> None:
        middleware = make(html_app())
        async with client(middleware, peer=("10.0.0.1", 123)) as c:
            page = await c.get("/")
            pages = await c.get("/_debug_toolbar/")
        assert page.content == PAGE
        assert REQUEST_ID_HEADER not in page.headers
        assert pages.status_code == 404
        assert pages.text == "Not Found"
        assert len(middleware.history) == 0

    @pytest.mark.asyncio
    async def test_show_toolbar_that_raises_means_no(self) -> None:
        def broken(context: RequestContext) -> bool:
            raise ValueError("bug")

        middleware = make(html_app(), show_toolbar=broken)
        async with client(middleware) as c:
            response = await c.get("/")
        assert response.content == PAGE
        assert len(middleware.history) == 0

    @pytest.mark.asyncio
    async def test_custom_show_toolbar_allows_any_client(self) -> None:
        middleware = make(html_app(), show_toolbar=lambda context: True)
        async with client(middleware, peer=("203.0.113.9", 1)) as c:
            response = await c.get("/")
        assert REQUEST_ID_HEADER in response.headers

    @pytest.mark.asyncio
    async def test_websockets_pass_through(self) -> None:
        calls: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            calls.append((scope, receive, send, get_current_request()))

        middleware = make(app)
        messages = Messages()
        scope = {"type": "websocket", "path": "/ws", "client": LOOPBACK, "headers": []}
        await middleware(scope, messages.receive, messages.send)
        assert calls == [(scope, messages.receive, messages.send, None)]
        assert len(middleware.history) == 0


class TestLifespan:
    """The app's lifespan goes through untouched; its shutdown tells the panels."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("outcome", ["complete", "failed"])
    async def test_the_panels_shut_down_when_the_app_has(
        self, outcome: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        shut_down: list[str] = []
        monkeypatch.setattr(
            StepsPanel, "on_shutdown", classmethod(lambda cls: shut_down.append(cls.panel_id))
        )
        sent: list[dict[str, Any]] = []
        incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(incoming)

        async def send(message: Any) -> None:
            sent.append({**message, "panels already shut down": list(shut_down)})

        async def app(scope: Any, receive: Any, send: Any) -> None:
            assert get_current_request() is None
            assert (await receive())["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
            assert shut_down == []
            assert (await receive())["type"] == "lifespan.shutdown"
            await send({"type": f"lifespan.shutdown.{outcome}", "message": ""})

        await make(app)({"type": "lifespan"}, receive, send)
        assert sent == [
            {"type": "lifespan.startup.complete", "panels already shut down": []},
            {
                "type": f"lifespan.shutdown.{outcome}",
                "message": "",
                "panels already shut down": ["StepsPanel"],
            },
        ]

    @pytest.mark.asyncio
    async def test_a_panel_failing_at_shutdown_does_not_stop_the_others(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        shut_down: list[str] = []

        def broken(cls: type[Any]) -> None:
            raise RuntimeError("cannot let go")

        monkeypatch.setattr(StepsPanel, "on_shutdown", classmethod(broken))
        monkeypatch.setattr(
            OtherPanel, "on_shutdown", classmethod(lambda cls: shut_down.append(cls.panel_id))
        )

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "lifespan.shutdown.complete"})

        messages = Messages()
        await make(app)({"type": "lifespan"}, messages.receive, messages.send)
        assert messages.sent == [{"type": "lifespan.shutdown.complete"}]
        assert shut_down == ["OtherPanel"]
        assert "StepsPanel failed at shutdown" in caplog.text

    @pytest.mark.asyncio
    async def test_failing_panel_constructor_serves_unprofiled(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class ExplodingInit(Panel):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise RuntimeError("no init")

        middleware = make(html_app(), panels=[ExplodingInit])
        async with client(middleware) as c:
            response = await c.get("/")
        assert response.content == PAGE
        assert len(middleware.history) == 0
        assert "building the panels failed" in caplog.text

    @pytest.mark.asyncio
    async def test_toolbar_pages_are_served_and_never_profiled(self) -> None:
        middleware = make(html_app())
        async with client(middleware) as c:
            await c.get("/")
            history = await c.get("/_debug_toolbar/")
        assert history.status_code == 200
        assert REQUEST_ID_HEADER not in history.headers
        assert history.text.count('id="debug-toolbar"') == 1  # the page's root, no toolbar
        assert len(middleware.history) == 1


class TestFailures:
    @pytest.mark.asyncio
    async def test_app_raising_before_responding_is_recorded_and_propagates(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            raise KeyError("handler bug")

        middleware = make(app)
        messages = Messages()
        with pytest.raises(KeyError, match="handler bug"):
            await middleware(http_scope("/boom"), messages.receive, messages.send)
        assert messages.sent == []
        (record,) = middleware.history.records()
        assert record.path == "/boom"
        assert record.status_code == 500
        steps = record.panel("StepsPanel")
        assert steps is not None
        assert steps.stats["steps"] == ["process_request", "process_response", "generate_stats"]
        assert current_request.get() is None

    @pytest.mark.asyncio
    async def test_app_raising_after_its_page_sends_it_unchanged(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await html_app()(scope, receive, send)
            raise RuntimeError("background task failed")

        middleware = make(app)
        messages = Messages()
        with pytest.raises(RuntimeError, match="background task failed"):
            await middleware(http_scope(), messages.receive, messages.send)
        assert messages.sent[0]["status"] == 200
        assert b"".join(m.get("body", b"") for m in messages.sent) == PAGE
        (record,) = middleware.history.records()
        assert record.status_code == 200

    @pytest.mark.asyncio
    async def test_cancelled_request_still_stops_its_panels(self) -> None:
        started = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            started.set()
            await asyncio.Event().wait()

        middleware = make(app)
        messages = Messages()
        task = asyncio.create_task(middleware(http_scope("/slow"), messages.receive, messages.send))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (record,) = middleware.history.records()
        steps = record.panel("StepsPanel")
        assert steps is not None
        assert steps.stats["steps"] == ["process_request", "process_response", "generate_stats"]
        assert messages.sent == []


class TestToolbarFailures:
    @pytest.mark.asyncio
    async def test_recording_failure_still_serves_the_page(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(self: Any) -> Any:
            raise RuntimeError("record exploded")

        monkeypatch.setattr("debug_toolbar.core.toolbar.DebugToolbar.build_record", broken)
        middleware = make(html_app())
        async with client(middleware) as c:
            response = await c.get("/")
        assert response.content == PAGE
        assert response.headers["content-length"] == str(len(PAGE))
        assert len(middleware.history) == 0
        assert "record exploded" in caplog.text

    @pytest.mark.asyncio
    async def test_a_failing_server_send_does_not_hide_the_apps_exception(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/html"), (b"content-length", b"100")],
                }
            )
            await send({"type": "http.response.body", "body": b"<body>", "more_body": True})
            raise LookupError("app failed mid-page")

        async def send(message: Any) -> None:
            raise OSError("client went away")

        middleware = make(app)
        with pytest.raises(LookupError, match="app failed mid-page"):
            await middleware(http_scope(), Messages().receive, send)
        assert "releasing the response failed" in caplog.text
        assert len(middleware.history) == 1


class TestDisabledPanelCookie:
    @pytest.mark.asyncio
    async def test_panel_is_listed_unchecked_and_does_not_run(self) -> None:
        middleware = make(html_app())
        async with client(middleware) as c:
            c.cookies.set(DISABLED_PANELS_COOKIE, "OtherPanel")
            response = await c.get("/")
        record = middleware.history.get(response.headers[REQUEST_ID_HEADER])
        assert record is not None
        other = record.panel("OtherPanel")
        assert other is not None
        assert other.enabled is False
        assert other.stats == {}
        html = response.text
        item = re.search(
            r'<li class="dt-panel dt-panel-off" data-panel-id="OtherPanel">.*?</li>', html, re.S
        )
        assert item is not None
        assert "checked" not in item.group(0)
        assert '<span class="dt-nav-subtitle">off</span>' in item.group(0)
        steps_item = re.search(
            r'<li class="dt-panel" data-panel-id="StepsPanel">.*?</li>', html, re.S
        )
        assert steps_item is not None
        assert " checked" in steps_item.group(0)


class TimingPanel(Panel):
    """Adds a header from what it saw of the request so far, like the Async panel's."""

    title = "Timing"

    def response_headers(self) -> list[tuple[str, str]]:
        steps = self.context.state.get("steps", [])
        return [("Server-Timing", f'seen;desc="{len(steps)} steps"')]


class BrokenHeadersPanel(Panel):
    title = "Broken headers"

    def response_headers(self) -> list[tuple[str, str]]:
        raise RuntimeError("no headers today")


class TestPanelResponseHeaders:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", ["json", "html"])
    async def test_a_panels_headers_reach_the_client(self, kind: str) -> None:
        app = json_app if kind == "json" else html_app()
        middleware = make(app, panels=[StepsPanel, TimingPanel])
        async with client(middleware) as c:
            response = await c.get("/")
        # Asked when the app started its response: after process_request (and the HTML app's
        # own step), before process_response.
        seen = 1 if kind == "json" else 2
        assert response.headers["server-timing"] == f'seen;desc="{seen} steps"'
        assert REQUEST_ID_HEADER in response.headers

    @pytest.mark.asyncio
    async def test_a_failing_panel_adds_none_and_records_its_error(self) -> None:
        middleware = make(json_app, panels=[BrokenHeadersPanel, TimingPanel])
        async with client(middleware) as c:
            response = await c.get("/")
        assert response.status_code == 200
        assert response.headers["server-timing"] == 'seen;desc="0 steps"'
        [record] = middleware.history.records()
        broken = record.panel("BrokenHeadersPanel")
        assert broken is not None
        assert broken.error == "RuntimeError: no headers today"
