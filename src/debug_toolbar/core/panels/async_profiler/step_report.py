"""What the steps say: the request's time breakdown, its await sites and its slow steps.

Pure functions of a ``StepTable`` and the stalls the watchdog saw, typed results with
``to_dict``/``from_dict``. None of it is computed while the response waits: a profile holds its
``step_findings.StepFindings``, which computes them the first time someone reads them (the
record's deferred detail, the page). The slow steps are in ``step_findings`` too.

The breakdown follows the request's own task from the moment profiling started to the moment
it stopped, and its parts add up to that time exactly:

- ``running_ms``: its steps (the handler's own code running on the loop, and the toolbar's);
- ``waiting_ms``: suspended until what it awaited was ready (split by await site);
- ``queued_ms``: ready, but the loop was busy with other work (where readiness is known:
  sleeps, tasks, thread calls; otherwise the whole suspension counts as waiting);
- ``blocked_ms``: the part of its suspensions that other requests' stalls of the loop took;
- ``unrecorded_ms``: after its steps reached the per-request cap (``async_max_steps``).

Two figures are read sooner, from the raw rows, in one pass over the request task's own rows:
the breakdown so far (``breakdown_so_far``, from the live recorder when the response starts,
for the ``Server-Timing`` header) and the slowest await (``slowest_await``, when collection
stops, for the history's list of requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from debug_toolbar.core.panels.async_profiler.models import StackFrame
from debug_toolbar.core.panels.async_profiler.steps import (
    AWAIT_KINDS,
    REQUEST_TASK_ID,
    AwaitKind,
    AwaitTarget,
    Step,
    StepTable,
    await_target,
    ready_ns,
    resolve_site,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from debug_toolbar.core.panels.async_profiler.models import BlockingCall
    from debug_toolbar.core.panels.async_profiler.step_recorder import StepRecorder
    from debug_toolbar.core.panels.async_profiler.steps import RawStep

__all__ = (
    "AwaitSiteRow",
    "SiteWait",
    "SlowestAwait",
    "TimeBreakdown",
    "await_sites",
    "breakdown_so_far",
    "frame_dict",
    "frame_of",
    "slowest_await",
    "time_breakdown",
)

Interval = tuple[float, float]


def frame_dict(frame: StackFrame | None) -> dict[str, Any] | None:
    return None if frame is None else frame.to_dict()


def frame_of(data: Mapping[str, Any] | None) -> StackFrame | None:
    return None if data is None else StackFrame.from_dict(data)


def _kind(value: object) -> AwaitKind | None:
    if value is None:
        return None
    if value not in AWAIT_KINDS:
        raise ValueError(f"unknown await kind {value!r}")
    return cast("AwaitKind", value)


@dataclass(frozen=True, slots=True)
class SiteWait:
    """Part of the request task's waiting: one await site and what it awaited there."""

    site: StackFrame | None
    site_is_app: bool
    awaited: str
    """``AwaitTarget.label``."""
    kind: AwaitKind | None
    count: int
    waiting_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": frame_dict(self.site),
            "site_is_app": self.site_is_app,
            "awaited": self.awaited,
            "kind": self.kind,
            "count": self.count,
            "waiting_ms": self.waiting_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SiteWait:
        return cls(
            site=frame_of(data.get("site")),
            site_is_app=bool(data.get("site_is_app", True)),
            awaited=str(data.get("awaited") or ""),
            kind=_kind(data.get("kind")),
            count=int(data.get("count") or 0),
            waiting_ms=float(data.get("waiting_ms") or 0.0),
        )


@dataclass(frozen=True, slots=True)
class TimeBreakdown:
    """Where the request's own task spent its time, parts adding up to ``wall_ms``."""

    start_ms: float
    end_ms: float
    running_ms: float
    waiting_ms: float
    queued_ms: float
    blocked_ms: float
    unrecorded_ms: float = 0.0
    by_site: tuple[SiteWait, ...] = ()
    """``waiting_ms`` split by await site, largest first."""
    steps: int = 0
    """Steps of the request's own task."""

    @property
    def wall_ms(self) -> float:
        return self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "wall_ms": self.wall_ms,
            "running_ms": self.running_ms,
            "waiting_ms": self.waiting_ms,
            "queued_ms": self.queued_ms,
            "blocked_ms": self.blocked_ms,
            "unrecorded_ms": self.unrecorded_ms,
            "by_site": [wait.to_dict() for wait in self.by_site],
            "steps": self.steps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeBreakdown:
        return cls(
            start_ms=float(data["start_ms"]),
            end_ms=float(data["end_ms"]),
            running_ms=float(data.get("running_ms") or 0.0),
            waiting_ms=float(data.get("waiting_ms") or 0.0),
            queued_ms=float(data.get("queued_ms") or 0.0),
            blocked_ms=float(data.get("blocked_ms") or 0.0),
            unrecorded_ms=float(data.get("unrecorded_ms") or 0.0),
            by_site=tuple(SiteWait.from_dict(wait) for wait in data.get("by_site") or ()),
            steps=int(data.get("steps") or 0),
        )


