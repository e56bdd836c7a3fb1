"""What rendering the Async panel costs for a 5,000-task request (goal: under 300 ms).

The request is built by hand but shaped like a real one: a few roots created by the handler,
each gathering batches of children that gather their own, some failing, some cancelled, a few
escaping the response, every task with a 10-frame creation stack; the loop stalls three times
(twice by this request, once by another) and the lag monitor sampled every 10 ms. Each task has
two steps (run, await a sleep or an HTTP call, run to the end), the request's own task two, as
step timing records them on Python 3.12+. The stats go through a JSON round trip first, because
the panel renders from the history's plain dicts.

Measured, as medians: the timeline view model from the stats (``AsyncProfile.from_dict`` then
``timeline_of``, the row cap at its default, 500), rendering the panel's template through
``debug_toolbar.core.rendering`` (which builds that view model again, as the pages do; skipped,
with a note, when the template cannot render these stats), and the full trace export
(uncapped), each from the stored stats as the pages and the download get them.

The Gantt's segments (``timeline_segments``: each drawn row's steps, built at render time) are
measured apart, ``timeline_of`` with and without them side by side: for the 5,000 tasks of two
steps (the drawn 500 rows get segments) and for one task of 10,000 steps (the most a request
records, ``async_max_steps``), whose parts shorter than a pixel are merged. Goal: segments cost
at most half of what building the 5,000 tasks' timeline costs without them, in both cases.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks import Result
from debug_toolbar.core.panels.async_profiler.export import chrome_trace
from debug_toolbar.core.panels.async_profiler.models import (
    BlockingCall,
    LagSample,
    StackFrame,
    TaskEvent,
    TaskState,
)
from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.step_report import await_sites
from debug_toolbar.core.panels.async_profiler.steps import (
    AwaitTarget,
    RequestTask,
    Step,
    StepTable,
)
from debug_toolbar.core.panels.async_profiler.timeline import DEFAULT_MAX_ROWS, timeline_of

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("build_long_task_stats", "build_stats", "run")

TASKS = 5_000
ROOTS = 4
CHILDREN_PER_ROOT = 30
STACK_DEPTH = 10
DURATION_MS = 1_250.0
ROUNDS = 7
GOAL_MS = 300.0
TEMPLATE = "panels/async_profiler.html"
LONG_TASK_STEPS = 10_000
SEGMENTS_GOAL = 0.5
"""Segments cost at most this share of the timeline's build without them."""
AWAIT_SITES = (
    StackFrame("/srv/shop/app/repo.py", 41, "fetch_item", "row = await db.fetch_one(query)"),
    StackFrame("/srv/shop/app/clients/http.py", 18, "get_price", "r = await client.get(url)"),
    StackFrame("/srv/shop/app/services/orders.py", 77, "audit", "await asyncio.sleep(0.01)"),
)
HANDLER_SITE = StackFrame("/srv/shop/app/views.py", 25, "dashboard", "await asyncio.gather(*jobs)")


def _stack(rng: random.Random, depth: int) -> list[StackFrame]:
    modules = ("views", "services/orders", "services/users", "repo", "clients/http", "cache")
    return [
        StackFrame(
            filename=f"/srv/shop/app/{rng.choice(modules)}.py",
            lineno=rng.randint(10, 900),
            function=f"step_{depth}_{level}",
            code=f"results = await asyncio.gather(*(fetch(item) for item in batch_{level}))",
        )
        for level in range(STACK_DEPTH)
    ]


def _state(rng: random.Random) -> tuple[TaskState, tuple[str, str] | None]:
    roll = rng.random()
    if roll < 0.02:
        return "failed", ("TimeoutError", "upstream did not answer within 2.0 s")
    if roll < 0.03:
        return "cancelled", None
    return "completed", None


