"""ToolbarPages: the ASGI app serving the toolbar's own pages.

URLs, under ``config.url_prefix`` (``P``):

* ``P/`` the history, newest first
* ``P/requests/{id}`` every panel of one request
* ``P/requests/{id}/panels/{panel_id}`` one panel's HTML fragment (what the toolbar opens)
* ``P/requests/{id}/panels/{panel_id}/downloads/{name}`` a file the panel offers
  (``Panel.downloads``: the Async panel's Chrome trace), served as an attachment
* ``P/api/requests`` and ``P/api/requests/{id}`` the same data as JSON
* ``P/static/{file}`` the toolbar's CSS and JS

Only GET and HEAD; only for clients ``show_toolbar`` allows (anyone else gets a bare 404, so the
pages do not even reveal that they exist); every failure is an error page, never a traceback.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from debug_toolbar.asgi.access import toolbar_allowed
from debug_toolbar.asgi.paths import page_path, toolbar_base_url
from debug_toolbar.asgi.responses import (
    PAGE_HEADERS,
    Response,
    html_response,
    json_response,
    text_response,
)
from debug_toolbar.asgi.static import load_static
from debug_toolbar.asgi.views import (
    panel_downloads,
    render_detail,
    render_history,
    render_not_found,
    render_panel_fragment,
)
from debug_toolbar.core.bounds import clip
from debug_toolbar.core.context import RequestContext

if TYPE_CHECKING:
    from debug_toolbar.asgi.types import Receive, Scope, Send
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.panel import PanelDownload
    from debug_toolbar.core.records import RequestRecord
    from debug_toolbar.core.storage import RequestHistory

__all__ = ("ToolbarPages",)

logger = logging.getLogger("debug_toolbar")

_ALLOWED_METHODS = ("GET", "HEAD")
_STATIC_FOREVER = "public, max-age=31536000, immutable"
_NOTHING_TO_DOWNLOAD = "Nothing to download"


def _summary(record: RequestRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "method": record.method,
        "path": record.path,
        "query_string": record.query_string,
        "status_code": record.status_code,
        "duration_ms": record.duration_ms,
        "started_at": record.started_at,
        "error": record.error,
        "body_cut_at": record.body_cut_at,
        "client_disconnected": record.client_disconnected,
    }


class ToolbarPages:
    """The toolbar's pages for one config and one history (both shared with the middleware).

    Works at the full path (``/_debug_toolbar/requests/…``, as the middleware passes it) and
    mounted (``/requests/…``, as Litestar passes a mount's remainder).
    """

    def __init__(self, config: DebugToolbarConfig, history: RequestHistory) -> None:
        self.config = config
        self.history = history

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        method = str(scope.get("method", "GET")).upper()
        response = self.respond(scope)
        await response.send(send, head=method == "HEAD")

    def respond(self, scope: Scope) -> Response:
        """The response to one HTTP request; nothing here raises."""
        if not toolbar_allowed(self.config, RequestContext.from_scope(dict(scope))):
            return text_response("Not Found", 404)
        method = str(scope.get("method", "GET")).upper()
        if method not in _ALLOWED_METHODS:
            return text_response(
                "Method Not Allowed", 405, (("allow", ", ".join(_ALLOWED_METHODS)),)
            )
        base_url = toolbar_base_url(scope, self.config.url_prefix)
        path = page_path(scope, self.config.url_prefix)
        query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")))
        try:
            return self.route(path, base_url, query, _header(scope, b"if-none-match"))
        except Exception:
            logger.exception("debug toolbar: page %s failed", path)
            return text_response("Debug toolbar error: see the server log.", 500)

    def route(
        self,
        path: str,
        base_url: str,
        query: dict[str, str] | None = None,
        if_none_match: str | None = None,
    ) -> Response:
        """Dispatch a path inside the pages (``""``, ``/requests/{id}``, …) to its view."""
        parts = [part for part in path.split("/") if part]
        match parts:
            case []:
                return self.history_page(base_url, _page_number(query))
            case ["requests", request_id]:
                return self.detail_page(request_id, base_url)
            case ["requests", request_id, "panels", panel_id]:
                return self.panel_fragment(request_id, panel_id, base_url)
            case ["requests", request_id, "panels", panel_id, "downloads", name]:
                return self.panel_download(request_id, panel_id, name, base_url)
            case ["api", "requests"]:
                return json_response(
                    {
                        "requests": [_summary(r) for r in self.history.records()],
                        "max_size": self.history.max_size,
                        "max_bytes": self.history.max_bytes,
                        "evicted": self.history.evicted,
                        "evicted_for_size": self.history.evicted_for_size,
                    }
                )
            case ["api", "requests", request_id]:
                return self.api_record(request_id)
            case ["api", *_]:
                return json_response({"error": "unknown API endpoint"}, 404)
            case ["static", name]:
                return self.static_file(name, query or {}, if_none_match)
            case _:
                return self.not_found("There is no toolbar page at this address.", base_url)

    def not_found(self, message: str, base_url: str, title: str = "Not found") -> Response:
        return html_response(render_not_found(message, base_url, title=title), 404)

    def _missing_request(self, request_id: str, base_url: str) -> Response:
        return self.not_found(
            f"No request {clip(request_id, 100)!r} in the history: it may have been dropped, as "
            f"only the last {self.history.max_size} requests are kept, within "
            f"{self.history.max_bytes:,} bytes, or the server was restarted.",
            base_url,
        )

    def history_page(self, base_url: str, page: int = 1) -> Response:
        return html_response(render_history(self.history, base_url, page=page, config=self.config))

    def detail_page(self, request_id: str, base_url: str) -> Response:
        record = self.history.get(request_id)
        if record is None:
            return self._missing_request(request_id, base_url)
        return html_response(render_detail(record, base_url, self.config))

    def panel_fragment(self, request_id: str, panel_id: str, base_url: str) -> Response:
        record = self.history.get(request_id)
        if record is None:
            return self._missing_request(request_id, base_url)
        panel = record.panel(panel_id)
        if panel is None:
            return self.not_found(f"Request {request_id!r} has no panel {panel_id!r}.", base_url)
        return html_response(str(render_panel_fragment(panel, record, base_url, self.config)))

    def panel_download(self, request_id: str, panel_id: str, name: str, base_url: str) -> Response:
        """A file one panel offers for one request (``Panel.downloads``), as an attachment.

        Any panel's: this layer knows no panel, only the declaration. Whatever is missing (the
        request, the panel, the download, or the panel's data) is an error page that says what.
        """
        record = self.history.get(request_id)
        if record is None:
            return self._missing_request(request_id, base_url)
        panel = record.panel(panel_id)
        if panel is None:
            return self.not_found(
                f"Request {request_id!r} has no panel {clip(panel_id, 100)!r}.", base_url
            )
        download = next((d for d in panel_downloads(self.config, panel_id) if d.name == name), None)
        if download is None:
            return self.not_found(
                f"The {panel.title or panel_id} panel offers no download named "
                f"{clip(name, 100)!r}.",
                base_url,
            )
        if not panel.enabled:
            return self.not_found(
                f"The {panel.title or panel_id} panel did not run for this request (it was "
                "turned off in this browser), so it has nothing to download.",
                base_url,
                title=_NOTHING_TO_DOWNLOAD,
            )
        resolved = panel.resolve()
        if resolved.error is not None:
            return self.not_found(
                f"The {panel.title or panel_id} panel failed on this request, so it has nothing "
                f"to download: {resolved.error}",
                base_url,
                title=_NOTHING_TO_DOWNLOAD,
            )
        return self._download_response(download, panel_id, resolved.stats, record, base_url)

    def _download_response(
        self,
        download: PanelDownload,
        panel_id: str,
        stats: dict[str, Any],
        record: RequestRecord,
        base_url: str,
    ) -> Response:
        try:
            content = download.build(stats, record)
            if content is not None and not isinstance(content, bytes):
                content = json_response(content).body  # encoded exactly as the JSON API's
        except Exception as exc:
            logger.exception(
                "debug toolbar: download %s of panel %s failed", download.name, panel_id
            )
            message = f"Building {download.name!r} failed: {type(exc).__name__}: {exc}"
            page = render_not_found(clip(message, 2000), base_url, title="Download failed")
            return html_response(page, 500)
        if content is None:
            return self.not_found(
                f"Request {record.request_id!r} has nothing to download as {download.name!r}.",
                base_url,
                title=_NOTHING_TO_DOWNLOAD,
            )
        disposition = f'attachment; filename="{download.filename(record.request_id)}"'
        return Response(
            200, content, download.media_type, (*PAGE_HEADERS, ("content-disposition", disposition))
        )

    def api_record(self, request_id: str) -> Response:
        record = self.history.get(request_id)
        if record is None:
            return json_response({"error": f"no request {request_id!r} in the history"}, 404)
        return json_response(record.to_api_dict())

    def static_file(self, name: str, query: dict[str, str], if_none_match: str | None) -> Response:
        found = load_static(name)
        if found is None:
            return text_response("Not Found", 404)
        etag = f'"{found.digest}"'
        cache = _STATIC_FOREVER if query.get("v") == found.digest else "no-cache"
        headers = (
            ("cache-control", cache),
            ("etag", etag),
            ("x-content-type-options", "nosniff"),
        )
        if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
            return Response(304, b"", found.content_type, headers)
        return Response(200, found.content, found.content_type, headers)


def _page_number(query: dict[str, str] | None) -> int:
    """The ``?page=`` of the history (1 when absent or not a number)."""
    raw = (query or {}).get("page", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else 1


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None
