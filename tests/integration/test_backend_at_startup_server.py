"""The Async panel's backend choice in a Litestar app under a real uvicorn server.

``async_profiler_backend="yappi"`` without yappi is refused when the config is built (see
tests/unit/core/test_config.py); before, the server started and every request's Async panel
showed the missing extra, with a traceback in the log. What must stay: with ``"auto"`` a server
without yappi profiles with the task factory and logs nothing, a browser whose cookie asks for
yappi gets the task factory and a note (in the stats and on the panel's page), and with yappi
installed ``"yappi"`` runs it.

The requests are for an HTML page: its response is held back until the record is stored, so
the record is there when the client has the response (a JSON response passes straight through
and its record is stored just after).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler.panel import BACKEND_COOKIE, AsyncProfilerPanel

EXTRA = "pip install 'debug-toolbar[yappi]'"
PREFIX = "/_debug_toolbar"


def config(backend: str) -> DebugToolbarConfig:
    return DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel],
        async_profiler_backend=backend,  # type: ignore[arg-type]
    )


class TestWithoutYappi:
    def test_yappi_backend_stops_the_app_before_the_server(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        with pytest.raises(ValueError, match=r"install the extra: pip install 'debug-toolbar"):
            config("yappi")

    def test_auto_and_the_cookie_fall_back_quietly(
        self,
        uvicorn_server: Any,
        sample_app: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)  # for the server's thread too
        sample = sample_app(config("auto"))
        server = uvicorn_server(sample.app)
        with (
            caplog.at_level(logging.WARNING, logger="debug_toolbar"),
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            plain = client.get("/")
            chosen = client.get("/", headers={"cookie": f"{BACKEND_COOKIE}=yappi"})
            fragment = client.get(
                f"{PREFIX}/requests/{chosen.headers[REQUEST_ID_HEADER]}/panels/AsyncProfilerPanel"
            )
        for response in (plain, chosen):
            assert "<h1>Sample café</h1>" in response.text
        panels = []
        for response in (plain, chosen):
            record = sample.plugin.history.get(response.headers[REQUEST_ID_HEADER])
            assert record is not None
            panel = record.panel("AsyncProfilerPanel")
            assert panel is not None
            assert panel.error is None
            assert panel.stats["backend"] == "taskfactory"
            panels.append(panel)
        assert panels[0].stats["backend_note"] is None
        note = panels[1].stats["backend_note"]
        assert note.startswith("async_profiler_backend='yappi' needs the yappi package")
        assert note.endswith(EXTRA)
        assert fragment.status_code == 200
        assert "pip install &#39;debug-toolbar[yappi]&#39;</p>" in fragment.text
        assert 'disabled title="yappi is not installed"' in fragment.text
        assert caplog.records == []


class TestWithYappi:
    def test_yappi_backend_runs(self, uvicorn_server: Any, sample_app: Any) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import yappi_session

        sample = sample_app(config("yappi"))
        server = uvicorn_server(sample.app)
        response = httpx.get(server.url + "/", timeout=10)
        assert "<h1>Sample café</h1>" in response.text
        record = sample.plugin.history.get(response.headers[REQUEST_ID_HEADER])
        assert record is not None
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats["backend"] == "yappi"
        assert panel.stats["profile"]["clock"] == "wall"
        assert yappi_session.users == 0