def build_tasks(rng: random.Random) -> list[TaskEvent]:
    """Roots -> gathered children -> gathered grandchildren, until ``TASKS`` tasks."""
    events: list[TaskEvent] = []

    def add(parent: TaskEvent | None, start: float, span: float, depth: int) -> TaskEvent:
        state, exception = _state(rng)
        end: float | None = start + span
        if parent is None and len(events) == ROOTS - 1:
            state, end, exception = "pending", None, None  # a fire-and-forget root escapes
        task_id = len(events) + 1
        event = TaskEvent(
            task_id=task_id,
            parent_id=None if parent is None else parent.task_id,
            name=f"Task-{task_id}",
            coro_name=("handle_batch", "fetch_item", "load_prices", "audit")[depth % 4],
            state=state,
            start_ms=start,
            end_ms=end,
            exception_type=None if exception is None else exception[0],
            exception_message=None if exception is None else exception[1],
            stack=_stack(rng, depth),
        )
        events.append(event)
        return event

    roots = [add(None, 5.0 + 2.0 * index, 1_100.0, 0) for index in range(ROOTS)]
    children = []
    for root in roots:
        for index in range(CHILDREN_PER_ROOT):
            children.append(add(root, root.start_ms + 1.0 + index * 30.0, 120.0, 1))
    per_child = (TASKS - len(events)) // len(children)
    for child in children:
        for _ in range(per_child):
            start = child.start_ms + rng.uniform(0.1, 5.0)
            add(child, start, rng.uniform(0.0, 110.0), 2)
    while len(events) < TASKS:  # escaped background work: still running at response end
        add(rng.choice(children), rng.uniform(900.0, 1_200.0), 0.0, 2)
        events[-1].state, events[-1].end_ms = "pending", None
    return events


def build_steps(rng: random.Random, tasks: list[TaskEvent]) -> list[Step]:
    """Two steps a task: it runs 50 µs, awaits (a sleep, ready 10 µs before it resumes, or an
    HTTP call of unknown readiness) until half its life, then runs and returns; a task still
    running at the end is still waiting. The request's task gathers the roots, then renders."""
    sleep = AwaitTarget("sleep", delay_ms=5.0)
    http = AwaitTarget("library", library="httpx", function="AsyncClient.get")
    roots = tuple(task.task_id for task in tasks if task.parent_id is None)
    steps = [
        Step(
            0,
            0.5,
            4.0,
            "await",
            site=HANDLER_SITE,
            awaited=AwaitTarget("gather", task_ids=roots, count=len(roots)),
            resumed_ms=1_105.0,
        ),
        Step(0, 1_105.0, DURATION_MS, "running"),
    ]
    for task in tasks:
        start = task.start_ms + 0.02
        suspended = start + 0.05
        site, awaited = rng.choice(AWAIT_SITES), rng.choice((sleep, http))
        if task.end_ms is None:
            steps.append(Step(task.task_id, start, suspended, "await", site=site, awaited=awaited))
            continue
        resumed = max((task.start_ms + task.end_ms) / 2, suspended)
        ready = resumed - 0.01 if awaited is sleep else None
        steps += [
            Step(
                task.task_id,
                start,
                suspended,
                "await",
                site=site,
                awaited=awaited,
                resumed_ms=resumed,
                ready_ms=ready,
            ),
            Step(task.task_id, resumed, max(task.end_ms, resumed), "return"),
        ]
    steps.sort(key=lambda step: step.end_ms)  # recorded as they end
    return steps


def _step_stats(steps: list[Step], request_end_ms: float) -> dict[str, Any]:
    """What the panel stores of the steps: the rows, the await-site table, the request task."""
    table = StepTable(origin_ns=0, end_ns=round(DURATION_MS * 1e6), rows=tuple(steps))
    return {
        "steps": {
            "start_ms": 0.5,
            "end_ms": DURATION_MS,
            "dropped": 0,
            "dropped_from_ms": None,
            "rows": table.to_dicts(),
        },
        "await_sites": [row.to_dict() for row in await_sites(table)],
        "request_task": RequestTask("Task-1", "run_asgi", 0.5, request_end_ms).to_dict(),
    }


def build_long_task_stats() -> dict[str, Any]:
    """The request's own task alone, 10,000 times: runs 25 µs, sleeps 100 µs."""
    steps, at = [], 0.0
    pause = AwaitTarget("sleep", delay_ms=0.0)
    for _ in range(LONG_TASK_STEPS):
        resumed = at + 0.125
        steps.append(
            Step(
                0,
                at,
                at + 0.025,
                "await",
                site=AWAIT_SITES[2],
                awaited=pause,
                resumed_ms=resumed,
                ready_ms=resumed - 0.02,
            )
        )
        at = resumed
    stats = {
        "backend": "taskfactory",
        "summary": {"total_tasks": 0, "dropped": 0, "profiling_overhead_ms": 1.0},
        "tasks": [],
        **_step_stats(steps, DURATION_MS),
    }
    result: dict[str, Any] = json.loads(json.dumps(stats))
    return result


