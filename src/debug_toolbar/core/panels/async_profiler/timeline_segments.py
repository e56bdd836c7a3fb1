"""A task's steps -> the segments drawn over its Gantt bar: running, waiting, queued.

Pure functions of a ``StepTable`` (no I/O, no clock), called by ``timeline.timeline_of`` for
the rows it draws, when the page is rendered. A step is a run of the task's coroutine (solid);
the suspension after it is waiting until what it awaited was ready (light) and then queued
until the loop resumed it (a third shade), where readiness is known; otherwise the whole
suspension is waiting, as the time breakdown counts it (``step_report``).

Readable with thousands of steps, bounded whatever their number: the bar is laid out at a
nominal track width of ``NOMINAL_TRACK_PX`` pixels (about what the panel's track measures in
a 1,280 px window). A part narrower than one such pixel is merged with the narrow parts that
follow it into one pixel-wide ``mixed`` segment (one narrow part alone keeps its kind, widened
to a pixel), taking what it needs from its neighbour. Every segment drawn is then at least a
pixel wide and none overlap, so a row never has more than ``NOMINAL_TRACK_PX`` segments; the
row says how many steps were merged. Labels are formatted for the drawn segments only, so a
task of 10,000 steps costs a walk of its steps and at most ``NOMINAL_TRACK_PX`` labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from debug_toolbar.core.panels.async_profiler.timeline_model import (
    Segment,
    SegmentKind,
    format_duration,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from debug_toolbar.core.panels.async_profiler.models import StackFrame
    from debug_toolbar.core.panels.async_profiler.step_report import AwaitSiteRow
    from debug_toolbar.core.panels.async_profiler.steps import Step, StepTable

__all__ = (
    "NOMINAL_TRACK_PX",
    "RowSegments",
    "SiteKey",
    "row_segments",
    "site_indexes",
    "site_key",
    "site_text",
    "steps_by_task",
)

NOMINAL_TRACK_PX = 1000
"""The track width segments are laid out for: a part narrower than ``window / 1000`` is
merged. Also the most segments a row can have."""

_PCT_DIGITS = 4
"""As the bars' percentages (``timeline._PCT_DIGITS``)."""

_SEPARATOR = " · "
_SLACK = 1e-6
"""Float rounding, in pixels: a part ending this close past a group's pixel belongs to it (a
sum of steps' times lands a hair off), rather than leaving a sliver to draw."""
_FULL_PIXEL = 1.0 - _SLACK
"""A pixel, less what float rounding takes from a thousand pixel-wide groups in a row."""

SiteKey = tuple["StackFrame | None", bool, "str | None"]
"""What ``step_report.await_sites`` groups a suspension by: (site, site is the app's, awaited
label)."""

_Piece = tuple[float, float, SegmentKind, "Step"]
"""A part of a task's bar before merging: (start ms, end ms, kind, its step)."""


class _Drawn:
    """A segment as laid out: its drawn span and the parts it stands for."""

    __slots__ = ("end", "members", "start")

    def __init__(self, start: float, end: float, members: list[_Piece]) -> None:
        self.start = start
        self.end = end
        self.members = members


@dataclass(frozen=True, slots=True)
class RowSegments:
    """What one row gets: its segments, its steps and how many were merged."""

    segments: tuple[Segment, ...]
    steps: int
    merged_steps: int


def site_key(step: Step) -> SiteKey:
    return (step.site, step.site_is_app, None if step.awaited is None else step.awaited.label)


def site_indexes(rows: Sequence[AwaitSiteRow]) -> dict[SiteKey, int]:
    """(site, is the app's, awaited label) -> the row's index in ``await_sites()``: the id the
    await-site table gives that row on the page (``dt-async-site-K``). Built once a render."""
    indexes: dict[SiteKey, int] = {}
    for index, row in enumerate(rows):
        label = None if row.awaited is None else row.awaited.label
        indexes.setdefault((row.site, row.site_is_app, label), index)
    return indexes


def steps_by_task(table: StepTable, task_ids: Collection[int]) -> dict[int, list[Step]]:
    """The steps of each task in ``task_ids`` (the drawn rows), in time order. One walk of the
    table: a row of the page reads its own steps only."""
    found: dict[int, list[Step]] = {task_id: [] for task_id in task_ids}
    for step in table.steps():
        steps = found.get(step.task_id)
        if steps is not None:
            steps.append(step)
    for steps in found.values():
        steps.sort(key=_start_of)  # recorded in order: a check that costs one pass
    return found


