"""The Async panel's page shows where the request's time went: the breakdown at the top (figures
that add up, a stacked bar, the largest waits), the await-site table under the timeline (a
``<details id="dt-async-site-K">`` per row, the contract with the timeline's segments), the slow
steps as a list of their own, or why there are no steps. Rendered from stored stats, as the
page is, so these run on any Python."""

from __future__ import annotations

import re
from typing import Any

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.core.panels.async_profiler.models import BlockingCall, StackFrame
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.step_findings import StepFindings
from debug_toolbar.core.panels.async_profiler.steps import (
    AwaitTarget,
    RequestTask,
    Step,
    StepTable,
)
from debug_toolbar.core.panels.async_profiler.steps_view import MAX_AWAIT_SITE_ROWS
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from debug_toolbar.core.records import RequestRecord
from support import html_tree, render_async_panel

EVIL = "<script>alert(1)</script>"
QUERY = StackFrame("/app/views.py", 12, "show_user", "await db.fetch(user_id)")
STALL = StackFrame("/app/views.py", 13, "show_user", "build_report()")
API_URL = "/_debug_toolbar/api/requests/abc123"


def render(stats: dict[str, Any]) -> str:
    return render_async_panel(stats, duration_ms=60.0, with_downloads=False)


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def frame(path: str, line: int, function: str, code: str | None = None) -> dict[str, Any]:
    return {"filename": path, "lineno": line, "function": function, "code": code}


HANDLER = frame("/app/views.py", 40, "show_user", "return await load(user_id)")
ROUTER = frame("/venv/litestar/routes/http.py", 181, "HTTPRoute.handle", "await fn()")