def _union(stalls: Iterable[BlockingCall]) -> list[Interval]:
    spans = sorted((call.start_ms, call.start_ms + max(call.duration_ms, 0.0)) for call in stalls)
    merged: list[Interval] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap(spans: Sequence[Interval], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans if s < end and e > start)


def time_breakdown(
    table: StepTable,
    *,
    start_ms: float,
    suffered: Iterable[BlockingCall] = (),
    root_rows: Sequence[int] | None = None,
) -> TimeBreakdown:
    """The breakdown of the request's own task from ``start_ms`` to the table's end.

    ``suffered``: the stalls other requests (or code outside any request) caused while it
    ran; ``root_rows``: the rows of the request's own task, when the recorder kept them.
    """
    end_ms = table.end_ms
    steps = (
        table.steps(root_rows)
        if root_rows is not None
        else tuple(step for step in table.steps() if step.task_id == REQUEST_TASK_ID)
    )
    cut = end_ms if table.dropped_from_ms is None else min(table.dropped_from_ms, end_ms)
    blocked_spans = _union(suffered)
    running = waiting = queued = blocked = 0.0
    sites: dict[tuple[Any, ...], list[Any]] = {}
    for step in steps:
        start, end = max(step.start_ms, start_ms), min(step.end_ms, cut)
        if end <= start and step.ended != "await":
            continue
        running += max(end - start, 0.0)
        if step.ended != "await":
            continue
        gap_start = max(end, start_ms)
        gap_end = min(cut, end_ms if step.resumed_ms is None else step.resumed_ms)
        if gap_end <= gap_start:
            continue
        ready = gap_end if step.ready_ms is None else min(max(step.ready_ms, gap_start), gap_end)
        blocked_wait = _overlap(blocked_spans, gap_start, ready)
        blocked_queue = _overlap(blocked_spans, ready, gap_end)
        waited = ready - gap_start - blocked_wait
        waiting += waited
        queued += gap_end - ready - blocked_queue
        blocked += blocked_wait + blocked_queue
        label = "" if step.awaited is None else step.awaited.label
        key = (step.site, step.site_is_app, label)
        entry = sites.setdefault(key, [0, 0.0, None if step.awaited is None else step.awaited.kind])
        entry[0] += 1
        entry[1] += waited
    by_site = tuple(
        sorted(
            (
                SiteWait(site, is_app, label, kind, count, ms)
                for (site, is_app, label), (count, ms, kind) in sites.items()
            ),
            key=lambda wait: -wait.waiting_ms,
        )
    )
    return TimeBreakdown(
        start_ms=start_ms,
        end_ms=end_ms,
        running_ms=running,
        waiting_ms=waiting,
        queued_ms=queued,
        blocked_ms=blocked,
        unrecorded_ms=max(end_ms - max(cut, start_ms), 0.0),
        by_site=by_site,
        steps=len(steps),
    )


