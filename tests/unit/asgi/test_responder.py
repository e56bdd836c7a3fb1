"""ToolbarResponder: what reaches the server, and when, for each kind of response."""

from __future__ import annotations

import asyncio
import contextvars
import gzip
import logging
from typing import Any

import pytest

from debug_toolbar.asgi import responder as responder_module
from debug_toolbar.asgi.responder import MAX_BUFFERED_BYTES, REQUEST_ID_HEADER, ToolbarResponder
from debug_toolbar.core.context import RequestContext

TOOLBAR = "<div id=tb>TB</div>"


class Server:
    """Stands in for the server's receive/send: records what it is sent."""

    def __init__(self, incoming: list[dict[str, Any]] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.incoming = incoming or []

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))

    async def receive(self) -> Any:
        return self.incoming.pop(0)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def make(
    method: str = "GET", incoming: list[dict[str, Any]] | None = None
) -> tuple[ToolbarResponder, Server, RequestContext]:
    server = Server(incoming)
    context = RequestContext(method=method, path="/")
    return ToolbarResponder(context, server.receive, server.send), server, context


def start(content_type: bytes, *extra: tuple[bytes, bytes], status: int = 200) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), *extra],
    }


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


PAGE = b"<html><body><p>page</p></body></html>"


class TestStart:
    @pytest.mark.asyncio
    async def test_records_status_headers_and_time_and_adds_the_request_id(self) -> None:
        responder, server, context = make()
        await responder.send(start(b"application/json", (b"x-app", b"1"), status=201))
        assert context.status_code == 201
        assert context.response_start_ns is not None
        assert context.response_start_ns >= context.start_ns
        assert context.response_headers == [
            ("content-type", "application/json"),
            ("x-app", "1"),
            (REQUEST_ID_HEADER.lower(), context.request_id),
        ]
        assert server.headers[b"x-debug-toolbar-request-id"] == context.request_id.encode()
        assert responder.response_started is True

    @pytest.mark.asyncio
    async def test_the_apps_message_is_not_mutated(self) -> None:
        responder, _, _ = make()
        message = start(b"text/plain")
        await responder.send(message)
        assert message["headers"] == [(b"content-type", b"text/plain")]


class TestHtmlBuffering:
    @pytest.mark.asyncio
    async def test_single_message_page_waits_for_the_toolbar(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"text/html", (b"content-length", str(len(PAGE)).encode())))
        await responder.send(body(PAGE))
        assert server.sent == []  # nothing leaves before the record exists
        assert responder.wants_toolbar is True
        assert responder.app_response_complete is True
        await responder.finish(TOOLBAR, "</body>")
        expected = b"<html><body><p>page</p>" + TOOLBAR.encode() + b"</body></html>"
        assert server.body == expected
        assert server.headers[b"content-length"] == str(len(expected)).encode()
        assert server.sent[-1]["more_body"] is False

    @pytest.mark.asyncio
    async def test_chunks_with_a_known_length_are_buffered_and_joined(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"text/html", (b"content-length", str(len(PAGE)).encode())))
        await responder.send(body(PAGE[:10], more=True))
        await responder.send(body(PAGE[10:20], more=True))
        await responder.send(body(PAGE[20:]))
        assert server.sent == []
        await responder.finish(TOOLBAR, "</BODY>")
        assert server.body == PAGE.replace(b"</body>", TOOLBAR.encode() + b"</body>")
        assert [m["type"] for m in server.sent] == ["http.response.start", "http.response.body"]

    @pytest.mark.asyncio
    async def test_without_toolbar_html_the_page_is_sent_unchanged(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"text/html", (b"content-length", str(len(PAGE)).encode())))
        await responder.send(body(PAGE))
        await responder.finish(None, "</body>")
        assert server.body == PAGE
        assert server.headers[b"content-length"] == str(len(PAGE)).encode()

    @pytest.mark.asyncio
    async def test_page_without_marker_is_sent_unchanged(self) -> None:
        responder, server, _ = make()
        fragment = b"<li>htmx row</li>"
        await responder.send(start(b"text/html"))
        await responder.send(body(fragment))
        await responder.finish(TOOLBAR, "</body>")
        assert server.body == fragment
        assert b"content-length" not in server.headers

    @pytest.mark.asyncio
    async def test_undecodable_page_is_sent_unchanged(self) -> None:
        responder, server, _ = make()
        page = b"<body>\xff</body>"
        await responder.send(start(b"text/html; charset=utf-8"))
        await responder.send(body(page))
        await responder.finish(TOOLBAR, "</body>")
        assert server.body == page