def site_row(
    site: dict[str, Any],
    awaited: dict[str, Any],
    *,
    count: int = 1,
    total_ms: float = 10.0,
    max_ms: float = 10.0,
    queued_ms: float = 0.0,
    pending: int = 0,
    task_ids: tuple[int, ...] = (0,),
    site_is_app: bool = True,
    stack: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    return {
        **site,
        "site_is_app": site_is_app,
        "awaited": awaited,
        "count": count,
        "total_ms": total_ms,
        "max_ms": max_ms,
        "queued_ms": queued_ms,
        "pending": pending,
        "task_ids": list(task_ids),
        "stack": list(stack or (site, HANDLER, ROUTER)),
    }


def stored_stats(**extra: Any) -> dict[str, Any]:
    """A request of 60 ms as the history keeps it: a breakdown, three await sites, slow steps."""
    first = frame("/app/views.py", 12, "show_user", "await db.fetch(user_id)")
    thread = frame("/app/views.py", 14, "show_user", "await asyncio.to_thread(render)")
    lib = frame("/venv/anyio/_backends/_asyncio.py", 2939, "AsyncIOBackend.connect_tcp", "await x")
    stats: dict[str, Any] = {
        "backend": "taskfactory",
        "request_task": {"name": "Task-1", "coro_name": "run_asgi", "start_ms": 0.0, "end_ms": 60},
        "steps_unavailable": None,
        "time_breakdown": {
            "start_ms": 0.0,
            "end_ms": 60.0,
            "running_ms": 17.52,
            "waiting_ms": 38.43,
            "queued_ms": 1.01,
            "blocked_ms": 3.04,
            "unrecorded_ms": 0.0,
            "steps": 4,
            "by_site": [
                {
                    "site": first,
                    "awaited": "sleep 25.0 ms",
                    "kind": "sleep",
                    "count": 2,
                    "waiting_ms": 25.0,
                },
                {
                    "site": thread,
                    "awaited": "thread pool",
                    "kind": "thread",
                    "count": 1,
                    "waiting_ms": 13.43,
                },
            ],
        },
        "await_sites": [
            site_row(
                thread,
                {"kind": "thread"},
                total_ms=31.0,
                max_ms=31.0,
                queued_ms=0.5,
                task_ids=(0, 2, 3),
            ),
            site_row(
                first, {"kind": "sleep", "delay_ms": 25.0}, count=2, total_ms=26.0, max_ms=13.5
            ),
            site_row(
                lib,
                {"kind": "library", "library": "anyio", "function": "connect_tcp", "via": lib},
                total_ms=2.0,
                max_ms=2.0,
                pending=1,
                site_is_app=False,
                task_ids=(4,),
            ),
        ],
        "slow_steps": [
            {
                "task_id": 0,
                "start_ms": 20.0,
                "duration_ms": 27.0,
                "ended": "await",
                "ran_from": frame("/app/views.py", 12, "show_user", "await db.fetch(user_id)"),
                "ran_to": frame("/app/views.py", 14, "show_user", "await asyncio.to_thread(x)"),
                "held_at": frame("/app/views.py", 13, "show_user", "build_report()"),
                "held_stack": [frame("/app/views.py", 13, "show_user", "build_report()"), HANDLER],
                "blocking": False,
            },
            {
                "task_id": 2,
                "start_ms": 50.0,
                "duration_ms": 11.0,
                "ended": "return",
                "ran_from": frame("/app/jobs.py", 7, "job", "await queue.get()"),
                "blocking": False,
            },
            {"task_id": 0, "start_ms": 55.0, "duration_ms": 150.0, "blocking": True},
        ],
    }
    stats.update(extra)
    return stats


class TestBreakdown:
    def test_figures_that_add_up_and_a_stacked_bar(self) -> None:
        page = html_tree(render(stored_stats()))
        section = page.find("dt-async-steps")
        assert section.find("dt-async-steps-sum").text() == (
            "running 17.5 ms 29% + waiting 38.4 ms 64% + queued 1.0 ms 2% "
            "+ blocked 3.1 ms 5% = wall time 60.0 ms"
        )  # 3.04 shows as 3.1: the shown parts add up to the shown wall time
        bar = section.find("dt-async-steps-bar")
        assert [
            (seg.classes[1], seg.attrs["style"]) for seg in bar.find_all("dt-async-steps-seg")
        ] == [
            ("dt-async-steps-running", "width: 29.2000%"),
            ("dt-async-steps-waiting", "width: 64.0500%"),
            ("dt-async-steps-queued", "width: 1.6833%"),
            ("dt-async-steps-blocked", "width: 5.0667%"),
        ]
        assert bar.attrs["aria-label"] == (
            "running 17.5 ms, waiting 38.4 ms, queued 1.0 ms, blocked 3.1 ms"
        )
        assert "60.0 ms in 4 steps" in section.find("dt-async-steps-scope").text()

    def test_the_largest_waits_point_at_their_await_site_rows(self) -> None:
        waits = html_tree(render(stored_stats())).find_all("dt-async-steps-wait")
        assert [wait.text() for wait in waits] == [
            "25.0 ms 42% views.py:12 in show_user · sleep 25.0 ms × 2",
            "13.4 ms 22% views.py:14 in show_user · thread pool",
        ]
        assert [wait.attrs["data-dt-site"] for wait in waits] == ["1", "0"]
        [bar] = waits[0].find_all("dt-async-steps-wait-bar")
        [share] = bar.walk()[1:]
        assert share.attrs["style"] == "width: 41.6667%"  # of the wall time

    def test_time_not_recorded_past_the_cap_is_a_part_and_said(self) -> None:
        stats = stored_stats()
        stats["time_breakdown"].update(running_ms=7.52, unrecorded_ms=10.0)
        page = html_tree(render(stats))
        assert (
            page.find("dt-async-steps-sum")
            .text()
            .endswith("+ not recorded 10.0 ms 17% = wall time 60.0 ms")
        )
        assert "its last 10.0 ms are not split" in page.find("dt-alert-warn").text()

    def test_computed_from_the_steps_themselves(self) -> None:
        table = StepTable(
            origin_ns=0,
            start_ns=0,
            end_ns=60_000_000,
            rows=(
                Step(
                    0,
                    0.0,
                    2.0,
                    "await",
                    site=QUERY,
                    awaited=AwaitTarget("sleep", delay_ms=30.0),
                    resumed_ms=33.0,
                    ready_ms=32.0,
                ),
                Step(0, 33.0, 60.0, "running"),
            ),
        )
        stall = BlockingCall(
            start_ms=34.0,
            duration_ms=25.0,
            filename=STALL.filename,
            lineno=STALL.lineno,
            function=STALL.function,
            code=STALL.code,
            relation="own",
        )
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.empty(),
            request_task=RequestTask("Task-1", "run_asgi", 0.0, 60.0),
            steps=table,
            findings=StepFindings(table, slow_rows=[(1, None)], own_stalls=[stall]),
        )
        page = html_tree(render(profile.to_dict()))
        assert page.find("dt-async-steps-sum").text() == (
            "running 29.0 ms 48% + waiting 30.0 ms 50% + queued 1.0 ms 2% "
            "+ blocked 0.0 ms 0% = wall time 60.0 ms"
        )
        [wait] = page.find_all("dt-async-steps-wait")
        assert wait.text() == "30.0 ms 50% views.py:12 in show_user · sleep 30.0 ms"
        [slow] = page.find_all("dt-async-slow-step")
        assert "27.0 ms at 33.0 ms, in the request's own task held the loop at views.py:13" in (
            slow.text()
        )
        assert page.by_id("dt-async-site-0").find("dt-async-site-row").text() == (
            "views.py:12 in show_user sleep 30.0 ms count 1 total 31.0 ms max 31.0 ms queued 1.0 ms"
        )

    def test_without_steps_it_says_why_in_the_same_place(self) -> None:
        stats = stored_stats(
            steps_unavailable="step timing needs Python 3.12+ (sys.monitoring)",
            time_breakdown=None,
            await_sites=[],
            slow_steps=[],
        )
        html = render(stats)
        page = html_tree(html)
        section = page.find("dt-async-steps")
        assert section.find("dt-async-steps-note").text() == (
            "No time breakdown for this request: step timing needs Python 3.12+ (sys.monitoring)."
        )
        assert html.index("dt-async-steps-note") < html.index("<h4>Timeline</h4>")
        assert page.find_all("dt-async-steps-bar") == []
        assert "<h4>Await sites</h4>" not in html
        assert "<h4>Slow steps</h4>" not in html

    def test_at_the_top_of_the_panel_above_the_timeline(self) -> None:
        html = render(stored_stats())
        assert html.index('class="dt-tiles"') < html.index("dt-async-steps-sum")
        assert html.index("dt-async-steps-sum") < html.index("<h4>Timeline</h4>")
        assert html.index("<h4>Timeline</h4>") < html.index("<h4>Await sites</h4>")
        assert html.index("<h4>Blocking calls</h4>") < html.index("<h4>Slow steps</h4>")


