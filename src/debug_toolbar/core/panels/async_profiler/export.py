"""The timeline view model -> a Chrome trace (Trace Event Format, JSON object form).

The file opens in Perfetto (ui.perfetto.dev) and chrome://tracing. It renders the same
``Timeline`` the panel draws, so the two agree on tree order, clipping and culprits; the export
is built uncapped (``max_rows=None``) because a trace viewer copes with thousands of tracks
where a web page does not.

Layout, one process per request:

- tid 1 ``request``: one complete event spanning the request window, and an instant event at
  the response's end;
- tid 2 ``event loop``: one complete event per blocking period (own, suffered or unknown, with
  file:line, the source line and the culprit in ``args``), and the ``event loop lag`` counter;
- tid 3 and up: one track per task, named after it, in the timeline's tree order
  (``thread_sort_index``), holding one complete event for the task's life. A task still
  running at the response's end, or that ended after it, ends at the window's end, with
  ``args.clipped`` true and its recorded end in ``args.end_ms``. The request's own task, when
  recorded, is the first of them (task 0).
- on each task's track, inside its life, its steps (Python 3.12+, ``steps.py``): one complete
  event ``run`` (category ``step,run``) per run of its coroutine, and one ``await FILE:LINE``
  (category ``step,wait``) per suspension, from the suspension to the resumption, with what was
  awaited, how long it waited and how long it sat queued once ready in ``args``. Perfetto nests
  them under the task's slice, so its track shows where the task's time went. They are clipped
  to the task's slice (a slice must not spill out of its parent); the profile's own cap
  (``async_max_steps``) bounds how many there are.

Times are microseconds (``ts``/``dur``) from the request's start, as the format requires;
``displayTimeUnit`` asks viewers to show milliseconds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.timeline import (
    timeline_of,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from debug_toolbar.core.panels.async_profiler.models import StackFrame
    from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
    from debug_toolbar.core.panels.async_profiler.steps import Step, StepTable
    from debug_toolbar.core.panels.async_profiler.timeline_model import (
        BlockingBand,
        LagMark,
        Timeline,
        TimelineRow,
    )

__all__ = (
    "LAG_COUNTER_NAME",
    "LOOP_TID",
    "PID",
    "REQUEST_TID",
    "RUN_CATEGORY",
    "RUN_NAME",
    "WAIT_CATEGORY",
    "chrome_trace",
    "to_chrome_trace",
)

PID = 1
"""One request per file, so one process."""
REQUEST_TID = 1
LOOP_TID = 2
FIRST_TASK_TID = 3
LAG_COUNTER_NAME = "event loop lag"
RUN_NAME = "run"
RUN_CATEGORY = "step,run"
WAIT_CATEGORY = "step,wait"

_BLOCKING_NAMES = {
    "own": "blocked (this request)",
    "suffered": "blocked (another request)",
    "unknown": "blocked (culprit unknown)",
}

Track = tuple[int, float, float]
"""A task's track: its tid, and its slice's start and end in µs."""

_CLIPPED_NOTE = "drawn up to the response's end: the task was still running when it was sent"


def _us(ms: float) -> float:
    """Milliseconds -> microseconds, to the nanosecond, never negative."""
    return round(max(ms, 0.0) * 1000.0, 3)


def _metadata(name: str, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "ts": 0, "pid": PID, "tid": tid, "args": args}


def _frames(stack: tuple[StackFrame, ...]) -> list[str]:
    return [f"{frame.filename}:{frame.lineno} in {frame.function}" for frame in stack]


def _track_name(row: TimelineRow) -> str:
    if row.coro_name and row.coro_name != row.name:
        return f"{row.name} ({row.coro_name})"
    return row.name or f"task {row.task_id}"


def _task_event(row: TimelineRow, tid: int) -> dict[str, Any]:
    args: dict[str, Any] = {
        "task_id": row.task_id,
        "parent_id": row.parent_id,
        "depth": row.depth,
        "name": row.name,
        "coroutine": row.coro_name,
        "state": row.state,
        "start_ms": row.start_ms,
        "end_ms": row.end_ms,
        "duration_ms": row.duration_ms,
        "clipped": row.clipped,
    }
    if row.clipped:
        args["note"] = _CLIPPED_NOTE
    if row.exception_type is not None:
        args["exception"] = {"type": row.exception_type, "message": row.exception_message or ""}
    if row.created_at is not None:
        args["created_at"] = row.created_at
        args["creation_stack"] = _frames(row.stack)
    start = _us(row.bar_start_ms)
    return {
        "name": row.coro_name or row.name or f"task {row.task_id}",
        "cat": f"task,{row.state}",
        "ph": "X",
        "ts": start,
        "dur": round(max(_us(row.bar_end_ms) - start, 0.0), 3),
        "pid": PID,
        "tid": tid,
        "args": args,
    }


def _frame(frame: StackFrame | None) -> str | None:
    return None if frame is None else f"{frame.filename}:{frame.lineno} in {frame.function}"


def _slice(name: str, cat: str, start_ms: float, end_ms: float, track: Track) -> dict[str, Any]:
    """A complete event within its task's slice, so that it nests under it."""
    tid, low, high = track
    start = min(max(_us(start_ms), low), high)
    end = min(max(_us(end_ms), start), high)
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": start,
        "dur": round(end - start, 3),
        "pid": PID,
        "tid": tid,
    }


