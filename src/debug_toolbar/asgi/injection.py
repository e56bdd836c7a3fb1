"""Putting the toolbar into an HTML document: pure functions on headers and bytes.

Kept apart from the ASGI plumbing so every rule (which responses qualify, which charset, where the
toolbar goes, what Content-Length becomes) can be tested on plain values.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = (
    "DEFAULT_CHARSET",
    "get_header",
    "inject_toolbar",
    "insert_before_last",
    "is_injectable",
    "parse_content_type",
    "with_content_length",
)

DEFAULT_CHARSET = "utf-8"
"""Used when an HTML response names no charset: what browsers assume for modern pages."""

_BODYLESS_STATUSES = frozenset({204, 205, 304})


def get_header(headers: Iterable[Sequence[bytes]], name: bytes) -> bytes | None:
    """The first header called ``name`` (lower-case bytes), as ASGI headers are matched."""
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None


def parse_content_type(value: bytes | str | None) -> tuple[str, str | None]:
    """``(media type, charset or None)`` from a Content-Type value, both lower-cased.

    A charset the codecs module does not know is returned as is: decoding with it then fails
    and the body passes through untouched, which is the safe outcome.
    """
    if value is None:
        return "", None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    media_type, *params = text.split(";")
    charset: str | None = None
    for param in params:
        key, _, raw = param.partition("=")
        if key.strip().lower() == "charset":
            charset = raw.strip().strip('"').strip("'").lower() or None
    return media_type.strip().lower(), charset


def is_injectable(method: str, status: int, headers: Iterable[Sequence[bytes]]) -> bool:
    """Whether a response may receive the toolbar: an uncompressed HTML page with a body.

    A compressed body would have to be decompressed and compressed again (and its validators
    would lie); a HEAD response or a 204/304 has no body to put the toolbar in.
    """
    if method.upper() == "HEAD" or status < 200 or status in _BODYLESS_STATUSES:
        return False
    header_list = list(headers)
    if get_header(header_list, b"content-encoding") not in (None, b"", b"identity"):
        return False
    media_type, _ = parse_content_type(get_header(header_list, b"content-type"))
    return media_type == "text/html"


def compressed_page_encoding(headers: Sequence[Sequence[bytes]]) -> str | None:
    """The Content-Encoding of an HTML response that is compressed, else None.

    Such a page gets no toolbar (see ``is_injectable``): worth telling the developer, who
    otherwise sees the toolbar vanish as soon as the app turns compression on. Called for
    every response that gets no toolbar (every JSON one): one header scan, no copy.
    """
    encoding = get_header(headers, b"content-encoding")
    if encoding in (None, b"", b"identity"):
        return None
    media_type, _ = parse_content_type(get_header(headers, b"content-type"))
    return encoding.decode("latin-1") if media_type == "text/html" else None


def insert_before_last(document: str, fragment: str, marker: str) -> str | None:
    """``document`` with ``fragment`` before the last ``marker`` (case-insensitive), or None.

    The last occurrence, because a page may mention ``</body>`` earlier (in a script or a code
    sample). None when the marker is absent: HTML fragments (htmx partials, turbo frames) have
    no ``</body>`` and must not grow a toolbar.
    """
    index = document.lower().rfind(marker.lower())
    if index < 0:
        return None
    return document[:index] + fragment + document[index:]


def inject_toolbar(
    body: bytes, content_type: bytes | None, toolbar_html: str, marker: str
) -> bytes | None:
    """The body with the toolbar inserted, encoded like the original; None to leave it untouched.

    None when the charset is unknown, the body does not decode with it, or the marker is absent.
    Characters of the toolbar the page's charset cannot encode become character references,
    which every HTML parser reads back as the same characters.
    """
    _, charset = parse_content_type(content_type)
    charset = charset or DEFAULT_CHARSET
    try:
        codecs.lookup(charset)
        document = body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None
    injected = insert_before_last(document, toolbar_html, marker)
    if injected is None:
        return None
    return injected.encode(charset, errors="xmlcharrefreplace")


def with_content_length(
    headers: Iterable[Sequence[bytes]], length: int
) -> list[tuple[bytes, bytes]]:
    """The headers with every Content-Length replaced by ``length``; none is added if absent.

    Absent means the server frames the body itself (chunked), which stays right after injection.
    """
    value = str(length).encode("latin-1")
    return [
        (bytes(key), value if key.lower() == b"content-length" else bytes(val))
        for key, val in headers
    ]
