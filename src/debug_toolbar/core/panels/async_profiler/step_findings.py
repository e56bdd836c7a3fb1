"""The slow steps, and the findings a profile computes from its steps when first read.

A slow step held the loop at least the lag threshold (``async_event_loop_lag_threshold_ms``):
a milder list than the blocking calls. Step timing says where it ran from and to; the watchdog,
sampling at that threshold too (the detector's second threshold, see ``profiler``), names the
exact line that held the loop. ``StepFindings`` keeps a frozen profile's inputs and computes the
breakdown, the slow steps and the await-site table on first read, so the request pays for none
of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from debug_toolbar.core.panels.async_profiler.models import StackFrame
from debug_toolbar.core.panels.async_profiler.step_report import (
    AwaitSiteRow,
    SlowestAwait,
    TimeBreakdown,
    await_sites,
    frame_dict,
    frame_of,
    slowest_await,
    time_breakdown,
)
from debug_toolbar.core.panels.async_profiler.steps import STEP_ENDS, StepEnd, resolve_site

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from debug_toolbar.core.panels.async_profiler.models import BlockingCall
    from debug_toolbar.core.panels.async_profiler.steps import RawSite, StepTable

__all__ = ("SlowStep", "StepFindings", "caused_by_another", "slow_steps")


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
            "ran_from": frame_dict(self.ran_from),
            "ran_to": frame_dict(self.ran_to),
            "held_at": frame_dict(self.held_at),
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
            ran_from=frame_of(data.get("ran_from")),
            ran_to=frame_of(data.get("ran_to")),
            held_at=frame_of(data.get("held_at")),
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
    """The time breakdown, the slow steps and the await sites of one profile, computed when
    first read.

    Built by the profiler from the frozen steps and the stalls the watchdog saw (cheap: it
    keeps references), or from the history's dict with the values already there. Read from
    any thread once the profile is frozen; computing twice by a race gives equal values.
    """

    __slots__ = (
        "_breakdown",
        "_computed",
        "_own",
        "_sites",
        "_slow",
        "_slow_rows",
        "_slowest",
        "_slowest_computed",
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
        self._sites: tuple[AwaitSiteRow, ...] | None = None
        self._slowest: SlowestAwait | None = None
        self._slowest_computed = False

    @classmethod
    def loaded(
        cls,
        breakdown: TimeBreakdown | None,
        slow: tuple[SlowStep, ...],
        sites: tuple[AwaitSiteRow, ...] = (),
        *,
        slowest: SlowestAwait | None = None,
    ) -> StepFindings:
        """Findings read back from the history: nothing left to compute."""
        findings = cls()
        findings._breakdown, findings._slow, findings._computed = breakdown, slow, True
        findings._sites = sites
        findings._slowest, findings._slowest_computed = slowest, True
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

    @property
    def slowest_await(self) -> SlowestAwait | None:
        """The request's own task's longest suspension: read for the record's head (the
        history lists it), so apart from the rest and cheap (one pass over that task's rows)."""
        if not self._slowest_computed:
            table = self._table
            self._slowest = None if table is None else slowest_await(table)
            self._slowest_computed = True
        return self._slowest

    @property
    def await_sites(self) -> tuple[AwaitSiteRow, ...]:
        """Every step is read: built with the record's detail, not its head."""
        if self._sites is None:
            self._sites = () if self._table is None else await_sites(self._table)
        return self._sites
