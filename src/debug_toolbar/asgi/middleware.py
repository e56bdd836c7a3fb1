"""DebugToolbarMiddleware: the request lifecycle around the app, in plain ASGI.

For each HTTP request the toolbar may show (``show_toolbar``, not excluded), in the request's
own task: set ``current_request``, start the panels, run the app through a per-request
``ToolbarResponder``, stop the panels, generate their stats, store the record, then let the
responder send what it held back (with the toolbar inserted into an HTML page).

The panels are started and stopped here, in the task that runs the app, because that is where
ContextVars must be set for everything the app spawns to inherit them (the logging collector,
the async profiler's recorder), and where they can be reset.

The middleware keeps no per-request state: the context, the toolbar and the responder are
locals of one call.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from debug_toolbar.asgi.access import toolbar_allowed
from debug_toolbar.asgi.pages import ToolbarPages
from debug_toolbar.asgi.paths import app_path, toolbar_base_url
from debug_toolbar.asgi.responder import ToolbarResponder
from debug_toolbar.asgi.views import render_toolbar
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext, current_request
from debug_toolbar.core.storage import RequestHistory
from debug_toolbar.core.toolbar import DebugToolbar, shutdown_panels

if TYPE_CHECKING:
    from debug_toolbar.asgi.types import ASGIApp, Message, Receive, Scope, Send
    from debug_toolbar.core.records import RequestRecord

__all__ = ("DebugToolbarMiddleware",)

logger = logging.getLogger("debug_toolbar")


class DebugToolbarMiddleware:
    """Profiles HTTP requests, inserts the toolbar into HTML pages and serves its pages.

    ``config`` defaults to ``DebugToolbarConfig()``; ``history`` (where records are kept, shared
    with the pages) defaults to a new ``RequestHistory.for_config(config)``. Pass the
    same history to several middleware instances to share one list of requests.

    Websocket and lifespan traffic, excluded paths and clients that ``show_toolbar`` refuses
    pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: DebugToolbarConfig | None = None,
        history: RequestHistory | None = None,
    ) -> None:
        self.app = app
        self.config = config if config is not None else DebugToolbarConfig()
        self.history = history if history is not None else RequestHistory.for_config(self.config)
        self.pages = ToolbarPages(self.config, self.history)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.config.enabled:
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http" or not self.config.enabled:
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        if self.is_toolbar_request(scope, path):
            await self.pages(scope, receive, send)
            return
        if self.config.is_excluded_path(path):
            await self.app(scope, receive, send)
            return
        context = RequestContext.from_scope(dict(scope))
        if not toolbar_allowed(self.config, context):
            await self.app(scope, receive, send)
            return
        await self._profile(scope, receive, send, context)

    def _lifespan_send(self, send: Send) -> Send:
        """``send`` for the app's lifespan: once it reports its shutdown, the panels release
        what they keep across requests (``Panel.on_shutdown``)."""

        async def lifespan_send(message: Message) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                shutdown_panels(self.config)
            await send(message)

        return lifespan_send

    def is_toolbar_request(self, scope: Scope, path: str) -> bool:
        """Whether the request is for the toolbar's own pages (served here, never profiled).

        ``path`` is the app-relative path. Framework adapters whose mounts rewrite the path
        (Litestar) override this to recognise their mount.
        """
        prefix = self.config.url_prefix
        return path == prefix or path.startswith(prefix + "/")

    async def _profile(
        self, scope: Scope, receive: Receive, send: Send, context: RequestContext
    ) -> None:
        try:
            toolbar = DebugToolbar(self.config, context)
        except Exception:  # a panel's constructor failed: serve the request unprofiled
            logger.exception("debug toolbar: building the panels failed; request not profiled")
            await self.app(scope, receive, send)
            return
        responder = ToolbarResponder(context, receive, send, toolbar.response_headers)
        token = current_request.set(context)
        try:
            await toolbar.process_request()
            try:
                await self.app(scope, responder.receive, responder.send)
            except Exception as exc:
                context.error = _describe(exc)
                await self._record(toolbar, responder)
                try:
                    await responder.finish(None, self.config.insert_before)
                except Exception:
                    logger.warning("debug toolbar: releasing the response failed", exc_info=True)
                raise
            except BaseException as exc:
                # Cancelled (client gone, timeout) or interrupted: the panels must still stop,
                # so that nothing they installed outlives the request.
                context.error = _describe(exc)
                await self._record(toolbar, responder)
                raise
            record = await self._record(toolbar, responder)
            toolbar_html = None
            if record is not None and responder.wants_toolbar:
                toolbar_html = self._render_toolbar(record, scope)
            await responder.finish(toolbar_html, self.config.insert_before)
        finally:
            current_request.reset(token)

    async def _record(
        self, toolbar: DebugToolbar, responder: ToolbarResponder
    ) -> RequestRecord | None:
        """Stop the panels, build the record and store it; None if the toolbar itself failed."""
        context = toolbar.context
        if context.end_ns is None:
            context.end_ns = time.perf_counter_ns()
        if not responder.response_started:
            context.status_code = 500  # what the server answers for an app that did not
        try:
            await toolbar.process_response()
            await toolbar.generate_stats()
            record = toolbar.build_record()
        except Exception:
            logger.exception("debug toolbar: recording request %s failed", context.request_id)
            return None
        self.history.add(record)
        return record

    def _render_toolbar(self, record: RequestRecord, scope: Scope) -> str | None:
        try:
            return render_toolbar(record, toolbar_base_url(scope, self.config.url_prefix))
        except Exception:
            logger.exception("debug toolbar: rendering the toolbar failed; page left untouched")
            return None


_MAX_CAUSES = 8
"""How far an exception's ``__cause__`` chain is followed (a chain can be a cycle)."""


def _one(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break recording
        message = "<message unavailable>"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _root_cause(exc: BaseException) -> BaseException:
    """The exception at the end of the ``raise ... from`` chain, and the first one inside an
    exception group: what the app's own code raised."""
    for _ in range(_MAX_CAUSES):
        inner = exc.__cause__
        group = getattr(exc, "exceptions", None)
        if inner is None and isinstance(group, tuple) and group:
            inner = group[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _describe(exc: BaseException) -> str:
    """``"RuntimeError: boom"``; a framework's wrapper names what it wraps (Litestar raises
    "Exception caught after response started" from the handler's exception). The record
    shortens a long one, like every value it keeps."""
    root = _root_cause(exc)
    if root is exc:
        return _one(exc)
    return f"{_one(exc)} (caused by {_one(root)})"
