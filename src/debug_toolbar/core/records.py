"""Finished request records: plain, immutable data kept in the history and served as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ("PanelRecord", "RequestRecord")


@dataclass(frozen=True, slots=True)
class PanelRecord:
    """One panel's outcome for one request."""

    panel_id: str
    title: str
    nav_title: str
    nav_subtitle: str
    template: str
    has_content: bool
    enabled: bool
    """False when this browser turned the panel off: it did not run."""
    stats: dict[str, Any]
    error: str | None = None
    """``"ExceptionType: message"`` when the panel failed; the request was served regardless."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Everything the toolbar recorded about one request."""

    request_id: str
    method: str
    path: str
    query_string: str
    status_code: int | None
    duration_ms: float
    started_at: float
    """Wall-clock time (``time.time()``) at which the request started, for display."""
    panels: tuple[PanelRecord, ...]

    def panel(self, panel_id: str) -> PanelRecord | None:
        return next((p for p in self.panels if p.panel_id == panel_id), None)

    def to_api_dict(self) -> dict[str, Any]:
        """The JSON API's view: stats of the panels that ran, errors of those that failed."""
        return {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "query_string": self.query_string,
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "started_at": self.started_at,
            "panels": {p.panel_id: p.stats for p in self.panels if p.enabled and p.error is None},
            "panel_errors": {p.panel_id: p.error for p in self.panels if p.error is not None},
        }
