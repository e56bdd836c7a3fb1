"""Per-request state, and the ContextVar through which code running for a request finds it.

asyncio copies the current context into every task it creates, so anything a request spawns
(children, grandchildren, ``gather``) sees the same ``RequestContext`` without it being passed
around, and concurrent requests never see each other's.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

__all__ = (
    "DISABLED_PANELS_COOKIE",
    "RequestContext",
    "current_request",
    "get_current_request",
)

DISABLED_PANELS_COOKIE = "debug_toolbar_disabled"
"""Cookie holding the comma-separated ids of the panels this browser turned off."""

current_request: ContextVar[RequestContext | None] = ContextVar(
    "debug_toolbar_request", default=None
)


def get_current_request() -> RequestContext | None:
    """The request being profiled in the current context, if any."""
    return current_request.get()


def _decode(value: bytes) -> str:
    return value.decode("latin-1")


@dataclass(slots=True)
class RequestContext:
    """What the toolbar knows about one request, shared by its panels.

    Times are ``time.perf_counter_ns()`` values: one monotonic clock for every panel, so that a
    task, a blocking call and a lag sample line up on the same axis.
    """

    method: str
    path: str
    query_string: str = ""
    scheme: str = "http"
    http_version: str = "1.1"
    root_path: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    client_host: str | None = None
    client_port: int | None = None
    server_host: str | None = None
    """The address the request came in on (the scope's ``server``); the Host check falls back
    to it only for a request without a ``Host`` header."""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    start_ns: int = field(default_factory=time.perf_counter_ns)
    started_at: float = field(default_factory=time.time)
    status_code: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_start_ns: int | None = None
    end_ns: int | None = None
    response_body_bytes: int = 0
    """Body bytes the app sent (before the toolbar is inserted)."""
    response_complete: bool = False
    """True once the app sent its last body message: a started response without it ended
    early (the app raised, returned or was cancelled in the middle of the body)."""
    error: str | None = None
    """What the app raised, as ``"Type: message"`` (``CancelledError`` when cancelled)."""
    client_disconnected_at: int | None = None
    """Body bytes sent when the server said the client had gone, before the response was
    complete (servers drop what is sent after that); None when it did not happen."""
    state: dict[str, Any] = field(default_factory=dict)
    """Scratch space for panels that need to share per-request objects."""

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> RequestContext:
        """Build the context from an ASGI HTTP scope."""
        client = scope.get("client") or (None, None)
        server = scope.get("server") or (None, None)
        return cls(
            method=str(scope.get("method", "GET")),
            path=str(scope.get("path", "/")),
            query_string=_decode(scope.get("query_string", b"")),
            scheme=str(scope.get("scheme", "http")),
            http_version=str(scope.get("http_version", "1.1")),
            root_path=str(scope.get("root_path", "")),
            headers=[(_decode(k), _decode(v)) for k, v in scope.get("headers", [])],
            client_host=client[0],
            client_port=client[1],
            server_host=server[0],
        )

    def header(self, name: str) -> str | None:
        """The first request header called ``name`` (case-insensitive)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def query_params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    @property
    def cookies(self) -> dict[str, str]:
        """Request cookies; a malformed Cookie header yields what could be parsed."""
        cookies: dict[str, str] = {}
        for key, value in self.headers:
            if key.lower() != "cookie":
                continue
            for part in value.split(";"):
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(part.strip())
                except CookieError:
                    continue
                cookies.update({name: morsel.value for name, morsel in jar.items()})
        return cookies

    def cookie(self, name: str) -> str | None:
        """One cookie's value. The Cookie headers are parsed only when one of them names it:
        a browser sends the app's own cookies with every request, and parsing them all costs
        some 15 µs a cookie, on every request, for the toolbar's two cookies."""
        for key, value in self.headers:
            if name in value and key.lower() == "cookie":
                return self.cookies.get(name)
        return None

    @property
    def disabled_panels(self) -> frozenset[str]:
        """Panel ids this browser turned off with the toolbar's checkboxes."""
        raw = self.cookie(DISABLED_PANELS_COOKIE) or ""
        return frozenset(part for part in raw.split(",") if part)

    def ms_since_start(self, ns: int) -> float:
        """Milliseconds from the request's start to ``ns`` (a perf_counter_ns value)."""
        return (ns - self.start_ns) / 1_000_000

    @property
    def body_cut_at(self) -> int | None:
        """Body bytes the client got of a started response that ended early (the app raised,
        returned or was cancelled mid-body, or the client went away); None when it did not."""
        if self.response_start_ns is None:
            return None
        if self.client_disconnected_at is not None:
            return min(self.client_disconnected_at, self.response_body_bytes)
        return None if self.response_complete else self.response_body_bytes

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_ns is None else self.ms_since_start(self.end_ns)
