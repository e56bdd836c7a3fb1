"""Who may see the toolbar: one guarded call of ``config.show_toolbar``.

The same decision gates profiling, injection and the toolbar's pages, so a client that is not
allowed gets neither a toolbar, nor a header, nor the pages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext

__all__ = ("toolbar_allowed",)

logger = logging.getLogger("debug_toolbar")


def toolbar_allowed(config: DebugToolbarConfig, context: RequestContext) -> bool:
    """``config.show_toolbar(context)``; a callable that raises counts as a refusal."""
    if not config.enabled:
        return False
    try:
        return bool(config.show_toolbar(context))
    except Exception:
        # Failing closed: an error in the user's predicate must not expose the toolbar.
        logger.warning("debug toolbar: show_toolbar raised; toolbar refused", exc_info=True)
        return False
