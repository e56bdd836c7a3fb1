"""Browser fixtures: Debian's headless Chromium, driven by Playwright, against a live server.

Chromium is never downloaded: the tests launch the one at ``/usr/bin/chromium`` (or ``chromium``
on the PATH) and are skipped, saying so, where there is none. Playwright's sync API is used, so
browser tests are plain (non-async) test functions; mark them with ``pytest.mark.e2e``.

While Playwright's sync API is started, its event loop counts as running in this thread (its
dispatcher runs the loop in a greenlet), and any asyncio test would fail with "Cannot run the
event loop while another loop is running". So Playwright and its browser live for one test file
(module scope) and are stopped before the next file, whatever it holds, runs; and no test in a
file using these fixtures may be async.

Fixtures (for every test file in tests/e2e):

``browser`` (module)
    One headless Chromium for the test file (launching it takes about half a second).
``context`` (function)
    A fresh browser context per test: no cookies, no local storage, a 1280x800 viewport, the
    light colour scheme, 10 s default timeouts.
``page`` (function)
    A page in ``context``. Console messages of type ``error`` and uncaught page errors are
    collected in ``console_errors``; the test fails at teardown if any are left there. A test
    that expects an error asserts on it and then clears the list. The one error ignored is the
    404 of ``/favicon.ico``, which Chromium requests on its own for pages that declare no icon
    (neither the demo nor the toolbar's pages declare one).
``console_errors`` (function)
    That list of strings (``"console: ..."`` / ``"pageerror: ..."``).
``demo_module`` (session)
    ``examples/demo_app.py``, loaded by path (``demo_module.build_app(backend=...)``).
``demo_server`` (function)
    A ``LiveServer`` (see ``uvicorn_server`` in tests/conftest.py) running the demo app: the
    standard panels plus the Async Profiler panel with the ``taskfactory`` backend, and a fresh
    request history. ``demo_server.url`` is its base URL. For another backend, build the app with
    ``demo_module.build_app(backend="yappi")`` and start it with ``uvicorn_server``.
``toolbar_prefix``
    ``"/_debug_toolbar"``, where the toolbar's pages are.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from support import load_demo

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page

__all__ = ("CHROMIUM_ARGS", "chromium_executable")

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Headless, no sandbox (containers run as root), and nothing that reaches the network."""
DEFAULT_TIMEOUT_MS = 10_000
VIEWPORT_WIDTH, VIEWPORT_HEIGHT = 1280, 800


def chromium_executable() -> str | None:
    """Debian's Chromium, or None where it is not installed."""
    preferred = Path("/usr/bin/chromium")
    if preferred.is_file():
        return str(preferred)
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium installed (apt-get install chromium): browser tests skipped")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_ARGS), headless=True
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    pytest.fail(f"Playwright left {loop!r} marked as running: asyncio tests would fail")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context(
        viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT},
        color_scheme="light",
        locale="en-US",
    )
    fresh.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield fresh
    fresh.close()


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def page(context: BrowserContext, console_errors: list[str]) -> Iterator[Page]:
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = str(message.location.get("url", ""))
        if urlsplit(url).path == "/favicon.ico":
            return  # the browser's own guess at an icon the apps do not have, not the page's
        console_errors.append(f"console: {message.text} ({url or 'no url'})")

    def on_page_error(error: Error) -> None:
        console_errors.append(f"pageerror: {error.message}")

    opened.on("console", on_console)
    opened.on("pageerror", on_page_error)
    yield opened
    if console_errors:
        pytest.fail("the browser reported errors:\n  " + "\n  ".join(console_errors), pytrace=False)


@pytest.fixture(scope="session")
def demo_module() -> ModuleType:
    """examples/demo_app.py, by path: the examples folder is not an installed package."""
    return load_demo("demo_app_e2e")


@pytest.fixture
def demo_server(
    demo_module: ModuleType,
    uvicorn_server: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """The demo app in uvicorn (a ``LiveServer``: ``.url``), Async panel on the task factory."""
    # The home page names the backend from the environment, as under ``make demo``.
    monkeypatch.setenv("DEMO_ASYNC_BACKEND", "taskfactory")
    return uvicorn_server(demo_module.build_app(backend="taskfactory"))


@pytest.fixture
def toolbar_prefix() -> str:
    return "/_debug_toolbar"
