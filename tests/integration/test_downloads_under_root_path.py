"""Panel downloads under a server ``root_path``: the link the page shows is the one that works.

An app mounted at ``/app`` (``root_path="/app"``) gets every toolbar link with ``/app`` in front.
The Async panel's "Download trace" link once missed it (the panel built its URL from
``url_prefix`` alone); now links to any panel's downloads are built by the ASGI layer from the
same base URL as every other toolbar link. Checked through the plain middleware and through the
Litestar plugin, following the link exactly as the fragment gives it.
"""

from __future__ import annotations

import asyncio
import json
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from litestar import Litestar, get

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.asgi.types import Receive, Scope, Send
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.litestar import DebugToolbarPlugin

ROOT = "/app"
PREFIX = "/_debug_toolbar"
PAGE = b"<!DOCTYPE html><html><body><p>work</p></body></html>"


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` carrying ``data-download``, with its text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and "data-download" in found:
            self.links.append(found)


def download_links(html: str) -> list[dict[str, str | None]]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


async def spawning_app(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.gather(asyncio.create_task(asyncio.sleep(0.005), name="work-child"))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": PAGE})


@get("/work", media_type="text/html")
async def litestar_work() -> str:
    await asyncio.gather(asyncio.create_task(asyncio.sleep(0.005), name="work-child"))
    return PAGE.decode()


def toolbar_config() -> DebugToolbarConfig:
    return DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory"
    )


def middleware_app() -> Any:
    return DebugToolbarMiddleware(spawning_app, config=toolbar_config())


def litestar_app() -> Any:
    return Litestar(
        route_handlers=[litestar_work],
        plugins=[DebugToolbarPlugin(toolbar_config())],
        logging_config=None,  # no queue thread left behind by Litestar's default logging
        debug=False,
    )


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000), root_path=ROOT)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


@pytest.mark.parametrize("build", [middleware_app, litestar_app], ids=["middleware", "litestar"])
class TestDownloadUnderRootPath:
    @pytest.mark.asyncio
    async def test_the_trace_link_has_the_root_path_and_serves_the_trace(self, build: Any) -> None:
        async with client(build()) as http:
            page = await http.get(f"{ROOT}/work")
            request_id = page.headers[REQUEST_ID_HEADER]
            assert f'data-prefix="{ROOT}{PREFIX}"' in page.text
            fragment = await http.get(
                f"{ROOT}{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel"
            )
            links = download_links(fragment.text)
            assert len(links) == 1
            href = links[0]["href"]
            assert href == (
                f"{ROOT}{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel"
                "/downloads/async-trace.json"
            )
            trace = await http.get(str(href))
        assert trace.status_code == 200
        assert trace.headers["content-type"] == "application/json"
        assert trace.headers["content-disposition"] == (
            f'attachment; filename="async-trace-{request_id}.json"'
        )
        events = json.loads(trace.content)["traceEvents"]
        thread_names = [
            event["args"]["name"]
            for event in events
            if event["ph"] == "M" and event["name"] == "thread_name"
        ]
        assert any(name.startswith("work-child") for name in thread_names)

    @pytest.mark.asyncio
    async def test_the_detail_page_links_the_same_download(self, build: Any) -> None:
        async with client(build()) as http:
            page = await http.get(f"{ROOT}/work")
            request_id = page.headers[REQUEST_ID_HEADER]
            detail = await http.get(f"{ROOT}{PREFIX}/requests/{request_id}")
        assert [link["href"] for link in download_links(detail.text)] == [
            f"{ROOT}{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel"
            "/downloads/async-trace.json"
        ]