def build_stats() -> dict[str, Any]:
    rng = random.Random(5)
    tasks = build_tasks(rng)
    frame = StackFrame("/srv/shop/app/reports.py", 88, "render_pdf", "pdf = weasy.render(html)")
    calls = [
        BlockingCall(210.0, 140.0, frame.filename, frame.lineno, frame.function, frame.code,
                     stack=_stack(rng, 1)),
        BlockingCall(640.0, 35.0, "/srv/shop/app/repo.py", 12, "load", "rows = cur.fetchall()",
                     stack=_stack(rng, 2)),
        BlockingCall(900.0, 60.0, "/srv/shop/app/export.py", 40, "build_csv", "csv.writerows(r)",
                     relation="suffered", culprit_request_id="5e1f0c9a7b3d4e2f",
                     culprit_method="GET", culprit_path="/export.csv"),
    ]  # fmt: skip
    samples = [
        LagSample(at_ms=at, lag_ms=round(rng.uniform(0.05, 2.0), 3))
        for at in range(10, int(DURATION_MS), 10)
    ]
    samples += [LagSample(at_ms=350.0, lag_ms=140.0), LagSample(at_ms=960.0, lag_ms=60.0)]
    counts = {state: 0 for state in ("completed", "cancelled", "failed", "pending")}
    for task in tasks:
        counts[task.state] += 1
    stats = {
        "backend": "taskfactory",
        "summary": {
            "total_tasks": len(tasks),
            **counts,
            "dropped": 0,
            "profiling_overhead_ms": 4.2,
        },
        "tasks": [task.to_dict() for task in tasks],
        "overhead": {"tracking_ms": 2.1, "setup_ms": 0.1, "report_ms": 2.0},
        "blocking_calls": [call.to_dict() for call in calls],
        "lag": {
            "samples": [sample.to_dict() for sample in sorted(samples, key=lambda s: s.at_ms)],
            "max_lag_ms": 140.0,
            "threshold_ms": 10.0,
            "interval_ms": 10.0,
        },
        **_step_stats(build_steps(rng, tasks), DURATION_MS),
    }
    result: dict[str, Any] = json.loads(json.dumps(stats))
    return result


