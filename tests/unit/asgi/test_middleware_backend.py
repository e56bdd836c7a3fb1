"""The Async panel's backend through DebugToolbarMiddleware: checked at start-up, not per request.

``async_profiler_backend="yappi"`` without yappi used to be accepted; every request's Async panel
then failed with the same error and a logged traceback. The config now refuses it before the
middleware exists, naming the extra, while ``"auto"`` and a browser's backend cookie keep
falling back to the task factory without a word in the log.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler.panel import BACKEND_COOKIE, AsyncProfilerPanel
from debug_toolbar.core.records import PanelRecord

EXTRA = "pip install 'debug-toolbar[yappi]'"


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def middleware(backend: str) -> DebugToolbarMiddleware:
    config = DebugToolbarConfig(
        panels=[AsyncProfilerPanel],
        async_profiler_backend=backend,  # type: ignore[arg-type]
    )
    return DebugToolbarMiddleware(app, config)


async def async_panel(toolbar: DebugToolbarMiddleware, cookies: dict[str, str]) -> PanelRecord:
    """One request from a loopback client; the Async panel's record."""
    transport = httpx.ASGITransport(app=toolbar, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", cookies=cookies
    ) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.content == b"{}"
    record = toolbar.history.get(response.headers[REQUEST_ID_HEADER])
    assert record is not None
    panel = record.panel("AsyncProfilerPanel")
    assert panel is not None
    return panel


@pytest.fixture
def no_yappi(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an environment without the extra looks like: ``import yappi`` fails."""
    monkeypatch.setitem(sys.modules, "yappi", None)


class TestWithoutYappi:
    @pytest.mark.usefixtures("no_yappi")
    def test_yappi_backend_fails_before_the_middleware_exists(self) -> None:
        with pytest.raises(
            ValueError, match=r"^async_profiler_backend='yappi' needs the yappi"
        ) as e:
            middleware("yappi")
        assert str(e.value).endswith(f"install the extra: {EXTRA}")

    @pytest.mark.usefixtures("no_yappi")
    @pytest.mark.asyncio
    async def test_auto_profiles_with_the_task_factory_quietly(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        toolbar = middleware("auto")
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            first = await async_panel(toolbar, {})
            second = await async_panel(toolbar, {})
        for panel in (first, second):
            assert panel.error is None
            assert panel.stats["backend"] == "taskfactory"
            assert panel.stats["backend_note"] is None
        assert caplog.records == []

    @pytest.mark.usefixtures("no_yappi")
    @pytest.mark.asyncio
    async def test_a_cookie_asking_for_yappi_falls_back_with_a_note(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        toolbar = middleware("taskfactory")
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            panel = await async_panel(toolbar, {BACKEND_COOKIE: "yappi"})
        assert panel.error is None
        assert panel.stats["backend"] == "taskfactory"
        assert EXTRA in panel.stats["backend_note"]
        assert caplog.records == []


class TestWithYappi:
    @pytest.mark.asyncio
    async def test_yappi_backend_starts_and_runs(self) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import yappi_session

        toolbar = middleware("yappi")
        panel = await async_panel(toolbar, {})
        assert panel.error is None
        assert panel.stats["backend"] == "yappi"
        assert panel.stats["backend_note"] is None
        assert panel.stats["profile"]["clock"] == "wall"
        assert yappi_session.users == 0  # the run ended with the request
