"""TimerPanel: total time, time to response start and process CPU, read from the context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels import timer
from debug_toolbar.core.panels.timer import TimerPanel
from debug_toolbar.core.rendering import render_panel
from debug_toolbar.core.toolbar import DebugToolbar

ScopeFactory = Callable[..., dict[str, Any]]
START_NS = 5_000_000_000


@pytest.fixture
def fake_cpu_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """process_time_ns answers from this list, in order."""
    readings: list[int] = []
    monkeypatch.setattr(timer, "process_time_ns", lambda: readings.pop(0))
    yield readings
    assert readings == []


async def _lifecycle(
    context: RequestContext, *, response_start_ns: int | None, end_ns: int | None
) -> DebugToolbar:
    toolbar = DebugToolbar(DebugToolbarConfig(panels=[TimerPanel]), context)
    await toolbar.process_request()
    context.response_start_ns = response_start_ns
    context.end_ns = end_ns
    await toolbar.process_response()
    await toolbar.generate_stats()
    return toolbar


class TestStats:
    @pytest.mark.asyncio
    async def test_values_from_the_context_clock(
        self, make_scope: ScopeFactory, fake_cpu_clock: list[int]
    ) -> None:
        fake_cpu_clock.extend([40_000_000, 42_500_000])
        context = RequestContext.from_scope(make_scope())
        context.start_ns = START_NS
        toolbar = await _lifecycle(
            context, response_start_ns=START_NS + 12_300_000, end_ns=START_NS + 20_000_000
        )
        record = toolbar.build_record()
        panel = record.panel("TimerPanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats == {
            "started_at": context.started_at,
            "total_ms": 20.0,
            "response_start_ms": 12.3,
            "response_stream_ms": pytest.approx(7.7),
            "process_cpu_ms": 2.5,
        }
        assert panel.nav_subtitle == "20.0 ms"
        assert panel.title == "Time"
        assert panel.nav_title == "Time"
        assert panel.has_content is True

    @pytest.mark.asyncio
    async def test_no_response_started(
        self, make_scope: ScopeFactory, fake_cpu_clock: list[int]
    ) -> None:
        fake_cpu_clock.extend([1_000_000, 1_000_000])
        context = RequestContext.from_scope(make_scope())
        context.start_ns = START_NS
        toolbar = await _lifecycle(context, response_start_ns=None, end_ns=START_NS + 1_234_567)
        stats = toolbar.panels[0].get_stats()
        assert stats["total_ms"] == 1.234567
        assert stats["response_start_ms"] is None
        assert stats["response_stream_ms"] is None
        assert stats["process_cpu_ms"] == 0.0
        assert toolbar.panels[0].get_nav_subtitle() == "1.2 ms"

    @pytest.mark.asyncio
    async def test_large_durations_are_grouped(
        self, make_scope: ScopeFactory, fake_cpu_clock: list[int]
    ) -> None:
        fake_cpu_clock.extend([0, 0])
        context = RequestContext.from_scope(make_scope())
        context.start_ns = START_NS
        toolbar = await _lifecycle(context, response_start_ns=None, end_ns=START_NS + 1_234 * 10**6)
        assert toolbar.panels[0].get_nav_subtitle() == "1,234.0 ms"

    @pytest.mark.asyncio
    async def test_real_lifecycle_matches_context_duration(
        self, make_scope: ScopeFactory, run_lifecycle: Callable[..., Any]
    ) -> None:
        context = RequestContext.from_scope(make_scope())
        _, record = await run_lifecycle([TimerPanel], context)
        panel = record.panel("TimerPanel")
        assert panel is not None
        assert panel.stats["total_ms"] == context.duration_ms
        assert 0 <= panel.stats["response_start_ms"] <= panel.stats["total_ms"]
        assert panel.stats["process_cpu_ms"] >= 0
        assert panel.nav_subtitle.endswith(" ms")

    def test_subtitle_before_stats_is_empty(self, make_scope: ScopeFactory) -> None:
        context = RequestContext.from_scope(make_scope())
        toolbar = DebugToolbar(DebugToolbarConfig(panels=[TimerPanel]), context)
        assert toolbar.panels[0].get_nav_subtitle() == ""


class TestTemplate:
    @pytest.mark.asyncio
    async def test_renders_the_numbers_and_the_cpu_caveat(
        self, make_scope: ScopeFactory, fake_cpu_clock: list[int]
    ) -> None:
        fake_cpu_clock.extend([0, 2_500_000])
        context = RequestContext.from_scope(make_scope())
        context.start_ns = START_NS
        context.started_at = 1_700_000_000.0
        toolbar = await _lifecycle(
            context, response_start_ns=START_NS + 12_300_000, end_ns=START_NS + 20_000_000
        )
        record = toolbar.build_record()
        panel = record.panel("TimerPanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "2023-11-14 22:13:20 UTC" in html
        assert "20.0 ms" in html
        assert "12.3 ms" in html
        assert "7.7 ms" in html
        assert "2.5 ms" in html
        assert "shared with concurrent requests" in html

    @pytest.mark.asyncio
    async def test_renders_without_a_response(
        self, make_scope: ScopeFactory, fake_cpu_clock: list[int]
    ) -> None:
        fake_cpu_clock.extend([0, 0])
        context = RequestContext.from_scope(make_scope())
        toolbar = await _lifecycle(context, response_start_ns=None, end_ns=None)
        record = toolbar.build_record()
        panel = record.panel("TimerPanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "no response was started" in html
