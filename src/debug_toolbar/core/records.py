"""Finished request records: plain, immutable data kept in the history and served as JSON."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from debug_toolbar.core.bounds import bound, shorten

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

    Bounded in size: built with ``value_limit`` (the config's ``max_value_length``), every
    string the record keeps, deferred parts included, is shortened to it (``bounds.bound``),
    and ``approx_size`` estimates the memory it holds, for the history's byte budget.
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
    _value_limit: int | None = field(repr=False, compare=False)
    _size: int = field(repr=False, compare=False)
    _deferred_size: int = field(repr=False, compare=False)
    _on_growth: Callable[[int], None] | None = field(repr=False, compare=False)

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
        value_limit: int | None = None,
        deferred_size: int = 0,
    ) -> None:
        pending = list(deferred)
        if value_limit is not None:
            nav_subtitle = shorten(nav_subtitle, value_limit)
            error = None if error is None else shorten(error, value_limit)
        stats, size = bound(stats, value_limit)
        deferred_size = deferred_size if pending else 0
        size += _PANEL_SIZE + len(nav_subtitle) + len(error or "") + deferred_size
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
            _value_limit=value_limit,
            _size=size,
            _deferred_size=deferred_size,
            _on_growth=None,
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

    @property
    def approx_size(self) -> int:
        """Estimated bytes this record holds: its stats, and until they are built, what the
        panel estimated its deferred part holds (``Panel.defer_stats``)."""
        return self._size

    def on_growth(self, callback: Callable[[int], None] | None) -> None:
        """Have ``callback(bytes)`` told how much ``approx_size`` changed when the deferred
        stats are built (the history keeping its byte budget); None to stop."""
        object.__setattr__(self, "_on_growth", callback)

    def _complete(self) -> None:
        assert self._lock is not None
        with self._lock:
            if not self._pending:
                return  # another thread built them while this one waited
            built = 0
            limit = self._value_limit
            while self._pending:
                build = self._pending[0]
                try:
                    part, part_size = bound(build(), limit)
                    self._stats.update(part)
                    built += part_size
                except Exception as exc:  # a broken builder must not break the pages
                    logger.warning(
                        "debug toolbar panel %s failed building its stats",
                        self.panel_id,
                        exc_info=True,
                    )
                    if self._error is None:
                        error = f"{type(exc).__name__}: {exc}"
                        if limit is not None:
                            error = shorten(error, limit)
                        object.__setattr__(self, "_error", error)
                del self._pending[0]
            growth = built - self._deferred_size
            object.__setattr__(self, "_size", self._size + growth)
            object.__setattr__(self, "_deferred_size", 0)
            callback = self._on_growth
        # Outside the lock: the callback takes the history's lock, which is never held while
        # a record's stats are read.
        if callback is not None and growth:
            callback(growth)


_PANEL_SIZE = 600
"""A PanelRecord's own objects (instance, dict, lock), in bytes."""
_RECORD_SIZE = 400
"""A RequestRecord's own objects, in bytes."""


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

    @property
    def approx_size(self) -> int:
        """Estimated bytes this record holds, its panels' stats included (cheap: each panel
        measured its stats once, while bounding them)."""
        strings = len(self.path) + len(self.query_string) + len(self.method) + len(self.error or "")
        return _RECORD_SIZE + strings + sum(panel.approx_size for panel in self.panels)

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
