"""The timeline view model: what the Gantt template and the Chrome trace draw.

Frozen, plain and ready to place: percentages, tree depth, hover text and tick labels are all
computed by ``timeline.py``; the template only formats and places them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from debug_toolbar.core.panels.async_profiler.models import (
        BlockingRelation,
        StackFrame,
        TaskState,
    )

__all__ = (
    "BlockingBand",
    "LagMark",
    "Segment",
    "SegmentKind",
    "TaskCounts",
    "Tick",
    "Timeline",
    "TimelineRow",
    "format_duration",
    "format_tick",
)


@dataclass(frozen=True, slots=True)
class Tick:
    """One labelled mark of the time axis."""

    at_ms: float
    left_pct: float
    label: str
    """Readable: ``"0 ms"``, ``"250 ms"``, ``"1.5 s"``."""
    align: Literal["start", "center", "end"]
    """How to anchor the label so the first and last do not spill out of the axis."""


SegmentKind = Literal["run", "wait", "queued", "mixed"]
"""What a part of a task's bar was. ``run``: one step, its coroutine running on the loop;
``wait``: suspended at an await until what it awaited was ready (or, when readiness is not
known, until it resumed); ``queued``: ready, but the loop was busy with other work until it
resumed the task; ``mixed``: consecutive parts too narrow to draw apart, merged."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A part of a task's bar, drawn over it on the same axis (``left_pct`` of the window)."""

    kind: SegmentKind
    start_ms: float
    end_ms: float
    """What it stands for, as recorded (clipped to the window)."""
    left_pct: float
    width_pct: float
    """Where it is drawn: a part narrower than a pixel is widened to one at the nominal track
    width (``timeline_segments.NOMINAL_TRACK_PX``), taken from its neighbour."""
    label: str
    """Hover text: for a wait, the await site, what was awaited, how long it waited and was
    queued; for a run, how long it ran and how it ended; for a merged part, what it holds."""
    site: int | None = None
    """The await-site row (its index in ``AsyncProfile.await_sites()``) of the suspension this
    part belongs to: the one waited at, or for a run the one that ended it. None: no await."""
    steps: int = 1
    """The steps it stands for: more than one for a ``mixed`` part."""


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One task's bar, in tree order. Times are the recorded ones; ``bar_*`` are what is drawn."""

    task_id: int
    parent_id: int | None
    depth: int
    """0 for a root (created by the request's task, or whose parent is not in the records)."""
    children: int
    """How many recorded tasks this one created."""
    name: str
    display_name: str
    """What the row is called: the task's name, or its coroutine's when the task only has
    asyncio's default ``Task-<n>`` (which says nothing about what it runs)."""
    coro_name: str
    state: TaskState
    start_ms: float
    end_ms: float | None
    duration_ms: float | None
    """None when the task had not finished when the response ended."""
    bar_start_ms: float
    bar_end_ms: float
    """The drawn span: the recorded one clamped to the window."""
    left_pct: float
    width_pct: float
    clipped: bool
    """The task ran past the window's end (or had not finished): its bar stops at the end."""
    instant: bool
    """Zero-length: drawn ``MIN_BAR_PCT`` wide so it can be seen and hovered."""
    exception_type: str | None
    exception_message: str | None
    created_at: str | None
    """``file:line`` of ``site``, None when stacks were not captured."""
    stack: tuple[StackFrame, ...]
    label: str
    """Hover text: name, coroutine, start, duration and state (and the steps, with segments)."""
    site: StackFrame | None = None
    """Where the task was created, in one line: the innermost application frame of ``stack``
    (library and toolbar frames skipped: a task spawned through anyio names the app's line), or
    the innermost frame when none is the application's. The full stack stays in ``stack``."""
    is_request: bool = False
    """The request's own task (task 0): the first row and the root of the tree."""
    segments: tuple[Segment, ...] = ()
    """The task's steps and the waits between them, in time order; empty without step timing
    (Python < 3.12, or ``async_step_timing`` off): the bar alone is drawn then. Never more
    than ``timeline_segments.NOMINAL_TRACK_PX``, whatever the number of steps."""
    steps: int = 0
    """The task's recorded steps."""
    merged_steps: int = 0
    """Steps (or parts of one) shorter than a pixel, drawn merged into ``mixed`` segments."""


