"""What the steps say: the request's time breakdown, its await sites and its slow steps.

Pure functions of a ``StepTable`` and the stalls the watchdog saw, typed results with
``to_dict``/``from_dict``. None of it is computed while the response waits: a profile holds its
``StepFindings``, which computes the breakdown and the slow steps the first time someone reads
them (the record's deferred detail, the page), like the await-site table.

The breakdown follows the request's own task from the moment profiling started to the moment
it stopped, and its parts add up to that time exactly:

- ``running_ms``: its steps (the handler's own code running on the loop, and the toolbar's);
- ``waiting_ms``: suspended until what it awaited was ready (split by await site);
- ``queued_ms``: ready, but the loop was busy with other work (where readiness is known:
  sleeps, tasks, thread calls; otherwise the whole suspension counts as waiting);
- ``blocked_ms``: the part of its suspensions that other requests' stalls of the loop took;
- ``unrecorded_ms``: after its steps reached the per-request cap (``async_max_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from debug_toolbar.core.panels.async_profiler.models import StackFrame
from debug_toolbar.core.panels.async_profiler.steps import (
    AWAIT_KINDS,
    REQUEST_TASK_ID,
    STEP_ENDS,
    AwaitKind,
    AwaitTarget,
    StepEnd,
    StepTable,
    resolve_site,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from debug_toolbar.core.panels.async_profiler.models import BlockingCall
    from debug_toolbar.core.panels.async_profiler.steps import RawSite

__all__ = (
    "AwaitSiteRow",
    "SiteWait",
    "SlowStep",
    "StepFindings",
    "TimeBreakdown",
    "await_sites",
    "caused_by_another",
    "slow_steps",
    "time_breakdown",
)

Interval = tuple[float, float]


def _frame_dict(frame: StackFrame | None) -> dict[str, Any] | None:
    return None if frame is None else frame.to_dict()


def _frame(data: Mapping[str, Any] | None) -> StackFrame | None:
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
            "site": _frame_dict(self.site),
            "site_is_app": self.site_is_app,
            "awaited": self.awaited,
            "kind": self.kind,
            "count": self.count,
            "waiting_ms": self.waiting_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SiteWait:
        return cls(
            site=_frame(data.get("site")),
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
        )


def await_sites(table: StepTable) -> tuple[AwaitSiteRow, ...]:
    """One row per (await site, what was awaited), largest total first."""
    end_ms = table.end_ms
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for step in table.steps():
        waited = step.waited_ms(end_ms)
        if waited is None:
            continue
        label = None if step.awaited is None else step.awaited.label
        key = (step.site, step.site_is_app, label)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [step.awaited, 0, 0.0, 0.0, 0.0, 0, set()]
        group[1] += 1
        group[2] += waited
        group[3] = max(group[3], waited)
        group[4] += step.resume_delay_ms(end_ms) or 0.0
        group[5] += step.resumed_ms is None
        group[6].add(step.task_id)
    rows = [
        AwaitSiteRow(site, is_app, awaited, count, total, most, queued, pending, tuple(sorted(ids)))
        for (site, is_app, _label), (awaited, count, total, most, queued, pending, ids) in (
            groups.items()
        )
    ]
    rows.sort(key=lambda row: -row.total_ms)
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class SlowStep:
    """A step (or a stall the watchdog saw) that held the loop at least the lag threshold.

    ``ran_from`` is where the task resumed (the line of its previous await, or its coroutine's
    first line), ``ran_to`` where it suspended next; ``held_at`` is the exact line that held the
    loop, when the watchdog sampled it. A stall seen by the watchdog with no step (steps not
    timed here) has only ``held_at``.
    """

    task_id: int | None
    start_ms: float
    duration_ms: float
    ended: StepEnd | None = None
    ran_from: StackFrame | None = None
    ran_to: StackFrame | None = None
    held_at: StackFrame | None = None
    held_stack: tuple[StackFrame, ...] = ()
    blocking: bool = False
    """Also over ``async_blocking_threshold_ms``: it is in the blocking-call list too."""

    @property
    def sampled(self) -> bool:
        return self.held_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "start_ms": self.start_ms,
            "duration_ms": self.duration_ms,
            "ended": self.ended,
            "ran_from": _frame_dict(self.ran_from),
            "ran_to": _frame_dict(self.ran_to),
            "held_at": _frame_dict(self.held_at),
            "held_stack": [frame.to_dict() for frame in self.held_stack],
            "sampled": self.sampled,
            "blocking": self.blocking,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlowStep:
        task_id, ended = data.get("task_id"), data.get("ended")
        if ended is not None and ended not in STEP_ENDS:
            raise ValueError(f"unknown step end {ended!r}")
        return cls(
            task_id=None if task_id is None else int(task_id),
            start_ms=float(data["start_ms"]),
            duration_ms=float(data["duration_ms"]),
            ended=cast("StepEnd | None", ended),
            ran_from=_frame(data.get("ran_from")),
            ran_to=_frame(data.get("ran_to")),
            held_at=_frame(data.get("held_at")),
            held_stack=tuple(StackFrame.from_dict(f) for f in data.get("held_stack") or ()),
            blocking=bool(data.get("blocking", False)),
        )


def _sampled_location(call: BlockingCall) -> StackFrame | None:
    if call.filename is None or call.lineno is None:
        return None
    return StackFrame(call.filename, call.lineno, call.function or "<unknown>", call.code)


def slow_steps(
    table: StepTable | None,
    slow: Sequence[tuple[int, RawSite | None]],
    *,
    own_stalls: Sequence[BlockingCall] = (),
    blocking_threshold_ms: float | None = None,
) -> tuple[SlowStep, ...]:
    """The slow steps, each with the sampled line of the own stall it overlaps most.

    ``slow``: the recorder's (row index, site the task resumed from); ``own_stalls``: the
    stalls this request caused, as the watchdog sampled them. A stall that overlaps no slow
    step (no steps here, or over the cap) is listed on its own. ``blocking`` marks those
    longer than ``blocking_threshold_ms`` (also in the blocking-call list).
    """
    matched: set[int] = set()
    found: list[SlowStep] = []
    if table is not None and slow:
        steps = table.steps([index for index, _site in slow])
        for step, (_index, ran_from) in zip(steps, slow, strict=True):
            best, best_overlap = None, 0.0
            for number, call in enumerate(own_stalls):
                overlap = min(step.end_ms, call.start_ms + call.duration_ms) - max(
                    step.start_ms, call.start_ms
                )
                if overlap > best_overlap:
                    best, best_overlap = number, overlap
            sampled = None if best is None else own_stalls[best]
            if best is not None:
                matched.add(best)
            found.append(
                SlowStep(
                    task_id=step.task_id,
                    start_ms=step.start_ms,
                    duration_ms=step.duration_ms,
                    ended=step.ended,
                    ran_from=None if ran_from is None else resolve_site(ran_from[0], ran_from[1]),
                    ran_to=step.site,
                    held_at=None if sampled is None else _sampled_location(sampled),
                    held_stack=() if sampled is None else tuple(sampled.stack),
                    blocking=_over(step.duration_ms, blocking_threshold_ms),
                )
            )
    for number, call in enumerate(own_stalls):
        if number not in matched:
            found.append(
                SlowStep(
                    task_id=None,
                    start_ms=call.start_ms,
                    duration_ms=call.duration_ms,
                    held_at=_sampled_location(call),
                    held_stack=tuple(call.stack),
                    blocking=_over(call.duration_ms, blocking_threshold_ms),
                )
            )
    found.sort(key=lambda slow_step: slow_step.start_ms)
    return tuple(found)


def _over(duration_ms: float, threshold_ms: float | None) -> bool:
    return threshold_ms is not None and duration_ms > threshold_ms


def caused_by_another(call: BlockingCall) -> bool:
    """A stall another profiled request caused: the breakdown's "blocked". Stalls outside any
    request stay where they fell (waiting, queued): the watchdog cannot tell them from an idle
    loop whose next beat was due late (a heartbeat's first beat, at its default interval)."""
    return call.relation == "suffered" and call.culprit_request_id is not None


class StepFindings:
    """The time breakdown and the slow steps of one profile, computed when first read.

    Built by the profiler from the frozen steps and the stalls the watchdog saw (cheap: it
    keeps references), or from the history's dict with the values already there. Read from
    any thread once the profile is frozen; computing twice by a race gives equal values.
    """

    __slots__ = (
        "_breakdown",
        "_computed",
        "_own",
        "_slow",
        "_slow_rows",
        "_suffered",
        "_table",
        "_threshold",
    )

    def __init__(
        self,
        table: StepTable | None = None,
        *,
        slow_rows: Sequence[tuple[int, RawSite | None]] = (),
        own_stalls: Sequence[BlockingCall] = (),
        other_stalls: Sequence[BlockingCall] = (),
        blocking_threshold_ms: float | None = None,
    ) -> None:
        """``own_stalls``: the request's own stalls as sampled (each once); ``other_stalls``:
        any list of stalls, of which those another request caused are kept (overlaps count
        once)."""
        self._table = table
        self._slow_rows = tuple(slow_rows)
        self._own = [call for call in own_stalls if call.relation == "own"]
        self._suffered = [call for call in other_stalls if caused_by_another(call)]
        self._threshold = blocking_threshold_ms
        self._computed = False
        self._breakdown: TimeBreakdown | None = None
        self._slow: tuple[SlowStep, ...] = ()

    @classmethod
    def loaded(cls, breakdown: TimeBreakdown | None, slow: tuple[SlowStep, ...]) -> StepFindings:
        """Findings read back from the history: nothing left to compute."""
        findings = cls()
        findings._breakdown, findings._slow, findings._computed = breakdown, slow, True
        return findings

    def _compute(self) -> None:
        table = self._table
        if table is not None:
            self._breakdown = time_breakdown(
                table,
                start_ms=(table.start_ns - table.origin_ns) / 1e6,
                suffered=self._suffered,
                root_rows=table.root_rows,
            )
        self._slow = slow_steps(
            table,
            self._slow_rows,
            own_stalls=self._own,
            blocking_threshold_ms=self._threshold,
        )
        self._computed = True

    @property
    def breakdown(self) -> TimeBreakdown | None:
        """None without steps."""
        if not self._computed:
            self._compute()
        return self._breakdown

    @property
    def slow_steps(self) -> tuple[SlowStep, ...]:
        if not self._computed:
            self._compute()
        return self._slow
