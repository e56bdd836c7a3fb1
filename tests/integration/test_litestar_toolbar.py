"""The toolbar in a Litestar app, through Litestar's test client and httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.response import Stream
from litestar.static_files import create_static_files_router
from litestar.testing import TestClient, create_test_client

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DEFAULT_PANELS, DebugToolbarConfig
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE, RequestContext
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.rendering import render_panel
from debug_toolbar.litestar import DebugToolbarPlugin

TOOLBAR_BLOCK = re.compile(rb"<!-- debug-toolbar -->.*<!-- /debug-toolbar -->\n?", re.DOTALL)
DEFAULT_PANEL_IDS = [path.rsplit(".", 1)[1] for path in DEFAULT_PANELS]
PREFIX = "/_debug_toolbar"


def allow_all(context: RequestContext) -> bool:
    """Litestar's test client connects as "testclient", which is not a loopback address."""
    return True


class ExplodingPanel(Panel):
    title = "Exploding"
    template = "panels/timer.html"

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        raise RuntimeError("stats <exploded>")


class WeatherPanel(Panel):
    """A panel of the app's own, with its template in the app's folder (``template_dirs``)."""

    title = "Weather"
    template = "panels/itest_weather.html"

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        return {"forecast": "<sunny>", "path": context.path}


def config(**changes: Any) -> DebugToolbarConfig:
    changes.setdefault("show_toolbar", allow_all)
    # Litestar's test clients send Host: testserver.local; allowed as any name of the app's own.
    changes.setdefault("allowed_hosts", ["testserver.local"])
    return DebugToolbarConfig(**changes)


