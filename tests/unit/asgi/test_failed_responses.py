"""Responses that do not end as their status says: the app raises or returns mid-body, is
cancelled, or the client goes away. The record must say so, not list a plain 200."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.asgi.views import render_toolbar
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.records import RequestRecord

FIRST = b"<html><body><p>first part!"
PAGE = b"<!doctype html><html><body><h1>Whole</h1></body></html>"


def scope(path: str = "/") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost:8000")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


class Server:
    """The server side of one request: what the app's messages became, and a ``receive`` that
    answers ``http.disconnect`` once ``disconnect`` is set (the client went away)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.disconnect = asyncio.Event()
        self._request_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def start(content_length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http.response.start", "status": 200, "headers": headers}


def page(middleware: DebugToolbarMiddleware, path: str) -> str:
    """One of the toolbar's pages, as the browser gets it."""
    response = middleware.pages.respond(scope("/_debug_toolbar" + path))
    assert response.status == 200
    return response.body.decode()


async def run(
    app: Any, server: Server | None = None, middleware: DebugToolbarMiddleware | None = None
) -> tuple[RequestRecord, Server]:
    middleware = middleware or DebugToolbarMiddleware(app, DebugToolbarConfig())
    server = server or Server()
    # What the app raises is the server's business (uvicorn closes the connection).
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await middleware(scope(), server.receive, server.send)
    record = middleware.history.records()[0]
    return record, server


def response_panel(record: RequestRecord) -> dict[str, Any]:
    panel = record.panel("ResponsePanel")
    assert panel is not None
    return panel.stats


class TestAppFailsHalfway:
    @pytest.mark.asyncio
    async def test_streamed_body_then_an_exception(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            raise RuntimeError("failed halfway")

        record, server = await run(app)
        assert record.status_code == 200
        assert record.error == "RuntimeError: failed halfway"
        assert record.body_cut_at == len(FIRST)
        assert record.client_disconnected is False
        assert record.failed is True
        assert server.body == FIRST  # what the client got: passed on as it came
        assert server.sent[-1]["more_body"] is True  # never ended: the server closes
        stats = response_panel(record)
        assert (stats["body_bytes"], stats["body_cut_at"]) == (len(FIRST), len(FIRST))
        assert stats["error"] == "RuntimeError: failed halfway"
        panel = record.panel("ResponsePanel")
        assert panel is not None
        assert panel.nav_subtitle == "200 OK, ended early"
        api = record.to_api_dict()
        assert (api["error"], api["body_cut_at"]) == ("RuntimeError: failed halfway", len(FIRST))

    @pytest.mark.asyncio
    async def test_buffered_body_then_an_exception(self) -> None:
        # A Content-Length page is held back for the toolbar; what was held is released as is.
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start(content_length=len(FIRST) + 100))
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            raise ValueError("no more")

        record, server = await run(app)
        assert (record.error, record.body_cut_at) == ("ValueError: no more", len(FIRST))
        assert server.body == FIRST
        assert b"debug-toolbar" not in server.body

    @pytest.mark.asyncio
    async def test_returning_without_the_last_body_message(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})

        record, _ = await run(app)
        assert (record.error, record.body_cut_at) == (None, len(FIRST))
        assert record.failed is True

    @pytest.mark.asyncio
    async def test_an_exception_after_a_complete_body(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start(content_length=len(PAGE)))
            await send({"type": "http.response.body", "body": PAGE})
            raise RuntimeError("after the end")

        record, server = await run(app)
        assert (record.error, record.body_cut_at) == ("RuntimeError: after the end", None)
        assert server.body == PAGE  # complete, and released without the toolbar

    @pytest.mark.asyncio
    async def test_an_exception_before_any_response(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            raise KeyError("user")

        record, server = await run(app)
        assert (record.status_code, record.error, record.body_cut_at) == (
            500,
            "KeyError: 'user'",
            None,
        )
        assert server.sent == []

    @pytest.mark.asyncio
    async def test_a_wrapped_exception_names_its_cause(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            try:
                raise RuntimeError("the handler's own")
            except RuntimeError as exc:
                raise LookupError("caught after response started") from exc

        record, _ = await run(app)
        assert record.error == (
            "LookupError: caught after response started (caused by RuntimeError: the handler's own)"
        )

    @pytest.mark.asyncio
    async def test_cancelled_mid_body(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            raise asyncio.CancelledError

        record, _ = await run(app)
        assert (record.error, record.body_cut_at) == ("CancelledError", len(FIRST))

    @pytest.mark.asyncio
    async def test_a_complete_response_is_not_a_failure(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            await send({"type": "http.response.body", "body": b"</p></body></html>"})

        record, _ = await run(app)
        assert (record.error, record.body_cut_at, record.failed) == (None, None, False)
        assert response_panel(record)["body_bytes"] == len(FIRST) + 18

    @pytest.mark.asyncio
    async def test_pathsend_completes_the_response(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({**start(), "headers": [(b"content-type", b"text/css")]})
            await send({"type": "http.response.pathsend", "path": "/srv/app.css"})

        record, server = await run(app)
        assert (record.body_cut_at, record.failed) == (None, False)
        assert server.sent[-1]["type"] == "http.response.pathsend"


class TestClientGoesAway:
    @pytest.mark.asyncio
    async def test_disconnect_mid_body_cuts_it_there(self) -> None:
        # Servers drop what is sent after the client left, so what the app sends next is lost.
        server = Server()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "http.request"
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            server.disconnect.set()
            assert (await receive())["type"] == "http.disconnect"
            await send({"type": "http.response.body", "body": b"lost", "more_body": False})

        record, _ = await run(app, server)
        assert record.client_disconnected is True
        assert (record.error, record.body_cut_at) == (None, len(FIRST))
        assert response_panel(record)["client_disconnected"] is True

    @pytest.mark.asyncio
    async def test_disconnect_reported_after_the_end_is_not_a_failure(self) -> None:
        # Once the response is complete, http.disconnect is just the end of the exchange.
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send(start(content_length=len(PAGE)))
            await send({"type": "http.response.body", "body": PAGE})
            assert (await receive())["type"] == "http.disconnect"

        record, server = await run(app)
        assert (record.client_disconnected, record.failed) == (False, False)
        assert b'id="debug-toolbar"' in server.body


class TestShown:
    @pytest.mark.asyncio
    async def test_history_toolbar_and_detail_say_it_ended_early(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(start())
            await send({"type": "http.response.body", "body": FIRST, "more_body": True})
            raise RuntimeError("failed <halfway>")

        middleware = DebugToolbarMiddleware(app, DebugToolbarConfig())
        record, _ = await run(app, middleware=middleware)
        message = (
            f"The response ended early: the body was cut after {len(FIRST)} bytes, the app raised "
            "RuntimeError: failed &lt;halfway&gt;."
        )
        history = page(middleware, "/")
        assert ">ended early</span>" in history
        assert f'title="{message}"' in history
        toolbar = render_toolbar(record, "/_debug_toolbar")
        assert ">ended early</span>" in toolbar
        assert "dt-handle-alert" in toolbar
        detail = page(middleware, f"/requests/{record.request_id}")
        assert f"<strong>{message}</strong>" in detail
        assert f"cut after {len(FIRST)} bytes: the client got a truncated response" in detail
        assert "<halfway>" not in detail
