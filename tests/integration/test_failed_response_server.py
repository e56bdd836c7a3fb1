"""A response that fails halfway, through a real uvicorn server on 127.0.0.1.

The reproduction: an HTML handler that raises after sending part of its body. The client gets
a 200 and a truncated body (uvicorn closes the connection); the record used to list it as a
plain 200. It now says what was raised and where the body was cut, in the JSON API, the
history, the request's page and the Response panel. A client that disconnects mid-body is
recorded too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, get
from litestar.response import Stream

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.records import RequestRecord
from debug_toolbar.core.storage import RequestHistory
from debug_toolbar.litestar import DebugToolbarPlugin
from support import raw_request

PREFIX = "/_debug_toolbar"
FIRST = b"<html><body><p>first part"


async def fails_halfway(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": FIRST, "more_body": True})
    raise RuntimeError("failed halfway")


@get("/half", media_type="text/html")
async def litestar_fails_halfway() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        yield FIRST
        raise RuntimeError("failed halfway")

    return Stream(chunks(), media_type="text/html")


@get("/slow", media_type="text/html")
async def litestar_slow() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        yield FIRST
        await asyncio.Event().wait()  # until the client goes away and Litestar cancels this
        yield b"never sent"

    return Stream(chunks(), media_type="text/html")


def wait_for_record(history: RequestHistory, count: int) -> RequestRecord:
    """The newest record, once ``count`` are stored (the server thread stores it after the
    app has finished, which can be after the client saw the connection close)."""
    deadline = time.monotonic() + 10
    while len(history) < count:
        assert time.monotonic() < deadline, "the request was never recorded"
        time.sleep(0.01)
    return history.records()[0]


def assert_shown(url: str, request_id: str, error: str) -> None:
    summary = json.loads(raw_request(url, f"{PREFIX}/api/requests", "localhost").body)
    [listed] = [r for r in summary["requests"] if r["request_id"] == request_id]
    assert (listed["status_code"], listed["error"], listed["body_cut_at"]) == (
        200,
        error,
        len(FIRST),
    )
    history = raw_request(url, f"{PREFIX}/", "localhost").body.decode()
    assert ">ended early</span>" in history
    detail = raw_request(url, f"{PREFIX}/requests/{request_id}", "localhost").body.decode()
    assert f"the body was cut after {len(FIRST)} bytes, the app raised" in detail
    panel = raw_request(
        url, f"{PREFIX}/requests/{request_id}/panels/ResponsePanel", "localhost"
    ).body.decode()
    assert f"the body was cut after {len(FIRST)} bytes: the client got a truncated" in panel


class TestHandlerFailsHalfway:
    def test_plain_middleware(self, uvicorn_server: Any) -> None:
        middleware = DebugToolbarMiddleware(fails_halfway, DebugToolbarConfig())
        server = uvicorn_server(middleware)
        response = raw_request(server.url, "/", "localhost")
        assert (response.status, response.body, response.complete) == (200, FIRST, False)
        request_id = response.headers[REQUEST_ID_HEADER.lower()]
        record = wait_for_record(middleware.history, 1)
        assert record.request_id == request_id
        assert (record.error, record.body_cut_at) == ("RuntimeError: failed halfway", len(FIRST))
        assert_shown(server.url, request_id, "RuntimeError: failed halfway")

    def test_litestar_stream(self, uvicorn_server: Any) -> None:
        plugin = DebugToolbarPlugin(DebugToolbarConfig())
        app = Litestar([litestar_fails_halfway], plugins=[plugin], logging_config=None)
        server = uvicorn_server(app)
        response = raw_request(server.url, "/half", "localhost")
        assert (response.status, response.body, response.complete) == (200, FIRST, False)
        record = wait_for_record(plugin.history, 1)
        # Litestar re-raises the handler's exception wrapped; the record names both.
        error = (
            "LitestarException: Exception caught after response started "
            "(caused by RuntimeError: failed halfway)"
        )
        assert (record.error, record.body_cut_at) == (error, len(FIRST))
        assert_shown(server.url, record.request_id, error)


class TestClientDisconnects:
    def test_mid_body(self, uvicorn_server: Any) -> None:
        plugin = DebugToolbarPlugin(DebugToolbarConfig())
        app = Litestar([litestar_slow], plugins=[plugin], logging_config=None)
        server = uvicorn_server(app)
        port = int(server.url.rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
            received = b""
            while FIRST not in received:
                received += connection.recv(65536)
        record = wait_for_record(plugin.history, 1)
        assert record.client_disconnected is True
        assert (record.error, record.body_cut_at) == (None, len(FIRST))
        history = raw_request(server.url, f"{PREFIX}/", "localhost").body.decode()
        assert f"cut after {len(FIRST)} bytes, when the client disconnected." in history