def _median_ms(action: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        action()
        times.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(times)


def _side_by_side_ms(*actions: Callable[[], object]) -> list[float]:
    """Medians of actions measured in turn, round after round (a busy machine slows all)."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(ROUNDS):
        for action, found in zip(actions, times, strict=True):
            started = time.perf_counter_ns()
            action()
            found.append((time.perf_counter_ns() - started) / 1e6)
    return [statistics.median(found) for found in times]


def _segments_cost(profile: AsyncProfile, long_profile: AsyncProfile) -> tuple[float, float]:
    """Prints what segments add to ``timeline_of``; their cost for the 5,000 tasks and for the
    long task, each as a share of the 5,000 tasks' timeline without them."""
    without_ms, with_ms, long_without_ms, long_with_ms = _side_by_side_ms(
        lambda: timeline_of(profile, duration_ms=DURATION_MS, segments=False),
        lambda: timeline_of(profile, duration_ms=DURATION_MS),
        lambda: timeline_of(long_profile, duration_ms=DURATION_MS, segments=False),
        lambda: timeline_of(long_profile, duration_ms=DURATION_MS),
    )
    shares = []
    for label, this, base, plus in (
        (
            f"{TASKS:,} tasks of 2 steps ({DEFAULT_MAX_ROWS} rows drawn)",
            profile,
            without_ms,
            with_ms,
        ),
        (f"one task of {LONG_TASK_STEPS:,} steps", long_profile, long_without_ms, long_with_ms),
    ):
        timeline = timeline_of(this, duration_ms=DURATION_MS)
        drawn = sum(len(row.segments) for row in timeline.rows)
        merged = sum(row.merged_steps for row in timeline.rows)
        cost = plus - base
        shares.append(cost / without_ms)
        print(f"  segments, {label}:")
        _line("  timeline_of without segments", base)
        _line("  timeline_of with segments", plus)
        _line(f"    segments ({drawn:,} drawn, {merged:,} steps merged)", cost)
        print(f"      = {cost / without_ms:.0%} of the {TASKS:,}-task timeline without segments")
    return shares[0], shares[1]


def _line(label: str, ms: float) -> None:
    print(f"  {label:<56}{ms:8.1f} ms")


def _render_action(
    stats: dict[str, Any], *, segments: bool | None = None
) -> Callable[[], object] | str:
    """A callable rendering the panel from the history record, or why it cannot run yet.

    ``segments`` True or False: the template alone, its context built once, with the
    timeline's segments or without them.
    """
    try:
        from debug_toolbar.core.records import PanelRecord, RequestRecord
        from debug_toolbar.core.rendering import render_panel

        panel = PanelRecord(
            panel_id="AsyncProfilerPanel",
            title="Async",
            nav_title="Async",
            nav_subtitle=f"{TASKS:,} tasks",
            template=TEMPLATE,
            has_content=True,
            enabled=True,
            stats=stats,
        )
        record = RequestRecord(
            request_id="0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a",
            method="GET",
            path="/dashboard",
            query_string="",
            status_code=200,
            duration_ms=DURATION_MS,
            started_at=1_700_000_000.0,
            panels=(panel,),
        )

        from debug_toolbar.core.config import DebugToolbarConfig
        from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel

        config = DebugToolbarConfig(panels=[AsyncProfilerPanel])

        def render() -> str:
            return render_panel(panel, record, "/_debug_toolbar", config)

        if segments is not None:
            from debug_toolbar.core.rendering import render_template

            context: dict[str, Any] = {
                "panel": panel,
                "stats": stats,
                "record": record,
                "prefix": "/_debug_toolbar",
                "downloads": (),
                **AsyncProfilerPanel.get_template_context(stats, record, config),
            }
            context["timeline"] = timeline_of(
                context["profile"], duration_ms=DURATION_MS, segments=segments
            )

            def render() -> str:
                return render_template(TEMPLATE, **context)

        render()
    except Exception as exc:  # a template that cannot render these stats: say why, go on
        return f"{type(exc).__name__}: {exc}"
    return render


def run() -> list[Result]:
    stats = build_stats()
    print(
        f"bench_timeline: {len(stats['tasks']):,} tasks, {STACK_DEPTH}-frame stacks, "
        f"{len(stats['steps']['rows']):,} steps, "
        f"{len(stats['blocking_calls'])} blocking calls, {len(stats['lag']['samples'])} lag "
        f"samples; median of {ROUNDS} runs"
    )
    profile_ms = _median_ms(lambda: AsyncProfile.from_dict(stats))
    profile = AsyncProfile.from_dict(stats)
    of_profile_ms = _median_ms(
        lambda: timeline_of(profile, duration_ms=DURATION_MS, max_rows=DEFAULT_MAX_ROWS)
    )
    timeline = timeline_of(profile, duration_ms=DURATION_MS, max_rows=DEFAULT_MAX_ROWS)
    timeline_ms = profile_ms + of_profile_ms
    rows = f"{len(timeline.rows)} rows, {timeline.hidden_rows:,} more"
    _line(f"timeline view model ({rows})", timeline_ms)
    _line("  of which AsyncProfile.from_dict (the stored stats)", profile_ms)
    _line("  of which timeline_of (the profile)", of_profile_ms)

    render = _render_action(stats)
    if isinstance(render, str):
        print(f"  render {TEMPLATE}: skipped ({render})")
        total_ms = timeline_ms
    else:
        # What the pages pay: render_panel builds the view model (above) and renders the
        # template, which draws the timeline's capped rows, not every stored task.
        total_ms = _median_ms(render)
        _line("panel total: render_panel (view model + template)", total_ms)
        _line(f"  of which the template ({len(timeline.rows)} rows drawn)", total_ms - timeline_ms)

    verdict = "ok" if total_ms < GOAL_MS else "over"
    print(f"  goal: under {GOAL_MS:.0f} ms with the row cap; as it stands: {verdict}")

    export_ms = _median_ms(
        lambda: json.dumps(
            chrome_trace(
                AsyncProfile.from_dict(stats),
                duration_ms=DURATION_MS,
                request_id="0d1e2f3a",
                method="GET",
                path="/",
            )
        )
    )
    _line(f"trace export, all {TASKS:,} tasks, to JSON", export_ms)

    long_profile = AsyncProfile.from_dict(build_long_task_stats())
    many, long = _segments_cost(profile, long_profile)
    plain, stepped = (_render_action(stats, segments=drawn) for drawn in (False, True))
    if isinstance(plain, str) or isinstance(stepped, str):
        print(f"  the template's segments: skipped ({plain})")
    else:
        plain_ms, stepped_ms = _side_by_side_ms(plain, stepped)
        print("  segments in the template (its context built once):")
        _line("  the template without segments", plain_ms)
        _line("  the template with segments", stepped_ms)
        _line("    segments drawn", stepped_ms - plain_ms)
    return [
        Result(f"timeline segments: {TASKS:,} tasks x 2 steps / timeline", many, SEGMENTS_GOAL),
        Result(
            f"timeline segments: 1 task x {LONG_TASK_STEPS:,} steps / timeline",
            long,
            SEGMENTS_GOAL,
        ),
    ]
