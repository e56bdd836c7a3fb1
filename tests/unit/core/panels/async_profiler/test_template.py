"""The Async panel's template, rendered through ``render_panel`` with the panel's real context.

Hand-built stats (the shape ``AsyncProfilerPanel.generate_stats`` stores) go through the real
``get_template_context``, so a renamed key on either side fails here.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from debug_toolbar.core.panels.async_profiler.models import StackFrame
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.step_findings import StepFindings
from debug_toolbar.core.panels.async_profiler.steps import (
    AwaitTarget,
    RequestTask,
    Step,
    StepTable,
)
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from debug_toolbar.core.panels.async_profiler.timeline import timeline_of
from support import render_async_panel, task_event

VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "col", "wbr", "source"})
EVIL = "<script>alert(1)</script>"


class _Checker(HTMLParser):
    """Fails on unbalanced or misnested tags: the fragment is inserted with innerHTML."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()


def parse(html: str) -> _Checker:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.errors == []
    assert checker.open == []
    return checker


def frame(name: str, line: int) -> dict[str, Any]:
    return {"filename": f"/app/{name}.py", "lineno": line, "function": name, "code": f"{name}()"}


def task(
    task_id: int,
    name: str,
    start: float,
    end: float | None,
    state: str,
    *,
    parent: int | None = None,
    exception: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "parent_id": parent,
        "name": name,
        "coro_name": f"coro_{task_id}",
        "state": state,
        "start_ms": start,
        "end_ms": end,
        "duration_ms": None if end is None else end - start,
        "exception": exception,
        "stack": [frame("spawn", 10 + task_id), frame("handler", 3)],
    }


def rich_stats() -> dict[str, Any]:
    tasks = [
        task(1, "fetch-user", 0.0, 40.0, "completed"),
        task(2, "child", 5.0, 30.0, "cancelled", parent=1),
        task(3, EVIL, 10.0, 60.0, "failed", exception={"type": "ValueError", "message": EVIL}),
        task(4, "escaped", 50.0, None, "pending"),
    ]
    return {
        "backend": "yappi",
        "backend_note": None,
        "summary": {
            "total_tasks": 4,
            "completed": 1,
            "cancelled": 1,
            "failed": 1,
            "pending": 1,
            "dropped": 0,
            "profiling_overhead_ms": 0.5,
            "blocking_calls": 1,
            "suffered_blocking_calls": 1,
            "max_lag_ms": 42.0,
        },
        "tasks": tasks,
        "blocking_calls": [
            {
                "start_ms": 60.0,
                "duration_ms": 25.0,
                "filename": "/app/views.py",
                "lineno": 7,
                "function": "view",
                "code": "time.sleep(0.025)",
                "stack": [frame("view", 7)],
                "culprit": True,
                "sampled": True,
            },
            {
                "start_ms": 90.0,
                "duration_ms": 5.0,
                "filename": "/app/other.py",
                "lineno": 9,
                "function": "other",
                "code": "x()",
                "stack": [],
                "culprit": {"request_id": "f" * 32, "method": "POST", "path": "/other"},
                "sampled": True,
            },
        ],
        "lag": {
            "samples": [{"at_ms": 85.0, "lag_ms": 42.0}],
            "max_lag_ms": 42.0,
            "threshold_ms": 10.0,
            "interval_ms": 10.0,
            "beats": 9,
            "dropped": 0,
        },
        "overhead": {"tracking_ms": 0.2},
        "profile": {
            "functions": [
                {
                    "name": "fast",
                    "filename": "/app/a.py",
                    "lineno": 1,
                    "calls": 100,
                    "total_ms": 2.0,
                    "own_ms": 2.0,
                    "avg_ms": 0.02,
                    "is_coroutine": False,
                },
                {
                    "name": "slow",
                    "filename": "/app/b.py",
                    "lineno": 2,
                    "calls": 1,
                    "total_ms": 50.0,
                    "own_ms": 1.0,
                    "avg_ms": 50.0,
                    "is_coroutine": True,
                },
            ],
            "total": 2,
            "error": None,
            "cost_note": "yappi traces every call.",
            "clock": "wall",
        },
    }


