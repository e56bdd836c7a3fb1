"""The toolbar in a real headless Chromium, on the demo app served by uvicorn.

What a developer does with it: open a page, see the bar, open a panel (its HTML is fetched from
the toolbar's pages), turn a panel off for the next requests, go to the history, hide the bar and
bring it back. Every test also fails on a console error or an uncaught script error (the ``page``
fixture checks).

``DEBUG_TOOLBAR_SCREENSHOTS=1`` also writes the screenshots under docs/images/ that the docs
show (``TestScreenshots``); without it that class is skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from debug_toolbar.core.context import DISABLED_PANELS_COOKIE

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.e2e

STANDARD_PANELS = ("TimerPanel", "RequestPanel", "ResponsePanel", "LoggingPanel", "VersionsPanel")
DEMO_PANELS = (*STANDARD_PANELS, "AsyncProfilerPanel")
IMAGES = Path(__file__).parents[2] / "docs" / "images"


def toolbar(page: Page) -> Locator:
    return page.locator("#debug-toolbar")


def panel_item(page: Page, panel_id: str) -> Locator:
    return toolbar(page).locator(f'li.dt-panel[data-panel-id="{panel_id}"]')


def request_id(page: Page) -> str:
    value = toolbar(page).get_attribute("data-request-id")
    assert value is not None
    assert re.fullmatch(r"[0-9a-f]{32}", value), value
    return value


def api_record(page: Page, pages_url: str, rid: str) -> dict[str, Any]:
    """The request's record from the JSON API (``pages_url``: the server's url + prefix)."""
    response = page.request.get(f"{pages_url}/api/requests/{rid}")
    assert response.status == 200, response.text()
    record: dict[str, Any] = response.json()
    return record


def open_home(page: Page, base_url: str) -> str:
    """Load the demo's home page; the id of the request that served it."""
    response = page.goto(base_url + "/")
    assert response is not None
    assert response.status == 200
    page.wait_for_selector('#debug-toolbar[data-dt-ready="1"]', state="attached")
    rid = request_id(page)
    assert response.headers["x-debug-toolbar-request-id"] == rid
    return rid


