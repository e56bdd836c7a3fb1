"""The Async panel through the toolbar's pages: timeline in the fragment, trace download.

The trace is the panel's download ``async-trace.json`` (``Panel.downloads``), served by the
pages at ``{prefix}/requests/{id}/panels/AsyncProfilerPanel/downloads/async-trace.json``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.asgi.types import Receive, Scope, Send
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable

PREFIX = "/_debug_toolbar"


def trace_path(request_id: str) -> str:
    return f"{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel/downloads/async-trace.json"


async def spawning_app(scope: Scope, receive: Receive, send: Send) -> None:
    async def child(delay: float) -> None:
        await asyncio.sleep(delay)

    await asyncio.gather(
        asyncio.create_task(child(0.01), name="short-child"),
        asyncio.create_task(child(0.03), name="long-child"),
    )
    body = b'{"ok": true}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def toolbar(**options: Any) -> DebugToolbarMiddleware:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory", **options
    )
    return DebugToolbarMiddleware(spawning_app, config=config)


def client(app: DebugToolbarMiddleware | None = None, **options: Any) -> httpx.AsyncClient:
    app = toolbar(**options) if app is None else app
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


class TestAsyncTraceDownload:
    @pytest.mark.asyncio
    async def test_trace_is_a_chrome_trace_of_this_request(self) -> None:
        app = toolbar()
        async with client(app) as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            trace = await http.get(trace_path(request_id))
        assert trace.status_code == 200
        assert trace.headers["content-type"] == "application/json"
        assert trace.headers["content-disposition"] == (
            f'attachment; filename="async-trace-{request_id}.json"'
        )
        assert trace.headers["cache-control"] == "no-store"
        # Exactly what the panel's declared builder makes of the stored stats (the export's
        # trace, see test_panel.py): the pages add nothing of their own.
        record = app.history.get(request_id)
        assert record is not None
        panel = record.panel("AsyncProfilerPanel")
        assert panel is not None
        download = AsyncProfilerPanel.get_download("async-trace.json")
        assert download is not None
        expected = download.build(panel.stats, record)
        assert isinstance(expected, dict)
        assert json.loads(trace.content) == expected
        events = expected["traceEvents"]
        thread_names = {
            event["args"]["name"]
            for event in events
            if event["ph"] == "M" and event["name"] == "thread_name"
        }
        assert any(name.startswith("short-child") for name in thread_names)
        assert any(name.startswith("long-child") for name in thread_names)

    @pytest.mark.asyncio
    async def test_head_announces_the_same_file_without_a_body(self) -> None:
        async with client() as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            full = await http.get(trace_path(request_id))
            head = await http.head(trace_path(request_id))
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(full.content))
        assert head.headers["content-disposition"] == full.headers["content-disposition"]

    @pytest.mark.asyncio
    async def test_unknown_request_and_request_without_the_panel_are_404_pages(self) -> None:
        async with client() as http:
            missing = await http.get(trace_path("nope"))
            response = await http.get(
                "/work", headers={"cookie": "debug_toolbar_disabled=AsyncProfilerPanel"}
            )
            request_id = response.headers["x-debug-toolbar-request-id"]
            without = await http.get(trace_path(request_id))
        assert missing.status_code == 404
        assert "No request &#39;nope&#39; in the history" in missing.text
        assert without.status_code == 404
        assert "content-disposition" not in without.headers
        assert "The Async panel did not run for this request" in without.text

    @pytest.mark.asyncio
    async def test_the_old_trace_address_is_gone(self) -> None:
        async with client() as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            old = await http.get(f"{PREFIX}/requests/{request_id}/async-trace.json")
        assert old.status_code == 404
        assert "There is no toolbar page at this address." in old.text

    @pytest.mark.asyncio
    async def test_a_task_list_that_fails_to_build_is_an_error_not_a_traceback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken_to_dicts(self: TaskTable) -> list[dict[str, Any]]:
            raise RuntimeError("columns <gone>")

        # The deferred part of the stats (the task list) is built on the first read.
        monkeypatch.setattr(TaskTable, "to_dicts", broken_to_dicts)
        async with client() as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            trace = await http.get(trace_path(request_id))
            fragment = await http.get(f"{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel")
        assert response.status_code == 200  # the request itself never built the list
        assert trace.status_code == 404
        assert "content-disposition" not in trace.headers
        assert "The Async panel failed on this request" in trace.text
        assert "RuntimeError: columns &lt;gone&gt;" in trace.text
        assert fragment.status_code == 200
        assert "RuntimeError: columns &lt;gone&gt;" in fragment.text


class TestTimelineInThePages:
    @pytest.mark.asyncio
    async def test_fragment_and_detail_render_the_panel_with_its_timeline(self) -> None:
        # Two rows: the request's own task, then its first child.
        async with client(async_max_timeline_rows=2) as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            fragment = await http.get(f"{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel")
            detail = await http.get(f"{PREFIX}/requests/{request_id}")
        assert fragment.status_code == 200
        assert detail.status_code == 200
        for html in (fragment.text, detail.text):
            assert "short-child" in html
            assert "the request&#39;s own task" in html or "the request's own task" in html
            assert f'href="{trace_path(request_id)}"' in html
