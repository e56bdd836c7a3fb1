"""Finished request records: plain, immutable data kept in the history and served as JSON."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ("PanelRecord", "RequestRecord", "StatsBuilder")

logger = logging.getLogger("debug_toolbar")

StatsBuilder = Callable[[], dict[str, Any]]
"""Builds part of a panel's stats on demand (see ``Panel.defer_stats``)."""


@dataclass(frozen=True, init=False)
class PanelRecord:
    """One panel's outcome for one request.

    ``stats`` may be completed on first read: a panel can leave the costly part of its stats
    (a request's thousand tasks as dicts) to a builder that runs when someone looks at the
    record (the panel opened, the JSON API), instead of while the request is being answered.
    The first read runs the builders once, under a lock (records are read from any thread);
    from then on the record is plain data like any other.
    """

    panel_id: str
    title: str
    nav_title: str
    nav_subtitle: str
    template: str
    has_content: bool
    enabled: bool
    """False when this browser turned the panel off: it did not run."""
    _error: str | None
    _stats: dict[str, Any] = field(repr=False)
    _pending: list[StatsBuilder] = field(repr=False, compare=False)
    _lock: threading.Lock | None = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        panel_id: str,
        title: str,
        nav_title: str,
        nav_subtitle: str,
        template: str,
        has_content: bool,
        enabled: bool,
        stats: dict[str, Any],
        error: str | None = None,
        deferred: Iterable[StatsBuilder] = (),
    ) -> None:
        pending = list(deferred)
        # Frozen: fill the instance's dict directly (one call, not one __setattr__ per field).
        self.__dict__.update(
            panel_id=panel_id,
            title=title,
            nav_title=nav_title,
            nav_subtitle=nav_subtitle,
            template=template,
            has_content=has_content,
            enabled=enabled,
            _error=error,
            _stats=stats,
            _pending=pending,
            _lock=threading.Lock() if pending else None,
        )

    @property
    def error(self) -> str | None:
        """``"ExceptionType: message"`` when the panel failed; the request was served regardless.

        Also set when building the deferred stats failed, once they have been read: reading
        this never builds them (the toolbar reads it while the response waits).
        """
        return self._error

    def with_error(self, error: str) -> PanelRecord:
        """A copy of this record marked as failed, for showing the failure in its place."""
        return PanelRecord(
            panel_id=self.panel_id,
            title=self.title,
            nav_title=self.nav_title,
            nav_subtitle=self.nav_subtitle,
            template=self.template,
            has_content=self.has_content,
            enabled=self.enabled,
            stats=self.stats,
            error=error,
        )

    @property
    def stats(self) -> dict[str, Any]:
        """The panel's stats, deferred parts included (built here on the first read)."""
        if self._pending:
            self._complete()
        return self._stats

    def _complete(self) -> None:
        assert self._lock is not None
        with self._lock:
            while self._pending:
                build = self._pending[0]
                try:
                    self._stats.update(build())
                except Exception as exc:  # a broken builder must not break the pages
                    logger.warning(
                        "debug toolbar panel %s failed building its stats",
                        self.panel_id,
                        exc_info=True,
                    )
                    if self._error is None:
                        object.__setattr__(self, "_error", f"{type(exc).__name__}: {exc}")
                del self._pending[0]


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
    error: str | None = None
    """What the app raised while answering (``"Type: message"``); the status alone hides a
    failure that came after the response started."""
    body_cut_at: int | None = None
    """The response ended early: the body was cut after this many bytes (the client got a
    truncated body under a status that looks fine). None when the body was complete."""
    client_disconnected: bool = False
    """The server said the client went away before the response was complete."""

    def panel(self, panel_id: str) -> PanelRecord | None:
        return next((p for p in self.panels if p.panel_id == panel_id), None)

    @property
    def failed(self) -> bool:
        """The response did not end as its status says: the app raised, the body was cut, or
        the client went away before the end."""
        return self.error is not None or self.body_cut_at is not None or self.client_disconnected

    def to_api_dict(self) -> dict[str, Any]:
        """The JSON API's view: stats of the panels that ran, errors of those that failed."""
        # Read every stats first: building a deferred part may fail, and that is an error too.
        stats = {p.panel_id: p.stats for p in self.panels if p.enabled}
        return {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "query_string": self.query_string,
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "started_at": self.started_at,
            "error": self.error,
            "body_cut_at": self.body_cut_at,
            "client_disconnected": self.client_disconnected,
            "panels": {
                p.panel_id: stats[p.panel_id] for p in self.panels if p.enabled and p.error is None
            },
            "panel_errors": {p.panel_id: p.error for p in self.panels if p.error is not None},
        }