def _start_of(step: Step) -> float:
    return step.start_ms


def site_text(frame: StackFrame | None) -> str:
    """``views.py:12 in show_user``: where a task suspended, in one line."""
    if frame is None:
        return "an unknown line"
    name = os.path.basename(frame.filename) or frame.filename
    return f"{name}:{frame.lineno} in {frame.function}"


def _pieces(steps: Sequence[Step], window_ms: float, end_ms: float) -> list[_Piece]:
    """Each step's run, wait and queued parts, clipped to the window, empty ones left out.

    A suspension waits until what it awaited was ready (clamped to the suspension), then is
    queued until the task resumed; one that never resumed lasts until ``end_ms``, when
    collection stopped. A step whose start is not known (thrown into) has no run drawn.
    Comparisons rather than ``min``/``max``: this runs for every step of a drawn row.
    """
    pieces: list[_Piece] = []
    append = pieces.append
    for step in steps:
        start, stop = step.start_ms, step.end_ms
        if step.start_known and stop > start:
            low = start if start > 0.0 else 0.0
            high = stop if stop < window_ms else window_ms
            if high > low:
                append((low, high, "run", step))
        if step.ended != "await":
            continue
        resumed = end_ms if step.resumed_ms is None else step.resumed_ms
        ready = step.ready_ms
        if ready is None or ready > resumed:
            ready = resumed
        elif ready < stop:
            ready = stop
        low = stop if stop > 0.0 else 0.0
        high = ready if ready < window_ms else window_ms
        if high > low:
            append((low, high, "wait", step))
        low = ready if ready > 0.0 else 0.0
        high = resumed if resumed < window_ms else window_ms
        if high > low:
            append((low, high, "queued", step))
    return pieces


def _merge(pieces: list[_Piece], window_ms: float) -> list[_Drawn]:
    """The parts as drawn, each at least a nominal pixel wide.

    A part a pixel wide or more is drawn alone. A narrower one starts a group that takes every
    following part ending within a pixel of its start, and is drawn one pixel wide (at most to
    the window's end); a part crossing that pixel's edge is drawn from the edge on. Groups
    never overlap, so there are at most ``NOMINAL_TRACK_PX`` of them.
    """
    pixel = window_ms / NOMINAL_TRACK_PX
    slack = pixel * _SLACK
    drawn: list[_Drawn] = []
    cursor = 0.0
    index, count = 0, len(pieces)
    while index < count:
        piece = pieces[index]
        start, end = piece[0], piece[1]
        start = max(start, cursor)  # the previous group may have taken its beginning
        if end <= start:  # wholly under the previous group (overlapping records)
            if drawn:
                drawn[-1].members.append(piece)
            index += 1
            continue
        index += 1
        if end - start >= pixel:
            drawn.append(_Drawn(start, end, [piece]))
            cursor = end
            continue
        limit = start + pixel
        members = [piece]
        within = limit + slack
        while index < count and pieces[index][1] <= within:
            members.append(pieces[index])
            index += 1
        if limit > window_ms:
            if drawn and cursor > window_ms - pixel * _FULL_PIXEL:
                # No room for another pixel: the last group takes them (the bound holds).
                drawn[-1].end = max(drawn[-1].end, end)
                drawn[-1].members.extend(members)
                continue
            limit = window_ms
            start = max(min(start, window_ms - pixel), cursor)
        drawn.append(_Drawn(start, limit, members))
        cursor = limit
    return drawn


def _suspension(step: Step, end_ms: float) -> tuple[float, float | None]:
    """(waited until ready, queued after) of a suspension; queued None when not known."""
    resumed = end_ms if step.resumed_ms is None else step.resumed_ms
    if step.ready_ms is None:
        return resumed - step.end_ms, None
    ready = min(max(step.ready_ms, step.end_ms), resumed)
    return ready - step.end_ms, resumed - ready


