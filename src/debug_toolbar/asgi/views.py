"""Records in, HTML out: the template context of every page the toolbar shows.

Each function names exactly what its template receives (the environment is strict about
undefined names). Panel fragments are rendered defensively: a panel whose template fails shows
that error in its own place instead of breaking the page around it.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from debug_toolbar.asgi.paths import download_url
from debug_toolbar.asgi.static import static_url
from debug_toolbar.core.bounds import clip
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE
from debug_toolbar.core.panel import DownloadLink
from debug_toolbar.core.rendering import render_panel, render_template

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.panel import PanelDownload
    from debug_toolbar.core.records import PanelRecord, RequestRecord
    from debug_toolbar.core.storage import RequestHistory

__all__ = (
    "HISTORY_PAGE_ROWS",
    "download_links",
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


def render_history(history: RequestHistory, base_url: str, *, page: int = 1) -> str:
    """One page of the history, newest first: ``HISTORY_PAGE_ROWS`` rows, whatever is kept.

    A page out of range shows the nearest one.
    """
    records = history.records()
    pages = max(1, -(-len(records) // HISTORY_PAGE_ROWS))
    page = min(max(page, 1), pages)
    start = (page - 1) * HISTORY_PAGE_ROWS
    return render_template(
        "history.html",
        title="Requests",
        records=records[start : start + HISTORY_PAGE_ROWS],
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