class TestPassThrough:
    @pytest.mark.asyncio
    async def test_streamed_html_passes_through_as_it_comes(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"text/html"))
        await responder.send(body(b"<body>one", more=True))
        assert [m["type"] for m in server.sent] == ["http.response.start", "http.response.body"]
        await responder.send(body(b"two", more=True))
        assert server.body == b"<body>onetwo"
        await responder.send(body(b"</body>"))
        assert server.body == b"<body>onetwo</body>"
        assert server.sent[-1]["more_body"] is False
        assert responder.wants_toolbar is False
        await responder.finish(TOOLBAR, "</body>")
        assert len(server.sent) == 4  # nothing more, nothing injected
        assert server.headers[b"x-debug-toolbar-request-id"]

    @pytest.mark.asyncio
    async def test_compressed_html_passes_through(self) -> None:
        responder, server, _ = make()
        packed = gzip.compress(PAGE)
        await responder.send(start(b"text/html", (b"content-encoding", b"gzip")))
        assert len(server.sent) == 1
        await responder.send(body(packed))
        await responder.finish(TOOLBAR, "</body>")
        assert gzip.decompress(server.body) == PAGE
        assert server.headers[b"content-encoding"] == b"gzip"

    @pytest.mark.asyncio
    async def test_a_compressed_page_is_explained_once_in_the_log(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setattr(responder_module, "_compression_warnings", set())
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            for content_type, encoding in (
                (b"text/html; charset=utf-8", b"br"),
                (b"text/html", b"br"),  # the same again: already said
                (b"application/json", b"gzip"),  # not a page: nothing to explain
                (b"text/html", b"identity"),  # not compressed: it gets the toolbar
            ):
                responder, _server, _ = make()
                await responder.send(start(content_type, (b"content-encoding", encoding)))
        messages = [r.getMessage() for r in caplog.records if r.name == "debug_toolbar"]
        assert len(messages) == 1, messages
        assert "compressed (Content-Encoding: br)" in messages[0]

    @pytest.mark.asyncio
    async def test_json_streams_as_it_comes(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"application/json"))
        assert len(server.sent) == 1
        await responder.send(body(b'{"a":', more=True))
        assert server.body == b'{"a":'
        await responder.send(body(b"1}"))
        assert server.body == b'{"a":1}'
        assert server.sent[-1]["more_body"] is False
        await responder.finish(TOOLBAR, "</body>")
        assert len(server.sent) == 3

    @pytest.mark.asyncio
    async def test_oversized_html_streams(self) -> None:
        responder, server, _ = make()
        length = str(MAX_BUFFERED_BYTES + 1).encode()
        await responder.send(start(b"text/html", (b"content-length", length)))
        await responder.send(body(b"<body>", more=True))
        assert server.body == b"<body>"

    @pytest.mark.asyncio
    async def test_head_response_is_not_buffered(self) -> None:
        responder, server, _ = make(method="HEAD")
        await responder.send(start(b"text/html", (b"content-length", b"100")))
        assert len(server.sent) == 1
        await responder.send(body(b""))
        await responder.finish(TOOLBAR, "</body>")
        assert server.body == b""
        assert server.headers[b"content-length"] == b"100"

    @pytest.mark.asyncio
    async def test_trailers_release_what_is_held_in_order(self) -> None:
        responder, server, _ = make()
        await responder.send({**start(b"text/html"), "trailers": True})
        await responder.send(body(PAGE))
        await responder.send(
            {"type": "http.response.trailers", "headers": [], "more_trailers": False}
        )
        assert [m["type"] for m in server.sent] == [
            "http.response.start",
            "http.response.body",
            "http.response.trailers",
        ]
        assert server.body == PAGE

    @pytest.mark.asyncio
    async def test_pathsend_after_a_deferred_start_keeps_the_order(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"text/html"))
        await responder.send({"type": "http.response.pathsend", "path": "/tmp/x.html"})
        assert [m["type"] for m in server.sent] == [
            "http.response.start",
            "http.response.pathsend",
        ]


