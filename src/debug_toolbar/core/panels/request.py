"""RequestPanel: what the client sent, as the ASGI server handed it to the app.

With ``mask_secrets`` (the default), credential headers and cookie values are masked in the
record (``core.masking``): the history keeps them long after the request, and the panel says
that they are masked, so that a hidden value does not pass for the value received.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from debug_toolbar.core.bounds import first_pairs, first_query_params
from debug_toolbar.core.masking import mask_cookies, mask_headers
from debug_toolbar.core.panel import Panel

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext

__all__ = ("RequestPanel",)

NAV_SUBTITLE_MAX_CHARS = 32
"""The nav subtitle is a hint, not the full URL; the panel shows the rest."""


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestPanel(Panel):
    """Method, path, query parameters, headers, cookies, client and protocol of the request."""

    title = "Request"
    template = "panels/request.html"

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        mask = self.config.mask_secrets
        # The first MAX_PAIRS of each list, the rest counted; long values are shortened when
        # the record is built, after masking (``bounds``).
        query_params, query_params_dropped = first_query_params(context.query_string)
        headers, headers_dropped = first_pairs(context.headers)
        cookies, cookies_dropped = first_pairs(context.cookies.items())
        # Pairs, not dicts: a query string or a header may legitimately repeat a name.
        return {
            "method": context.method,
            "path": context.path,
            "root_path": context.root_path,
            "query_string": context.query_string,
            "query_params": query_params,
            "query_params_dropped": query_params_dropped,
            "headers": mask_headers(headers, mask=mask),
            "headers_dropped": headers_dropped,
            "cookies": mask_cookies(cookies, mask=mask),
            "cookies_dropped": cookies_dropped,
            "masked": mask,
            "client_host": context.client_host,
            "client_port": context.client_port,
            "scheme": context.scheme,
            "http_version": context.http_version,
        }

    def get_nav_subtitle(self) -> str:
        stats = self.get_stats()
        if "method" not in stats:
            return ""
        return _shorten(f"{stats['method']} {stats['path']}", NAV_SUBTITLE_MAX_CHARS)
