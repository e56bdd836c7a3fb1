"""ResponsePanel: the status and headers the app sent back.

Both come from the ``http.response.start`` message the middleware saw, so they are what the
client received, including headers added by middleware running inside the toolbar's. A status
alone does not say whether the body arrived whole: a handler that fails halfway through it
leaves the client a 200 with a truncated body, so the panel also records how the response
ended (``body_bytes``, ``body_cut_at``, ``error``, ``client_disconnected``). ``Set-Cookie``
values are masked with ``mask_secrets``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.bounds import first_pairs
from debug_toolbar.core.masking import mask_headers
from debug_toolbar.core.panel import Panel

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext

__all__ = ("ResponsePanel", "reason_phrase")


def reason_phrase(status_code: int | None) -> str:
    """The standard phrase for a status code, or "" for codes HTTP does not name (e.g. 599)."""
    if status_code is None:
        return ""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


class ResponsePanel(Panel):
    """Status code, reason phrase and response headers."""

    title = "Response"
    template = "panels/response.html"

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        content_type = next(
            (value for name, value in context.response_headers if name.lower() == "content-type"),
            None,
        )
        mask = self.config.mask_secrets
        headers, headers_dropped = first_pairs(context.response_headers)
        return {
            "status_code": context.status_code,
            "reason": reason_phrase(context.status_code),
            "content_type": content_type,
            "headers": mask_headers(headers, mask=mask),
            "headers_dropped": headers_dropped,
            "masked": mask,
            "body_bytes": context.response_body_bytes,
            "body_cut_at": context.body_cut_at,
            "error": context.error,
            "client_disconnected": context.client_disconnected_at is not None,
        }

    def get_nav_subtitle(self) -> str:
        stats = self.get_stats()
        if "status_code" not in stats:
            return ""
        if stats["status_code"] is None:
            return "no response"
        status = f"{stats['status_code']} {stats['reason']}".rstrip()
        return f"{status}, ended early" if stats.get("body_cut_at") is not None else status