class TestAwaitSites:
    def test_one_row_per_site_in_order_each_a_details_with_its_id(self) -> None:
        page = html_tree(render(stored_stats()))
        rows = page.find_all("dt-async-site")
        assert [(row.tag, row.attrs["id"]) for row in rows] == [
            ("details", "dt-async-site-0"),
            ("details", "dt-async-site-1"),
            ("details", "dt-async-site-2"),
        ]
        assert [row.find("dt-async-site-row").text() for row in rows] == [
            "views.py:14 in show_user thread pool count 1 total 31.0 ms max 31.0 ms queued 0.5 ms",
            "views.py:12 in show_user sleep 25.0 ms count 2 total 26.0 ms max 13.5 ms "
            "queued 0.0 ms",
            "_asyncio.py:2939 in AsyncIOBackend.connect_tcp library anyio connect_tcp "
            "still waiting at response end count 1 total 2.0 ms max 2.0 ms queued 0.0 ms",
        ]
        [head] = page.find_all("dt-async-site-head")
        cells = [cell.text() for cell in head.elements]
        assert cells == ["", "Site", "Awaited", "Count", "Total", "Max", "Queued"]

    def test_a_row_opens_to_its_source_line_and_await_chain(self) -> None:
        row = html_tree(render(stored_stats())).by_id("dt-async-site-1")
        summary_code = row.find("dt-async-site-where").walk()[1]
        assert summary_code.attrs["title"] == "/app/views.py:12"  # the full path on hover
        body = row.find("dt-async-site-body")
        [pre] = [node for node in body.elements if node.tag == "pre"]
        assert pre.text() == "await db.fetch(user_id)"
        assert "Awaited: asyncio.sleep of 25.0 ms." in body.text()
        assert "In the request's own task." in body.text()
        [stack] = body.find_all("dt-stack")
        assert [item.text() for item in stack.elements] == [
            "/app/views.py:12 in show_user await db.fetch(user_id)",
            "/app/views.py:40 in show_user return await load(user_id)",
            "/venv/litestar/routes/http.py:181 in HTTPRoute.handle await fn()",
        ]
        assert "innermost first (3 frames)" in body.text()

    def test_library_sites_are_muted_and_pending_waits_marked(self) -> None:
        page = html_tree(render(stored_stats()))
        library = page.by_id("dt-async-site-2")
        assert "dt-async-site-lib" in library.classes
        assert "dt-async-site-pending" in library.classes
        assert library.find("dt-async-site-pending-badge").text() == (
            "still waiting at response end"
        )
        body = library.find("dt-async-site-body").text()
        assert "Awaited: a library: anyio connect_tcp." in body
        assert "It really waited in _asyncio.py:2939 in AsyncIOBackend.connect_tcp." in body
        assert "In task 4." in body
        first = page.by_id("dt-async-site-0")
        assert "dt-async-site-lib" not in first.classes
        assert first.find_all("dt-async-site-pending-badge") == []
        assert "In the request's own task and tasks 2, 3." in first.text()

    def test_a_partly_pending_site_says_how_many_still_wait(self) -> None:
        stats = stored_stats()
        stats["await_sites"][1].update(count=3, pending=2)
        row = html_tree(render(stats)).by_id("dt-async-site-1")
        assert row.find("dt-async-site-pending-badge").text() == (
            "2 of 3 still waiting at response end"
        )

    def test_capped_on_the_page_the_rest_in_the_json_api(self) -> None:
        site = frame("/app/fanout.py", 3, "fanout", "await task")
        rows = [
            site_row(site, {"kind": "task", "task_ids": [n + 1]}, total_ms=500.0 - n)
            for n in range(MAX_AWAIT_SITE_ROWS + 12)
        ]
        html = render(stored_stats(await_sites=rows))
        page = html_tree(html)
        ids = [row.attrs["id"] for row in page.find_all("dt-async-site")]
        assert ids == [f"dt-async-site-{k}" for k in range(MAX_AWAIT_SITE_ROWS)]
        assert (
            page.by_id(f"dt-async-site-{MAX_AWAIT_SITE_ROWS - 1}").find("dt-async-site-what").text()
            == f"task {MAX_AWAIT_SITE_ROWS}"
        )
        more = page.find("dt-async-sites-more")
        assert more.text() == (
            "12 more await sites, with smaller totals, are in the JSON API (await_sites)."
        )
        [link] = [node for node in more.walk() if node.tag == "a"]
        assert link.attrs["href"] == API_URL

    def test_the_template_context_says_how_many_rows_the_page_has(self) -> None:
        """``shown_sites``: the timeline's segments point at rows below it, no further."""
        site = frame("/app/fanout.py", 3, "fanout", "await task")
        rows = [
            site_row(site, {"kind": "task", "task_ids": [n + 1]}, total_ms=500.0 - n)
            for n in range(MAX_AWAIT_SITE_ROWS + 12)
        ]
        record = RequestRecord(
            request_id="abc123",
            method="GET",
            path="/",
            query_string="",
            status_code=200,
            duration_ms=60.0,
            started_at=0.0,
            panels=(),
        )
        config = DebugToolbarConfig(extra_panels=[AsyncProfilerPanel])
        capped = AsyncProfilerPanel.get_template_context(
            stored_stats(await_sites=rows), record, config
        )
        assert capped["shown_sites"] == capped["steps_view"].shown_sites == MAX_AWAIT_SITE_ROWS
        few = AsyncProfilerPanel.get_template_context(stored_stats(), record, config)
        assert few["shown_sites"] == 3
        assert AsyncProfilerPanel.get_template_context({}, record, config)["shown_sites"] == 0

    def test_a_request_that_never_waited(self) -> None:
        html = render(stored_stats(await_sites=[]))
        assert "No task of this request waited at an await." in text(html)
        assert 'id="dt-async-site-' not in html


