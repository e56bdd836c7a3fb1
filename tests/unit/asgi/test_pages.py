"""ToolbarPages: routing, refusals, escaping and JSON shapes, through real ASGI calls."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
import pytest

from debug_toolbar.asgi.pages import ToolbarPages
from debug_toolbar.asgi.static import load_static
from debug_toolbar.asgi.views import render_toolbar
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.records import PanelRecord, RequestRecord
from debug_toolbar.core.rendering import render_panel
from debug_toolbar.core.storage import RequestHistory

PREFIX = "/_debug_toolbar"
LOOPBACK = ("127.0.0.1", 5000)


class PlainPanel(Panel):
    title = "Plain"


def panel(panel_id: str = "PlainPanel", **changes: Any) -> PanelRecord:
    fields: dict[str, Any] = {
        "panel_id": panel_id,
        "title": "Plain <title>",
        "nav_title": "Plain",
        "nav_subtitle": "3 things",
        "template": "",
        "has_content": True,
        "enabled": True,
        "stats": {"count": 3},
        "error": None,
    }
    fields.update(changes)
    return PanelRecord(**fields)


def record(request_id: str, path: str = "/", **changes: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": "GET",
        "path": path,
        "query_string": "",
        "status_code": 200,
        "duration_ms": 12.5,
        "started_at": 1_700_000_000.0,
        "panels": (panel(),),
    }
    fields.update(changes)
    return RequestRecord(**fields)


@pytest.fixture
def history() -> RequestHistory:
    history = RequestHistory(10)
    history.add(record("old1", "/first"))
    history.add(
        record(
            "new2",
            "/second",
            query_string="q=<x>",
            status_code=503,
            panels=(
                panel(),
                panel("BrokenPanel", error="RuntimeError: boom <b>", stats={}),
                panel("OffPanel", enabled=False, stats={}, nav_subtitle=""),
                panel("BadTemplatePanel", template="panels/no_such_template.html"),
            ),
        )
    )
    return history


@pytest.fixture
def config() -> DebugToolbarConfig:
    return DebugToolbarConfig(panels=[PlainPanel])


def client(app: Any, peer: tuple[str, int] = LOOPBACK, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


class TestHistoryPage:
    @pytest.mark.asyncio
    async def test_lists_requests_newest_first_with_links(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(PREFIX + "/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        html = response.text
        assert html.index("/second") < html.index("/first")
        assert f'href="{PREFIX}/requests/new2"' in html
        assert f'href="{PREFIX}/requests/old1"' in html
        assert "q=&lt;x&gt;" in html  # escaped
        assert "q=<x>" not in html
        assert 'class="dt-badge dt-badge-error">503<' in html
        assert "12.5 ms" in html

    @pytest.mark.asyncio
    async def test_prefix_without_slash_is_the_history_too(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(PREFIX)
        assert response.status_code == 200
        assert "/second" in response.text

    @pytest.mark.asyncio
    async def test_empty_history(self, config: DebugToolbarConfig) -> None:
        async with client(ToolbarPages(config, RequestHistory(3))) as c:
            response = await c.get(PREFIX + "/")
        assert response.status_code == 200
        assert "No requests recorded yet" in response.text
        assert "The last 3 requests are kept" in response.text


class TestDetailPage:
    @pytest.mark.asyncio
    async def test_every_panel_in_its_place(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/requests/new2")
        assert response.status_code == 200
        html = response.text
        for panel_id in ("PlainPanel", "BrokenPanel", "OffPanel", "BadTemplatePanel"):
            assert f'id="panel-{panel_id}"' in html
        assert "Plain &lt;title&gt;" in html
        assert "RuntimeError: boom &lt;b&gt;" in html
        assert "Turned off for this browser" in html
        # A panel whose template fails shows that, and the rest of the page is intact.
        assert "rendering its template failed: TemplateNotFound" in html
        assert html.rstrip().endswith("</html>")

    @pytest.mark.asyncio
    async def test_unknown_request_is_a_404_page(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/requests/<nope>")
        assert response.status_code == 404
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "No request &#39;&lt;nope&gt;&#39; in the history" in response.text


class TestPanelFragment:
    @pytest.mark.asyncio
    async def test_is_the_panels_rendered_template(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/requests/new2/panels/BrokenPanel")
        stored = history.get("new2")
        assert stored is not None
        broken = stored.panel("BrokenPanel")
        assert broken is not None
        assert response.status_code == 200
        assert response.text == render_panel(broken, stored, PREFIX)
        assert "<html" not in response.text

    @pytest.mark.asyncio
    async def test_unknown_panel_is_a_404(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/requests/new2/panels/NoSuchPanel")
            missing = await c.get(f"{PREFIX}/requests/gone/panels/PlainPanel")
        assert response.status_code == 404
        assert "has no panel &#39;NoSuchPanel&#39;" in response.text
        assert missing.status_code == 404


class TestApi:
    @pytest.mark.asyncio
    async def test_one_request(self, config: DebugToolbarConfig, history: RequestHistory) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/api/requests/new2")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        data = response.json()
        assert data["request_id"] == "new2"
        assert data["status_code"] == 503
        assert data["query_string"] == "q=<x>"
        assert data["panels"] == {"PlainPanel": {"count": 3}, "BadTemplatePanel": {"count": 3}}
        assert data["panel_errors"] == {"BrokenPanel": "RuntimeError: boom <b>"}

    @pytest.mark.asyncio
    async def test_list(self, config: DebugToolbarConfig, history: RequestHistory) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/api/requests")
        data = response.json()
        assert [r["request_id"] for r in data["requests"]] == ["new2", "old1"]
        assert data["requests"][1] == {
            "request_id": "old1",
            "method": "GET",
            "path": "/first",
            "query_string": "",
            "status_code": 200,
            "duration_ms": 12.5,
            "started_at": 1_700_000_000.0,
            "error": None,
            "body_cut_at": None,
            "client_disconnected": False,
        }
        assert data["max_size"] == 10
        assert data["evicted"] == 0

    @pytest.mark.asyncio
    async def test_non_json_stats_do_not_break_the_api(self, config: DebugToolbarConfig) -> None:
        history = RequestHistory(2)
        history.add(record("odd", panels=(panel(stats={"ids": {1, 2}, "raw": b"x"}),)))
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/api/requests/odd")
        assert response.status_code == 200
        assert response.json()["panels"]["PlainPanel"] == {"ids": "{1, 2}", "raw": "b'x'"}

    @pytest.mark.asyncio
    @pytest.mark.parametrize("path", ["/api/requests/gone", "/api/nothing", "/api/requests/a/b"])
    async def test_errors_are_json(
        self, config: DebugToolbarConfig, history: RequestHistory, path: str
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(PREFIX + path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert set(json.loads(response.content)) == {"error"}


class TestStatic:
    @pytest.mark.asyncio
    async def test_serves_packaged_files(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        css = load_static("toolbar.css")
        assert css is not None
        async with client(ToolbarPages(config, history)) as c:
            plain = await c.get(f"{PREFIX}/static/toolbar.css")
            versioned = await c.get(f"{PREFIX}/static/toolbar.css?v={css.digest}")
            stale = await c.get(f"{PREFIX}/static/toolbar.css?v=old")
            js = await c.get(f"{PREFIX}/static/toolbar.js")
        assert plain.status_code == 200
        assert plain.content == css.content
        assert plain.headers["content-type"] == "text/css; charset=utf-8"
        assert plain.headers["cache-control"] == "no-cache"
        assert plain.headers["etag"] == f'"{css.digest}"'
        assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert stale.headers["cache-control"] == "no-cache"
        assert js.headers["content-type"] == "text/javascript; charset=utf-8"

    @pytest.mark.asyncio
    async def test_revalidation(self, config: DebugToolbarConfig, history: RequestHistory) -> None:
        css = load_static("toolbar.css")
        assert css is not None
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(
                f"{PREFIX}/static/toolbar.css", headers={"if-none-match": f'W/"x", "{css.digest}"'}
            )
        assert response.status_code == 304
        assert response.content == b""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "raw_path",
        [
            b"/static/..%2F__init__.py",
            b"/static/..%2f..%2fpyproject.toml",
            b"/static/.hidden",
            b"/static/%2e%2e",
            b"/static/toolbar.css%00.png",
            b"/static/missing.css",
        ],
    )
    async def test_traversal_and_unknown_files_are_refused(
        self, config: DebugToolbarConfig, history: RequestHistory, raw_path: bytes
    ) -> None:
        # Built by hand: an HTTP client would normalise the dots away before sending.
        pages = ToolbarPages(config, history)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        path = PREFIX.encode() + raw_path
        scope = {
            "type": "http",
            "method": "GET",
            "path": unquote_to_bytes(path).decode("latin-1"),
            "raw_path": path,
            "query_string": b"",
            "headers": [],
            "client": LOOPBACK,
        }
        await pages(scope, receive, send)
        assert sent[0]["status"] == 404
        assert b"import" not in sent[1]["body"]


class TestRefusals:
    @pytest.mark.asyncio
    async def test_non_loopback_client_gets_a_bare_404(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history), peer=("10.0.0.1", 123)) as c:
            for path in ("/", "/requests/new2", "/api/requests/new2", "/static/toolbar.css"):
                response = await c.get(PREFIX + path)
                assert response.status_code == 404
                assert response.text == "Not Found"
                assert response.headers["content-type"] == "text/plain; charset=utf-8"

    @pytest.mark.asyncio
    async def test_show_toolbar_that_raises_refuses(self, history: RequestHistory) -> None:
        def broken(context: object) -> bool:
            raise RuntimeError("predicate bug")

        config = DebugToolbarConfig(panels=[PlainPanel], show_toolbar=broken)
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(PREFIX + "/")
        assert response.status_code == 404
        assert response.text == "Not Found"

    @pytest.mark.asyncio
    async def test_disabled_config_serves_nothing(self, history: RequestHistory) -> None:
        config = DebugToolbarConfig(panels=[PlainPanel], enabled=False)
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(PREFIX + "/")
        assert response.status_code == 404

    @pytest.mark.asyncio
    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    async def test_other_methods_are_405(
        self, config: DebugToolbarConfig, history: RequestHistory, method: str
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.request(method, f"{PREFIX}/requests/new2")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"

    @pytest.mark.asyncio
    async def test_unknown_page_is_a_404_page(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            response = await c.get(f"{PREFIX}/whatever/else")
        assert response.status_code == 404
        assert "There is no toolbar page at this address." in response.text

    @pytest.mark.asyncio
    async def test_head_sends_headers_only(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history)) as c:
            get = await c.get(f"{PREFIX}/requests/new2")
            head = await c.head(f"{PREFIX}/requests/new2")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(get.content))

    @pytest.mark.asyncio
    async def test_websocket_is_closed(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "websocket.connect"}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": PREFIX + "/", "client": LOOPBACK, "headers": []}
        await ToolbarPages(config, history)(scope, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008}]

    @pytest.mark.asyncio
    async def test_lifespan_is_ignored(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        sent: list[Any] = []

        async def receive() -> Any:
            raise AssertionError("the pages have no lifespan to run")

        async def send(message: Any) -> None:
            sent.append(message)

        await ToolbarPages(config, history)({"type": "lifespan"}, receive, send)
        assert sent == []


class TestMountedAndRootPath:
    @pytest.mark.asyncio
    async def test_mount_remainder_paths_work(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        # Litestar hands a mount the rest of the path, with a trailing slash added.
        async with client(ToolbarPages(config, history)) as c:
            detail = await c.get("/requests/new2/")
            fragment = await c.get("/requests/new2/panels/PlainPanel/")
            css = await c.get("/static/toolbar.css/")
        assert detail.status_code == 200
        assert 'id="panel-PlainPanel"' in detail.text
        assert fragment.status_code == 200
        assert css.status_code == 200

    @pytest.mark.asyncio
    async def test_links_include_the_root_path(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(ToolbarPages(config, history), root_path="/app") as c:
            response = await c.get(f"/app{PREFIX}/")
        assert response.status_code == 200
        assert f'href="/app{PREFIX}/requests/new2"' in response.text
        assert f'href="/app{PREFIX}/static/toolbar.css?v=' in response.text


class TestInternalFailure:
    @pytest.mark.asyncio
    async def test_a_broken_view_is_a_plain_500_without_traceback(
        self, config: DebugToolbarConfig, caplog: pytest.LogCaptureFixture
    ) -> None:
        class BrokenHistory(RequestHistory):
            def records(self) -> list[RequestRecord]:
                raise RuntimeError("storage exploded")

        async with client(ToolbarPages(config, BrokenHistory(2))) as c:
            response = await c.get(PREFIX + "/")
        assert response.status_code == 500
        assert response.text == "Debug toolbar error: see the server log."
        assert "storage exploded" in caplog.text


class TestBoundedPages:
    """However many and however large the kept requests, each page stays small."""

    @pytest.mark.asyncio
    async def test_the_history_is_paged(self, config: DebugToolbarConfig) -> None:
        history = RequestHistory(1000)
        for index in range(250):
            history.add(record(f"r{index:03}", f"/page-{index:03}"))
        async with client(ToolbarPages(config, history)) as c:
            first = (await c.get(PREFIX + "/")).text
            last = (await c.get(PREFIX + "/?page=3")).text
            beyond = (await c.get(PREFIX + "/?page=99")).text
            garbage = (await c.get(PREFIX + "/?page=x1")).text
        assert first.count("/requests/r") == 200  # two links a row
        assert "/page-249" in first
        assert "/page-150" in first
        assert "/page-149" not in first
        assert "250 kept, newest first; showing 1–100." in first
        assert f'href="{PREFIX}/?page=2" rel="next">Older</a>' in first
        assert "Newer" not in first
        assert last.count("/requests/r") == 100
        assert "/page-000" in last
        assert "showing 201–250." in last
        assert f'href="{PREFIX}/?page=2" rel="prev">Newer</a>' in last
        assert beyond == last
        assert garbage == first

    @pytest.mark.asyncio
    async def test_long_paths_are_clipped_in_the_list(self, config: DebugToolbarConfig) -> None:
        history = RequestHistory(10)
        history.add(record("long", "/" + "p" * 4000, query_string="q=" + "a" * 4000))
        async with client(ToolbarPages(config, history)) as c:
            html = (await c.get(PREFIX + "/")).text
        assert "p" * 199 + "…(4,001 characters)?q=" + "a" * 198 + "…(4,002 characters)" in html
        assert "p" * 300 not in html

    @pytest.mark.asyncio
    async def test_records_dropped_for_size_are_counted(self, config: DebugToolbarConfig) -> None:
        history = RequestHistory(10, max_bytes=64 * 1024)
        for index in range(3):
            history.add(record(f"big{index}", query_string="q=" + "a" * 40_000))
        async with client(ToolbarPages(config, history)) as c:
            html = (await c.get(PREFIX + "/")).text
            listing = (await c.get(PREFIX + "/api/requests")).json()
        assert "within 64 KiB; 2 older were dropped (2 of them for size)." in html
        assert (listing["evicted"], listing["evicted_for_size"]) == (2, 2)
        assert listing["max_bytes"] == 64 * 1024

    def test_the_injected_toolbar_carries_a_long_url_clipped(self) -> None:
        query = "q=" + "a" * 4000 + "…(1,048,576 characters, 1,044,480 not kept)"
        html = render_toolbar(record("long", "/x", query_string=query), PREFIX)
        assert html.count("a" * 198 + "…(1,048,576 characters)") == 2  # the tooltip and the line
        assert "a" * 300 not in html
        assert len(html) < 10_000
