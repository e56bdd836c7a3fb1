"""Finished request records: plain, immutable data kept in the history and served as JSON."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from debug_toolbar.core.bounds import bound, shorten

__all__ = (
    "DeferredStats",
    "HeadBuilder",
    "PanelRecord",
    "PanelStats",
    "RequestRecord",
    "StatsBuilder",
)

logger = logging.getLogger("debug_toolbar")

StatsBuilder = Callable[[], dict[str, Any]]
"""Builds part of a panel's stats on demand (see ``Panel.defer_stats``)."""


@dataclass(frozen=True, slots=True)
class PanelStats:
    """A panel's complete stats and its error, read together (``PanelRecord.resolve``)."""

    stats: dict[str, Any]
    error: str | None
    """``"ExceptionType: message"`` when the panel failed, while collecting or while building
    its deferred stats; the request was served regardless."""


class HeadBuilder:
    """A builder of (part of) a record's head: what the history's columns read, built on its
    first read without the rest (``Panel.defer_stats(..., head=True)``)."""

    __slots__ = ("build",)

    def __init__(self, build: StatsBuilder) -> None:
        self.build = build

    def __call__(self) -> dict[str, Any]:
        return self.build()


class DeferredStats:
    """The part of a panel's stats built when someone first reads the record.

    A panel can leave the costly part of its stats (a request's thousand tasks as dicts) to
    builders that run when someone looks (the panel opened, the JSON API), instead of while the
    request is answered (``Panel.defer_stats``). The builders run once, under a lock (records
    are read from any thread); their result, or their error, is kept and the builders dropped,
    so what they closed over is freed. This is the record's only mutable part, on purpose.

    Builders of the head (``HeadBuilder``) run first, and alone when only the head is read
    (``resolve_head``); the others when the whole stats are (``resolve``).
    """

    __slots__ = (
        "_builders",
        "_built",
        "_error",
        "_has_head",
        "_head",
        "_head_result",
        "_lock",
        "_on_growth",
        "_panel_id",
        "_result",
        "_value_limit",
        "size",
    )

    def __init__(
        self,
        builders: Iterable[StatsBuilder],
        *,
        panel_id: str,
        value_limit: int | None,
        approx_size: int,
    ) -> None:
        builders = list(builders)
        self._head: list[StatsBuilder] | None = [
            builder for builder in builders if type(builder) is HeadBuilder
        ] or None
        """The head's builders until built (None: built, or there were none)."""
        self._has_head = self._head is not None
        self._head_result: dict[str, Any] = {}
        self._builders: list[StatsBuilder] = (
            builders
            if self._head is None
            else [builder for builder in builders if type(builder) is not HeadBuilder]
        )
        """Emptied once built: what the builders closed over is then freed."""
        self._built = 0
        """Bytes of what is built so far, measured."""
        self._value_limit = value_limit
        self._lock = threading.Lock()
        self._result: dict[str, Any] = {}
        self._error: str | None = None
        self._on_growth: Callable[[int], None] | None = None
        self.size = approx_size
        """Bytes held: the panel's estimate until built, then the built stats' measure."""
        self._panel_id = panel_id

    def on_growth(self, callback: Callable[[int], None] | None) -> None:
        self._on_growth = callback

    @property
    def defers_head(self) -> bool:
        """Some of the head is built here (``HeadBuilder``), built already or not."""
        return self._has_head

    def resolve_head(self) -> tuple[dict[str, Any], str | None]:
        """The head's part (building it on the first call) and the error so far."""
        if self._head is not None:
            self._build(head_only=True)
        return self._head_result, self._error

    def resolve(self) -> tuple[dict[str, Any], str | None]:
        """The built stats and the error building them (None), building them on first call."""
        if self._builders or self._head is not None:
            self._build(head_only=False)
        return self._result, self._error

    def _build(self, *, head_only: bool) -> None:
        with self._lock:
            # What another thread built meanwhile is not built again; each part is marked
            # built (its builders dropped) only once its result is stored, so a reader that
            # finds it built, without the lock, reads the result.
            head = self._head
            builders: list[StatsBuilder] = [] if head_only else self._builders
            before, built_before = self.size, self._built
            if head is not None:
                part, size = self._run(head)
                self._head_result = part
                self._result = {**part, **self._result}
                self._head = None
                self._built += size
            if builders:
                part, size = self._run(builders)
                self._result = {**self._result, **part}
                self._builders = []
                self._built += size
            if self._builders:  # the estimate still stands for what is not built
                self.size += self._built - built_before
            else:  # all built: measured
                self.size = self._built
            growth = self.size - before
            callback = self._on_growth
        # Outside the lock: the callback takes the history's lock, which is never held while
        # a record's stats are built.
        if callback is not None and growth:
            callback(growth)

    def _run(self, builders: list[StatsBuilder]) -> tuple[dict[str, Any], int]:
        built: dict[str, Any] = {}
        size = 0
        for build in builders:
            try:
                part, part_size = bound(build(), self._value_limit)
            except Exception as exc:  # a broken builder must not break the pages
                logger.warning(
                    "debug toolbar panel %s failed building its stats",
                    self._panel_id,
                    exc_info=True,
                )
                if self._error is None:
                    error = f"{type(exc).__name__}: {exc}"
                    limit = self._value_limit
                    self._error = error if limit is None else shorten(error, limit)
                continue
            built.update(part)
            size += part_size
        return built, size


