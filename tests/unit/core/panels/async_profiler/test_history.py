"""The Async panel's history cells, from the record's stored head: what each column says, and
records kept by older versions (without the slowest await) or without steps."""

from __future__ import annotations

from typing import Any

from debug_toolbar.core.panel import HistoryCell
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.history import HISTORY_COLUMNS, history_cells

SLOWEST = {
    "duration_ms": 52.34,
    "filename": "/srv/app/views.py",
    "lineno": 42,
    "function": "show_user",
    "code": "await db.fetch(user_id)",
    "site_is_app": True,
    "awaited": "sleep 50.0 ms",
}


def head(**summary: Any) -> dict[str, Any]:
    """A stored head as ``AsyncProfile.head_dict`` writes it (the fields the cells read)."""
    values: dict[str, Any] = {
        "total_tasks": 3,
        "completed": 2,
        "cancelled": 0,
        "failed": 1,
        "pending": 0,
        "dropped": 0,
        "blocking_calls": 2,
        "suffered_blocking_calls": 1,
        "slowest_await": SLOWEST,
    }
    values.update(summary)
    return {"summary": values, "steps_unavailable": None}


class TestCells:
    def test_the_panel_declares_its_columns(self) -> None:
        assert AsyncProfilerPanel.history_columns == HISTORY_COLUMNS
        assert [column.key for column in HISTORY_COLUMNS] == ["tasks", "blocking", "slowest_await"]
        assert AsyncProfilerPanel.history_cells(head()) == history_cells(head())

    def test_every_column_from_a_full_record(self) -> None:
        cells = history_cells(head())
        assert cells["tasks"] == HistoryCell("3", title="2 completed, 1 failed", warn=True)
        assert cells["blocking"] == HistoryCell(
            "2",
            note="+1 suffered",
            title="2 blocking calls of its own; 1 suffered (the loop blocked by another "
            "request, or unknown)",
            warn=True,
        )
        assert cells["slowest_await"] == HistoryCell(
            "52.3 ms",
            note="views.py:42",
            title="52.3 ms awaiting sleep 50.0 ms\nin show_user at /srv/app/views.py:42\n"
            "await db.fetch(user_id)",
        )

    def test_a_quiet_request(self) -> None:
        cells = history_cells(
            head(total_tasks=0, completed=0, failed=0, blocking_calls=0, suffered_blocking_calls=0)
        )
        assert cells["tasks"] == HistoryCell("0", title="No task spawned")
        assert cells["blocking"] == HistoryCell("0", title="0 blocking calls of its own")

    def test_large_counts_are_grouped(self) -> None:
        cells = history_cells(head(total_tasks=12_345, completed=12_345, failed=0))
        assert (cells["tasks"].text, cells["tasks"].title) == ("12,345", "12,345 completed")

    def test_a_record_from_before_the_slowest_await(self) -> None:
        """Its summary has no such key: that cell is left out, the others are all there."""
        old = head()
        del old["summary"]["slowest_await"]
        cells = history_cells(old)
        assert set(cells) == {"tasks", "blocking"}
        assert cells["tasks"].text == "3"

    def test_no_steps_says_why(self) -> None:
        stats = head(slowest_await=None)
        stats["steps_unavailable"] = "step timing needs Python 3.12+ (sys.monitoring)"
        assert history_cells(stats)["slowest_await"] == HistoryCell(
            "–", title="No steps: step timing needs Python 3.12+ (sys.monitoring)"
        )

    def test_the_request_task_never_awaited(self) -> None:
        assert history_cells(head(slowest_await=None))["slowest_await"] == HistoryCell(
            "–", title="The request's own task never awaited"
        )

    def test_a_site_without_a_file(self) -> None:
        slowest = {"duration_ms": 0.42, "awaited": "Future"}
        cell = history_cells(head(slowest_await=slowest))["slowest_await"]
        assert cell == HistoryCell("0.42 ms", title="0.42 ms awaiting Future")

    def test_nothing_recorded_no_cells(self) -> None:
        """An empty head (the panel recorded nothing) or odd values: no cell, no error."""
        assert history_cells({}) == {}
        assert history_cells({"summary": None}) == {}
        odd = history_cells(
            {"summary": {"total_tasks": "3", "blocking_calls": True, "slowest_await": {}}}
        )
        assert odd == {}
