"""ToolbarResponder: stands between the app and the server for one profiled request.

One responder per request holds everything about that response (the deferred start message and
the buffered HTML), so the middleware itself keeps no per-request state.

What it does with the app's messages:

* ``http.response.start`` is recorded into the request context (status, headers, time) and gets
  the ``X-Debug-Toolbar-Request-Id`` header.
* An uncompressed ``text/html`` response is held back, so that the toolbar can be inserted once
  the panels' stats exist, unless it turns out to be streamed (no Content-Length and more than
  one body message) or is larger than ``MAX_BUFFERED_BYTES``: then it passes through untouched.
* Every other response passes through as it comes, untouched.

While a response is held back the server does not know it is complete, so a ``receive`` the app
is waiting on (frameworks listen for ``http.disconnect`` while they stream a body) would wait
forever for the server. The responder answers such a ``receive`` itself with
``http.disconnect`` as soon as the app has sent its last body message, as a server does after a
complete response.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import time
from typing import TYPE_CHECKING, Any

from debug_toolbar.asgi.injection import (
    compressed_page_encoding,
    get_header,
    inject_toolbar,
    is_injectable,
    with_content_length,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from debug_toolbar.asgi.types import Message, Receive, Send
    from debug_toolbar.core.context import RequestContext

__all__ = ("MAX_BUFFERED_BYTES", "REQUEST_ID_HEADER", "ToolbarResponder")

logger = logging.getLogger("debug_toolbar")

REQUEST_ID_HEADER = "X-Debug-Toolbar-Request-Id"
"""Added to every profiled response; its value is the id of the request's record."""

MAX_BUFFERED_BYTES = 16 * 1024 * 1024
"""HTML bodies announced larger than this stream through without a toolbar, unbuffered."""


class _Mode(enum.Enum):
    WAITING = "waiting"
    """No ``http.response.start`` yet."""
    PENDING = "pending"
    """HTML start deferred; waiting for the first body message to choose buffer or stream."""
    BUFFERING = "buffering"
    """Collecting an HTML body whose length is known."""
    COMPLETE = "complete"
    """The whole HTML body is buffered: ready for the toolbar."""
    STREAMING = "streaming"
    """Passing messages through as they come."""
    DONE = "done"
    """Everything held back was sent to the server."""


_HOLDING = frozenset({_Mode.PENDING, _Mode.BUFFERING, _Mode.COMPLETE})


def _disconnect() -> Message:
    return {"type": "http.disconnect"}


