"""Panels' columns on the history page (``Panel.history_columns`` / ``history_cells``).

Through real ASGI calls to the toolbar's pages, with records built by hand: each request's
cells in its own row, under its panel's headings, read from the record's head only (no
deferred part is built), and a panel that was off, failed, was not there yet, or whose cells
raise, never breaks the page.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import views
from debug_toolbar.asgi.pages import ToolbarPages
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panel import HistoryCell, HistoryColumn, Panel
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.timer import TimerPanel
from debug_toolbar.core.records import PanelRecord, RequestRecord
from debug_toolbar.core.storage import RequestHistory

PREFIX = "/_debug_toolbar"
ASYNC = AsyncProfilerPanel.panel_id


def async_head(
    tasks: int, own: int, suffered: int, slowest: dict[str, Any] | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "total_tasks": tasks,
        "completed": tasks,
        "blocking_calls": own,
        "suffered_blocking_calls": suffered,
    }
    if slowest is not None:
        summary["slowest_await"] = slowest
    return {"summary": summary, "steps_unavailable": None}


def slowest(ms: float, filename: str, lineno: int) -> dict[str, Any]:
    return {
        "duration_ms": ms,
        "filename": filename,
        "lineno": lineno,
        "function": "handler",
        "code": None,
        "awaited": "sleep 50.0 ms",
    }


def panel(panel_id: str = ASYNC, **changes: Any) -> PanelRecord:
    fields: dict[str, Any] = {
        "panel_id": panel_id,
        "title": "Async",
        "nav_title": "Async",
        "nav_subtitle": "",
        "template": "",
        "has_content": True,
        "enabled": True,
        "stats": {},
    }
    fields.update(changes)
    return PanelRecord(**fields)


def record(request_id: str, *panels: PanelRecord) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        method="GET",
        path=f"/{request_id}",
        query_string="",
        status_code=200,
        duration_ms=80.0,
        started_at=1_700_000_000.0,
        panels=panels,
    )


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def cells_of(html: str, request_id: str) -> dict[str, str]:
    """``{column key: the cell's HTML}`` of one request's row."""
    row = re.search(rf'<tr data-request-id="{request_id}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for {request_id}"
    return dict(re.findall(r'<td[^>]*data-column="([^"]+)"[^>]*>(.*?)</td>', row.group(1), re.S))


def titles_of(html: str, request_id: str) -> dict[str, str]:
    row = re.search(rf'<tr data-request-id="{request_id}">(.*?)</tr>', html, re.S)
    assert row is not None
    return dict(re.findall(r'<td[^>]*data-column="([^"]+)" title="([^"]*)"', row.group(1)))


async def history_page(config: DebugToolbarConfig, *records: RequestRecord) -> str:
    history = RequestHistory(20)
    for one in records:
        history.add(one)
    async with client(ToolbarPages(config, history)) as c:
        response = await c.get(PREFIX + "/")
    assert response.status_code == 200
    return response.text


def counting_builder(calls: list[str]) -> Any:
    def build() -> dict[str, Any]:
        calls.append("built")
        return {"tasks": ["costly"]}

    return build


class TestThePage:
    @pytest.mark.asyncio
    async def test_each_request_its_own_numbers_under_the_panels_headings(self) -> None:
        config = DebugToolbarConfig(panels=[TimerPanel], extra_panels=[AsyncProfilerPanel])
        built: list[str] = []
        html = await history_page(
            config,
            record(
                "quiet",
                panel(stats=async_head(0, 0, 0, slowest(1.5, "/srv/app/a.py", 7))),
            ),
            record(
                "busy",
                panel(
                    stats=async_head(120, 2, 3, slowest(61.5, "/srv/app/views.py", 42)),
                    deferred=[counting_builder(built)],
                ),
            ),
        )
        headings = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', html)
        own = ["Time", "Method", "Path", "Status", "Duration"]
        assert headings == [*own, "Tasks", "Blocking", "Slowest await"]
        assert f'data-panel-id="{ASYNC}" title="Tasks the request spawned"' in html
        busy, quiet = cells_of(html, "busy"), cells_of(html, "quiet")
        assert busy["tasks"] == "120"
        assert busy["blocking"] == (
            '<span class="dt-badge dt-badge-warn">2</span> '
            '<span class="dt-muted">+3 suffered</span>'
        )
        assert busy["slowest_await"] == '61.5 ms <span class="dt-muted">views.py:42</span>'
        assert titles_of(html, "busy")["slowest_await"] == (
            "61.5 ms awaiting sleep 50.0 ms\nin handler at /srv/app/views.py:42"
        )
        assert (quiet["tasks"], quiet["blocking"]) == ("0", "0")
        assert quiet["slowest_await"] == '1.5 ms <span class="dt-muted">a.py:7</span>'
        # The history read the records' heads: the deferred detail was not built.
        assert built == []

    @pytest.mark.asyncio
    async def test_records_the_columns_cannot_fill(self) -> None:
        config = DebugToolbarConfig(extra_panels=[AsyncProfilerPanel])
        html = await history_page(
            config,
            record("older", panel(stats=async_head(4, 1, 0, None))),  # no slowest_await key
            record("off", panel(enabled=False)),
            record("failed", panel(error="RuntimeError: boom <b>")),
            record("before", panel("TimerPanel", title="Time")),  # the Async panel not there yet
        )
        older = cells_of(html, "older")
        assert older["tasks"] == "4"
        assert older["blocking"] == '<span class="dt-badge dt-badge-warn">1</span>'
        assert older["slowest_await"] == "–"
        assert set(cells_of(html, "off").values()) == {"off"}
        assert titles_of(html, "off")["tasks"] == "The Async panel was off for this request"
        assert set(cells_of(html, "failed").values()) == {
            '<span class="dt-badge dt-badge-warn">error</span>'
        }
        assert titles_of(html, "failed")["tasks"] == (
            "The Async panel failed: RuntimeError: boom &lt;b&gt;"
        )
        assert set(cells_of(html, "before").values()) == {"–"}

    @pytest.mark.asyncio
    async def test_what_a_cell_shows_is_escaped(self) -> None:
        config = DebugToolbarConfig(extra_panels=[AsyncProfilerPanel])
        evil = slowest(3.0, '/srv/<script>x"y&.py', 1)
        html = await history_page(config, record("evil", panel(stats=async_head(0, 0, 0, evil))))
        assert "<script>" not in html
        assert cells_of(html, "evil")["slowest_await"] == (
            '3.0 ms <span class="dt-muted">&lt;script&gt;x&#34;y&amp;.py:1</span>'
        )

    @pytest.mark.asyncio
    async def test_no_panel_with_columns_no_extra_column(self) -> None:
        html = await history_page(
            DebugToolbarConfig(panels=[TimerPanel]), record("r1", panel("TimerPanel"))
        )
        assert "data-column=" not in html
        assert cells_of(html, "r1") == {}


class CellsPanel(Panel):
    title = "Cells"
    history_columns = (HistoryColumn("n", "N", numeric=True),)

    @classmethod
    def history_cells(cls, stats: Any) -> dict[str, HistoryCell]:
        return {"n": HistoryCell(str(stats["n"]))}


class BrokenCellsPanel(Panel):
    title = "Broken"
    history_columns = (HistoryColumn("x", "X"),)

    @classmethod
    def history_cells(cls, stats: Any) -> dict[str, HistoryCell]:
        raise RuntimeError("no cells today")


class TestOwnPanels:
    @pytest.mark.asyncio
    async def test_a_panels_cells_in_toolbar_order(self) -> None:
        config = DebugToolbarConfig(panels=[CellsPanel], extra_panels=[AsyncProfilerPanel])
        html = await history_page(
            config,
            record(
                "r1",
                panel("CellsPanel", stats={"n": 7}),
                panel(stats=async_head(1, 0, 0, None)),
            ),
        )
        assert list(cells_of(html, "r1")) == ["n", "tasks", "blocking", "slowest_await"]
        assert cells_of(html, "r1")["n"] == "7"

    @pytest.mark.asyncio
    async def test_cells_that_raise_leave_the_page_whole_and_are_logged_once(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(views, "_cells_failed", set())
        config = DebugToolbarConfig(panels=[BrokenCellsPanel, CellsPanel])
        records = [
            record(f"r{n}", panel("BrokenCellsPanel"), panel("CellsPanel", stats={"n": n}))
            for n in range(3)
        ]
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            html = await history_page(config, *records)
        assert [cells_of(html, f"r{n}") for n in range(3)] == [
            {"x": "–", "n": str(n)} for n in range(3)
        ]
        [warning] = [r for r in caplog.records if "history cells" in r.getMessage()]
        assert "BrokenCellsPanel" in warning.getMessage()


class TestDeclarations:
    @pytest.mark.parametrize("key", ["", "a b", "x" * 51, "é", None])
    def test_a_column_key_is_checked(self, key: Any) -> None:
        with pytest.raises(ValueError, match="HistoryColumn key"):
            HistoryColumn(key, "Title")

    def test_keys_are_unique_within_a_panel(self) -> None:
        with pytest.raises(ValueError, match="two columns share a key"):

            class Twice(Panel):
                history_columns = (HistoryColumn("a", "A"), HistoryColumn("a", "B"))

    def test_by_default_no_columns_and_no_cells(self) -> None:
        assert Panel.history_columns == ()
        assert Panel.history_cells({"anything": 1}) == {}

    def test_the_head_is_the_recorded_part_only(self) -> None:
        calls: list[str] = []
        stored = panel(stats={"summary": {}}, deferred=[counting_builder(calls)])
        assert stored.head == {"summary": {}}
        assert calls == []
        assert stored.stats == {"summary": {}, "tasks": ["costly"]}
        assert calls == ["built"]
