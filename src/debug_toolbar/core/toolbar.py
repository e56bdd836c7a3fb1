"""DebugToolbar: the panels of one request, and the lifecycle that runs them.

A fresh toolbar, with fresh panel instances, is built for every request. Every panel call is
guarded: a panel that raises records its error in its own place and the request is served as if
the toolbar were not there.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from debug_toolbar.core.bounds import shorten
from debug_toolbar.core.records import PanelRecord, RequestRecord

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.panel import Panel

__all__ = ("DebugToolbar", "shutdown_panels")

logger = logging.getLogger("debug_toolbar")

LifecycleStep = Literal["process_request", "process_response", "generate_stats"]


class DebugToolbar:
    """Runs one request's panels through ``process_request`` → ``process_response`` → stats."""

    def __init__(self, config: DebugToolbarConfig, context: RequestContext) -> None:
        self.config = config
        self.context = context
        disabled = context.disabled_panels
        self.panels: list[Panel] = [panel_class(self) for panel_class in config.panel_classes]
        self.enabled_panels: list[Panel] = [p for p in self.panels if p.panel_id not in disabled]
        self.errors: dict[str, str] = {}

    def get_panel(self, panel_id: str) -> Panel | None:
        return next((p for p in self.panels if p.panel_id == panel_id), None)

    async def _guarded(self, panel: Panel, step: LifecycleStep) -> Any:
        try:
            return await getattr(panel, step)(self.context)
        except Exception as exc:  # a broken panel must never break the app
            self.errors.setdefault(panel.panel_id, f"{type(exc).__name__}: {exc}")
            logger.warning(
                "debug toolbar panel %s failed in %s", panel.panel_id, step, exc_info=True
            )
            return None

    async def process_request(self) -> None:
        for panel in self.enabled_panels:
            await self._guarded(panel, "process_request")

    async def process_response(self) -> None:
        """Stop every panel, innermost first; runs even for panels whose start failed."""
        if self.context.end_ns is None:
            self.context.end_ns = time.perf_counter_ns()
        for panel in reversed(self.enabled_panels):
            await self._guarded(panel, "process_response")

    async def generate_stats(self) -> None:
        for panel in self.enabled_panels:
            if panel.panel_id in self.errors:
                continue
            stats = await self._guarded(panel, "generate_stats")
            if panel.panel_id not in self.errors:
                panel.record_stats(stats or {})

    def response_headers(self) -> list[tuple[str, str]]:
        """The headers every enabled panel adds to the response; a failing panel adds none
        and records its error, as in any other step."""
        headers: list[tuple[str, str]] = []
        for panel in self.enabled_panels:
            if panel.panel_id in self.errors:
                continue
            try:
                headers.extend(panel.response_headers())
            except Exception as exc:
                self.errors.setdefault(panel.panel_id, f"{type(exc).__name__}: {exc}")
                logger.warning(
                    "debug toolbar panel %s failed in response_headers",
                    panel.panel_id,
                    exc_info=True,
                )
        return headers

    def _subtitle(self, panel: Panel) -> str:
        if panel.panel_id in self.errors:
            return "error"
        try:
            return panel.get_nav_subtitle()
        except Exception as exc:
            self.errors[panel.panel_id] = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "debug toolbar panel %s failed in get_nav_subtitle", panel.panel_id, exc_info=True
            )
            return "error"

    def build_record(self) -> RequestRecord:
        """Freeze what the panels recorded into a plain record for the history.

        Every value is bounded here (``max_value_length``): the record outlives the request.
        """
        limit = self.config.max_value_length
        enabled = set(map(id, self.enabled_panels))
        panel_records = []
        for panel in self.panels:
            is_enabled = id(panel) in enabled
            subtitle = self._subtitle(panel) if is_enabled else ""
            failed = panel.panel_id in self.errors
            panel_records.append(
                PanelRecord(
                    panel_id=panel.panel_id,
                    title=panel.title,
                    nav_title=panel.nav_title,
                    nav_subtitle=subtitle,
                    template=panel.template,
                    has_content=panel.has_content,
                    enabled=is_enabled,
                    stats=panel.get_stats() if is_enabled and not failed else {},
                    error=self.errors.get(panel.panel_id),
                    deferred=panel.deferred_stats if is_enabled and not failed else (),
                    value_limit=limit,
                    deferred_size=panel.deferred_size,
                )
            )
        context = self.context
        return RequestRecord(
            request_id=context.request_id,
            method=shorten(context.method, limit),
            path=shorten(context.path, limit),
            query_string=shorten(context.query_string, limit),
            status_code=context.status_code,
            duration_ms=context.duration_ms or 0.0,
            started_at=context.started_at,
            panels=tuple(panel_records),
            error=None if context.error is None else shorten(context.error, limit),
            body_cut_at=context.body_cut_at,
            client_disconnected=context.client_disconnected_at is not None,
        )


def shutdown_panels(config: DebugToolbarConfig) -> None:
    """Every configured panel's ``on_shutdown``, each guarded: the app is shutting down, and
    a panel that fails to clean up must neither stop the others nor the shutdown."""
    for panel_class in config.panel_classes:
        try:
            panel_class.on_shutdown()
        except Exception:
            logger.warning(
                "debug toolbar panel %s failed at shutdown", panel_class.panel_id, exc_info=True
            )