def render(stats: dict[str, Any], duration_ms: float = 100.0, max_rows: int = 500) -> str:
    return render_async_panel(stats, duration_ms=duration_ms, max_rows=max_rows)


def attr(checker: _Checker, cls: str, name: str) -> list[str]:
    return [
        attrs.get(name) or ""
        for _, attrs in checker.tags
        if cls in (attrs.get("class") or "").split()
    ]


class TestEmpty:
    def test_no_stats_renders_a_note(self) -> None:
        html = render({})
        parse(html)
        assert "No async activity was recorded" in html

    def test_request_without_tasks(self) -> None:
        stats = rich_stats()
        stats.update(tasks=[], blocking_calls=[], lag=None, profile=None)
        stats["summary"].update(
            total_tasks=0, completed=0, cancelled=0, failed=0, pending=0, blocking_calls=0
        )
        html = render(stats)
        checker = parse(html)
        assert "spawned no asyncio tasks" in html
        assert attr(checker, "dt-timeline-bar", "style") == []


class TestRich:
    def test_one_bar_per_task_at_view_model_positions(self) -> None:
        checker = parse(render(rich_stats()))
        styles = attr(checker, "dt-timeline-bar", "style")
        assert len(styles) == 4
        # fetch-user 0-40 of 100 ms, its child right below it (tree order)
        assert styles[0] == "left: 0.0000%; width: 40.0000%"
        assert styles[1] == "left: 5.0000%; width: 25.0000%"
        classes = attr(checker, "dt-timeline-bar", "class")
        assert [c.split()[1] for c in classes] == [
            "dt-async-completed",
            "dt-async-cancelled",
            "dt-async-failed",
            "dt-async-pending",
        ]
        assert "dt-async-clipped" in classes[3]
        titles = attr(checker, "dt-timeline-bar", "title")
        assert titles[0].startswith("fetch-user · coro_1 · start 0.0 ms · 40.0 ms · completed")

    def test_blocking_bands_own_and_suffered(self) -> None:
        html = render(rich_stats())
        checker = parse(html)
        classes = attr(checker, "dt-async-band", "class")
        assert [c.split()[1] for c in classes] == ["dt-async-band-own", "dt-async-band-suffered"]
        assert attr(checker, "dt-async-band", "style")[0] == "left: 60.0000%; width: 25.0000%"
        assert "/app/views.py:7" in html
        assert "time.sleep(0.025)" in html
        # The culprit is a link to its request's page, under the toolbar's base URL.
        assert (
            'suffered: caused by <a class="dt-async-culprit-link" '
            f'href="/_debug_toolbar/requests/{"f" * 32}">POST /other (request ffffffff)</a>'
        ) in html

    def test_lag_strip_and_ticks(self) -> None:
        checker = parse(render(rich_stats()))
        assert attr(checker, "dt-async-lag", "style") == [
            "left: 43.0000%; width: 42.0000%; height: 100.00%"
        ]
        ticks = [
            attrs.get("style") for _, attrs in checker.tags if "dt-timeline-tick" in str(attrs)
        ]
        assert ticks[0] == "left: 0.0000%"
        assert len(ticks) >= 5

    def test_function_table_sorted_by_total(self) -> None:
        html = render(rich_stats())
        checker = parse(html)
        rows = [a for t, a in checker.tags if t == "tr" and a.get("data-total")]
        assert [r["data-total"] for r in rows] == ["50.0", "2.0"]
        assert "yappi traces every call." in html

    def test_backend_switch_and_trace_link(self) -> None:
        checker = parse(render(rich_stats()))
        assert attr(checker, "dt-async-backend", "data-backend") == ["taskfactory", "yappi"]
        assert set(attr(checker, "dt-async-backend", "data-cookie")) == {
            "debug_toolbar_async_backend"
        }
        # The link is the one the pages gave, as given: the template builds no URL.
        links = attr(checker, "dt-async-download", "href")
        assert links == ["/app/_debug_toolbar/requests/abc123/panels/x/downloads/async-trace.json"]
        assert attr(checker, "dt-async-download", "download") == ["async-trace-abc123.json"]

    def test_task_names_and_exception_messages_are_escaped(self) -> None:
        html = render(rich_stats())
        parse(html)
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert len(re.findall("&lt;script&gt;", html)) >= 3  # label, title, message

    def test_row_cap_counts_hidden_rows(self) -> None:
        stats = rich_stats()
        html = render(stats, max_rows=2)
        checker = parse(html)
        assert len(attr(checker, "dt-timeline-bar", "style")) == 2
        assert "2 more rows not drawn" in html


