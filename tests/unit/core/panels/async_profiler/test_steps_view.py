"""The view model of where the request's time went: figures that add up once rounded, the bar's
shares, the largest waits pointing at their await-site row, and the caps on what a page shows."""

from __future__ import annotations

from typing import Any

import pytest

from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile
from debug_toolbar.core.panels.async_profiler.steps_view import (
    MAX_AWAIT_SITE_ROWS,
    MAX_SLOW_STEPS,
    shown_tenths,
    steps_view,
)


def site(line: int, *, function: str = "handler") -> dict[str, Any]:
    return {"filename": "/app/views.py", "lineno": line, "function": function, "code": "await x"}


def sleep(delay_ms: float) -> dict[str, Any]:
    return {"kind": "sleep", "delay_ms": delay_ms}


def site_row(line: int, total_ms: float, awaited: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        **site(line),
        "site_is_app": True,
        "awaited": awaited if awaited is not None else sleep(total_ms),
        "count": 1,
        "total_ms": total_ms,
        "max_ms": total_ms,
        "queued_ms": 0.0,
    }


def slow_step(start_ms: float, duration_ms: float, *, blocking: bool = False) -> dict[str, Any]:
    return {
        "task_id": 0,
        "start_ms": start_ms,
        "duration_ms": duration_ms,
        "ended": "await",
        "ran_to": site(1),
        "blocking": blocking,
    }


def breakdown(**parts: Any) -> dict[str, Any]:
    return {"start_ms": 0.0, "end_ms": 30.0, "running_ms": 30.0, **parts}


def profile(**stats: Any) -> AsyncProfile:
    return AsyncProfile.from_dict({"backend": "taskfactory", **stats})


def view(stats: AsyncProfile, **kwargs: Any) -> Any:
    return steps_view(stats, slow_threshold_ms=10.0, blocking_threshold_ms=100.0, **kwargs)


class TestShownTenths:
    def test_rounded_parts_add_up_to_the_rounded_total(self) -> None:
        # Each rounded on its own: 10.0 + 10.0 + 9.9 = 29.9, not the 30.0 shown as the total.
        assert shown_tenths([10.04, 10.03, 9.93], 30.0) == (10.1, 10.0, 9.9)

    def test_the_missing_tenths_go_to_the_largest_remainders(self) -> None:
        assert shown_tenths([0.05, 0.07, 0.08], 0.2) == (0.0, 0.1, 0.1)
        assert shown_tenths([1.24, 2.26, 3.5], 7.0) == (1.2, 2.3, 3.5)

    def test_exact_tenths_stay(self) -> None:
        assert shown_tenths([29.0, 30.0, 1.0, 0.0], 60.0) == (29.0, 30.0, 1.0, 0.0)

    def test_parts_that_do_not_add_up_are_rounded_each_on_its_own(self) -> None:
        assert shown_tenths([1.04, 2.06], 10.0) == (1.0, 2.1)


class TestBreakdownParts:
    def test_parts_shares_and_shown_figures(self) -> None:
        result = view(
            profile(
                time_breakdown=breakdown(
                    running_ms=10.04, waiting_ms=10.03, queued_ms=9.93, blocked_ms=0.0
                )
            )
        )
        assert [(p.key, p.shown_ms) for p in result.parts] == [
            ("running", 10.1),
            ("waiting", 10.0),
            ("queued", 9.9),
            ("blocked", 0.0),
        ]
        assert result.shown_wall_ms == 30.0
        assert [round(p.pct, 3) for p in result.parts] == [33.467, 33.433, 33.1, 0.0]

    def test_unrecorded_is_a_part_only_when_some_time_was_not_recorded(self) -> None:
        without = view(profile(time_breakdown=breakdown()))
        assert [p.key for p in without.parts] == ["running", "waiting", "queued", "blocked"]
        cut = view(profile(time_breakdown=breakdown(running_ms=20.0, unrecorded_ms=10.0)))
        assert [(p.key, p.shown_ms) for p in cut.parts][-1] == ("unrecorded", 10.0)

    def test_without_steps_no_parts_and_the_reason(self) -> None:
        result = view(profile(steps_unavailable="step timing is off (async_step_timing)"))
        assert result.breakdown is None
        assert result.parts == ()
        assert result.unavailable == "step timing is off (async_step_timing)"


class TestTopWaits:
    def test_each_points_at_its_await_site_row(self) -> None:
        by_site = [
            {"site": site(3), "awaited": "sleep 20.0 ms", "kind": "sleep", "waiting_ms": 20.0},
            {"site": site(9), "awaited": "thread pool", "kind": "thread", "waiting_ms": 6.0},
            {"site": site(5), "awaited": "", "waiting_ms": 0.0},
        ]
        result = view(
            profile(
                time_breakdown=breakdown(running_ms=4.0, waiting_ms=26.0, by_site=by_site),
                await_sites=[
                    site_row(9, 40.0, {"kind": "thread"}),  # other tasks waited here too
                    site_row(3, 20.0, sleep(20.0)),
                ],
            )
        )
        assert [(top.wait.site.lineno, top.site_index) for top in result.top_waits] == [
            (3, 1),
            (9, 0),
        ]
        assert [top.pct for top in result.top_waits] == pytest.approx([200 / 3, 20.0])
        assert result.more_waits == 1  # the wait of 0 ms is not listed

    def test_a_wait_whose_row_is_not_shown_points_nowhere(self) -> None:
        by_site = [{"site": site(3), "awaited": "sleep 2.0 ms", "waiting_ms": 2.0}]
        rows = [site_row(10 + n, 50.0 - n) for n in range(3)] + [site_row(3, 2.0)]
        result = view(
            profile(time_breakdown=breakdown(by_site=by_site), await_sites=rows), max_sites=3
        )
        assert [top.site_index for top in result.top_waits] == [None]


class TestCaps:
    def test_the_first_await_sites_in_their_order(self) -> None:
        rows = [site_row(n, 1000.0 - n) for n in range(MAX_AWAIT_SITE_ROWS + 7)]
        result = view(profile(time_breakdown=breakdown(), await_sites=rows))
        assert result.shown_sites == MAX_AWAIT_SITE_ROWS
        assert [row.site.lineno for row in result.sites] == list(range(MAX_AWAIT_SITE_ROWS))
        assert (result.total_sites, result.hidden_sites) == (MAX_AWAIT_SITE_ROWS + 7, 7)

    def test_the_longest_slow_steps_listed_in_the_order_they_ran(self) -> None:
        steps = [slow_step(float(n), 10.0 + (n % 7)) for n in range(MAX_SLOW_STEPS + 20)]
        result = view(profile(slow_steps=steps))
        assert len(result.slow) == MAX_SLOW_STEPS
        assert [s.start_ms for s in result.slow] == sorted(s.start_ms for s in result.slow)
        shortest_shown = min(s.duration_ms for s in result.slow)
        hidden = [s for s in steps if s["start_ms"] not in {x.start_ms for x in result.slow}]
        assert all(s["duration_ms"] <= shortest_shown for s in hidden)
        assert (result.total_slow, result.hidden_slow) == (MAX_SLOW_STEPS + 20, 20)

    def test_slow_steps_over_the_blocking_threshold_are_counted_not_listed(self) -> None:
        result = view(
            profile(slow_steps=[slow_step(0.0, 12.0), slow_step(20.0, 150.0, blocking=True)])
        )
        assert [s.duration_ms for s in result.slow] == [12.0]
        assert (result.total_slow, result.blocking_slow) == (1, 1)
