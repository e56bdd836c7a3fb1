"""Credentials out of the records: header and cookie values masked when a record is built.

A record outlives its request (the history, the JSON API, a page left open), so a token or a
session cookie kept in it can be read back long after it was sent, by anything that can reach
the toolbar's pages. Masking is applied to the stats a panel records, never to the live
``RequestContext``: panels and the app still see the real values while the request runs.

What is masked (with ``mask_secrets``, the default): the values of the headers in
``SENSITIVE_HEADERS`` and of any header whose name contains one of ``SENSITIVE_HEADER_WORDS``,
and every cookie value. Names stay visible, and so does what helps debugging without revealing
the secret: the scheme of an ``Authorization`` (``Bearer ********``) and the attributes of a
``Set-Cookie`` (``Path``, ``HttpOnly``, ...). The toolbar's own cookies (``debug_toolbar_*``,
which panel is off, which backend) are kept as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = (
    "MASK",
    "SENSITIVE_HEADERS",
    "SENSITIVE_HEADER_WORDS",
    "TOOLBAR_COOKIE_PREFIX",
    "is_sensitive_header",
    "mask_cookies",
    "mask_header",
    "mask_headers",
)

MASK = "********"
"""What a masked value is replaced with: the same whatever the value, so its length is not told."""

SENSITIVE_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-refresh-token",
    "x-csrf-token",
    "x-csrftoken",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "x-forwarded-authorization",
)
"""Headers (lowercase) whose values are masked: credentials, session cookies and tokens that
let whoever reads them act as the user."""

SENSITIVE_HEADER_WORDS: tuple[str, ...] = ("token", "secret", "password", "api-key", "apikey")
"""A header whose lowercase name contains one of these is masked too (``X-GitHub-Token``,
``X-Client-Secret``): vendors name their credential headers freely."""

TOOLBAR_COOKIE_PREFIX = "debug_toolbar_"
"""The toolbar's own cookies (panel switches, backend choice): settings, not secrets."""

_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "x-forwarded-authorization"})
_SENSITIVE = frozenset(SENSITIVE_HEADERS)


def is_sensitive_header(name: str) -> bool:
    """Whether the value of the header ``name`` (any case) is masked."""
    lowered = name.lower()
    return lowered in _SENSITIVE or any(word in lowered for word in SENSITIVE_HEADER_WORDS)


def _mask_cookie_value(name: str, value: str) -> str:
    return value if name.startswith(TOOLBAR_COOKIE_PREFIX) else MASK


def _mask_cookie_header(value: str) -> str:
    """``a=1; b=2`` as ``a=********; b=********``: which cookies were sent stays visible."""
    parts = []
    for part in value.split(";"):
        if not part.strip():
            continue
        name, equals, cookie = part.strip().partition("=")
        parts.append(f"{name}={_mask_cookie_value(name, cookie)}" if equals else MASK)
    return "; ".join(parts)


def _mask_set_cookie(value: str) -> str:
    """The cookie's value masked, its attributes (``Path``, ``Secure``, ...) kept."""
    pair, semicolon, attributes = value.partition(";")
    name, equals, cookie = pair.strip().partition("=")
    if not equals:
        return MASK
    return f"{name}={_mask_cookie_value(name, cookie)}{semicolon}{attributes}"


def _mask_authorization(value: str) -> str:
    """``Bearer ********``: the scheme tells which kind of credential was sent, not which."""
    scheme, space, _credentials = value.strip().partition(" ")
    return f"{scheme} {MASK}" if space and scheme.isalnum() else MASK


def mask_header(name: str, value: str) -> str:
    """The value to record for the header ``name``: masked when it is sensitive."""
    lowered = name.lower()
    if lowered == "cookie":
        return _mask_cookie_header(value)
    if lowered == "set-cookie":
        return _mask_set_cookie(value)
    if lowered in _AUTH_HEADERS:
        return _mask_authorization(value)
    return MASK if is_sensitive_header(lowered) else value


def mask_headers(headers: Iterable[tuple[str, str]], *, mask: bool = True) -> list[list[str]]:
    """``[name, value]`` pairs for a record, sensitive values masked (unless ``mask`` is False)."""
    if not mask:
        return [[name, value] for name, value in headers]
    return [[name, mask_header(name, value)] for name, value in headers]


def mask_cookies(cookies: Iterable[tuple[str, str]], *, mask: bool = True) -> list[list[str]]:
    """``[name, value]`` pairs for a record, every value but the toolbar's own masked."""
    if not mask:
        return [[name, value] for name, value in cookies]
    return [[name, _mask_cookie_value(name, value)] for name, value in cookies]