def text_of(html: str, cls: str) -> str:
    """The text inside the first element of class ``cls`` (no nested element of its tag)."""
    match = re.search(rf'<(\w+) class="[^"]*\b{cls}\b[^"]*">(.*?)</\1>', html, re.S)
    assert match is not None, cls
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(2))).strip()


class TestYappiRetention:
    """yappi keeps memory of what it profiled: the panel says how much, and when it stopped."""

    def test_what_yappi_keeps_so_far(self) -> None:
        stats = rich_stats()
        stats["yappi_retention"] = {
            "requests": 1234,
            "coroutines": 98765,
            "approx_bytes": 61_500_000,
            "limit": 5000,
        }
        html = render(stats)
        checker = parse(html)
        note = text_of(html, "dt-async-yappi-retention")
        assert "profiled 1,234 of at most 5,000 requests with yappi" in note
        assert "at least 98,765 coroutines alive, about 61.5 MB" in note
        assert "task-factory backend instead" not in note
        assert attr(checker, "dt-async-yappi-retention", "class") == [
            "dt-async-yappi-retention dt-muted"
        ]

    def test_the_limit_reached_is_a_warning_beside_the_backend_note(self) -> None:
        stats = rich_stats()
        stats["backend"] = "taskfactory"
        del stats["profile"]
        stats["backend_note"] = "yappi was not used: this process has already profiled 500"
        stats["yappi_retention"] = {
            "requests": 500,
            "coroutines": 40000,
            "approx_bytes": 30_000_000,
            "limit": 500,
        }
        html = render(stats)
        checker = parse(html)
        assert "yappi was not used" in html
        note = text_of(html, "dt-async-yappi-retention")
        assert "uses the task-factory backend instead" in note
        assert "about 30.0 MB" in note
        assert attr(checker, "dt-async-yappi-retention", "class") == [
            "dt-async-yappi-retention dt-alert dt-alert-warn"
        ]

    def test_nothing_said_for_requests_that_did_not_ask_for_yappi(self) -> None:
        stats = rich_stats()
        stats["yappi_retention"] = None
        html = render(stats)
        assert "dt-async-yappi-retention" not in html
        del stats["yappi_retention"]  # records stored before this key existed
        assert "dt-async-yappi-retention" not in render(stats)


def stepped_stats(function: str = "show_user") -> dict[str, Any]:
    """The request's task sleeps 10-40 ms at views.py:12 (ready at 38: queued 2 ms), its child
    awaits httpx 20-55 ms at views.py:30 (readiness unknown); 100 ms in all. As stored."""
    query = StackFrame("/app/views.py", 12, function, "await asyncio.sleep(0.028)")
    call = StackFrame("/app/views.py", 30, "load", "await client.get(url)")
    httpx = AwaitTarget("library", library="httpx", function="AsyncClient.get")
    table = StepTable(
        origin_ns=0,
        end_ns=100_000_000,
        rows=(
            Step(
                0,
                0.0,
                10.0,
                "await",
                site=query,
                awaited=AwaitTarget("sleep", delay_ms=28.0),
                resumed_ms=40.0,
                ready_ms=38.0,
            ),
            Step(1, 15.0, 20.0, "await", site=call, awaited=httpx, resumed_ms=55.0),
            Step(1, 55.0, 58.0, "return"),
            Step(0, 40.0, 100.0, "running"),
        ),
    )
    profile = AsyncProfile(
        backend="taskfactory",
        tasks=TaskTable.from_events([task_event(1, 15.0, 58.0, name="loader")]),
        request_task=RequestTask("Task-3", "run_asgi", 0.0, 100.0),
        steps=table,
        findings=StepFindings(table),
    )
    stats: dict[str, Any] = json.loads(json.dumps(profile.to_dict()))
    return stats


