"""DebugToolbarPlugin and the Async panel's backend: a yappi that cannot run stops start-up.

Before, ``Litestar(plugins=[DebugToolbarPlugin(config)])`` with ``async_profiler_backend="yappi"``
and no yappi started fine, and then every request's Async panel reported the missing extra
(with a traceback in the log). Now building the config fails, before the app exists.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import create_test_client

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler.panel import BACKEND_COOKIE, AsyncProfilerPanel
from debug_toolbar.core.records import PanelRecord
from debug_toolbar.litestar import DebugToolbarPlugin

EXTRA = "pip install 'debug-toolbar[yappi]'"


def allow_all(context: Any) -> bool:
    """Litestar's test client connects as "testclient", which is not a loopback address."""
    return True


@get("/")
async def index() -> dict[str, int]:
    return {"a": 1}


def plugin(backend: str) -> DebugToolbarPlugin:
    return DebugToolbarPlugin(
        DebugToolbarConfig(
            extra_panels=[AsyncProfilerPanel],
            async_profiler_backend=backend,  # type: ignore[arg-type]
            show_toolbar=allow_all,
        )
    )


def async_panel(toolbar: DebugToolbarPlugin, cookies: dict[str, str]) -> PanelRecord:
    """One request through a Litestar app with the plugin; the Async panel's record."""
    with create_test_client(
        [index], plugins=[toolbar], logging_config=None, base_url="http://127.0.0.1"
    ) as client:
        client.cookies.update(cookies)
        response = client.get("/")
    assert response.json() == {"a": 1}
    record = toolbar.history.get(response.headers[REQUEST_ID_HEADER])
    assert record is not None
    panel = record.panel("AsyncProfilerPanel")
    assert panel is not None
    return panel


@pytest.fixture
def no_yappi(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an environment without the extra looks like: ``import yappi`` fails."""
    monkeypatch.setitem(sys.modules, "yappi", None)


@pytest.mark.usefixtures("no_yappi")
class TestWithoutYappi:
    def test_the_app_does_not_start_and_the_error_names_the_extra(self) -> None:
        with pytest.raises(ValueError, match=r"^async_profiler_backend='yappi' needs") as e:
            Litestar([index], plugins=[plugin("yappi")])
        assert str(e.value).endswith(f"install the extra: {EXTRA}")

    def test_the_default_plugin_starts(self) -> None:
        app = Litestar([index], plugins=[DebugToolbarPlugin()], logging_config=None)
        assert app.plugins.get(DebugToolbarPlugin).config.async_profiler_backend == "taskfactory"

    def test_auto_profiles_with_the_task_factory_quietly(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            panel = async_panel(plugin("auto"), {})
        assert panel.error is None
        assert panel.stats["backend"] == "taskfactory"
        assert panel.stats["backend_note"] is None
        assert caplog.records == []

    def test_a_cookie_asking_for_yappi_falls_back_with_a_note(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            panel = async_panel(plugin("auto"), {BACKEND_COOKIE: "yappi"})
        assert panel.error is None
        assert panel.stats["backend"] == "taskfactory"
        assert EXTRA in panel.stats["backend_note"]
        assert caplog.records == []


class TestWithYappi:
    def test_the_app_starts_and_profiles_with_yappi(self) -> None:
        pytest.importorskip("yappi")
        from debug_toolbar.core.panels.async_profiler.yappi_backend import yappi_session

        panel = async_panel(plugin("yappi"), {})
        assert panel.error is None
        assert panel.stats["backend"] == "yappi"
        assert panel.stats["profile"]["clock"] == "wall"
        assert yappi_session.users == 0
