"""The view model of where the request's time went: what ``async_profiler_steps.html`` shows.

The breakdown's parts with their share of the wall time (the stacked bar's widths) and their
figures rounded so that the shown parts add up to the shown total, the largest waits with the
row of the await-site table each one is, and the await sites and slow steps cut to what a page
can hold. A pure function of a frozen profile, built when the panel is rendered.

The page is bounded: a stress route can wait at a thousand distinct (site, awaited) pairs (a
loop awaiting one task after another: ``task 1``, ``task 2``...) and a long request can hold
the loop in hundreds of slow steps. The page shows the first ``MAX_AWAIT_SITE_ROWS`` sites (the
largest totals) and the ``MAX_SLOW_STEPS`` longest slow steps; the JSON API has them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
    from debug_toolbar.core.panels.async_profiler.step_findings import SlowStep
    from debug_toolbar.core.panels.async_profiler.step_report import (
        AwaitSiteRow,
        SiteWait,
        TimeBreakdown,
    )

__all__ = (
    "MAX_AWAIT_SITE_ROWS",
    "MAX_SLOW_STEPS",
    "MAX_TOP_WAITS",
    "BreakdownPart",
    "PartKey",
    "StepsView",
    "TopWait",
    "shown_tenths",
    "steps_view",
)

MAX_AWAIT_SITE_ROWS = 50
"""Await-site rows on the page. Row ``K`` (0-based, in ``AsyncProfile.await_sites()`` order) is
``id="dt-async-site-K"`` for every ``K`` below ``StepsView.shown_sites``: what the Gantt's
segments point at."""
MAX_SLOW_STEPS = 50
"""Slow steps on the page: the longest ones, listed in the order they ran."""
MAX_TOP_WAITS = 5
"""The request task's largest waits listed under the breakdown."""

PartKey = Literal["running", "waiting", "queued", "blocked", "unrecorded"]


@dataclass(frozen=True, slots=True)
class BreakdownPart:
    """One part of the request task's wall time."""

    key: PartKey
    ms: float
    shown_ms: float
    """``ms`` to a tenth of a millisecond, chosen so the shown parts add up to the shown wall
    time (``StepsView.shown_wall_ms``): each is within 0.1 ms of ``ms``."""
    pct: float
    """Share of the wall time, 0 to 100: the part's width in the bar."""


@dataclass(frozen=True, slots=True)
class TopWait:
    """One of the request task's largest waits, by await site and what it awaited."""

    wait: SiteWait
    pct: float
    """Share of the wall time, 0 to 100."""
    site_index: int | None
    """Its row in the await-site table (``dt-async-site-K``), when the page shows that row."""


@dataclass(frozen=True, slots=True)
class StepsView:
    """Where the request's time went, ready to place."""

    breakdown: TimeBreakdown | None
    """None without steps (``unavailable`` says why, when it is known)."""
    unavailable: str | None
    parts: tuple[BreakdownPart, ...] = ()
    """Running, waiting, queued, blocked; not recorded only when some time was not."""
    shown_wall_ms: float = 0.0
    top_waits: tuple[TopWait, ...] = ()
    more_waits: int = 0
    """Await sites of the request task's waiting not in ``top_waits``."""
    sites: tuple[AwaitSiteRow, ...] = ()
    """The await-site table's rows on the page: the first of ``AsyncProfile.await_sites()``."""
    total_sites: int = 0
    slow: tuple[SlowStep, ...] = ()
    """Slow steps not over the blocking threshold, the longest ``MAX_SLOW_STEPS``, by start."""
    total_slow: int = 0
    """Slow steps not over the blocking threshold, shown or not."""
    blocking_slow: int = 0
    """Slow steps over the blocking threshold: they are in the blocking-call list instead."""
    slow_threshold_ms: float = 0.0
    blocking_threshold_ms: float = 0.0

    @property
    def shown_sites(self) -> int:
        """How many await-site rows the page has: ids ``dt-async-site-0`` to ``-{n - 1}``."""
        return len(self.sites)

    @property
    def hidden_sites(self) -> int:
        return self.total_sites - len(self.sites)

    @property
    def hidden_slow(self) -> int:
        return self.total_slow - len(self.slow)