class ToolbarResponder:
    """The ``send`` and ``receive`` the app gets for one profiled request."""

    __slots__ = (
        "_chunks",
        "_completed",
        "_extra_headers",
        "_inner_receive",
        "_inner_send",
        "_mode",
        "_start",
        "app_response_complete",
        "context",
        "response_started",
    )

    def __init__(
        self,
        context: RequestContext,
        receive: Receive,
        send: Send,
        extra_headers: Callable[[], list[tuple[str, str]]] | None = None,
    ) -> None:
        self.context = context
        self._extra_headers = extra_headers
        self._inner_receive = receive
        self._inner_send = send
        self._mode = _Mode.WAITING
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._completed: asyncio.Future[None] | None = None
        self.response_started = False
        """True once the app has sent ``http.response.start``."""
        self.app_response_complete = False
        """True once the app has sent its last body message."""

    @property
    def wants_toolbar(self) -> bool:
        """True when a complete HTML body waits for the toolbar (so rendering it is worth it)."""
        return self._mode is _Mode.COMPLETE

    async def receive(self) -> Message:
        if self.app_response_complete:
            return _disconnect()
        if self._mode not in _HOLDING:
            message = await self._inner_receive()
        else:
            message = await self._receive_while_holding()
        if message.get("type") == "http.disconnect" and not self.app_response_complete:
            # The server's word that the client went away mid-response: what the app sends
            # from now on is dropped, so the body the client got ends here.
            context = self.context
            if context.client_disconnected_at is None:
                context.client_disconnected_at = context.response_body_bytes
        return message

    async def _receive_while_holding(self) -> Message:
        """The server's next message, or ``http.disconnect`` once the app's response is complete.

        The server's ``receive`` runs in a task of its own, started from an empty context so
        that the request's instrumentation (which follows the request's context) does not count
        it as one of the app's tasks.
        """
        loop = asyncio.get_running_loop()
        if self._completed is None:
            self._completed = loop.create_future()
        inner: asyncio.Task[Message] = contextvars.Context().run(
            loop.create_task, self._next_server_message()
        )
        try:
            waiters: set[asyncio.Future[Any]] = {inner, self._completed}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not inner.done():
                inner.cancel()
        if inner.done() and not inner.cancelled():
            return inner.result()
        return _disconnect()

    async def _next_server_message(self) -> Message:
        return await self._inner_receive()

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body" and self._mode is not _Mode.WAITING:
            await self._on_body(message)
        else:
            # Trailers, path-send and other extensions: nothing to rewrite in them, so release
            # whatever is held back, untouched, and keep the order of the messages.
            if self._mode is not _Mode.WAITING:
                await self._release_untouched()
                self._mode = _Mode.STREAMING
            await self._inner_send(message)
            # A file the server sends in one go ends the body as a last body message does.
            if kind == "http.response.pathsend" or (
                kind == "http.response.zerocopysend" and not message.get("more_body", False)
            ):
                self._mark_complete()

    async def _on_start(self, message: Message) -> None:
        self.response_started = True
        context = self.context
        context.response_start_ns = time.perf_counter_ns()
        status = int(message.get("status", 200))
        headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
        headers.append(
            (REQUEST_ID_HEADER.lower().encode("latin-1"), context.request_id.encode("latin-1"))
        )
        if self._extra_headers is not None:
            headers.extend(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in self._extra_headers()
            )
        context.status_code = status
        context.response_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        start = {**message, "headers": headers}
        if not message.get("trailers") and is_injectable(context.method, status, headers):
            self._start = start
            self._mode = _Mode.PENDING
        else:
            _warn_once_if_compressed(headers)
            self._mode = _Mode.STREAMING
            await self._inner_send(start)

    async def _on_body(self, message: Message) -> None:
        more_body = bool(message.get("more_body", False))
        self.context.response_body_bytes += len(message.get("body", b""))
        if self._mode is _Mode.PENDING:
            self._mode = self._choose_mode(more_body)
            if self._mode is _Mode.STREAMING:
                await self._release_untouched()
        if self._mode in (_Mode.BUFFERING, _Mode.COMPLETE):
            self._chunks.append(bytes(message.get("body", b"")))
            if not more_body:
                self._mode = _Mode.COMPLETE
        else:  # STREAMING, or DONE (the app sends after its last message: the server judges)
            await self._inner_send(message)
        if not more_body:
            self._mark_complete()

    def _mark_complete(self) -> None:
        self.app_response_complete = True
        self.context.response_complete = True
        if self._completed is not None and not self._completed.done():
            self._completed.set_result(None)

    def _choose_mode(self, more_body: bool) -> _Mode:
        if not more_body:
            return _Mode.COMPLETE
        assert self._start is not None
        length = get_header(self._start["headers"], b"content-length")
        if length is None or not length.isdigit() or int(length) > MAX_BUFFERED_BYTES:
            return _Mode.STREAMING
        return _Mode.BUFFERING

    async def _release_untouched(self) -> None:
        """Send everything held back (start, buffered chunks) as the app sent it."""
        complete = self._mode is _Mode.COMPLETE
        if self._start is not None:
            start, self._start = self._start, None
            await self._inner_send(start)
        if self._chunks or complete:
            body = b"".join(self._chunks)
            self._chunks.clear()
            await self._inner_send(
                {"type": "http.response.body", "body": body, "more_body": not complete}
            )

    async def finish(self, toolbar_html: str | None, insert_before: str) -> None:
        """Send what was held back, with the toolbar inserted when it is given and fits.

        Called by the middleware once the request's record is stored, also when the app raised:
        then a partly buffered body is released as it is, and the server ends the response as
        it would have without the toolbar.
        """
        if self._mode is _Mode.COMPLETE and toolbar_html is not None:
            self._mode = _Mode.DONE
            await self._send_with_toolbar(toolbar_html, insert_before)
        else:
            await self._release_untouched()
            self._mode = _Mode.DONE

    async def _send_with_toolbar(self, toolbar_html: str, insert_before: str) -> None:
        start, self._start = self._start, None
        assert start is not None
        body = b"".join(self._chunks)
        self._chunks.clear()
        content_type = get_header(start["headers"], b"content-type")
        injected = inject_toolbar(body, content_type, toolbar_html, insert_before)
        if injected is not None:
            body = injected
            start = {**start, "headers": with_content_length(start["headers"], len(body))}
        await self._inner_send(start)
        await self._inner_send({"type": "http.response.body", "body": body, "more_body": False})


_compression_warnings: set[str] = set()
"""Content-Encodings already warned about: the warning is said once per process."""


def _warn_once_if_compressed(headers: list[tuple[bytes, bytes]]) -> None:
    """Say once why HTML pages lost their toolbar when the app compresses them."""
    encoding = compressed_page_encoding(headers)
    if encoding is None or encoding in _compression_warnings:
        return
    _compression_warnings.add(encoding)
    logger.warning(
        "debug toolbar: not inserted into an HTML page the app compressed (Content-Encoding: "
        "%s); the page is sent untouched. Turn response compression off while developing "
        "to see the toolbar; the toolbar's history page still lists the request.",
        encoding,
    )