class TestToolbarOnAPage:
    def test_page_loads_with_the_toolbar_visible(self, page: Page, demo_server: Any) -> None:
        rid = open_home(page, demo_server.url)
        assert page.locator("h1").inner_text() == "debug-toolbar demo"
        bar = toolbar(page).locator(".dt-bar")
        assert bar.is_visible()
        assert not toolbar(page).locator(".dt-handle").is_visible()
        # The bar sits on the right edge, over the page, full height.
        box = bar.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] == pytest.approx(1280, abs=1)
        assert (box["y"], box["height"]) == (0, 800)
        ids = (
            toolbar(page)
            .locator("li.dt-panel")
            .evaluate_all("items => items.map(item => item.dataset.panelId)")
        )
        assert ids == list(DEMO_PANELS)
        titles = toolbar(page).locator("li.dt-panel .dt-nav-title").all_inner_texts()
        assert titles == ["Time", "Request", "Response", "Logging", "Versions", "Async"]
        timer = panel_item(page, "TimerPanel").locator(".dt-nav-subtitle").inner_text()
        assert re.fullmatch(r"[\d,]+\.\d ms", timer), timer
        assert panel_item(page, "RequestPanel").locator(".dt-nav-subtitle").inner_text() == "GET /"
        assert panel_item(page, "ResponsePanel").locator(".dt-nav-subtitle").inner_text() == (
            "200 OK"
        )
        # The toolbar's stylesheet applied (the bar is dark, fixed), and the page is untouched.
        assert bar.evaluate("el => getComputedStyle(el).position") == "fixed"
        assert toolbar(page).locator(".dt-request-path").inner_text() == "/"
        assert page.locator("body > p > a").first.inner_text() == "debug-toolbar demo"
        assert rid == request_id(page)

    def test_clicking_a_panel_shows_its_fetched_content(
        self, page: Page, demo_server: Any, toolbar_prefix: str
    ) -> None:
        rid = open_home(page, demo_server.url)
        window = toolbar(page).locator(".dt-overlay")
        assert not window.is_visible()
        fragment_url = f"{demo_server.url}{toolbar_prefix}/requests/{rid}/panels/RequestPanel"
        with page.expect_response(fragment_url) as fragment:
            panel_item(page, "RequestPanel").locator("a.dt-panel-link").click()
        assert fragment.value.status == 200
        assert window.is_visible()
        assert toolbar(page).locator(".dt-window-title").inner_text() == "Request"
        body = toolbar(page).locator(".dt-window-body")
        body.locator("table.dt-kv").first.wait_for()
        rows = dict(
            zip(
                body.locator("table.dt-kv").first.locator("th").all_inner_texts(),
                body.locator("table.dt-kv").first.locator("td").all_inner_texts(),
                strict=True,
            )
        )
        assert rows["Method"] == "GET"
        assert rows["Path"] == "/"
        assert rows["Client"].startswith("127.0.0.1:")
        assert "HeadlessChrome" in body.inner_text()  # the user-agent header it sent
        assert "dt-active" in (panel_item(page, "RequestPanel").get_attribute("class") or "")
        page_link = toolbar(page).locator(".dt-window-page").get_attribute("href")
        assert page_link == f"{toolbar_prefix}/requests/{rid}#panel-RequestPanel"

        # Another panel replaces the content; Escape closes the window.
        panel_item(page, "ResponsePanel").locator("a.dt-panel-link").click()
        assert toolbar(page).locator(".dt-window-title").inner_text() == "Response"
        body.get_by_text("text/html; charset=utf-8").first.wait_for()
        page.keyboard.press("Escape")
        assert not window.is_visible()
        assert "dt-active" not in (panel_item(page, "ResponsePanel").get_attribute("class") or "")

        # Opened again: served from the page's cache, no second fetch; the close button works.
        fetched: list[str] = []
        page.on("request", lambda request: fetched.append(request.url))
        panel_item(page, "RequestPanel").locator("a.dt-panel-link").click()
        assert body.locator("table.dt-kv").first.is_visible()
        toolbar(page).locator(".dt-close").click()
        assert not window.is_visible()
        assert fetched == []

    def test_unticking_a_panel_leaves_it_out_of_the_next_request(
        self, page: Page, demo_server: Any, toolbar_prefix: str
    ) -> None:
        pages = demo_server.url + toolbar_prefix
        first = open_home(page, demo_server.url)
        assert api_record(page, pages, first)["panels"]["LoggingPanel"] == {
            "records": [],
            "dropped": 0,
        }
        hint = toolbar(page).locator(".dt-hint")
        assert not hint.is_visible()
        panel_item(page, "LoggingPanel").locator("input.dt-toggle").uncheck()
        assert hint.is_visible()
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies[DISABLED_PANELS_COOKIE] == "LoggingPanel"

        second = open_home(page, demo_server.url)
        assert second != first
        record = api_record(page, pages, second)
        assert sorted(record["panels"]) == sorted(set(DEMO_PANELS) - {"LoggingPanel"})
        assert record["panels"]["TimerPanel"]["total_ms"] > 0
        item = panel_item(page, "LoggingPanel")
        assert "dt-panel-off" in (item.get_attribute("class") or "")
        assert not item.locator("input.dt-toggle").is_checked()
        assert item.locator(".dt-nav-subtitle").inner_text() == "off"
        assert item.locator("a.dt-panel-link").count() == 0  # nothing to open
        # The first request's record still has the panel's data.
        assert "LoggingPanel" in api_record(page, pages, first)["panels"]

        # Ticked again: the cookie goes, and the request after has the panel's data again.
        item.locator("input.dt-toggle").check()
        assert DISABLED_PANELS_COOKIE not in {c["name"] for c in page.context.cookies()}
        third = open_home(page, demo_server.url)
        assert sorted(api_record(page, pages, third)["panels"]) == sorted(DEMO_PANELS)

    def test_two_panels_off_at_once(
        self, page: Page, demo_server: Any, toolbar_prefix: str
    ) -> None:
        pages = demo_server.url + toolbar_prefix
        open_home(page, demo_server.url)
        panel_item(page, "VersionsPanel").locator("input.dt-toggle").uncheck()
        panel_item(page, "AsyncProfilerPanel").locator("input.dt-toggle").uncheck()
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies[DISABLED_PANELS_COOKIE] == "VersionsPanel,AsyncProfilerPanel"
        rid = open_home(page, demo_server.url)
        assert sorted(api_record(page, pages, rid)["panels"]) == sorted(
            ("TimerPanel", "RequestPanel", "ResponsePanel", "LoggingPanel")
        )

    def test_history_link_lists_the_requests_and_opens_one(
        self, page: Page, demo_server: Any, toolbar_prefix: str
    ) -> None:
        json_response = page.request.get(demo_server.url + "/json")
        json_id = json_response.headers["x-debug-toolbar-request-id"]
        rid = open_home(page, demo_server.url)
        toolbar(page).locator(".dt-bar-footer").get_by_text("History").click()
        page.wait_for_url(f"{demo_server.url}{toolbar_prefix}/")
        assert page.locator("h1").inner_text() == "Requests"
        rows = page.locator("table.dt-history tbody tr")
        assert rows.count() == 2
        assert rows.nth(0).locator("code").inner_text() == "/"  # newest first
        assert rows.nth(1).locator("code").inner_text() == "/json"
        # The status column's badge (the Async panel's columns may badge a blocking call too).
        status = rows.nth(1).locator("td").nth(3).locator(".dt-badge").first
        assert status.inner_text() == "200"

        rows.nth(1).get_by_text("Details").click()
        page.wait_for_url(f"{demo_server.url}{toolbar_prefix}/requests/{json_id}")
        sections = page.locator("section.dt-section").evaluate_all(
            "sections => sections.map(section => section.id)"
        )
        assert sections == [f"panel-{panel_id}" for panel_id in DEMO_PANELS]
        response_panel = page.locator("#panel-ResponsePanel")
        assert "application/json" in response_panel.inner_text()
        page.locator(".dt-panel-nav").get_by_text("Request", exact=True).click()
        assert page.url.endswith("#panel-RequestPanel")
        assert "/json" in page.locator("#panel-RequestPanel .dt-content").inner_text()
        # The page the history was opened from is in it too.
        page.goto(f"{demo_server.url}{toolbar_prefix}/")
        assert page.locator(f'a[href="{toolbar_prefix}/requests/{rid}"]').count() == 2

    def test_this_request_link_opens_its_detail_page(
        self, page: Page, demo_server: Any, toolbar_prefix: str
    ) -> None:
        rid = open_home(page, demo_server.url)
        toolbar(page).locator(".dt-bar-footer").get_by_text("This request").click()
        page.wait_for_url(f"{demo_server.url}{toolbar_prefix}/requests/{rid}")
        title = page.locator(".dt-page-title h1").text_content() or ""
        assert " ".join(title.split()) == "GET /"
        assert page.locator("#panel-TimerPanel .dt-content table").is_visible()

    def test_hide_and_show_the_bar(self, page: Page, demo_server: Any) -> None:
        open_home(page, demo_server.url)
        bar = toolbar(page).locator(".dt-bar")
        handle = toolbar(page).locator(".dt-handle")
        toolbar(page).locator(".dt-hide").click()
        assert not bar.is_visible()
        assert handle.is_visible()
        assert handle.get_attribute("aria-expanded") == "false"
        # The choice is remembered by this browser for the next pages.
        open_home(page, demo_server.url)
        assert not bar.is_visible()
        assert handle.is_visible()
        handle.click()
        assert bar.is_visible()
        assert not handle.is_visible()
        assert handle.get_attribute("aria-expanded") == "true"
        open_home(page, demo_server.url)
        assert bar.is_visible()

    def test_hiding_closes_an_open_panel(self, page: Page, demo_server: Any) -> None:
        open_home(page, demo_server.url)
        panel_item(page, "TimerPanel").locator("a.dt-panel-link").click()
        window = toolbar(page).locator(".dt-overlay")
        toolbar(page).locator(".dt-window-body table").first.wait_for()
        toolbar(page).locator(".dt-hide").click()
        assert not window.is_visible()
        toolbar(page).locator(".dt-handle").click()
        assert not window.is_visible()

    def test_console_errors_are_caught(
        self, page: Page, demo_server: Any, console_errors: list[str]
    ) -> None:
        """The fixture's check can fail: a script error on the page lands in the list."""
        open_home(page, demo_server.url)
        assert console_errors == []
        with page.expect_event("pageerror"):
            page.evaluate("setTimeout(() => { throw new Error('boom from the page'); }, 0)")
        with page.expect_console_message(lambda message: message.type == "error"):
            page.evaluate("console.error('logged error')")
        assert console_errors[0] == "pageerror: boom from the page"
        assert console_errors[1].startswith("console: logged error")
        assert len(console_errors) == 2
        console_errors.clear()


@pytest.mark.skipif(
    os.environ.get("DEBUG_TOOLBAR_SCREENSHOTS") != "1",
    reason="screenshots for the docs: set DEBUG_TOOLBAR_SCREENSHOTS=1 to write them",
)
class TestScreenshots:
    def test_demo_home_with_the_toolbar(self, page: Page, demo_server: Any) -> None:
        """docs/images/toolbar.png: the demo's home page with the bar open."""
        # A second load, so the bar shows a warmed-up request, as a developer would see it.
        open_home(page, demo_server.url)
        open_home(page, demo_server.url)
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "toolbar.png"))
        assert (IMAGES / "toolbar.png").stat().st_size > 10_000

    def test_a_panel_open(self, page: Page, demo_server: Any) -> None:
        """docs/images/toolbar-panel.png: the Request panel opened over the demo's home page."""
        open_home(page, demo_server.url)
        open_home(page, demo_server.url)
        panel_item(page, "RequestPanel").locator("a.dt-panel-link").click()
        toolbar(page).locator(".dt-window-body table").first.wait_for()
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / "toolbar-panel.png"))
        assert (IMAGES / "toolbar-panel.png").stat().st_size > 10_000