@dataclass(frozen=True, slots=True)
class AwaitSiteRow:
    """One await site of the request (every task's), with what was awaited there."""

    site: StackFrame | None
    site_is_app: bool
    awaited: AwaitTarget | None
    count: int
    total_ms: float
    """The suspensions' whole length (waiting and queued)."""
    max_ms: float
    queued_ms: float
    """The part of ``total_ms`` spent ready but queued, where readiness is known."""
    pending: int = 0
    """Suspensions still waiting when collection stopped (counted up to then)."""
    task_ids: tuple[int, ...] = ()
    stack: tuple[StackFrame, ...] = ()
    """The await chain above the site (innermost first), the first time the request waited
    there: who called the code that awaited."""

    def to_dict(self) -> dict[str, Any]:
        site = self.site
        return {
            "filename": None if site is None else site.filename,
            "lineno": None if site is None else site.lineno,
            "function": None if site is None else site.function,
            "code": None if site is None else site.code,
            "site_is_app": self.site_is_app,
            "awaited": None if self.awaited is None else self.awaited.to_dict(),
            "count": self.count,
            "total_ms": self.total_ms,
            "max_ms": self.max_ms,
            "queued_ms": self.queued_ms,
            "pending": self.pending,
            "task_ids": list(self.task_ids),
            "stack": [frame.to_dict() for frame in self.stack],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AwaitSiteRow:
        awaited = data.get("awaited")
        site = None if data.get("filename") is None else StackFrame.from_dict(data)
        return cls(
            site=site,
            site_is_app=bool(data.get("site_is_app", True)),
            awaited=None if awaited is None else AwaitTarget.from_dict(awaited),
            count=int(data.get("count") or 0),
            total_ms=float(data.get("total_ms") or 0.0),
            max_ms=float(data.get("max_ms") or 0.0),
            queued_ms=float(data.get("queued_ms") or 0.0),
            pending=int(data.get("pending") or 0),
            task_ids=tuple(int(task_id) for task_id in data.get("task_ids") or ()),
            stack=tuple(StackFrame.from_dict(frame) for frame in data.get("stack") or ()),
        )


def await_sites(table: StepTable) -> tuple[AwaitSiteRow, ...]:
    """One row per (await site, what was awaited), largest total first."""
    end_ms = table.end_ms
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for index, step in enumerate(table.steps()):
        waited = step.waited_ms(end_ms)
        if waited is None:
            continue
        label = None if step.awaited is None else step.awaited.label
        key = (step.site, step.site_is_app, label)
        group = groups.get(key)
        if group is None:
            stack = table.site_stack(table.rows[index])
            group = groups[key] = [step.awaited, 0, 0.0, 0.0, 0.0, 0, set(), stack]
        group[1] += 1
        group[2] += waited
        group[3] = max(group[3], waited)
        group[4] += step.resume_delay_ms(end_ms) or 0.0
        group[5] += step.resumed_ms is None
        group[6].add(step.task_id)
    rows = [
        AwaitSiteRow(
            site, is_app, awaited, count, total, most, queued, pending, tuple(sorted(ids)), stack
        )
        for (site, is_app, _label), (awaited, count, total, most, queued, pending, ids, stack) in (
            groups.items()
        )
    ]
    rows.sort(key=lambda row: -row.total_ms)
    return tuple(rows)


def _merged_ns(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap_ns(spans: Sequence[tuple[int, int]], start: int, end: int) -> int:
    return sum(max(0, min(e, end) - max(s, start)) for s, e in spans if s < end and e > start)


def breakdown_so_far(
    recorder: StepRecorder,
    *,
    origin_ns: int,
    now_ns: int,
    suffered: Iterable[tuple[int, int]] = (),
) -> TimeBreakdown | None:
    """The request's own task's breakdown from the start of step timing to ``now_ns``, read
    from the live recorder without stopping it; None when its steps are not being timed.

    For the ``Server-Timing`` header, computed when the response starts: the same parts as
    ``time_breakdown`` (running, waiting, queued, blocked, unrecorded past the cap), adding
    up to ``now_ns`` minus the start, with no ``by_site`` (that needs every site resolved).
    It reads only the request task's own rows (``root_rows``) and the step going on, so it
    costs per step of that task, not per step of the request. ``suffered``: (start, end) ns
    of the stalls other requests caused so far (``BlockingCallDetector.suffered_spans``).
    """
    if not recorder.active:
        return None
    rows, root_rows = recorder.rows, recorder.root_rows
    start = recorder.start_ns
    dropped_from = recorder.dropped_from_ns
    cut = now_ns if dropped_from is None else max(min(dropped_from, now_ns), start)
    spans = _merged_ns(suffered) if suffered else ()
    thread_ready, task_ends = recorder.ready, recorder.task_ends
    root = recorder.watched.get(REQUEST_TASK_ID)
    # When the step going on began; 0 when the task is suspended now (the response is sent
    # from another task) or no longer timed.
    running_since = root.begin_ns if root is not None else 0
    running = waiting = queued = blocked = 0
    last = len(root_rows) - 1
    # Per response, per step of the request's task: conditionals rather than min/max calls.
    for position, index in enumerate(root_rows):
        _task, begin, end, _site, awaited = rows[index]
        ran = (end if end < cut else cut) - (begin if begin > start else start)
        if ran > 0:
            running += ran
        if awaited is None:  # the step did not end in a suspension
            continue
        # Resumed at the next row's start, or at the step going on; still waiting otherwise.
        resumed = rows[root_rows[position + 1]][1] if position < last else (running_since or cut)
        gap_start = end if end > start else start
        gap_end = resumed if resumed < cut else cut
        if gap_end <= gap_start:
            continue
        ready = thread_ready.get(index) if thread_ready else None
        if ready is None:  # a sleep's, inline: the most common await by far
            ready = end + awaited[1] if awaited[0] == "sleep" else ready_ns(awaited, end, task_ends)
        if ready is None or ready > gap_end:
            ready = gap_end
        elif ready < gap_start:
            ready = gap_start
        if spans:
            blocked_wait = _overlap_ns(spans, gap_start, ready)
            blocked_queue = _overlap_ns(spans, ready, gap_end)
            waiting += ready - gap_start - blocked_wait
            queued += gap_end - ready - blocked_queue
            blocked += blocked_wait + blocked_queue
        else:
            waiting += ready - gap_start
            queued += gap_end - ready
    steps = len(root_rows)
    if running_since:
        steps += 1
        ran = cut - (running_since if running_since > start else start)
        if ran > 0:
            running += ran
    return TimeBreakdown(
        start_ms=(start - origin_ns) / 1e6,
        end_ms=(now_ns - origin_ns) / 1e6,
        running_ms=running / 1e6,
        waiting_ms=waiting / 1e6,
        queued_ms=queued / 1e6,
        blocked_ms=blocked / 1e6,
        unrecorded_ms=max(now_ns - cut, 0) / 1e6,
        steps=steps,
    )


@dataclass(frozen=True, slots=True)
class SlowestAwait:
    """The request's own task's longest suspension (waiting and queued), and where it was.

    Kept in the head of the record (the profile's summary) so that the history can list it
    for every request without building any record's detail.
    """

    duration_ms: float
    site: StackFrame | None
    site_is_app: bool = True
    awaited: str = ""
    """``AwaitTarget.label``: ``sleep 50.0 ms``, ``httpx AsyncClient.get``..."""

    def to_dict(self) -> dict[str, Any]:
        site = self.site
        return {
            "duration_ms": self.duration_ms,
            "filename": None if site is None else site.filename,
            "lineno": None if site is None else site.lineno,
            "function": None if site is None else site.function,
            "code": None if site is None else site.code,
            "site_is_app": self.site_is_app,
            "awaited": self.awaited,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlowestAwait:
        filename, lineno = data.get("filename"), data.get("lineno")
        site = None
        if filename is not None and lineno is not None:
            site = StackFrame.from_dict(data)
        return cls(
            duration_ms=float(data.get("duration_ms") or 0.0),
            site=site,
            site_is_app=bool(data.get("site_is_app", True)),
            awaited=str(data.get("awaited") or ""),
        )


def slowest_await(table: StepTable) -> SlowestAwait | None:
    """The longest suspension of the request's own task; None when it never waited.

    One pass over that task's raw rows, comparing integers; only the winner's site and what
    it awaited are resolved. A suspension not resumed when collection stopped lasts to then
    (to where the task lost its steps to the cap, if it did), as in the await-site table.
    """
    if table.rows and isinstance(table.rows[0], Step):
        return _slowest_loaded(table)
    rows = cast("Sequence[RawStep]", table.rows)
    root_rows = table.root_rows
    if root_rows is None:
        root_rows = tuple(index for index, row in enumerate(rows) if row[0] == REQUEST_TASK_ID)
    dropped_from = table.dropped_from_ns
    cut = table.end_ns if dropped_from is None else min(dropped_from, table.end_ns)
    endings = table.endings
    best, best_gap, best_end, best_resumed = -1, -1, 0, 0
    last = len(root_rows) - 1
    for position, index in enumerate(root_rows):
        end, site = rows[index][2], rows[index][3]
        if site is None or index in endings:
            continue
        resumed = rows[root_rows[position + 1]][1] if position < last else cut
        if resumed - end > best_gap:
            best, best_gap, best_end, best_resumed = index, resumed - end, end, resumed
    if best < 0:
        return None
    site, awaited = rows[best][3], rows[best][4]
    assert site is not None
    origin = table.origin_ns
    return SlowestAwait(
        # As a Step gives it (resumed minus end, each in ms from the origin): equal figures.
        duration_ms=(best_resumed - origin) / 1e6 - (best_end - origin) / 1e6,
        site=resolve_site(site[0], site[1]),
        site_is_app=site[2],
        awaited="" if awaited is None else await_target(awaited).label,
    )


def _slowest_loaded(table: StepTable) -> SlowestAwait | None:
    """The same from a table read back from the history (its rows are ``Step`` objects)."""
    end_ms = table.end_ms
    best: Step | None = None
    best_ms = -1.0
    for step in table.steps():
        if step.task_id != REQUEST_TASK_ID:
            continue
        waited = step.waited_ms(end_ms)
        if waited is not None and waited > best_ms:
            best, best_ms = step, waited
    if best is None:
        return None
    return SlowestAwait(
        duration_ms=best_ms,
        site=best.site,
        site_is_app=best.site_is_app,
        awaited="" if best.awaited is None else best.awaited.label,
    )