class TestSlowSteps:
    def test_a_warning_list_of_its_own_with_the_line_that_held_the_loop(self) -> None:
        page = html_tree(render(stored_stats()))
        steps = page.find("dt-async-slow").find_all("dt-async-slow-step")
        assert len(steps) == 2  # the 150 ms one is over the blocking threshold
        sampled = steps[0]
        assert sampled.find("dt-async-slow-head").text() == (
            "27.0 ms at 20.0 ms, in the request's own task "
            "held the loop at views.py:13 in show_user"
        )
        assert sampled.find("dt-badge").classes == ["dt-badge", "dt-badge-warn"]
        [pre] = [node for node in sampled.elements if node.tag == "pre"]
        assert pre.text() == "build_report()"
        assert sampled.find("dt-async-slow-span").text() == (
            "Ran from views.py:12 in show_user to the await at views.py:14 in show_user."
        )
        [stack] = sampled.find_all("dt-stack")
        assert [item.text() for item in stack.elements] == [
            "/app/views.py:13 in show_user build_report()",
            "/app/views.py:40 in show_user return await load(user_id)",
        ]

    def test_an_unsampled_step_shows_its_own_lines(self) -> None:
        steps = html_tree(render(stored_stats())).find_all("dt-async-slow-step")
        unsampled = steps[1]
        assert unsampled.find("dt-async-slow-head").text() == (
            "11.0 ms at 50.0 ms, in task 2 not sampled; ran from jobs.py:7 in job"
        )
        assert unsampled.find("dt-async-slow-span").text() == (
            "Ran from jobs.py:7 in job until its coroutine returned."
        )
        assert unsampled.find_all("dt-stack") == []

    def test_it_says_what_it_lists_and_where_the_longer_ones_are(self) -> None:
        page = text(render(stored_stats()))
        assert (
            "Steps that held the event loop for at least 10.0 ms "
            "(async_event_loop_lag_threshold_ms) but not over 100.0 ms "
            "(async_blocking_threshold_ms, the blocking calls)"
        ) in page
        assert "1 more held it over the blocking threshold: it is in the blocking calls." in page

    def test_none_with_steps_timed(self) -> None:
        assert "No step held the loop that long." in text(render(stored_stats(slow_steps=[])))


class TestEscaping:
    def test_hostile_names_are_escaped_everywhere(self) -> None:
        evil = frame(f"/app/{EVIL}.py", 1, EVIL, EVIL)
        stats = stored_stats(
            await_sites=[
                site_row(
                    evil,
                    {"kind": "library", "library": EVIL, "function": EVIL, "via": evil},
                    stack=(evil,),
                )
            ],
            slow_steps=[
                {
                    "task_id": 0,
                    "start_ms": 1.0,
                    "duration_ms": 12.0,
                    "ended": "await",
                    "ran_from": evil,
                    "ran_to": evil,
                    "held_at": evil,
                    "held_stack": [evil],
                }
            ],
        )
        stats["time_breakdown"]["by_site"] = [{"site": evil, "awaited": EVIL, "waiting_ms": 5.0}]
        html = render(stats)
        html_tree(html)
        assert EVIL not in html
        assert "<script" not in html
        assert html.count("&lt;script&gt;") >= 10