class TestFailureRelease:
    @pytest.mark.asyncio
    async def test_partial_buffer_is_released_unfinished(self) -> None:
        responder, server, _ = make()
        await responder.send(start(b"text/html", (b"content-length", b"100")))
        await responder.send(body(b"<body>half", more=True))
        await responder.finish(None, "</body>")
        assert server.body == b"<body>half"
        assert server.sent[-1]["more_body"] is True  # the server ends it, as without the toolbar

    @pytest.mark.asyncio
    async def test_nothing_is_sent_when_the_app_never_started(self) -> None:
        responder, server, _ = make()
        await responder.finish(TOOLBAR, "</body>")
        assert server.sent == []
        assert responder.response_started is False


class TestReceive:
    @pytest.mark.asyncio
    async def test_passes_requests_through_until_the_response_is_complete(self) -> None:
        request = {"type": "http.request", "body": b"x", "more_body": False}
        responder, _, _ = make(incoming=[request])
        assert await responder.receive() == request
        await responder.send(start(b"application/json"))
        await responder.send(body(b"{}"))
        assert await responder.receive() == {"type": "http.disconnect"}

    @pytest.mark.asyncio
    async def test_a_listener_is_told_disconnect_when_a_held_page_is_complete(self) -> None:
        # Frameworks listen for http.disconnect while streaming a body. The server cannot send
        # it while the toolbar holds the page back, so the responder must.
        server_receive_waiting = asyncio.Event()
        never = asyncio.Event()

        async def server_receive() -> Any:
            server_receive_waiting.set()
            await never.wait()
            raise AssertionError("unreachable")

        server = Server()
        context = RequestContext(method="GET", path="/")
        responder = ToolbarResponder(context, server_receive, server.send)
        await responder.send(start(b"text/html", (b"content-length", str(len(PAGE)).encode())))
        listener = asyncio.create_task(responder.receive())
        await server_receive_waiting.wait()
        await responder.send(body(PAGE[:5], more=True))
        assert not listener.done()
        await responder.send(body(PAGE[5:]))
        assert await asyncio.wait_for(listener, 5) == {"type": "http.disconnect"}
        # The server's receive was abandoned, not left running.
        await asyncio.sleep(0)
        assert not [
            t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
        ]
        assert server.sent == []  # still held for the toolbar

    @pytest.mark.asyncio
    async def test_a_held_receive_still_gets_the_servers_messages(self) -> None:
        request = {"type": "http.request", "body": b"late", "more_body": False}
        responder, _, _ = make(incoming=[request])
        await responder.send(start(b"text/html"))
        assert await responder.receive() == request

    @pytest.mark.asyncio
    async def test_receive_task_is_outside_the_request_context(self) -> None:
        marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")
        seen: list[str] = []

        async def server_receive() -> Any:
            seen.append(marker.get())
            return {"type": "http.request", "body": b"", "more_body": False}

        server = Server()
        responder = ToolbarResponder(
            RequestContext(method="GET", path="/"), server_receive, server.send
        )
        marker.set("request")
        await responder.send(start(b"text/html"))
        await responder.receive()
        assert seen == ["none"]
