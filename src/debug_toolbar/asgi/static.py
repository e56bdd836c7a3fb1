"""The toolbar's own CSS and JS, served from the installed package.

Files are read through ``importlib.resources`` (works from a wheel or a zip) and only plain file
names are accepted, so no request can reach outside the package's ``static`` directory.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from importlib import resources

__all__ = ("StaticFile", "load_static", "static_url")

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")

_CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    name: str
    content: bytes
    content_type: str
    digest: str
    """Short content hash: the cache-busting ``?v=`` value and the ETag."""


def _content_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


@functools.lru_cache(maxsize=64)
def load_static(name: str) -> StaticFile | None:
    """The packaged file ``static/<name>``, or None for an unknown or unsafe name."""
    if not _SAFE_NAME.fullmatch(name):
        return None
    resource = resources.files("debug_toolbar").joinpath("static").joinpath(name)
    if not resource.is_file():
        return None
    content = resource.read_bytes()
    digest = hashlib.sha256(content).hexdigest()[:16]
    return StaticFile(name, content, _content_type(name), digest)


def static_url(base_url: str, name: str) -> str:
    """The URL of a static file, versioned by its content so browsers may cache it for good."""
    found = load_static(name)
    version = f"?v={found.digest}" if found is not None else ""
    return f"{base_url}/static/{name}{version}"