@dataclass(frozen=True, init=False)
class PanelRecord:
    """One panel's outcome for one request: plain data, but for its ``DeferredStats``.

    Read the panel's stats and error with ``resolve()``: one call, both complete. ``stats`` is
    the same stats on its own; ``error`` is what was known when the record was built (the
    toolbar's nav reads it while the response waits, without building anything). ``head``
    is what the history's columns read: the stats recorded at once and the deferred head
    (built on its first read), without the deferred detail.

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
    error: str | None
    """The panel's failure as known when the record was built (see ``resolve``)."""
    _stats: dict[str, Any] = field(repr=False)
    _deferred: DeferredStats | None = field(repr=False, compare=False)
    _size: int = field(repr=False, compare=False)

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
        builders = list(deferred)
        if value_limit is not None:
            nav_subtitle = shorten(nav_subtitle, value_limit)
            error = None if error is None else shorten(error, value_limit)
        stats, size = bound(stats, value_limit)
        # Frozen: fill the instance's dict directly (one call, not one __setattr__ per field).
        self.__dict__.update(
            panel_id=panel_id,
            title=title,
            nav_title=nav_title,
            nav_subtitle=nav_subtitle,
            template=template,
            has_content=has_content,
            enabled=enabled,
            error=error,
            _stats=stats,
            _deferred=(
                DeferredStats(
                    builders,
                    panel_id=panel_id,
                    value_limit=value_limit,
                    approx_size=deferred_size,
                )
                if builders
                else None
            ),
            _size=size + _PANEL_SIZE + len(nav_subtitle) + len(error or ""),
        )

    def resolve(self) -> PanelStats:
        """The panel's complete stats and error, deferred parts built on the first call."""
        deferred = self._deferred
        if deferred is None:
            return PanelStats(self._stats, self.error)
        part, error = deferred.resolve()
        return PanelStats({**self._stats, **part}, self.error or error)

    @property
    def stats(self) -> dict[str, Any]:
        """``resolve().stats``: the complete stats (for the error too, call ``resolve``)."""
        return self.resolve().stats

    @property
    def head(self) -> dict[str, Any]:
        """The stats the history's columns read (for a page of records), without the
        deferred detail: what was recorded while the request was answered, and the deferred
        head (``Panel.defer_stats(..., head=True)``), built on the first read."""
        deferred = self._deferred
        if deferred is None or not deferred.defers_head:
            return self._stats
        part, _error = deferred.resolve_head()
        return {**self._stats, **part} if self._stats else part

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
    def approx_size(self) -> int:
        """Estimated bytes this record holds: its stats, and its deferred part (estimated by
        the panel until built, measured after; ``Panel.defer_stats``)."""
        deferred = self._deferred
        return self._size + (0 if deferred is None else deferred.size)

    def on_growth(self, callback: Callable[[int], None] | None) -> None:
        """Have ``callback(bytes)`` told how much ``approx_size`` changed when the deferred
        stats are built (the history keeping its byte budget); None to stop."""
        if self._deferred is not None:
            self._deferred.on_growth(callback)


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
        resolved = {p.panel_id: p.resolve() for p in self.panels if p.enabled}
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
                panel_id: panel.stats for panel_id, panel in resolved.items() if panel.error is None
            },
            "panel_errors": {
                panel_id: panel.error
                for panel_id, panel in resolved.items()
                if panel.error is not None
            },
        }