def _step_events(step: Step, end_ms: float, track: Track) -> list[dict[str, Any]]:
    """A step's run, then the wait its suspension began (if it ended in one)."""
    run = _slice(RUN_NAME, RUN_CATEGORY, step.start_ms, step.end_ms, track)
    run["args"] = {
        "task_id": step.task_id,
        "start_ms": step.start_ms,
        "duration_ms": step.duration_ms,
        "ended": step.ended,
        "start_known": step.start_known,
        "suspended_at": _frame(step.site),
    }
    waited = step.waited_ms(end_ms)
    if waited is None:
        return [run]
    site = step.site
    where = "unknown site" if site is None else f"{os.path.basename(site.filename)}:{site.lineno}"
    resumed = end_ms if step.resumed_ms is None else step.resumed_ms
    wait = _slice(f"await {where}", WAIT_CATEGORY, step.end_ms, resumed, track)
    awaited = step.awaited
    wait["args"] = {
        "task_id": step.task_id,
        "site": _frame(site),
        "code": None if site is None else site.code,
        "site_is_app": step.site_is_app,
        "awaited": None if awaited is None else awaited.label,
        "awaited_kind": None if awaited is None else awaited.kind,
        "awaited_task_ids": [] if awaited is None else list(awaited.task_ids),
        "start_ms": step.end_ms,
        "waited_ms": waited,
        "queued_ms": step.resume_delay_ms(end_ms),
        "ready_ms": step.ready_ms,
        "resumed": step.resumed_ms is not None,
    }
    return [run, wait]


def _steps_events(steps: StepTable, tracks: Mapping[int, Track]) -> list[dict[str, Any]]:
    """Every step of the tasks that have a track (task id -> its track)."""
    end_ms = steps.end_ms
    events: list[dict[str, Any]] = []
    for step in steps.steps():
        track = tracks.get(step.task_id)
        if track is not None:
            events.extend(_step_events(step, end_ms, track))
    return events


def _blocking_event(band: BlockingBand) -> dict[str, Any]:
    culprit: str | dict[str, str | None] | None
    if band.relation == "own":
        culprit = "this request"
    elif band.relation == "unknown":
        culprit = None
    else:
        culprit = {
            "request_id": band.culprit_request_id,
            "method": band.culprit_method,
            "path": band.culprit_path,
            "label": band.culprit_label,
        }
    start = _us(band.bar_start_ms)
    return {
        "name": _BLOCKING_NAMES[band.relation],
        "cat": f"blocking,{band.relation}",
        "ph": "X",
        "ts": start,
        "dur": round(max(_us(band.bar_end_ms) - start, 0.0), 3),
        "pid": PID,
        "tid": LOOP_TID,
        "args": {
            "location": band.location,
            "function": band.function,
            "code": band.code,
            "culprit": culprit,
            "relation": band.relation,
            "own": band.relation == "own",
            "sampled": band.relation != "unknown",
            "start_ms": band.start_ms,
            "duration_ms": band.duration_ms,
            "clipped": band.clipped,
            "stack": _frames(band.stack),
        },
    }


def _lag_counter(marks: tuple[LagMark, ...]) -> list[dict[str, Any]]:
    """A step series: 0, then each delay's value over its span, back to 0 when it ended.

    A heartbeat sample says the loop was late by ``lag_ms`` up to ``at_ms``; drawing the value
    only from ``at_ms`` on would put the spike after the stall that caused it.
    """
    if not marks:
        return []
    points: list[tuple[float, int, float]] = [(0.0, 0, 0.0)]
    for mark in marks:
        points.append((_us(mark.start_ms), 1, mark.lag_ms))
        points.append((_us(mark.at_ms), 0, 0.0))
    # At one instant a delay's end (0) comes before the next one's start (its value).
    points.sort(key=lambda point: (point[0], point[1]))
    return [
        {
            "name": LAG_COUNTER_NAME,
            "cat": "lag",
            "ph": "C",
            "ts": ts,
            "pid": PID,
            "tid": LOOP_TID,
            "args": {"lag_ms": value},
        }
        for ts, _, value in points
    ]