def shown_tenths(values: Sequence[float], total: float) -> tuple[float, ...]:
    """``values`` rounded to tenths so that they add up to ``total`` rounded to a tenth.

    Largest remainders: each value is rounded down, and the tenths still missing go to those
    that lost most. When the values do not add up to ``total`` to begin with (a record from
    elsewhere), each is rounded on its own.
    """
    units = [max(value, 0.0) * 10.0 for value in values]
    floors = [math.floor(unit) for unit in units]
    missing = round(total * 10.0) - sum(floors)
    if not 0 <= missing <= len(units):
        return tuple(round(value, 1) for value in values)
    order = sorted(range(len(units)), key=lambda index: floors[index] - units[index])
    for index in order[:missing]:
        floors[index] += 1
    return tuple(floor / 10.0 for floor in floors)


def _pct(ms: float, wall_ms: float) -> float:
    return 0.0 if wall_ms <= 0 else min(max(ms / wall_ms * 100.0, 0.0), 100.0)


def _site_key(row: AwaitSiteRow) -> tuple[object, bool, str]:
    """The await-site table groups by this; the breakdown's waits by the same, with no
    awaited target as ``""`` (``step_report``)."""
    return (row.site, row.site_is_app, "" if row.awaited is None else row.awaited.label)


def _wait_key(wait: SiteWait) -> tuple[object, bool, str]:
    return (wait.site, wait.site_is_app, wait.awaited)


def steps_view(
    profile: AsyncProfile,
    *,
    slow_threshold_ms: float,
    blocking_threshold_ms: float,
    max_sites: int = MAX_AWAIT_SITE_ROWS,
    max_slow: int = MAX_SLOW_STEPS,
    max_waits: int = MAX_TOP_WAITS,
) -> StepsView:
    """The view of ``profile``'s steps; the thresholds are the configuration's (for the text)."""
    all_sites = profile.await_sites()
    sites = all_sites[:max_sites]
    all_slow = profile.slow_steps
    mild = [step for step in all_slow if not step.blocking]
    longest = sorted(mild, key=lambda step: -step.duration_ms)[:max_slow]
    slow = tuple(sorted(longest, key=lambda step: step.start_ms))
    breakdown = profile.time_breakdown
    parts: tuple[BreakdownPart, ...] = ()
    top: tuple[TopWait, ...] = ()
    shown_wall = 0.0
    if breakdown is not None:
        wall = breakdown.wall_ms
        shown_wall = round(wall * 10.0) / 10.0
        figures: list[tuple[PartKey, float]] = [
            ("running", breakdown.running_ms),
            ("waiting", breakdown.waiting_ms),
            ("queued", breakdown.queued_ms),
            ("blocked", breakdown.blocked_ms),
        ]
        if breakdown.unrecorded_ms > 0:
            figures.append(("unrecorded", breakdown.unrecorded_ms))
        shown = shown_tenths([ms for _key, ms in figures], wall)
        parts = tuple(
            BreakdownPart(key, ms, shown_ms, _pct(ms, wall))
            for (key, ms), shown_ms in zip(figures, shown, strict=True)
        )
        rows = {_site_key(row): index for index, row in enumerate(sites)}
        top = tuple(
            TopWait(wait, _pct(wait.waiting_ms, wall), rows.get(_wait_key(wait)))
            for wait in breakdown.by_site[:max_waits]
            if wait.waiting_ms > 0
        )
    return StepsView(
        breakdown=breakdown,
        unavailable=profile.steps_unavailable,
        parts=parts,
        shown_wall_ms=shown_wall,
        top_waits=top,
        more_waits=0 if breakdown is None else len(breakdown.by_site) - len(top),
        sites=sites,
        total_sites=len(all_sites),
        slow=slow,
        total_slow=len(mild),
        blocking_slow=len(all_slow) - len(mild),
        slow_threshold_ms=slow_threshold_ms,
        blocking_threshold_ms=blocking_threshold_ms,
    )
