"""The Jinja2 environment: package templates, autoescaping always on.

No HTML is built in Python; everything a person sees comes from ``debug_toolbar/templates``,
or, for panels of your own, from the folders in ``DebugToolbarConfig.template_dirs``.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
)

from debug_toolbar.core.bounds import clip

if TYPE_CHECKING:
    from collections.abc import Sequence

    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.panel import DownloadLink
    from debug_toolbar.core.records import PanelRecord, RequestRecord

__all__ = ("get_environment", "render_panel", "render_template")


def _format_ms(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f} ms"


def _format_bytes(value: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{value:,} bytes"


def _format_timestamp(value: float) -> str:
    return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@functools.cache
def get_environment(template_dirs: tuple[str, ...] = ()) -> Environment:
    """The environment for the toolbar's templates, then those in ``template_dirs``.

    One per distinct tuple of folders (``DebugToolbarConfig.template_dirs``), cached: Jinja2
    compiles each template once per environment. The toolbar's own templates come first, so a
    panel's folder can add templates (and extend or import the toolbar's) but not replace them.
    """
    loader: BaseLoader = PackageLoader("debug_toolbar", "templates")
    if template_dirs:
        loader = ChoiceLoader([loader, FileSystemLoader(list(template_dirs))])
    env = Environment(
        loader=loader,
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ms"] = _format_ms
    env.filters["timestamp"] = _format_timestamp
    env.filters["bytes"] = _format_bytes
    env.filters["clip"] = clip  # display cut of a long value, its full length stated
    return env


def render_template(name: str, template_dirs: tuple[str, ...] = (), **context: Any) -> str:
    return get_environment(template_dirs).get_template(name).render(**context)


def render_panel(
    panel: PanelRecord,
    record: RequestRecord,
    url_prefix: str,
    config: DebugToolbarConfig | None = None,
    downloads: Sequence[DownloadLink] = (),
) -> str:
    """One panel's HTML fragment: its template, or its error, or a note that it was off.

    With ``config``, the panel's class may add render-time view models to the template
    context (``Panel.get_template_context``): heavy views are built when someone looks, not
    for every request. ``downloads`` are the links to the panel's downloads (``Panel.downloads``),
    built by whoever knows the pages' URLs (the ASGI layer): the template gets them as is.
    """
    resolved = panel.resolve()
    stats = resolved.stats
    if resolved.error is not None or not panel.enabled or not panel.template:
        return render_template(
            "panels/_unavailable.html",
            panel=panel,
            error=resolved.error,
            record=record,
            prefix=url_prefix,
        )
    context: dict[str, Any] = {
        "panel": panel,
        "stats": stats,
        "record": record,
        "prefix": url_prefix,
        "downloads": downloads,
    }
    if config is not None:
        panel_class = next(
            (cls for cls in config.panel_classes if cls.panel_id == panel.panel_id), None
        )
        if panel_class is not None:
            context.update(panel_class.get_template_context(stats, record, config))
    template_dirs = () if config is None else tuple(map(str, config.template_dirs))
    return render_template(panel.template, template_dirs=template_dirs, **context)
