"""Where a request points, relative to the app and to the toolbar's pages.

Servers and frameworks disagree on ``scope["path"]``: the ASGI spec now includes ``root_path``
in it, older servers do not, and Litestar hands a mounted app only the part after the mount
point. These helpers give the same answer in every case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from debug_toolbar.asgi.types import Scope

__all__ = ("app_path", "download_url", "page_path", "toolbar_base_url")


def _root_path(scope: Scope) -> str:
    return str(scope.get("root_path", "")).rstrip("/")


def app_path(scope: Scope) -> str:
    """The request path without the app's ``root_path`` (when the path includes it)."""
    path = str(scope.get("path", "/")) or "/"
    root = _root_path(scope)
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


def page_path(scope: Scope, url_prefix: str) -> str:
    """The path inside the toolbar's pages: ``""`` for the history, ``"/requests/…"``, …

    Accepts both a full path (``/_debug_toolbar/requests/…``, the middleware's case) and the
    remainder a framework mount passes on (``/requests/…/``, Litestar's case).
    """
    path = app_path(scope)
    if path == url_prefix or path.startswith(url_prefix + "/"):
        path = path[len(url_prefix) :]
    return path


def toolbar_base_url(scope: Scope, url_prefix: str) -> str:
    """The URL path of the toolbar's pages as the browser sees it (``root_path`` included)."""
    root = _root_path(scope)
    if root.endswith(url_prefix):  # mounted by a framework that moves the mount into root_path
        return root
    return root + url_prefix


def download_url(base_url: str, request_id: str, panel_id: str, name: str) -> str:
    """Where one panel's download for one request is served (see ``ToolbarPages``).

    ``base_url`` is ``toolbar_base_url``'s answer, so the link works wherever the app is mounted.
    """
    request, panel, file = (quote(part, safe="") for part in (request_id, panel_id, name))
    return f"{base_url}/requests/{request}/panels/{panel}/downloads/{file}"