def segments_of(checker: _Checker) -> list[dict[str, str | None]]:
    return [
        attrs
        for tag, attrs in checker.tags
        if tag == "span" and "dt-async-seg" in (attrs.get("class") or "").split()
    ]


class TestSegments:
    def test_segments_drawn_in_the_bars_tracks_with_their_hover_text(self) -> None:
        stats = stepped_stats()
        html = render(stats)
        checker = parse(html)
        timeline = timeline_of(AsyncProfile.from_dict(stats), duration_ms=100.0)
        expected = [seg for row in timeline.rows for seg in row.segments]
        drawn = segments_of(checker)
        assert [attrs["class"] for attrs in drawn] == [
            "dt-async-seg dt-async-seg-run",
            "dt-async-seg dt-async-seg-wait",
            "dt-async-seg dt-async-seg-queued",
            "dt-async-seg dt-async-seg-run",
            "dt-async-seg dt-async-seg-run",
            "dt-async-seg dt-async-seg-wait",
            "dt-async-seg dt-async-seg-run",
        ]
        assert [attrs["style"] for attrs in drawn] == [
            f"left: {seg.left_pct:.4f}%; width: {seg.width_pct:.4f}%" for seg in expected
        ]
        assert drawn[1]["style"] == "left: 10.0000%; width: 28.0000%"
        assert [attrs["title"] for attrs in drawn] == [seg.label for seg in expected]
        assert drawn[1]["title"] == (
            "waited 28.0 ms at views.py:12 in show_user · for sleep 28.0 ms"
            " · then queued 2.0 ms (ready → resumed)"
        )
        # The bars stay, with their own hover text; a segmented bar says so for the CSS.
        bars = attr(checker, "dt-timeline-bar", "class")
        assert bars == [
            "dt-timeline-bar dt-async-completed dt-async-seg-bar",
            "dt-timeline-bar dt-async-completed dt-async-seg-bar",
        ]
        assert attr(checker, "dt-timeline-bar", "title")[1].startswith("loader · start 15.0 ms")

    def test_a_click_target_names_the_await_site_row(self) -> None:
        stats = stepped_stats()
        html = render(stats)
        checker = parse(html)
        sites = AsyncProfile.from_dict(stats).await_sites()
        drawn = segments_of(checker)
        pointed = [
            (attrs["class"], attrs.get("data-dt-site"))
            for attrs in drawn
            if "data-dt-site" in attrs
        ]
        # The httpx wait (35 ms) is the larger: row 0; the sleep (30 ms, 2 of them queued) row 1.
        assert [(row.site.lineno if row.site else None, row.total_ms) for row in sites] == [
            (30, 35.0),
            (12, 30.0),
        ]
        assert pointed == [
            ("dt-async-seg dt-async-seg-run", "1"),  # the run that ended at the sleep
            ("dt-async-seg dt-async-seg-wait", "1"),
            ("dt-async-seg dt-async-seg-queued", "1"),
            ("dt-async-seg dt-async-seg-run", "0"),
            ("dt-async-seg dt-async-seg-wait", "0"),
        ]
        # ...the ids the await-site table gives its rows: what toolbar.js opens.
        for index in ("0", "1"):
            assert f'id="dt-async-site-{index}"' in html

    def test_legend_and_hint_only_with_segments(self) -> None:
        html = render(stepped_stats())
        for words in ("running (a step)", "waiting at an await", "queued (ready, loop busy)"):
            assert words in html
        assert "click a wait to open its await site below" in html
        plain = render(rich_stats())
        assert "dt-async-seg" not in plain
        assert "waiting at an await" not in plain

    def test_site_names_are_escaped(self) -> None:
        html = render(stepped_stats(function=EVIL))
        parse(html)
        assert "<script>" not in html
        assert "in &lt;script&gt;alert(1)&lt;/script&gt; · for sleep 28.0 ms" in html

    def test_the_request_task_alone_is_drawn_with_its_steps(self) -> None:
        stats = stepped_stats()
        stats["tasks"] = []
        stats["steps"]["rows"] = [row for row in stats["steps"]["rows"] if row["task_id"] == 0]
        checker = parse(render(stats))
        assert len(attr(checker, "dt-timeline-bar", "class")) == 1
        assert len(segments_of(checker)) == 4