@dataclass(frozen=True, slots=True)
class BlockingBand:
    """A stall of the event loop, drawn across the Gantt on the same axis as the tasks."""

    start_ms: float
    duration_ms: float
    end_ms: float
    bar_start_ms: float
    bar_end_ms: float
    left_pct: float
    width_pct: float
    clipped: bool
    relation: BlockingRelation
    """``own``: this request's code blocked the loop; ``suffered``: another's; ``unknown``:
    nobody can be named (see ``BlockingRelation``)."""
    filename: str | None
    lineno: int | None
    function: str | None
    code: str | None
    location: str | None
    """``file:line`` where the loop was blocked, None when it could not be read."""
    stack: tuple[StackFrame, ...]
    culprit_request_id: str | None
    culprit_method: str | None
    culprit_path: str | None
    culprit_label: str
    """``"this request"``, ``"GET /other (request 1a2b3c4d)"`` or ``"code outside any ..."``."""
    label: str


@dataclass(frozen=True, slots=True)
class LagMark:
    """A late heartbeat: the delay ended at ``at_ms``, so it is drawn from ``start_ms``."""

    at_ms: float
    lag_ms: float
    start_ms: float
    left_pct: float
    width_pct: float
    intensity: float
    """``lag_ms`` relative to the timeline's ``lag_scale_ms``, in [0, 1]."""
    height_pct: float
    """``intensity`` as a percentage, for a bar height in the lag strip."""
    over_threshold: bool
    label: str


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """Tasks per state, over every recorded task (not only the rows drawn)."""

    total: int
    completed: int
    cancelled: int
    failed: int
    pending: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """The whole view: rows in tree order, overlays, axis, and what the caps left out."""

    duration_ms: float
    """The request's duration as given."""
    window_ms: float
    """The axis length every percentage refers to."""
    rows: tuple[TimelineRow, ...]
    hidden_rows: int
    """Recorded tasks not drawn because of ``max_rows`` (shown as "N more")."""
    dropped_tasks: int
    """Tasks the collector did not record at all (its own cap), passed through for display."""
    counts: TaskCounts
    ticks: tuple[Tick, ...]
    blocking: tuple[BlockingBand, ...]
    own_blocking: int
    suffered_blocking: int
    unknown_blocking: int
    """Stalls nobody could be blamed for (not sampled in time)."""
    lag: tuple[LagMark, ...]
    max_lag_ms: float
    lag_scale_ms: float
    """What a full-height lag bar means: the larger of the worst lag and the threshold."""
    lag_threshold_ms: float | None
    lag_threshold_pct: float | None
    """The threshold as a height in the lag strip, None when there is none."""

    @property
    def segmented(self) -> bool:
        """Some row has steps to draw (the legend then explains their shades)."""
        return any(row.segments for row in self.rows)

    @property
    def empty(self) -> bool:
        """No task, no stall, no lag and no step: nothing to draw. The request's own task
        alone is worth drawing when its steps say where its time went."""
        return self.counts.total == 0 and not self.blocking and not self.lag and not self.segmented


def format_duration(ms: float) -> str:
    """A time for hover text: one decimal, two below a millisecond, thousands separated."""
    if ms != 0 and abs(ms) < 1:
        return f"{ms:,.2f} ms"
    return f"{ms:,.1f} ms"


def format_tick(value_ms: float, step_ms: float) -> str:
    """An axis label as short as the step allows: ``"0 ms"``, ``"250 ms"``, ``"1.5 s"``."""
    if value_ms >= 1000 or (value_ms == 0 and step_ms >= 1000):
        value, step, unit = value_ms / 1000, step_ms / 1000, "s"
    else:
        value, step, unit = value_ms, step_ms, "ms"
    decimals = min(max(math.ceil(-math.log10(step)) + 1, 0), 12)
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}"
