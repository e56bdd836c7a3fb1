"""Fixtures shared by the core unit tests: realistic ASGI scopes and a full panel lifecycle."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.records import RequestRecord
from debug_toolbar.core.toolbar import DebugToolbar

ScopeFactory = Callable[..., dict[str, Any]]
App = Callable[[RequestContext], Awaitable[None]]
Lifecycle = Callable[..., Awaitable[tuple[DebugToolbar, RequestRecord]]]


def _scope(
    *,
    method: str = "GET",
    path: str = "/items/42",
    query_string: bytes = b"q=hello&page=2",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] | None = ("127.0.0.1", 51234),
    **extra: Any,
) -> dict[str, Any]:
    """An HTTP scope shaped like the one uvicorn hands to an app."""
    if headers is None:
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
            (b"accept", b"text/html,application/xhtml+xml"),
            (b"cookie", b"sessionid=abc123; theme=dark"),
        ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": client,
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": headers,
        "state": {},
    }
    scope.update(extra)
    return scope


@pytest.fixture
def make_scope() -> ScopeFactory:
    return _scope


async def _no_app(context: RequestContext) -> None:
    return None


@pytest.fixture
def run_lifecycle() -> Lifecycle:
    """Run panels the way the middleware does, in the calling task: request → app → response.

    Keyword arguments other than the response's are config options (``mask_secrets=False``)."""

    async def run(
        panels: list[type[Panel] | str],
        context: RequestContext,
        app: App = _no_app,
        *,
        status_code: int | None = 200,
        response_headers: list[tuple[str, str]] | None = None,
        **options: Any,
    ) -> tuple[DebugToolbar, RequestRecord]:
        toolbar = DebugToolbar(DebugToolbarConfig(panels=panels, **options), context)
        await toolbar.process_request()
        await app(context)
        if status_code is not None:
            context.status_code = status_code
            context.response_headers = list(
                response_headers or [("content-type", "text/html; charset=utf-8")]
            )
            context.response_start_ns = time.perf_counter_ns()
            context.response_complete = True
        await toolbar.process_response()
        await toolbar.generate_stats()
        return toolbar, toolbar.build_record()

    return run
