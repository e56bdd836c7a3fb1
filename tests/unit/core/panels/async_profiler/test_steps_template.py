"""The Async panel's page shows where the request's time went: the breakdown, the largest waits,
the slow steps, or why there are no steps. Rendered from stored stats, as the page is."""

from __future__ import annotations

import re
from typing import Any

from debug_toolbar.core.panels.async_profiler.models import BlockingCall, StackFrame
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.step_findings import StepFindings
from debug_toolbar.core.panels.async_profiler.steps import (
    AwaitTarget,
    RequestTask,
    Step,
    StepTable,
)
from debug_toolbar.core.panels.async_profiler.task_table import TaskTable
from support import render_async_panel

EVIL = "<script>alert(1)</script>"
QUERY = StackFrame("/app/views.py", 12, "show_user", "await db.fetch(user_id)")
STALL = StackFrame("/app/views.py", 13, "show_user", "build_report()")


def render(stats: dict[str, Any]) -> str:
    return render_async_panel(stats, duration_ms=60.0, with_downloads=False)


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def stored(profile: AsyncProfile) -> dict[str, Any]:
    return profile.to_dict()


class TestWhereTheTimeWent:
    def test_the_breakdown_its_largest_wait_and_a_slow_step(self) -> None:
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
        page = text(render(stored(profile)))
        assert (
            "Where the time went (the request's own task, 60.0 ms): running 29.0 ms "
            "· waiting 30.0 ms · queued 1.0 ms · blocked by other requests 0.0 ms"
        ) in page
        assert "waiting 30.0 ms views.py:12 in show_user · sleep 30.0 ms" in page
        assert "Slow steps (held the loop at least the lag threshold): 27.0 ms at views.py:13" in (
            page
        )

    def test_without_steps_it_says_why(self) -> None:
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.empty(),
            request_task=RequestTask("Task-1", "run_asgi", 0.0, 60.0),
            steps_unavailable="step timing needs Python 3.12+ (sys.monitoring)",
        )
        assert "No steps: step timing needs Python 3.12+ (sys.monitoring)." in text(
            render(stored(profile))
        )

    def test_request_data_is_escaped(self) -> None:
        site = StackFrame(f"/app/{EVIL}.py", 1, EVIL)
        table = StepTable(
            origin_ns=0,
            end_ns=10_000_000,
            rows=(
                Step(0, 0.0, 1.0, "await", site=site, awaited=AwaitTarget("future", function=EVIL)),
            ),
        )
        profile = AsyncProfile(
            backend="taskfactory",
            tasks=TaskTable.empty(),
            steps=table,
            findings=StepFindings(table),
        )
        html = render(stored(profile))
        assert EVIL not in html
        assert "&lt;script&gt;" in html
