"""The Async panel's Gantt in headless Chromium, measured against tasks of known durations.

The demo's ``/async-timeline`` runs three tasks sleeping 40, 80 and 160 ms, then blocks the loop
for 150 ms. The bars' rendered boxes must be proportional to those durations, the blocking band
drawn, and each bar's hover text must name its task.

``DEBUG_TOOLBAR_SCREENSHOTS=1`` also writes docs/images/async-panel.png and, on Python 3.12+
(steps), docs/images/async-steps.png from the demo's ``/account`` (``TestScreenshot``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from debug_toolbar.core.panels.async_profiler.step_monitor import STEPS_UNAVAILABLE

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.e2e

IMAGES = Path(__file__).parents[2] / "docs" / "images"
DURATIONS_MS = {"sleep-40ms": 40.0, "sleep-80ms": 80.0, "sleep-160ms": 160.0}


def open_async_panel(page: Page, base_url: str) -> Locator:
    """Load the timeline demo, open the Async panel in the toolbar; the panel's body."""
    response = page.goto(base_url + "/async-timeline")
    assert response is not None
    assert response.status == 200
    page.wait_for_selector('#debug-toolbar[data-dt-ready="1"]', state="attached")
    page.locator(
        '#debug-toolbar li.dt-panel[data-panel-id="AsyncProfilerPanel"] a.dt-panel-link'
    ).click()
    body = page.locator("#debug-toolbar .dt-window-body")
    body.locator(".dt-async-gantt").wait_for()
    return body


def recorded_ms(title: str, prefix: str = "") -> float:
    """The duration a hover text states: its part "12.3 ms" (after ``prefix``, if given)."""
    for part in title.split(" · "):
        match = re.fullmatch(re.escape(prefix) + r"([\d,]+\.\d+) ms", part)
        if match:
            return float(match.group(1).replace(",", ""))
    raise AssertionError(f"no duration in {title!r}")


class TestGantt:
    def test_bar_widths_are_proportional_to_task_durations(
        self, page: Page, demo_server: Any
    ) -> None:
        body = open_async_panel(page, demo_server.url)
        bars = body.locator(".dt-async-gantt .dt-timeline-bar")
        # The request's own task first (the root of the tree), then the three it spawned.
        assert bars.count() == 4
        own = bars.nth(0).bounding_box()
        assert own is not None
        widths: dict[str, float] = {}
        durations: dict[str, float] = {}
        for index in range(1, 4):
            bar = bars.nth(index)
            title = bar.get_attribute("title") or ""
            name = title.split(" · ")[0]
            assert name in DURATIONS_MS, title
            assert "completed" in title
            box = bar.bounding_box()
            assert box is not None
            widths[name] = box["width"]
            durations[name] = recorded_ms(title)
        assert set(widths) == set(DURATIONS_MS)
        # The tasks slept at least as long as asked (a busy machine may add to it)...
        for name, nominal in DURATIONS_MS.items():
            assert durations[name] >= nominal - 1, durations
        # ...and each bar is as wide as its recorded duration, on one scale (a pixel of
        # rounding on bars of 60 to 250 pixels).
        unit = widths["sleep-160ms"] / durations["sleep-160ms"]
        for name, duration in durations.items():
            assert widths[name] == pytest.approx(duration * unit, rel=0.03, abs=1.5), widths
        assert own["width"] > max(widths.values())  # it awaited them all, and blocked after

    def test_blocking_band_is_drawn_over_the_gantt(self, page: Page, demo_server: Any) -> None:
        body = open_async_panel(page, demo_server.url)
        # The demo's own block, named by its function: on a starved CI machine the process
        # may also be paused past the threshold, which the panel rightly shows as a stall too.
        band = body.locator('.dt-async-band.dt-async-band-own[title*="in timeline_demo"]')
        assert band.count() == 1
        band_box = band.bounding_box()
        bar = body.locator(".dt-async-gantt .dt-timeline-bar").last
        bar_box = bar.bounding_box()
        assert band_box is not None
        assert bar_box is not None
        band_title = band.get_attribute("title") or ""
        assert "loop blocked" in band_title
        blocked_ms = recorded_ms(band_title, prefix="loop blocked ")
        assert blocked_ms >= 150 - 1
        # The band is on the bars' scale, and after the task starts. The stall ends at the
        # heartbeat that saw the loop free again, which a starved machine may run after the
        # response was sent: the band is then clipped at the response end, the track's edge.
        bar_ms = recorded_ms(bar.get_attribute("title") or "")
        expected = bar_box["width"] * blocked_ms / bar_ms
        if "dt-async-clipped" in (band.get_attribute("class") or ""):
            track_box = body.locator(".dt-async-overlay-track").bounding_box()
            assert track_box is not None
            expected = min(expected, track_box["x"] + track_box["width"] - band_box["x"])
        assert band_box["width"] == pytest.approx(expected, rel=0.03, abs=1.5), (
            band.get_attribute("class"),
            band_title,
            bar.get_attribute("title"),
            band_box,
            bar_box,
        )
        assert band_box["x"] >= bar_box["x"]
        assert "time.sleep(0.15)" in body.locator(".dt-async-blocking").inner_text()

    def test_no_horizontal_overflow_at_1000_px(self, page: Page, demo_server: Any) -> None:
        page.set_viewport_size({"width": 1000, "height": 800})
        body = open_async_panel(page, demo_server.url)
        overflow = body.evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 0


@pytest.mark.skipif(
    os.environ.get("DEBUG_TOOLBAR_SCREENSHOTS") != "1",
    reason="screenshots for the docs: set DEBUG_TOOLBAR_SCREENSHOTS=1 to write them",
)
class TestScreenshot:
    def test_async_panel(self, page: Page, demo_server: Any) -> None:
        """docs/images/async-panel.png: the timeline demo's Async panel."""
        page.set_viewport_size({"width": 1280, "height": 900})
        open_async_panel(page, demo_server.url)
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "async-panel.png"))
        assert (IMAGES / "async-panel.png").stat().st_size > 10_000

    @pytest.mark.skipif(
        STEPS_UNAVAILABLE is not None,
        reason="docs/images/async-steps.png shows steps: run with Python 3.12+ (.venv-3.13)",
    )
    def test_where_the_time_went(self, page: Page, demo_server: Any) -> None:
        """docs/images/async-steps.png: the demo's /account, its breakdown, segments and sites."""
        # Once before, so the picture is of a warm process (imports done, files cached).
        assert page.request.get(demo_server.url + "/account").status == 200
        page.set_viewport_size({"width": 1280, "height": 1300})
        response = page.goto(demo_server.url + "/account")
        assert response is not None
        assert response.status == 200
        page.wait_for_selector('#debug-toolbar[data-dt-ready="1"]', state="attached")
        page.locator(
            '#debug-toolbar li.dt-panel[data-panel-id="AsyncProfilerPanel"] a.dt-panel-link'
        ).click()
        body = page.locator("#debug-toolbar .dt-window-body")
        body.locator(".dt-async-gantt").wait_for()
        breakdown = body.locator(".dt-async-steps")
        assert "Where the time went" in breakdown.inner_text()
        assert body.locator(".dt-async-sites").count() == 1
        # The tiles scrolled away: the breakdown, the Gantt's segments and the await sites.
        breakdown.evaluate("el => el.scrollIntoView({block: 'start'})")
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "async-steps.png"))
        assert (IMAGES / "async-steps.png").stat().st_size > 10_000
