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
DEMO = Path(__file__).parents[2] / "examples" / "demo_app.py"
DURATIONS_MS = {"sleep-40ms": 40.0, "sleep-80ms": 80.0, "sleep-160ms": 160.0}


def open_async_panel(page: Page, base_url: str, path: str = "/async-timeline") -> Locator:
    """Load a demo page (the timeline demo by default), open the Async panel in the toolbar;
    the panel's body."""
    response = page.goto(base_url + path)
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


def demo_line(function: str, text: str) -> int:
    """The line of ``examples/demo_app.py`` holding ``text``, first after ``def function``."""
    lines = DEMO.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if f"def {function}(" in line)
    return next(i + 1 for i in range(start, len(lines)) if text in lines[i])


IN_WINDOW = """el => {
    const body = el.closest(".dt-window-body").getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return box.top >= body.top - 1 && box.top < body.bottom;
}"""
"""Whether an element's top is shown inside the toolbar's scrolled window body."""


@pytest.mark.skipif(
    STEPS_UNAVAILABLE is not None,
    reason="step timing needs Python 3.12+; make test-all runs it on 3.12/3.13",
)
class TestSegments:
    """Steps drawn over the bars: ``/async-timeline``'s request task suspends once, at its
    ``await asyncio.gather(...)`` of the three sleeping tasks, each of which waits once."""

    def test_request_and_sleep_rows_show_their_steps(self, page: Page, demo_server: Any) -> None:
        body = open_async_panel(page, demo_server.url)
        rows = body.locator(".dt-async-gantt .dt-async-rows .dt-timeline-row")
        assert rows.count() == 4
        gather_line = demo_line("timeline_demo", "await asyncio.gather(")
        waits: dict[str, Locator] = {}
        bars: dict[str, Locator] = {}
        for index in range(4):
            row = rows.nth(index)
            bar = row.locator(".dt-timeline-bar")
            name = (bar.get_attribute("title") or "").split(" · ")[0]
            assert row.locator(".dt-async-seg-run").count() >= 1, name
            wait = row.locator(".dt-async-seg-wait")
            assert wait.count() == 1, name
            waits[name], bars[name] = wait, bar
        request = rows.nth(0).locator(".dt-async-seg-wait").get_attribute("title") or ""
        # The request's own task waited at the demo's gather, for the three tasks.
        assert f"at demo_app.py:{gather_line} in timeline_demo" in request, request
        assert "for gather of 3" in request
        for name, nominal in DURATIONS_MS.items():
            title = waits[name].get_attribute("title") or ""
            assert f"for sleep {nominal:.1f} ms" in title, title
            assert recorded_ms(title.split(" at ")[0], prefix="waited ") >= nominal - 1
        # A wait is as wide as it waited, on the bars' scale (the 160 ms task's bar sets it;
        # a pixel of rounding, and at most a pixel given to a narrower neighbour).
        unit_box = bars["sleep-160ms"].bounding_box()
        assert unit_box is not None
        unit = unit_box["width"] / recorded_ms(bars["sleep-160ms"].get_attribute("title") or "")
        for wait in waits.values():
            title = wait.get_attribute("title") or ""
            waited = recorded_ms(title.split(" at ")[0], prefix="waited ")
            box = wait.bounding_box()
            assert box is not None
            assert box["width"] == pytest.approx(waited * unit, rel=0.03, abs=1.5), title
        # The segments lie on their bars.
        own_box = bars[next(iter(set(bars) - set(DURATIONS_MS)))].bounding_box()
        request_box = rows.nth(0).locator(".dt-async-seg-wait").bounding_box()
        assert own_box is not None
        assert request_box is not None
        assert own_box["x"] - 1 <= request_box["x"] <= own_box["x"] + own_box["width"]

    def test_clicking_a_wait_opens_its_await_site(self, page: Page, demo_server: Any) -> None:
        page.set_viewport_size({"width": 1280, "height": 600})  # the table starts out of view
        body = open_async_panel(page, demo_server.url)
        wait = body.locator(".dt-async-rows .dt-timeline-row").nth(0).locator(".dt-async-seg-wait")
        index = wait.get_attribute("data-dt-site")
        assert index is not None
        site = body.locator(f"#dt-async-site-{index}")
        details = site.locator("xpath=self::details | .//details").first
        assert details.evaluate("el => el.open") is False
        assert site.evaluate(IN_WINDOW) is False  # below, under the timeline
        hash_before = page.evaluate("location.hash")
        wait.click()
        assert details.evaluate("el => el.open") is True
        assert "dt-async-seg-target" in (site.get_attribute("class") or "")
        # The row holds the source line of the await: the demo's gather.
        assert "await asyncio.gather(" in site.inner_text()
        page.wait_for_function(IN_WINDOW, arg=site.element_handle())  # scrolled smoothly
        assert page.evaluate("location.hash") == hash_before  # the app's address is its own

    def test_clicking_a_largest_wait_opens_its_await_site(
        self, page: Page, demo_server: Any
    ) -> None:
        page.set_viewport_size({"width": 1280, "height": 600})
        body = open_async_panel(page, demo_server.url)
        wait = body.locator(".dt-async-steps-wait[data-dt-site]").first
        index = wait.get_attribute("data-dt-site")
        assert index is not None
        site = body.locator(f"#dt-async-site-{index}")
        details = site.locator("xpath=self::details | .//details").first
        assert details.evaluate("el => el.open") is False
        wait.click()
        assert details.evaluate("el => el.open") is True
        assert "await asyncio.gather(" in site.inner_text()

    def test_a_site_row_missing_from_the_page_is_ignored(
        self, page: Page, demo_server: Any
    ) -> None:
        """A record stored before the await-site table existed has no row to open."""
        body = open_async_panel(page, demo_server.url)
        wait = body.locator(".dt-async-rows .dt-timeline-row").nth(0).locator(".dt-async-seg-wait")
        index = wait.get_attribute("data-dt-site")
        body.locator(f"#dt-async-site-{index}").evaluate("el => el.remove()")
        scroll = body.evaluate("el => el.scrollTop")
        wait.click()
        assert body.evaluate("el => el.scrollTop") == scroll
        assert body.locator(".dt-async-seg-target").count() == 0
        # (the page fixture fails the test on any error the browser reports)


@pytest.mark.skipif(
    os.environ.get("DEBUG_TOOLBAR_SCREENSHOTS") != "1",
    reason="screenshots for the docs: set DEBUG_TOOLBAR_SCREENSHOTS=1 to write them",
)
class TestScreenshot:
    def test_async_panel(self, page: Page, demo_server: Any) -> None:
        """docs/images/async-panel.png: the timeline demo's Async panel."""
        # Once before, so the picture is of a warm process: the page's first render (the
        # template compiled) would otherwise run inside the demo's 150 ms block.
        assert page.request.get(demo_server.url + "/async-timeline").status == 200
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
        body = open_async_panel(page, demo_server.url, "/account")
        breakdown = body.locator(".dt-async-steps")
        assert "Where the time went" in breakdown.inner_text()
        assert body.locator(".dt-async-sites").count() == 1
        # The tiles scrolled away: the breakdown, the Gantt's segments and the await sites.
        breakdown.evaluate("el => el.scrollIntoView({block: 'start'})")
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "async-steps.png"))
        assert (IMAGES / "async-steps.png").stat().st_size > 10_000
