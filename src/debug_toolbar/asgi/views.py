"""Records in, HTML out: the template context of every page the toolbar shows.

Each function names exactly what its template receives (the environment is strict about
undefined names). Panel fragments are rendered defensively: a panel whose template fails shows
that error in its own place instead of breaking the page around it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from debug_toolbar.asgi.paths import download_url
from debug_toolbar.asgi.static import static_url
from debug_toolbar.core.bounds import clip
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE
from debug_toolbar.core.panel import DownloadLink, HistoryCell
from debug_toolbar.core.rendering import render_panel, render_template

if TYPE_CHECKING:
    from collections.abc import Sequence

    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.panel import HistoryColumn, Panel, PanelDownload
    from debug_toolbar.core.records import PanelRecord, RequestRecord
    from debug_toolbar.core.storage import RequestHistory

__all__ = (
    "HISTORY_PAGE_ROWS",
    "HistoryPanelColumn",
    "HistoryRow",
    "download_links",
    "history_columns",
    "history_rows",
    "panel_downloads",
    "render_detail",
    "render_history",
    "render_not_found",
    "render_panel_fragment",
    "render_toolbar",
)

logger = logging.getLogger("debug_toolbar")

HISTORY_PAGE_ROWS = 100
"""Requests listed per page of the history: a page stays small however many are kept."""


def _common(base_url: str) -> dict[str, Any]:
    return {
        "prefix": base_url,
        "static_url": functools.partial(static_url, base_url),
        "cookie_name": DISABLED_PANELS_COOKIE,
    }


def panel_downloads(config: DebugToolbarConfig | None, panel_id: str) -> tuple[PanelDownload, ...]:
    """What the configured panel ``panel_id`` offers for download (none for an unknown id)."""
    if config is None:
        return ()
    panel_class = next((cls for cls in config.panel_classes if cls.panel_id == panel_id), None)
    return () if panel_class is None else panel_class.downloads


def download_links(
    panel: PanelRecord,
    record: RequestRecord,
    base_url: str,
    config: DebugToolbarConfig | None,
) -> list[DownloadLink]:
    """The links to a panel's downloads for one request, from the pages' base URL: the panel
    never builds them, so they follow the app wherever it is mounted (``root_path``)."""
    return [
        DownloadLink(
            name=download.name,
            title=download.title,
            url=download_url(base_url, record.request_id, panel.panel_id, download.name),
            filename=download.filename(record.request_id),
        )
        for download in panel_downloads(config, panel.panel_id)
    ]


def render_panel_fragment(
    panel: PanelRecord,
    record: RequestRecord,
    base_url: str,
    config: DebugToolbarConfig | None = None,
) -> Markup:
    """One panel's HTML; if its template fails, the failure is shown in its place.

    With ``config``, the panel's class adds its render-time view models (the timeline), and
    the template gets the links to the panel's downloads."""
    try:
        downloads = download_links(panel, record, base_url, config)
        return Markup(render_panel(panel, record, base_url, config, downloads))
    except Exception as exc:
        logger.warning("debug toolbar: rendering panel %s failed", panel.panel_id, exc_info=True)
        failed = panel.with_error(f"rendering its template failed: {type(exc).__name__}: {exc}")
        return Markup(render_panel(failed, record, base_url))


def render_toolbar(record: RequestRecord, base_url: str) -> str:
    """The bar inserted into HTML pages."""
    return render_template("toolbar.html", record=record, **_common(base_url))


@dataclass(frozen=True, slots=True)
class HistoryPanelColumn:
    """A column of the history that a panel adds (``Panel.history_columns``)."""

    panel: type[Panel]
    column: HistoryColumn


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One request of the history, with its cells in the panels' columns (None: no cell)."""

    record: RequestRecord
    cells: tuple[HistoryCell | None, ...]


def history_columns(config: DebugToolbarConfig | None) -> tuple[HistoryPanelColumn, ...]:
    """The panels' columns, in the toolbar's order of the configured panels."""
    if config is None:
        return ()
    return tuple(
        HistoryPanelColumn(panel, column)
        for panel in config.panel_classes
        for column in panel.history_columns
    )


_cells_failed: set[str] = set()
"""Panels whose ``history_cells`` failed in this process (logged once each)."""


def _panel_cells(panel_class: type[Panel], panel: PanelRecord | None) -> dict[str, HistoryCell]:
    """One panel's cells in one row: from the record's head (a deferred head is built, once;
    the deferred detail is not)."""
    if panel is None:  # the panel was not configured when the request was recorded
        return {}
    label = panel.title or panel.panel_id
    if not panel.enabled:
        off = HistoryCell("off", title=f"The {label} panel was off for this request")
        return {column.key: off for column in panel_class.history_columns}
    if panel.error is not None:
        failed = HistoryCell("error", title=f"The {label} panel failed: {panel.error}", warn=True)
        return {column.key: failed for column in panel_class.history_columns}
    try:
        return panel_class.history_cells(panel.head)
    except Exception:  # a panel's bug must not take the history page down
        if panel_class.panel_id not in _cells_failed:
            _cells_failed.add(panel_class.panel_id)
            logger.warning(
                "debug toolbar: panel %s failed building its history cells (said once)",
                panel_class.panel_id,
                exc_info=True,
            )
        return {}


def history_rows(
    records: Sequence[RequestRecord], columns: Sequence[HistoryPanelColumn]
) -> list[HistoryRow]:
    """The rows of one page: each panel with columns is asked once per record."""
    panels = list(dict.fromkeys(column.panel for column in columns))
    rows = []
    for record in records:
        cells = {
            panel_class: _panel_cells(panel_class, record.panel(panel_class.panel_id))
            for panel_class in panels
        }
        rows.append(
            HistoryRow(
                record,
                tuple(cells[column.panel].get(column.column.key) for column in columns),
            )
        )
    return rows


def render_history(
    history: RequestHistory,
    base_url: str,
    *,
    page: int = 1,
    config: DebugToolbarConfig | None = None,
) -> str:
    """One page of the history, newest first: ``HISTORY_PAGE_ROWS`` rows, whatever is kept.

    A page out of range shows the nearest one. With ``config``, the configured panels add
    their columns (``Panel.history_columns``), read from each record's head.
    """
    records = history.records()
    pages = max(1, -(-len(records) // HISTORY_PAGE_ROWS))
    page = min(max(page, 1), pages)
    start = (page - 1) * HISTORY_PAGE_ROWS
    columns = history_columns(config)
    return render_template(
        "history.html",
        title="Requests",
        columns=columns,
        rows=history_rows(records[start : start + HISTORY_PAGE_ROWS], columns),
        total=len(records),
        first=start + 1,
        page=page,
        pages=pages,
        max_size=history.max_size,
        max_bytes=history.max_bytes,
        evicted=history.evicted,
        evicted_for_size=history.evicted_for_size,
        **_common(base_url),
    )


def render_detail(
    record: RequestRecord, base_url: str, config: DebugToolbarConfig | None = None
) -> str:
    """Every panel of one request on one page."""
    # (panel, its error, its HTML): the error as resolving its stats found it.
    sections = [
        (panel, panel.resolve().error, render_panel_fragment(panel, record, base_url, config))
        for panel in record.panels
    ]
    return render_template(
        "request_detail.html",
        title=f"{clip(record.method, 20)} {clip(record.path, 200)}",
        record=record,
        sections=sections,
        **_common(base_url),
    )


def render_not_found(message: str, base_url: str, *, title: str = "Not found") -> str:
    """A page saying what is missing (or failed, with another ``title``), linking the history."""
    return render_template("not_found.html", title=title, message=message, **_common(base_url))