class TestHtmlAndJson:
    def test_page_gets_the_toolbar(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            response = client.get("/")
        request_id = response.headers[REQUEST_ID_HEADER]
        body = response.content
        assert int(response.headers["content-length"]) == len(body)
        assert (
            TOOLBAR_BLOCK.sub(b"", body)
            == (
                "<!DOCTYPE html><html><head><title>Sample</title></head>"
                "<body><h1>Sample café</h1></body></html>"
            ).encode()
        )
        for panel_id in DEFAULT_PANEL_IDS:
            assert f'data-panel-id="{panel_id}"'.encode() in body
        assert f'data-request-id="{request_id}"'.encode() in body
        record = sample.plugin.history.get(request_id)
        assert record is not None
        assert record.status_code == 200
        assert [p.panel_id for p in record.panels] == DEFAULT_PANEL_IDS
        assert all(p.error is None for p in record.panels)

    def test_json_is_untouched_and_has_the_header(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            response = client.get("/json")
        assert response.json() == {"answer": 42}
        assert response.content == b'{"answer":42}'
        assert response.headers[REQUEST_ID_HEADER] in sample.plugin.history

    def test_streamed_and_compressed_pages_pass_through(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            streamed = client.get("/stream")
            zipped = client.get("/gzip")
        assert streamed.content == b"<html><body><p>streamed</p></body></html>"
        assert zipped.content == b"<html><body>zipped</body></html>"  # httpx decompressed it
        assert zipped.headers["content-encoding"] == "gzip"
        for response in (streamed, zipped):
            assert response.headers[REQUEST_ID_HEADER] in sample.plugin.history

    def test_handler_error_is_recorded_as_500(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app, raise_server_exceptions=False) as client:
            response = client.get("/boom")
        assert response.status_code == 500
        record = sample.plugin.history.get(response.headers[REQUEST_ID_HEADER])
        assert record is not None
        assert record.status_code == 500


class TestPages:
    def test_history_detail_fragments_and_api(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            first = client.get("/json").headers[REQUEST_ID_HEADER]
            second = client.get("/").headers[REQUEST_ID_HEADER]
            history = client.get(PREFIX + "/")
            detail = client.get(f"{PREFIX}/requests/{second}")
            fragments = {
                panel_id: client.get(f"{PREFIX}/requests/{second}/panels/{panel_id}")
                for panel_id in DEFAULT_PANEL_IDS
            }
            api = client.get(f"{PREFIX}/api/requests/{second}")
            listing = client.get(f"{PREFIX}/api/requests")
        assert history.status_code == 200
        assert history.text.index(f"/requests/{second}") < history.text.index(f"/requests/{first}")
        assert detail.status_code == 200
        for panel_id in DEFAULT_PANEL_IDS:
            assert f'id="panel-{panel_id}"' in detail.text
        record = sample.plugin.history.get(second)
        assert record is not None
        for panel_id, fragment in fragments.items():
            panel = record.panel(panel_id)
            assert panel is not None
            assert fragment.status_code == 200
            assert fragment.text == render_panel(panel, record, PREFIX)
        assert api.json() == record.to_api_dict()
        assert sorted(api.json()["panels"]) == sorted(DEFAULT_PANEL_IDS)
        assert [r["request_id"] for r in listing.json()["requests"]] == [second, first]
        # The pages themselves were not recorded.
        assert len(sample.plugin.history) == 2

    def test_a_panel_of_the_apps_own_with_its_template_folder(
        self, sample_app: Any, tmp_path: Path
    ) -> None:
        (tmp_path / "panels").mkdir()
        (tmp_path / "panels" / "itest_weather.html").write_text(
            '<p class="weather">{{ stats.forecast }} on {{ stats.path }}</p>'
        )
        sample = sample_app(config(extra_panels=[WeatherPanel], template_dirs=[tmp_path]))
        with TestClient(sample.app) as client:
            request_id = client.get("/").headers[REQUEST_ID_HEADER]
            fragment = client.get(f"{PREFIX}/requests/{request_id}/panels/WeatherPanel")
            detail = client.get(f"{PREFIX}/requests/{request_id}")
        expected = '<p class="weather">&lt;sunny&gt; on /</p>'
        assert fragment.status_code == 200
        assert fragment.text == expected
        assert expected in detail.text

    def test_unknown_ids_and_panels(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            request_id = client.get("/").headers[REQUEST_ID_HEADER]
            unknown_request = client.get(f"{PREFIX}/requests/0123456789abcdef")
            unknown_panel = client.get(f"{PREFIX}/requests/{request_id}/panels/NopePanel")
            unknown_api = client.get(f"{PREFIX}/api/requests/0123456789abcdef")
            post = client.post(f"{PREFIX}/requests/{request_id}")
        assert unknown_request.status_code == 404
        assert "No request" in unknown_request.text
        assert unknown_panel.status_code == 404
        assert unknown_api.status_code == 404
        assert unknown_api.json() == {"error": "no request '0123456789abcdef' in the history"}
        assert post.status_code == 405


class TestRefusal:
    def test_default_show_toolbar_refuses_the_test_client(self, sample_app: Any) -> None:
        sample = sample_app(DebugToolbarConfig())
        with TestClient(sample.app) as client:
            page = client.get("/")
            pages = client.get(PREFIX + "/")
            static = client.get(PREFIX + "/static/toolbar.css")
        assert REQUEST_ID_HEADER not in page.headers
        assert b"debug-toolbar" not in page.content
        assert pages.status_code == 404
        assert pages.text == "Not Found"
        assert static.status_code == 404
        assert len(sample.plugin.history) == 0


class TestFailingPanel:
    def test_is_isolated_and_shows_its_error(self, sample_app: Any) -> None:
        with TestClient(sample_app(with_plugin=False).app) as client:
            plain = client.get("/")
        sample = sample_app(config(extra_panels=[ExplodingPanel]))
        with TestClient(sample.app) as client:
            profiled = client.get("/")
            request_id = profiled.headers[REQUEST_ID_HEADER]
            fragment = client.get(f"{PREFIX}/requests/{request_id}/panels/ExplodingPanel")
        # Byte-identical apart from the toolbar, and headers apart from length and request id.
        assert TOOLBAR_BLOCK.sub(b"", profiled.content) == plain.content
        ignored = {"content-length", REQUEST_ID_HEADER.lower()}
        assert {k: v for k, v in profiled.headers.items() if k not in ignored} == {
            k: v for k, v in plain.headers.items() if k not in ignored
        }
        item = re.search(
            r'<li class="dt-panel dt-panel-error" data-panel-id="ExplodingPanel">.*?</li>',
            profiled.text,
            re.S,
        )
        assert item is not None
        assert '<span class="dt-nav-subtitle">error</span>' in item.group(0)
        assert fragment.status_code == 200
        assert "RuntimeError: stats &lt;exploded&gt;" in fragment.text
        record = sample.plugin.history.get(request_id)
        assert record is not None
        timer = record.panel("TimerPanel")
        assert timer is not None
        assert timer.error is None
        assert timer.stats["total_ms"] > 0


class TestDisabledPanelCookie:
    def test_panel_is_listed_unchecked_and_not_run(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            client.cookies.set(DISABLED_PANELS_COOKIE, "LoggingPanel,VersionsPanel")
            response = client.get("/")
            request_id = response.headers[REQUEST_ID_HEADER]
            fragment = client.get(f"{PREFIX}/requests/{request_id}/panels/LoggingPanel")
            api = client.get(f"{PREFIX}/api/requests/{request_id}")
        record = sample.plugin.history.get(request_id)
        assert record is not None
        logging_panel = record.panel("LoggingPanel")
        assert logging_panel is not None
        assert logging_panel.enabled is False
        assert logging_panel.stats == {}
        item = re.search(
            r'<li class="dt-panel dt-panel-off" data-panel-id="LoggingPanel">.*?</li>',
            response.text,
            re.S,
        )
        assert item is not None
        assert "checked" not in item.group(0)
        assert "Turned off for this browser" in fragment.text
        assert sorted(api.json()["panels"]) == ["RequestPanel", "ResponsePanel", "TimerPanel"]


class TestOtherProtocols:
    def test_websocket_and_lifespan_pass_through(self, sample_app: Any) -> None:
        sample = sample_app(config())
        with TestClient(sample.app) as client:
            started = client.get("/started")
            with client.websocket_connect("/ws") as socket:
                socket.send_text("hi")
                reply = socket.receive_text()
        assert started.json() == {"started": True}
        assert reply == "echo: hi"
        assert [r.path for r in sample.plugin.history.records()] == ["/started"]

    def test_create_test_client_with_the_plugin(self) -> None:
        @get("/hello", media_type="text/html")
        async def hello() -> str:
            return "<html><body>hello</body></html>"

        plugin = DebugToolbarPlugin(config())
        with create_test_client([hello], plugins=[plugin]) as client:
            response = client.get("/hello")
        assert b'id="debug-toolbar"' in response.content
        assert len(plugin.history) == 1


class TestConcurrentRequests:
    @pytest.mark.asyncio
    async def test_logging_is_not_mixed_between_requests(self, sample_app: Any) -> None:
        count = 8
        sample = sample_app(config(), expected_concurrency=count)
        transport = httpx.ASGITransport(app=sample.app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            responses = await asyncio.gather(*(client.get(f"/log/{n}") for n in range(count)))
        for n, response in enumerate(responses):
            assert response.json() == {"n": n}
            record = sample.plugin.history.get(response.headers[REQUEST_ID_HEADER])
            assert record is not None
            panel = record.panel("LoggingPanel")
            assert panel is not None
            mine = [
                r["message"] for r in panel.stats["records"] if r["logger"] == "tests.sample_app"
            ]
            assert sorted(mine) == sorted(
                [
                    f"request {n} before",
                    f"request {n} child",
                    f"request {n} child",
                    f"request {n} after",
                ]
            )


class TestHeldPages:
    @pytest.mark.asyncio
    async def test_streamed_page_with_a_length_gets_the_toolbar_without_deadlock(self) -> None:
        # Litestar's Stream listens for http.disconnect while it sends its chunks. With a
        # Content-Length the toolbar buffers the page, so the server cannot know the response
        # is complete: the toolbar must answer that listener itself, or the request hangs.
        parts = (b"<html><body>", b"<p>chunked</p>", b"</body></html>")
        page = b"".join(parts)

        @get("/chunked", media_type="text/html")
        async def chunked() -> Stream:
            async def chunks() -> AsyncIterator[bytes]:
                for part in parts:
                    yield part

            return Stream(chunks(), headers={"content-length": str(len(page))})

        plugin = DebugToolbarPlugin(config())
        app = Litestar([chunked], plugins=[plugin])
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            response = await asyncio.wait_for(client.get("/chunked"), 10)
        assert response.status_code == 200
        assert TOOLBAR_BLOCK.sub(b"", response.content) == page
        assert b'id="debug-toolbar"' in response.content
        assert int(response.headers["content-length"]) == len(response.content)
        assert len(plugin.history) == 1

    @pytest.mark.asyncio
    async def test_static_html_file_gets_the_toolbar(self, tmp_path: Any) -> None:
        page = b"<html><body><p>static file</p></body></html>"
        (tmp_path / "index.html").write_bytes(page)
        plugin = DebugToolbarPlugin(config())
        app = Litestar(
            [create_static_files_router(path="/files", directories=[tmp_path], html_mode=True)],
            plugins=[plugin],
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            html = await asyncio.wait_for(client.get("/files/index.html"), 10)
        assert TOOLBAR_BLOCK.sub(b"", html.content) == page
        assert int(html.headers["content-length"]) == len(html.content)
