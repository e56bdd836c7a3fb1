"""A panel's download in headless Chromium, with the app mounted under ``/app``.

The demo app runs in uvicorn behind a small mount (``MountedAt``): requests for ``/app/...``
reach it with ``root_path="/app"``, as behind a parent app or a reverse proxy that keeps the
prefix. The Async panel's "Download trace" link must carry ``/app`` like every other toolbar
link, and clicking it must save the request's Chrome trace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from playwright.sync_api import Page

    from debug_toolbar.asgi.types import ASGIApp, Receive, Scope, Send

pytestmark = pytest.mark.e2e

ROOT = "/app"
PREFIX = "/_debug_toolbar"


class MountedAt:
    """``app`` served under ``root``: the path keeps the prefix (as the ASGI spec says) and
    ``root_path`` names it; anything outside it is a plain 404."""

    def __init__(self, app: ASGIApp, root: str) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path != self.root and not path.startswith(self.root + "/"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"outside the mount"})
            return
        mounted = dict(scope, root_path=str(scope.get("root_path", "")) + self.root)
        await self.app(mounted, receive, send)


@pytest.fixture
def mounted_server(
    demo_module: ModuleType,
    uvicorn_server: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.setenv("DEMO_ASYNC_BACKEND", "taskfactory")
    return uvicorn_server(MountedAt(demo_module.build_app(backend="taskfactory"), ROOT))


class TestTraceDownloadUnderRootPath:
    def test_the_download_link_saves_the_requests_trace(
        self, page: Page, mounted_server: Any, tmp_path: Path
    ) -> None:
        response = page.goto(f"{mounted_server.url}{ROOT}/async-timeline")
        assert response is not None
        assert response.status == 200
        request_id = response.headers["x-debug-toolbar-request-id"]
        toolbar = page.locator("#debug-toolbar")
        page.wait_for_selector('#debug-toolbar[data-dt-ready="1"]', state="attached")
        assert toolbar.get_attribute("data-prefix") == f"{ROOT}{PREFIX}"
        toolbar.locator('li.dt-panel[data-panel-id="AsyncProfilerPanel"] a.dt-panel-link').click()
        body = page.locator("#debug-toolbar .dt-window-body")
        body.locator(".dt-async-gantt").wait_for()

        link = body.locator("a.dt-async-download")
        assert link.count() == 1
        assert link.inner_text() == "Download trace (Perfetto)"
        expected_path = (
            f"{ROOT}{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel"
            "/downloads/async-trace.json"
        )
        assert link.get_attribute("href") == expected_path

        with page.expect_download() as downloading:
            link.click()
        download = downloading.value
        assert download.url == mounted_server.url + expected_path
        assert download.suggested_filename == f"async-trace-{request_id}.json"
        assert download.failure() is None
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        trace = json.loads(saved.read_text(encoding="utf-8"))
        # A download fires no response event: the same URL, asked again by this browser
        # (its cookies), shows the answer the click got.
        answer = page.request.get(download.url)
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="async-trace-{request_id}.json"'
        )
        assert answer.json() == trace
        names = {
            event["args"]["name"]
            for event in trace["traceEvents"]
            if event["ph"] == "M" and event["name"] == "thread_name"
        }
        # The demo's three sleeping tasks, each on a track of its own.
        for task in ("sleep-40ms", "sleep-80ms", "sleep-160ms"):
            assert any(name.startswith(task) for name in names), names
