"""Complete responses of the toolbar's pages, as plain values sent in one go.

Views return a ``Response`` instead of calling ``send`` themselves, so routing and rendering can
be tested without an ASGI server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from debug_toolbar.asgi.types import Send

__all__ = (
    "PAGE_HEADERS",
    "Response",
    "html_response",
    "json_response",
    "text_response",
)

PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    # The pages show request data: never cache them, never let a browser guess their type.
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    # Panel templates may use style attributes (bar widths); scripts come from static files only.
    (
        "content-security-policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'self'",
    ),
)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = PAGE_HEADERS

    async def send(self, send: Send, *, head: bool = False) -> None:
        """Send status, headers and (unless ``head``) the body; HEAD keeps the GET length."""
        headers = [(b"content-type", self.content_type.encode("latin-1"))]
        if self.status != 304:  # a 304 has no body, and no length of its own to announce
            headers.append((b"content-length", str(len(self.body)).encode("latin-1")))
        headers.extend(
            (key.encode("latin-1"), value.encode("latin-1")) for key, value in self.headers
        )
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


def html_response(html: str, status: int = 200) -> Response:
    return Response(status, html.encode("utf-8"), "text/html; charset=utf-8")


def json_response(data: Any, status: int = 200) -> Response:
    # default=str: stats are meant to be JSON-ready, but one odd value must not cost the page.
    body = json.dumps(data, default=str, ensure_ascii=False).encode("utf-8")
    return Response(status, body, "application/json")


def text_response(text: str, status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A plain-text answer that reveals nothing (used for refusals)."""
    return Response(
        status, text.encode("utf-8"), "text/plain; charset=utf-8", (*PAGE_HEADERS, *headers)
    )
