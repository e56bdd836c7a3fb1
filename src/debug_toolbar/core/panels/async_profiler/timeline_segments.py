"""A task's steps -> the segments drawn over its Gantt bar: running, waiting, queued.

Pure functions of a ``StepTable`` (no I/O, no clock), called by ``timeline.timeline_of`` for
the rows it draws, when the page is rendered. A step is a run of the task's coroutine (solid);
the suspension after it is waiting until what it awaited was ready (light) and then queued
until the loop resumed it (a third shade), where readiness is known; otherwise the whole
suspension is waiting, as the time breakdown counts it (``step_report``).

Readable with thousands of steps, bounded whatever their number: the bar is laid out at a
nominal track width of ``NOMINAL_TRACK_PX`` pixels (about what the panel's track measures in
a 1,280 px window). A part narrower than one such pixel is merged with the narrow parts that
follow it into one pixel-wide ``mixed`` segment, taking what it needs from its neighbour; a
narrow run, wait or queued part alone keeps its kind and its label, widened to a pixel (a
whole step narrower than a pixel is always merged: its parts cannot be told apart). Every
segment drawn is then at least a pixel wide and none overlap, so a row never has more than
``NOMINAL_TRACK_PX`` segments; the row says how many steps were merged. Labels are formatted
for the drawn segments only, so a task of 10,000 steps costs a walk of its steps and at most
``NOMINAL_TRACK_PX`` labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from debug_toolbar.core.panels.async_profiler.steps import Step
from debug_toolbar.core.panels.async_profiler.timeline_model import (
    Segment,
    SegmentKind,
    format_duration,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Mapping, Sequence

    from debug_toolbar.core.panels.async_profiler.models import StackFrame
    from debug_toolbar.core.panels.async_profiler.step_report import AwaitSiteRow
    from debug_toolbar.core.panels.async_profiler.steps import StepTable

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

_PieceKind = Literal["run", "wait", "queued", "step"]
_Piece = tuple[float, float, _PieceKind, "Step"]
"""A part of a task's bar before merging: (start ms, end ms, kind, its step). ``step``: a
whole step and its suspension, narrower than a pixel: merged whatever comes next, so its
parts are not told apart (a long row of short steps is walked a third as many times)."""


class _Drawn:
    """A segment as laid out: its drawn span, and the parts it stands for, summed up.

    The sums are taken in the one walk that groups the parts: a row of 10,000 steps has
    30,000 of them, and only the group needs to be known (its label says what it holds).
    """

    __slots__ = (
        "end",
        "first",
        "high",
        "last",
        "parts",
        "piece",
        "queued",
        "run",
        "start",
        "steps",
        "wait",
    )

    def __init__(self, start: float, end: float, piece: _Piece) -> None:
        self.start = start
        self.end = end
        self.piece = piece
        """The first part: the whole segment while ``parts`` is 1."""
        self.parts = 1
        self.high = piece[1]
        """Where the last part ends, as recorded."""
        self.run = self.wait = self.queued = 0.0
        self.steps = 1
        """Distinct steps among the parts (a step's parts are consecutive)."""
        self.first = self.last = piece[3]

    def absorb(self, other: _Drawn) -> None:
        """Take ``other``'s parts too (at the window's end, where no pixel is left)."""
        if self.parts == 1:
            self._count(self.piece)
        if other.parts == 1:
            other._count(other.piece)
        self.parts += other.parts
        self.run += other.run
        self.wait += other.wait
        self.queued += other.queued
        self.steps += other.steps - (other.first is self.last)
        self.last = other.last
        self.high = max(self.high, other.high)
        self.end = max(self.end, other.high)

    def _count(self, piece: _Piece) -> None:
        low, high, kind, step = piece
        if kind == "run":
            self.run += high - low
        elif kind == "wait":
            self.wait += high - low
        elif kind == "queued":
            self.queued += high - low
        else:
            run, wait, queued = _step_spans(step, high)
            self.run += run
            self.wait += wait
            self.queued += queued


def _step_spans(step: Step, resumed: float) -> tuple[float, float, float]:
    """(running, waiting, queued) of a whole step that ended in an await, resumed then."""
    stop = step.end_ms
    ready = step.ready_ms
    if ready is None or ready > resumed:
        ready = resumed
    elif ready < stop:
        ready = stop
    return stop - step.start_ms, ready - stop, resumed - ready


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
    rows = table.rows
    # Read back from the history (as the page is), the rows are the steps already: walking
    # them costs a fraction of ``steps()``, which links raw rows to their next step.
    typed: Sequence[Step] = (
        cast("tuple[Step, ...]", rows)
        if all(isinstance(row, Step) for row in rows)
        else table.steps()
    )
    for step in typed:
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


def _pieces(
    steps: Sequence[Step], window_ms: float, end_ms: float, pixel: float
) -> Iterator[_Piece]:
    """Each step's run, wait and queued parts, clipped to the window, empty ones left out.

    A suspension waits until what it awaited was ready (clamped to the suspension), then is
    queued until the task resumed; one that never resumed lasts until ``end_ms``, when
    collection stopped. A step whose start is not known (thrown into) has no run drawn.
    Comparisons rather than ``min``/``max``: this runs for every step of a drawn row. A
    generator: the parts are grouped as they come, and a row of 10,000 steps never holds its
    30,000 parts at once (which would also wake the garbage collector again and again).
    A step that ended in an await and resumed within a pixel of its start is one ``step``
    part.
    """
    for step in steps:
        start, stop = step.start_ms, step.end_ms
        if step.ended == "await" and step.start_known:
            resumed = end_ms if step.resumed_ms is None else step.resumed_ms
            if resumed - start < pixel and start >= 0.0 and resumed <= window_ms:
                if resumed > start:
                    yield (start, resumed, "step", step)
                continue
        if step.start_known and stop > start:
            low = start if start > 0.0 else 0.0
            high = stop if stop < window_ms else window_ms
            if high > low:
                yield (low, high, "run", step)
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
            yield (low, high, "wait", step)
        low = ready if ready > 0.0 else 0.0
        high = resumed if resumed < window_ms else window_ms
        if high > low:
            yield (low, high, "queued", step)


def _merge(pieces: Iterator[_Piece], window_ms: float) -> list[_Drawn]:
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
    piece = next(pieces, None)
    while piece is not None:
        start, end = piece[0], piece[1]
        start = max(start, cursor)  # the previous group may have taken its beginning
        if end <= start:  # wholly under the previous group (overlapping records)
            if drawn:
                drawn[-1].absorb(_Drawn(start, start, piece))
            piece = next(pieces, None)
            continue
        if end - start >= pixel:
            drawn.append(_Drawn(start, end, piece))
            cursor = end
            piece = next(pieces, None)
            continue
        limit = start + pixel
        group = _Drawn(start, limit, piece)
        piece = _gather(group, pieces, limit + slack)
        if limit > window_ms:
            if drawn and cursor > window_ms - pixel * _FULL_PIXEL:
                previous = drawn[-1]
                if previous.end - previous.start < 2 * pixel * _FULL_PIXEL:
                    # No room for another pixel: the last group takes them (the bound holds).
                    previous.absorb(group)
                    continue
                # A wide segment gives up its last pixel, as a narrow part takes from its
                # neighbour: absorbed, a 10 ms wait before a short last step became a
                # "merged" segment, its site and what it awaited gone from the timeline.
                previous.end = cursor = window_ms - pixel
            group.end = window_ms
            group.start = max(min(start, window_ms - pixel), cursor)
        drawn.append(group)
        cursor = group.end
    return drawn


def _gather(group: _Drawn, pieces: Iterator[_Piece], within: float) -> _Piece | None:
    """Adds to ``group`` the next parts that end by ``within``; the first one it did not take.

    Local variables: this runs for every part of a long row."""
    piece = next(pieces, None)
    if piece is None or piece[1] > within:
        return piece
    first = group.piece
    group._count(first)
    run, wait, queued = group.run, group.wait, group.queued
    parts, steps, last, high = 1, 1, first[3], first[1]
    while piece is not None:
        low, end, kind, step = piece
        if end > within:
            break
        parts += 1
        if kind == "step":  # ``_step_spans``, inline: the most common part of a long row
            stop, ready = step.end_ms, step.ready_ms
            ready = end if ready is None or ready > end else stop if ready < stop else ready
            run += stop - step.start_ms
            wait += ready - stop
            queued += end - ready
        elif kind == "run":
            run += end - low
        elif kind == "wait":
            wait += end - low
        else:
            queued += end - low
        if step is not last:
            steps += 1
            last = step
        high = end if end > high else high
        piece = next(pieces, None)
    group.run, group.wait, group.queued = run, wait, queued
    group.parts, group.steps, group.last, group.high = parts, steps, last, high
    return piece


def _suspension(step: Step, end_ms: float) -> tuple[float, float | None]:
    """(waited until ready, queued after) of a suspension; queued None when not known."""
    resumed = end_ms if step.resumed_ms is None else step.resumed_ms
    if step.ready_ms is None:
        return resumed - step.end_ms, None
    ready = min(max(step.ready_ms, step.end_ms), resumed)
    return ready - step.end_ms, resumed - ready


class _About:
    """What the labels say of one suspension: its site, what was awaited, its table row.

    Worked out once a step (its run, wait and queued parts share it): a page draws a few
    segments for each of hundreds of rows.
    """

    __slots__ = ("awaited", "site", "where")

    def __init__(self, step: Step, sites: Mapping[SiteKey, int]) -> None:
        label = None if step.awaited is None else step.awaited.label
        self.where = site_text(step.site)
        self.awaited = label
        self.site = sites.get((step.site, step.site_is_app, label))


def _run_label(step: Step, about: _About | None) -> str:
    head = _SEPARATOR.join(
        (f"running {format_duration(step.duration_ms)}", f"start {format_duration(step.start_ms)}")
    )
    if about is not None:
        awaited = "" if about.awaited is None else f" ({about.awaited})"
        return f"{head}{_SEPARATOR}then suspended at {about.where}{awaited}"
    if step.ended == "return":
        return f"{head}{_SEPARATOR}then returned"
    if step.ended == "raise":
        return f"{head}{_SEPARATOR}then raised (or was cancelled)"
    return f"{head}{_SEPARATOR}still running when profiling stopped"


def _wait_label(step: Step, about: _About, end_ms: float) -> str:
    waited, queued = _suspension(step, end_ms)
    parts = [f"waited {format_duration(waited)} at {about.where}"]
    if about.awaited is not None:
        parts.append(f"for {about.awaited}")
    if step.resumed_ms is None:
        parts.append("still waiting when profiling stopped")
    elif queued is None:
        parts.append("queued: not known (when it was ready is not recorded)")
    else:
        parts.append(f"then queued {format_duration(queued)} (ready → resumed)")
    return _SEPARATOR.join(parts)


def _queued_label(step: Step, about: _About, end_ms: float) -> str:
    _waited, queued = _suspension(step, end_ms)
    parts = [
        f"queued {format_duration(queued or 0.0)}: ready, the loop busy with other work",
        f"after waiting at {about.where}",
    ]
    if about.awaited is not None:
        parts.append(f"for {about.awaited}")
    return _SEPARATOR.join(parts)


def _merged(group: _Drawn, left: float, width: float) -> Segment:
    """The segment of a group of parts, its label saying what it holds."""
    if group.parts == 1:
        group._count(group.piece)  # a lone ``step`` part: summed now
    shares = ", ".join(
        f"{word} {format_duration(ms)}"
        for word, ms in (("running", group.run), ("waiting", group.wait), ("queued", group.queued))
        if ms > 0
    )
    steps = group.steps
    label = _SEPARATOR.join(
        (
            f"{steps:,} {'step' if steps == 1 else 'steps'} shorter than a pixel, merged",
            f"{format_duration(group.piece[0])} to {format_duration(group.high)}",
            shares,
        )
    )
    shown: SegmentKind = "mixed"
    if not group.wait and not group.queued:
        shown = "run"
    elif not group.run and not group.queued:
        shown = "wait"
    elif not group.run and not group.wait:
        shown = "queued"
    return Segment(shown, group.piece[0], group.high, left, width, label, None, steps)


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
    about_step: Step | None = None
    about: _About | None = None
    pixel = window_ms / NOMINAL_TRACK_PX
    for drawn in _merge(_pieces(steps, window_ms, end_ms, pixel), window_ms):
        left = round(drawn.start * scale, _PCT_DIGITS)
        width = round((drawn.end - drawn.start) * scale, _PCT_DIGITS)
        low, high, kind, step = drawn.piece
        if drawn.parts == 1 and kind != "step":
            site = None
            if step.ended != "await":
                label = _run_label(step, None)
            else:
                if about is None or step is not about_step:
                    about_step, about = step, _About(step, sites)
                site = about.site
                if kind == "run":
                    label = _run_label(step, about)
                elif kind == "wait":
                    label = _wait_label(step, about, end_ms)
                else:
                    label = _queued_label(step, about, end_ms)
            segments.append(Segment(kind, low, high, left, width, label, site))
            continue
        segments.append(_merged(drawn, left, width))
        # A step split between two groups counts once for the row.
        merged += drawn.steps - (drawn.first is last_merged)
        last_merged = drawn.last
    return RowSegments(tuple(segments), len(steps), merged)
