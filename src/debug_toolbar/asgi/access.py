"""Who may see the toolbar: the request's Host, then one guarded call of ``show_toolbar``.

The same decision gates profiling, injection and the toolbar's pages, so a client that is not
allowed gets neither a toolbar, nor a header, nor the pages. The Host comes first and is not up
to ``show_toolbar``: a page that rebinds its own domain to 127.0.0.1 runs in the developer's
browser, on a loopback client, and only its Host tells it apart (see ``core.hosts``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from debug_toolbar.core.hosts import host_allowed, request_host

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext

__all__ = ("toolbar_allowed",)

logger = logging.getLogger("debug_toolbar")


_MAX_HOSTS_REPORTED = 32
"""Refused Hosts named in the log, once each; a bounded set, as Hosts come from clients."""

_hosts_reported: set[str] = set()


def toolbar_allowed(config: DebugToolbarConfig, context: RequestContext) -> bool:
    """``config.show_toolbar(context)`` for a request whose Host is allowed; a callable that
    raises counts as a refusal."""
    if not config.enabled:
        return False
    try:
        shown = bool(config.show_toolbar(context))
    except Exception:
        # Failing closed: an error in the user's predicate must not expose the toolbar.
        logger.warning("debug toolbar: show_toolbar raised; toolbar refused", exc_info=True)
        return False
    if shown and not host_allowed(context, tuple(config.allowed_hosts)):
        _report_refused_host(request_host(context))
        return False
    return shown


def _report_refused_host(host: str | None) -> None:
    """Say once per Host why the toolbar is missing for a client ``show_toolbar`` accepts: a
    developer opening the app under a name of the LAN or a container needs to add it to
    ``allowed_hosts``."""
    key = host or ""
    if key in _hosts_reported or len(_hosts_reported) >= _MAX_HOSTS_REPORTED:
        return
    _hosts_reported.add(key)
    logger.warning(
        "debug toolbar: refused for Host %r, which allowed_hosts does not list (localhost, "
        "127.0.0.1 and [::1] always are); add it to allowed_hosts if it is yours",
        host,
    )
