"""Profiler records -> the timeline view model, as one pure function (no I/O, no clock).

The Gantt template and the Chrome trace export both render this model, so the two can never
disagree about where a task starts, what was clipped or what the cap hid. Everything the
template needs is computed here (percentages, tree depth, hover text, tick labels), leaving the
template nothing to do but format and place.

Each drawn row also gets the segments of its task's steps (``timeline_segments``), when the
profile has steps: built here, at render time, for the drawn rows only.

The axis is the request window ``[0, duration_ms]``: a task that outlives the response is
clipped at the window's end and marked, rather than stretching the axis and squashing the
request itself into a corner. When the duration is unknown (zero, negative or not finite), the
records are the only axis there is, so the window spans them (at least ``MIN_WINDOW_MS``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from debug_toolbar.core.panels.async_profiler.models import TaskEvent
from debug_toolbar.core.panels.async_profiler.stacks import is_app_file
from debug_toolbar.core.panels.async_profiler.steps import REQUEST_TASK_ID
from debug_toolbar.core.panels.async_profiler.timeline_model import (
    BlockingBand,
    LagMark,
    TaskCounts,
    Tick,
    Timeline,
    TimelineRow,
    format_duration,
    format_tick,
)
from debug_toolbar.core.panels.async_profiler.timeline_segments import (
    RowSegments,
    row_segments,
    site_indexes,
    steps_by_task,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from debug_toolbar.core.panels.async_profiler.models import (
        BlockingCall,
        LagSample,
        StackFrame,
    )
    from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
    from debug_toolbar.core.panels.async_profiler.steps import StepTable

__all__ = (
    "DEFAULT_MAX_ROWS",
    "MAX_TICKS",
    "MIN_BAR_PCT",
    "MIN_WINDOW_MS",
    "generate_timeline",
    "timeline_of",
)

DEFAULT_MAX_ROWS = 500
"""Rows drawn when the caller does not say (the config's ``async_max_timeline_rows``)."""

MIN_BAR_PCT = 0.3
"""Narrowest bar, in percent of the window: about 3 px at 1,000 px, so a 0 ms task still shows."""

MIN_WINDOW_MS = 1.0
"""Smallest window when the request's duration is unknown; avoids a division by zero."""

MAX_TICKS = 10
"""Most ticks on the axis (0 included); the 1-2-5 steps then give at least 5."""

_PCT_DIGITS = 4
"""Percentages are rounded: 1/10,000 % is far below a pixel and keeps the HTML short."""

_TICK_MANTISSAS = (1.0, 2.0, 5.0)

_SEPARATOR = " · "
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")
"""asyncio's name for a task created without one."""


def _pct(ms: float, window_ms: float) -> float:
    return min(max(ms / window_ms * 100.0, 0.0), 100.0)


def _span(start_ms: float, end_ms: float, window_ms: float) -> tuple[float, float]:
    """(left, width) in percent, clamped to the window, never narrower than ``MIN_BAR_PCT``."""
    left = _pct(start_ms, window_ms)
    width = max(_pct(end_ms, window_ms) - left, MIN_BAR_PCT)
    if left + width > 100.0:
        left = max(100.0 - width, 0.0)
    return round(left, _PCT_DIGITS), round(min(width, 100.0), _PCT_DIGITS)


def _window(
    duration_ms: float | None,
    tasks: Sequence[TaskEvent],
    blocking_calls: Sequence[BlockingCall],
    lag_samples: Sequence[LagSample],
) -> float:
    if duration_ms is not None and math.isfinite(duration_ms) and duration_ms > 0:
        return float(duration_ms)
    extent = 0.0
    for task in tasks:
        for value in (task.start_ms, task.end_ms):
            if value is not None and math.isfinite(value):
                extent = max(extent, value)
    for call in blocking_calls:
        end = call.start_ms + call.duration_ms
        if math.isfinite(end):
            extent = max(extent, end)
    for sample in lag_samples:
        if math.isfinite(sample.at_ms):
            extent = max(extent, sample.at_ms)
    return max(extent, MIN_WINDOW_MS)


def _tick_step(window_ms: float) -> float:
    """The smallest 1-2-5 step that puts at most ``MAX_TICKS`` ticks on the window."""
    exponent = math.floor(math.log10(window_ms / MAX_TICKS)) - 1
    while True:
        for mantissa in _TICK_MANTISSAS:
            step = mantissa * 10.0**exponent
            if math.floor(window_ms / step + 1e-9) + 1 <= MAX_TICKS:
                return step
        exponent += 1


def _ticks(window_ms: float) -> tuple[Tick, ...]:
    step = _tick_step(window_ms)
    count = math.floor(window_ms / step + 1e-9) + 1
    ticks = []
    for index in range(count):
        value = round(index * step, 12)
        left = round(_pct(value, window_ms), _PCT_DIGITS)
        align: Literal["start", "center", "end"] = (
            "start" if index == 0 else "end" if left >= 95.0 else "center"
        )
        ticks.append(Tick(at_ms=value, left_pct=left, label=format_tick(value, step), align=align))
    return tuple(ticks)


def _tree_order(tasks: Sequence[TaskEvent]) -> tuple[list[tuple[int, int]], dict[int, list[int]]]:
    """Indexes of ``tasks`` depth-first (with their depth) and the children per parent id.

    Siblings go by start time, then id. A task whose parent is missing (dropped by a cap, or
    unknown) is a root. Tasks only reachable through a cycle (which the collector cannot
    produce, but hand-written stats could) are walked from their earliest member, and no task
    is ever visited twice. Iterative, because a chain of thousands of tasks is legal.
    """
    known = {task.task_id for task in tasks}
    roots: list[int] = []
    children: dict[int, list[int]] = {}
    for index, task in enumerate(tasks):
        parent = task.parent_id
        if parent is None or parent == task.task_id or parent not in known:
            roots.append(index)
        else:
            children.setdefault(parent, []).append(index)

    def sort_key(index: int) -> tuple[float, int]:
        return (tasks[index].start_ms, tasks[index].task_id)

    roots.sort(key=sort_key)
    for siblings in children.values():
        siblings.sort(key=sort_key)

    order: list[tuple[int, int]] = []
    visited = bytearray(len(tasks))

    def walk(start: Iterable[int]) -> None:
        pending = [(index, 0) for index in reversed(list(start))]
        while pending:
            index, depth = pending.pop()
            if visited[index]:
                continue
            visited[index] = 1
            order.append((index, depth))
            kids = children.get(tasks[index].task_id, ())
            pending.extend((kid, depth + 1) for kid in reversed(kids))

    walk(roots)
    if len(order) < len(tasks):
        for index in sorted((i for i in range(len(tasks)) if not visited[i]), key=sort_key):
            walk((index,))
    return order, children


def _location(filename: str | None, lineno: int | None) -> str | None:
    if filename is None:
        return None
    return filename if lineno is None else f"{filename}:{lineno}"


def _short_location(filename: str | None, lineno: int | None) -> str:
    if filename is None:
        return "unknown location"
    name = os.path.basename(filename) or filename
    return name if lineno is None else f"{name}:{lineno}"


def _display_name(task: TaskEvent) -> str:
    """The row's label: the request's own task says so (its coroutine is the server's, such as
    uvicorn's ``RequestResponseCycle.run_asgi``, which tells a user nothing), and a task left
    with asyncio's default ``Task-<n>`` name is called by its coroutine."""
    if task.task_id == REQUEST_TASK_ID and task.parent_id is None:
        return "this request"
    if task.coro_name and _DEFAULT_TASK_NAME.fullmatch(task.name):
        return task.coro_name
    return task.name


def _row(
    task: TaskEvent,
    depth: int,
    children: int,
    window_ms: float,
    stack: tuple[StackFrame, ...],
    *,
    segments: RowSegments | None = None,
) -> TimelineRow:
    end = task.end_ms
    bar_start = min(max(task.start_ms, 0.0), window_ms)
    bar_end = window_ms if end is None else min(max(end, bar_start), window_ms)
    clipped = end is None or end > window_ms or task.start_ms > window_ms
    instant = end is not None and end <= task.start_ms
    left, width = _span(bar_start, bar_end, window_ms)
    duration = task.duration_ms

    parts = [task.name]
    if task.coro_name and task.coro_name != task.name:
        parts.append(task.coro_name)
    parts.append(f"start {format_duration(task.start_ms)}")
    if duration is None:
        parts.append("still running at response end")
    elif end is not None and end > window_ms:
        parts.append(f"{format_duration(duration)}, ended after the response")
    else:
        parts.append(format_duration(duration))
    parts.append(
        f"{task.state}: {task.exception_type}"
        if task.state == "failed" and task.exception_type
        else task.state
    )
    if segments is not None and segments.steps:
        parts.append(f"{segments.steps:,} step" + ("" if segments.steps == 1 else "s"))
        merged = segments.merged_steps
        if merged:
            noun = "step" if merged == 1 else "steps"
            parts.append(f"{merged:,} {noun} shorter than a pixel merged")
    site = _creation_site(stack)
    return TimelineRow(
        task_id=task.task_id,
        parent_id=task.parent_id,
        depth=depth,
        children=children,
        name=task.name,
        display_name=_display_name(task),
        coro_name=task.coro_name,
        state=task.state,
        start_ms=task.start_ms,
        end_ms=end,
        duration_ms=duration,
        bar_start_ms=bar_start,
        bar_end_ms=bar_end,
        left_pct=left,
        width_pct=width,
        clipped=clipped,
        instant=instant,
        exception_type=task.exception_type,
        exception_message=task.exception_message,
        created_at=None if site is None else _location(site.filename, site.lineno),
        stack=stack,
        label=_SEPARATOR.join(parts),
        site=site,
        is_request=task.task_id == REQUEST_TASK_ID and task.parent_id is None,
        segments=() if segments is None else segments.segments,
        steps=0 if segments is None else segments.steps,
        merged_steps=0 if segments is None else segments.merged_steps,
    )


def _creation_site(stack: tuple[StackFrame, ...]) -> StackFrame | None:
    """The innermost application frame of a creation stack (``stacks.is_app_file``), or its
    innermost frame when none is the application's."""
    for frame in stack:
        if is_app_file(frame.filename):
            return frame
    return stack[0] if stack else None


def _culprit_label(call: BlockingCall) -> str:
    if call.relation == "unknown":
        return "unknown (not sampled in time, or several requests' short steps added up)"
    if call.relation == "own":
        return "this request"
    if call.culprit_request_id is None:
        return "code outside any profiled request"
    request = " ".join(part for part in (call.culprit_method, call.culprit_path) if part)
    short_id = call.culprit_request_id[:8]
    return f"{request} (request {short_id})" if request else f"request {short_id}"


def _band(call: BlockingCall, window_ms: float) -> BlockingBand:
    end = call.start_ms + max(call.duration_ms, 0.0)
    bar_start = min(max(call.start_ms, 0.0), window_ms)
    bar_end = min(max(end, bar_start), window_ms)
    left, width = _span(bar_start, bar_end, window_ms)
    culprit = _culprit_label(call)
    where = _short_location(call.filename, call.lineno)
    if call.function:
        where = f"{where} in {call.function}"
    cause = {
        "own": "by this request",
        "suffered": f"suffered, caused by {culprit}",
        "unknown": "culprit unknown",
    }[call.relation]
    return BlockingBand(
        start_ms=call.start_ms,
        duration_ms=call.duration_ms,
        end_ms=end,
        bar_start_ms=bar_start,
        bar_end_ms=bar_end,
        left_pct=left,
        width_pct=width,
        clipped=end > window_ms or call.start_ms > window_ms,
        relation=call.relation,
        filename=call.filename,
        lineno=call.lineno,
        function=call.function,
        code=call.code,
        location=_location(call.filename, call.lineno),
        stack=tuple(call.stack),
        culprit_request_id=call.culprit_request_id,
        culprit_method=call.culprit_method,
        culprit_path=call.culprit_path,
        culprit_label=culprit,
        label=_SEPARATOR.join(
            (
                f"loop blocked {format_duration(call.duration_ms)}",
                f"start {format_duration(call.start_ms)}",
                where,
                cause,
            )
        ),
    )


def _lag_mark(
    sample: LagSample, window_ms: float, scale_ms: float, threshold_ms: float | None
) -> LagMark:
    start = max(sample.at_ms - max(sample.lag_ms, 0.0), 0.0)
    left, width = _span(min(start, window_ms), min(max(sample.at_ms, start), window_ms), window_ms)
    intensity = min(max(sample.lag_ms / scale_ms, 0.0), 1.0) if scale_ms > 0 else 0.0
    return LagMark(
        at_ms=sample.at_ms,
        lag_ms=sample.lag_ms,
        start_ms=start,
        left_pct=left,
        width_pct=width,
        intensity=round(intensity, 4),
        height_pct=round(intensity * 100.0, 2),
        over_threshold=threshold_ms is not None and sample.lag_ms >= threshold_ms,
        label=f"loop lag {format_duration(sample.lag_ms)} at {format_duration(sample.at_ms)}",
    )


def _counts(tasks: Sequence[TaskEvent]) -> TaskCounts:
    per_state = {"completed": 0, "cancelled": 0, "failed": 0, "pending": 0}
    for task in tasks:
        per_state[task.state] += 1
    return TaskCounts(total=len(tasks), **per_state)


def generate_timeline(
    *,
    duration_ms: float | None,
    tasks: Sequence[TaskEvent],
    blocking_calls: Sequence[BlockingCall] = (),
    lag_samples: Sequence[LagSample] = (),
    lag_threshold_ms: float | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    dropped_tasks: int = 0,
) -> Timeline:
    """The timeline of one request: tasks as a tree of bars, stalls and lag on the same axis.

    ``max_rows`` caps the rows built (the first ones in tree order, so a drawn child always
    has its parent drawn above it); None draws them all, as the trace export does. Only the
    drawn rows are built, which keeps a 5,000-task request cheap to render.
    """
    return _build(
        duration_ms=duration_ms,
        tasks=tasks,
        blocking_calls=blocking_calls,
        lag_samples=lag_samples,
        lag_threshold_ms=lag_threshold_ms,
        max_rows=max_rows,
        dropped_tasks=dropped_tasks,
        stack_of=lambda index: tuple(tasks[index].stack),
    )


def _build(
    *,
    duration_ms: float | None,
    tasks: Sequence[TaskEvent],
    blocking_calls: Sequence[BlockingCall],
    lag_samples: Sequence[LagSample],
    lag_threshold_ms: float | None,
    max_rows: int | None,
    dropped_tasks: int,
    stack_of: Callable[[int], tuple[StackFrame, ...]],
    segments_of: Callable[[Sequence[int], float], dict[int, RowSegments]] | None = None,
) -> Timeline:
    """``generate_timeline``, with each drawn task's stack fetched by its index in ``tasks``.

    From stored stats, resolving 10 frames for each of 5,000 tasks cost more than the rest of
    the timeline together; only the drawn rows need them. ``segments_of`` gives the drawn
    tasks' segments (by task id, for the window), when there are steps.
    """
    if max_rows is not None and max_rows < 0:
        raise ValueError(f"max_rows must be >= 0 or None, got {max_rows}")
    window = _window(duration_ms, tasks, blocking_calls, lag_samples)
    order, children = _tree_order(tasks)
    shown = order if max_rows is None else order[:max_rows]
    segments = (
        {}
        if segments_of is None
        else segments_of([tasks[index].task_id for index, _depth in shown], window)
    )
    rows = tuple(
        _row(
            tasks[index],
            depth,
            len(children.get(tasks[index].task_id, ())),
            window,
            stack_of(index),
            segments=segments.get(tasks[index].task_id),
        )
        for index, depth in shown
    )

    bands = tuple(_band(call, window) for call in sorted(blocking_calls, key=lambda c: c.start_ms))
    max_lag = max((sample.lag_ms for sample in lag_samples), default=0.0)
    scale = max(max_lag, lag_threshold_ms or 0.0, 0.0)
    marks = tuple(
        _lag_mark(sample, window, scale, lag_threshold_ms)
        for sample in sorted(lag_samples, key=lambda s: s.at_ms)
    )
    threshold_pct = (
        round(min(lag_threshold_ms / scale, 1.0) * 100.0, 2)
        if lag_threshold_ms is not None and scale > 0
        else None
    )
    own = sum(1 for band in bands if band.relation == "own")
    unknown = sum(1 for band in bands if band.relation == "unknown")
    return Timeline(
        duration_ms=0.0 if duration_ms is None else float(duration_ms),
        window_ms=window,
        rows=rows,
        hidden_rows=len(tasks) - len(rows),
        dropped_tasks=max(dropped_tasks, 0),
        counts=_counts(tasks),
        ticks=_ticks(window),
        blocking=bands,
        own_blocking=own,
        suffered_blocking=len(bands) - own - unknown,
        unknown_blocking=unknown,
        lag=marks,
        max_lag_ms=max_lag,
        lag_scale_ms=scale,
        lag_threshold_ms=lag_threshold_ms,
        lag_threshold_pct=threshold_pct,
    )


def timeline_of(
    profile: AsyncProfile,
    *,
    duration_ms: float | None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    segments: bool = True,
) -> Timeline:
    """The timeline of a request's profile; only the drawn rows' stacks are resolved.

    When the profile has the request's own task, it is the first row (task 0) and the root of
    the tree: the tasks it spawned (no recorded parent) become its children. It is not counted
    among the tasks (``counts``, ``hidden_rows``): those are the spawned ones.

    With steps, each drawn row gets its task's segments, each wait pointing at its row of
    ``profile.await_sites()`` (``Segment.site``); ``segments=False`` leaves them out (a
    consumer that does not draw bars).
    """
    tasks = profile.tasks
    lag = profile.lag
    events = tasks.events(stacks=False)
    stack_of = tasks.frames
    request_task = profile.request_task
    if request_task is not None:
        root = TaskEvent.from_dict(request_task.to_task_dict())
        for event in events:
            if event.parent_id is None:
                event.parent_id = REQUEST_TASK_ID
        events = (root, *events)

        def stack_of(index: int) -> tuple[StackFrame, ...]:
            return () if index == 0 else tasks.frames(index - 1)

    timeline = _build(
        duration_ms=duration_ms,
        tasks=events,
        blocking_calls=profile.blocking_calls,
        lag_samples=() if lag is None else lag.samples,
        lag_threshold_ms=None if lag is None else lag.threshold_ms,
        max_rows=max_rows,
        dropped_tasks=tasks.dropped,
        stack_of=stack_of,
        segments_of=_segments_of(profile) if segments else None,
    )
    if request_task is None:
        return timeline
    counts = timeline.counts
    return replace(
        timeline, counts=replace(counts, total=counts.total - 1, completed=counts.completed - 1)
    )


def _segments_of(
    profile: AsyncProfile,
) -> Callable[[Sequence[int], float], dict[int, RowSegments]] | None:
    """The drawn rows' segments, from the profile's steps; None without steps."""
    table: StepTable | None = profile.steps
    if table is None or not len(table):
        return None

    def build(task_ids: Sequence[int], window_ms: float) -> dict[int, RowSegments]:
        sites = site_indexes(profile.await_sites())
        end_ms = table.end_ms
        return {
            task_id: row_segments(steps, window_ms=window_ms, end_ms=end_ms, sites=sites)
            for task_id, steps in steps_by_task(table, task_ids).items()
        }

    return build