def _run_label(step: Step) -> str:
    parts = [
        f"running {format_duration(step.duration_ms)}",
        f"start {format_duration(step.start_ms)}",
    ]
    if step.ended == "await":
        awaited = "" if step.awaited is None else f" ({step.awaited.label})"
        parts.append(f"then suspended at {site_text(step.site)}{awaited}")
    elif step.ended == "return":
        parts.append("then returned")
    elif step.ended == "raise":
        parts.append("then raised (or was cancelled)")
    else:
        parts.append("still running when profiling stopped")
    return _SEPARATOR.join(parts)


def _wait_label(step: Step, end_ms: float) -> str:
    waited, queued = _suspension(step, end_ms)
    parts = [f"waited {format_duration(waited)} at {site_text(step.site)}"]
    if step.awaited is not None:
        parts.append(f"for {step.awaited.label}")
    if step.resumed_ms is None:
        parts.append("still waiting when profiling stopped")
    elif queued is None:
        parts.append("queued: not known (when it was ready is not recorded)")
    else:
        parts.append(f"then queued {format_duration(queued)} (ready → resumed)")
    return _SEPARATOR.join(parts)


def _queued_label(step: Step, end_ms: float) -> str:
    _waited, queued = _suspension(step, end_ms)
    parts = [
        f"queued {format_duration(queued or 0.0)}: ready, the loop busy with other work",
        f"after waiting at {site_text(step.site)}",
    ]
    if step.awaited is not None:
        parts.append(f"for {step.awaited.label}")
    return _SEPARATOR.join(parts)


def _merged(
    members: Sequence[_Piece], left: float, width: float, last: Step | None
) -> tuple[Segment, int, Step]:
    """The segment of a group of parts; the steps it adds to the row's merged count; its last.

    One walk of the parts, which can be thousands for a row. A step's parts are consecutive:
    counting changes of step counts each once, and ``last`` (the previous group's last step)
    makes a step split between two groups count once for the row.
    """
    running = waiting = queued = 0.0
    end = 0.0
    steps = added = 0
    previous: Step | None = None
    for low, high, kind, step in members:
        if kind == "run":
            running += high - low
        elif kind == "wait":
            waiting += high - low
        else:
            queued += high - low
        end = max(end, high)
        if step is not previous:
            steps += 1
            if step is not last:
                added += 1
            previous = step
    shares = ", ".join(
        f"{word} {format_duration(ms)}"
        for word, ms in (("running", running), ("waiting", waiting), ("queued", queued))
        if ms > 0
    )
    label = _SEPARATOR.join(
        (
            f"{steps:,} {'step' if steps == 1 else 'steps'} shorter than a pixel, merged",
            f"{format_duration(members[0][0])} to {format_duration(end)}",
            shares,
        )
    )
    kinds = (running > 0) + (waiting > 0) + (queued > 0)
    shown: SegmentKind = members[0][2] if kinds == 1 else "mixed"
    segment = Segment(shown, members[0][0], end, left, width, label, None, steps)
    assert previous is not None  # a group has parts
    return segment, added, previous


def row_segments(
    steps: Sequence[Step],
    *,
    window_ms: float,
    end_ms: float,
    sites: Mapping[SiteKey, int],
) -> RowSegments:
    """The segments of one task's bar, from its steps in time order.

    ``end_ms``: when collection stopped (``StepTable.end_ms``); ``sites``: ``site_indexes``
    of the await-site table, for each segment's ``site``.
    """
    if not steps or window_ms <= 0:
        return RowSegments((), len(steps), 0)
    scale = 100.0 / window_ms
    segments = []
    merged = 0
    last_merged: Step | None = None
    for drawn in _merge(_pieces(steps, window_ms, end_ms), window_ms):
        members = drawn.members
        left = round(drawn.start * scale, _PCT_DIGITS)
        width = round((drawn.end - drawn.start) * scale, _PCT_DIGITS)
        if len(members) == 1:
            low, high, kind, step = members[0]
            if kind == "run":
                label = _run_label(step)
            elif kind == "wait":
                label = _wait_label(step, end_ms)
            else:
                label = _queued_label(step, end_ms)
            site = sites.get(site_key(step)) if step.ended == "await" else None
            segments.append(Segment(kind, low, high, left, width, label, site))
            continue
        segment, added, last_merged = _merged(members, left, width, last_merged)
        segments.append(segment)
        merged += added
    return RowSegments(tuple(segments), len(steps), merged)
