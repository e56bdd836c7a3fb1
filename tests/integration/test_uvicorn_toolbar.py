"""The toolbar through a real uvicorn server on 127.0.0.1 (a loopback client: the default
``show_toolbar`` lets it in)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.asgi.static import load_static
from debug_toolbar.core.config import DEFAULT_PANELS, DebugToolbarConfig

TOOLBAR_BLOCK = re.compile(rb"<!-- debug-toolbar -->.*<!-- /debug-toolbar -->\n?", re.DOTALL)
DEFAULT_PANEL_IDS = [path.rsplit(".", 1)[1] for path in DEFAULT_PANELS]
PREFIX = "/_debug_toolbar"
SAMPLE_PAGE = (
    "<!DOCTYPE html><html><head><title>Sample</title></head>"
    "<body><h1>Sample café</h1></body></html>"
).encode()


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=10, **kwargs)


class TestLitestarOverUvicorn:
    @pytest.mark.parametrize("loop", ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)])
    def test_page_panels_and_pages(self, uvicorn_server: Any, sample_app: Any, loop: str) -> None:
        sample = sample_app(DebugToolbarConfig())
        server = uvicorn_server(sample.app, loop=loop)
        page = get(server.url + "/")
        request_id = page.headers[REQUEST_ID_HEADER]
        assert int(page.headers["content-length"]) == len(page.content)
        assert TOOLBAR_BLOCK.sub(b"", page.content) == SAMPLE_PAGE
        for panel_id in DEFAULT_PANEL_IDS:
            fragment = get(f"{server.url}{PREFIX}/requests/{request_id}/panels/{panel_id}")
            assert fragment.status_code == 200, panel_id
        detail = get(f"{server.url}{PREFIX}/requests/{request_id}")
        assert detail.status_code == 200
        assert all(f'id="panel-{panel_id}"' in detail.text for panel_id in DEFAULT_PANEL_IDS)
        css = get(f"{server.url}{PREFIX}/static/toolbar.css")
        expected_css = load_static("toolbar.css")
        assert expected_css is not None
        assert css.content == expected_css.content
        history = get(f"{server.url}{PREFIX}/")
        assert f"/requests/{request_id}" in history.text
        assert [r.request_id for r in sample.plugin.history.records()] == [request_id]

    def test_json_then_its_record_at_once(self, uvicorn_server: Any, sample_app: Any) -> None:
        sample = sample_app(DebugToolbarConfig())
        server = uvicorn_server(sample.app)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(5):
                response = client.get("/json")
                assert response.content == b'{"answer":42}'
                request_id = response.headers[REQUEST_ID_HEADER]
                api = client.get(f"{PREFIX}/api/requests/{request_id}")
                assert api.status_code == 200
                assert api.json()["status_code"] == 200
                assert api.json()["path"] == "/json"

    def test_unknown_ids_and_panels_are_404(self, uvicorn_server: Any, sample_app: Any) -> None:
        server = uvicorn_server(sample_app(DebugToolbarConfig()).app)
        request_id = get(server.url + "/").headers[REQUEST_ID_HEADER]
        assert get(f"{server.url}{PREFIX}/requests/ffff").status_code == 404
        assert get(f"{server.url}{PREFIX}/requests/{request_id}/panels/Nope").status_code == 404
        missing = get(f"{server.url}{PREFIX}/api/requests/ffff")
        assert missing.status_code == 404
        assert "error" in missing.json()

    def test_lifespan_and_streams(self, uvicorn_server: Any, sample_app: Any) -> None:
        sample = sample_app(DebugToolbarConfig())
        server = uvicorn_server(sample.app, lifespan="on")
        assert get(server.url + "/started").json() == {"started": True}
        streamed = get(server.url + "/stream")
        assert streamed.content == b"<html><body><p>streamed</p></body></html>"
        assert REQUEST_ID_HEADER in streamed.headers

    @pytest.mark.asyncio
    async def test_concurrent_requests_keep_their_own_logs(
        self, uvicorn_server: Any, sample_app: Any
    ) -> None:
        count = 6
        sample = sample_app(DebugToolbarConfig(), expected_concurrency=count)
        server = uvicorn_server(sample.app)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            responses = await asyncio.gather(*(client.get(f"/log/{n}") for n in range(count)))
        for n, response in enumerate(responses):
            record = sample.plugin.history.get(response.headers[REQUEST_ID_HEADER])
            assert record is not None
            panel = record.panel("LoggingPanel")
            assert panel is not None
            mine = sorted(
                r["message"] for r in panel.stats["records"] if r["logger"] == "tests.sample_app"
            )
            assert mine == sorted(
                [f"request {n} after", f"request {n} before", *[f"request {n} child"] * 2]
            )


class TestPlainAsgiOverUvicorn:
    def test_middleware_injects_and_serves_its_pages(self, uvicorn_server: Any) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            body = b"<html><BODY><p>plain</p></BODY></html>"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/html"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        middleware = DebugToolbarMiddleware(app)
        server = uvicorn_server(middleware, lifespan="on")
        page = get(server.url + "/anything")
        request_id = page.headers[REQUEST_ID_HEADER]
        assert page.content.endswith(b"<!-- /debug-toolbar --></BODY></html>")
        assert TOOLBAR_BLOCK.sub(b"", page.content) == b"<html><BODY><p>plain</p></BODY></html>"
        detail = get(f"{server.url}{PREFIX}/requests/{request_id}")
        assert detail.status_code == 200
        assert "/anything" in detail.text
        assert len(middleware.history) == 1