def to_chrome_trace(
    timeline: Timeline,
    *,
    request_id: str,
    method: str,
    path: str,
    steps: StepTable | None = None,
) -> dict[str, Any]:
    """The trace of one request as a JSON-serialisable dict (``json.dumps`` it to download).

    Pass an uncapped timeline to get every task; a capped one still exports, and says in
    ``metadata.tasks_not_exported`` how many rows it left out. ``steps``: the profile's steps,
    drawn on the tracks of the timeline's tasks (those of a task without a row are left out).
    """
    title = f"{method} {path}"
    window_us = _us(timeline.window_ms)
    events: list[dict[str, Any]] = [
        _metadata("process_name", REQUEST_TID, {"name": f"{title} · {request_id[:8]}"}),
        _metadata("process_labels", REQUEST_TID, {"labels": f"request {request_id}"}),
        _metadata("thread_name", REQUEST_TID, {"name": "request"}),
        _metadata("thread_sort_index", REQUEST_TID, {"sort_index": 0}),
        _metadata("thread_name", LOOP_TID, {"name": "event loop"}),
        _metadata("thread_sort_index", LOOP_TID, {"sort_index": 1}),
    ]
    for index, row in enumerate(timeline.rows):
        tid = FIRST_TASK_TID + index
        events.append(_metadata("thread_name", tid, {"name": _track_name(row)}))
        events.append(_metadata("thread_sort_index", tid, {"sort_index": index + 2}))

    events.append(
        {
            "name": title,
            "cat": "request",
            "ph": "X",
            "ts": 0.0,
            "dur": window_us,
            "pid": PID,
            "tid": REQUEST_TID,
            "args": {"request_id": request_id, "duration_ms": timeline.duration_ms},
        }
    )
    events.append(
        {
            "name": "response end",
            "cat": "request",
            "ph": "i",
            "s": "t",
            "ts": window_us,
            "pid": PID,
            "tid": REQUEST_TID,
            "args": {},
        }
    )
    events.extend(_blocking_event(band) for band in timeline.blocking)
    events.extend(_lag_counter(timeline.lag))
    task_events = [
        _task_event(row, FIRST_TASK_TID + index) for index, row in enumerate(timeline.rows)
    ]
    events.extend(task_events)
    step_events: list[dict[str, Any]] = []
    if steps is not None:
        tracks = {
            row.task_id: (event["tid"], event["ts"], event["ts"] + event["dur"])
            for row, event in zip(timeline.rows, task_events, strict=True)
        }
        step_events = _steps_events(steps, tracks)
        events.extend(step_events)
    counts = timeline.counts
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "metadata": {
            "generator": "debug-toolbar async profiler",
            "clock": "time.perf_counter, from the request's start",
            "request_id": request_id,
            "method": method,
            "path": path,
            "duration_ms": timeline.duration_ms,
            "window_ms": timeline.window_ms,
            "tasks": {
                "total": counts.total,
                "completed": counts.completed,
                "cancelled": counts.cancelled,
                "failed": counts.failed,
                "pending": counts.pending,
            },
            "tasks_not_exported": timeline.hidden_rows,
            "tasks_not_recorded": timeline.dropped_tasks,
            "blocking_calls": {
                "own": timeline.own_blocking,
                "suffered": timeline.suffered_blocking,
                "unknown": timeline.unknown_blocking,
            },
            "max_lag_ms": timeline.max_lag_ms,
            "lag_threshold_ms": timeline.lag_threshold_ms,
            "steps": {
                "recorded": 0 if steps is None else len(steps),
                "exported": sum(1 for event in step_events if event["cat"] == RUN_CATEGORY),
                "not_recorded": 0 if steps is None else steps.dropped,
            },
        },
    }


def chrome_trace(
    profile: AsyncProfile,
    *,
    duration_ms: float | None,
    request_id: str,
    method: str,
    path: str,
) -> dict[str, Any]:
    """The trace of a request's profile, every task and every recorded step included."""
    # The trace draws steps from ``steps`` itself: the Gantt's segments would go unused.
    timeline = timeline_of(profile, duration_ms=duration_ms, max_rows=None, segments=False)
    return to_chrome_trace(
        timeline, request_id=request_id, method=method, path=path, steps=profile.steps
    )
