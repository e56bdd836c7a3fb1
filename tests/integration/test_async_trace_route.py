"""The Async panel through the toolbar's pages: timeline in the fragment, trace download."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.export import chrome_trace_from_stats
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

PREFIX = "/_debug_toolbar"


async def spawning_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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


def client(**options: Any) -> httpx.AsyncClient:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel], async_profiler_backend="taskfactory", **options
    )
    app = DebugToolbarMiddleware(spawning_app, config=config)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


class TestAsyncTraceDownload:
    @pytest.mark.asyncio
    async def test_trace_is_a_chrome_trace_of_this_request(self) -> None:
        async with client() as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            trace = await http.get(f"{PREFIX}/requests/{request_id}/async-trace.json")
        assert trace.status_code == 200
        assert trace.headers["content-type"].startswith("application/json")
        assert f'filename="async-trace-{request_id}.json"' in trace.headers["content-disposition"]
        events = json.loads(trace.content)["traceEvents"]
        thread_names = {
            event["args"]["name"]
            for event in events
            if event["ph"] == "M" and event["name"] == "thread_name"
        }
        assert any(name.startswith("short-child") for name in thread_names)
        assert any(name.startswith("long-child") for name in thread_names)
        spans = [event for event in events if event["ph"] == "X"]
        assert all(event["ts"] >= 0 and event["dur"] >= 0 for event in spans)

    @pytest.mark.asyncio
    async def test_unknown_request_and_request_without_the_panel_are_404_json(self) -> None:
        async with client() as http:
            missing = await http.get(f"{PREFIX}/requests/nope/async-trace.json")
            response = await http.get(
                "/work", headers={"cookie": "debug_toolbar_disabled=AsyncProfilerPanel"}
            )
            request_id = response.headers["x-debug-toolbar-request-id"]
            without = await http.get(f"{PREFIX}/requests/{request_id}/async-trace.json")
        assert missing.status_code == 404
        assert "error" in missing.json()
        assert without.status_code == 404
        assert "no async profile" in without.json()["error"]

    @pytest.mark.asyncio
    async def test_a_task_list_that_fails_to_build_is_an_error_not_a_traceback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken_get_stats(self: TaskFactoryBackend) -> dict[str, Any]:
            raise RuntimeError("columns <gone>")

        monkeypatch.setattr(TaskFactoryBackend, "get_stats", broken_get_stats)
        async with client() as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            trace = await http.get(f"{PREFIX}/requests/{request_id}/async-trace.json")
            fragment = await http.get(f"{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel")
        assert response.status_code == 200  # the request itself never built the list
        assert trace.status_code == 404
        assert "no async profile" in trace.json()["error"]
        assert fragment.status_code == 200
        assert "RuntimeError: columns &lt;gone&gt;" in fragment.text


class TestTimelineInThePages:
    @pytest.mark.asyncio
    async def test_fragment_and_detail_render_the_panel_with_its_timeline(self) -> None:
        async with client(async_max_timeline_rows=1) as http:
            response = await http.get("/work")
            request_id = response.headers["x-debug-toolbar-request-id"]
            fragment = await http.get(f"{PREFIX}/requests/{request_id}/panels/AsyncProfilerPanel")
            detail = await http.get(f"{PREFIX}/requests/{request_id}")
        assert fragment.status_code == 200
        assert detail.status_code == 200
        for html in (fragment.text, detail.text):
            assert "short-child" in html
            assert f"{request_id}/async-trace.json" in html
