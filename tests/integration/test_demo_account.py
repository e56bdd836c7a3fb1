"""The demo's ``/account`` page: a handler that awaits one thing after another, through uvicorn.

It is the demo's first link and the page the docs' "Where did my request's time go?" screenshot
shows, so what it is meant to show is checked here: two 50 ms queries, an HTTP call to the demo's
own ``/api/exchange-rate`` (served concurrently by the same server), a 30 ms thread call and a
40 ms synchronous stall, each named at its line (Python 3.12+; older versions get the request's
own task and a note). Durations are checked from below only: the machine may add to them.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi import REQUEST_ID_HEADER
from support import load_demo

PREFIX = "/_debug_toolbar"
STEPS = sys.version_info >= (3, 12)


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_demo("demo_app_account")


def demo_line(demo: ModuleType, fragment: str) -> int:
    """The line of the demo's source holding ``fragment`` (exactly one does)."""
    source = Path(demo.__file__ or "").read_text().splitlines()
    found = [number for number, text in enumerate(source, 1) if fragment in text]
    assert len(found) == 1, (fragment, found)
    return found[0]


async def record_of(client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    api = await client.get(f"{PREFIX}/api/requests/{response.headers[REQUEST_ID_HEADER]}")
    assert api.status_code == 200
    panel: dict[str, Any] = api.json()["panels"]["AsyncProfilerPanel"]
    return panel


class TestAccountPage:
    @pytest.mark.asyncio
    async def test_each_wait_and_stall_is_named_at_its_line(
        self, demo: ModuleType, uvicorn_server: Callable[..., Any]
    ) -> None:
        server = uvicorn_server(demo.build_app(backend="taskfactory"))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            home = await client.get("/")
            assert home.status_code == 200
            links = home.text.split("<h1>", 1)[1]
            assert links.index('href="/account"') < links.index('href="/_debug_toolbar/"')
            response = await client.get("/account")
            assert response.status_code == 200
            # The call to the demo's own exchange-rate route went through this server.
            assert "exchange rate USD-&gt;EUR: 0.92 (GET /api/exchange-rate)" in response.text
            assert "invoice for Ada: 110.34 EUR" in response.text
            panel = await record_of(client, response)
            history = (await client.get(f"{PREFIX}/api/requests")).json()
        paths = [entry["path"] for entry in history["requests"]]
        assert "/api/exchange-rate" in paths
        assert panel["request_task"]["coro_name"]
        if not STEPS:
            assert "3.12" in panel["steps_unavailable"]
            return
        assert panel["steps_unavailable"] is None
        sites = {(row["function"], row["lineno"]): row for row in panel["await_sites"]}
        expected = {
            ("load_user", demo_line(demo, "FROM users WHERE")): ("sleep", 50.0),
            ("load_orders", demo_line(demo, "FROM orders WHERE")): ("sleep", 50.0),
            ("account_page", demo_line(demo, "await asyncio.to_thread(render_invoice")): (
                "thread",
                30.0,
            ),
            ("fetch_exchange_rate", demo_line(demo, 'await client.get("/api/exchange-rate"')): (
                "library",
                20.0,
            ),
        }
        for key, (kind, at_least_ms) in expected.items():
            assert key in sites, (key, sorted(sites))
            assert sites[key]["awaited"]["kind"] == kind
            assert sites[key]["total_ms"] >= at_least_ms - 2, sites[key]
        breakdown = panel["time_breakdown"]
        assert breakdown["waiting_ms"] >= 50 + 50 + 30 + 20 - 5
        assert breakdown["running_ms"] >= 40
        # The pricing code held the loop 40 ms: a slow step, named at its line, not a blocking
        # call (100 ms). The watchdog's sample names the line; without one, the step's end does.
        pricing = demo_line(demo, "time.sleep(PRICING_S)")
        slow = [
            step
            for step in panel["slow_steps"]
            if (step["held_at"] or {}).get("lineno") == pricing
            or (step["ran_to"] or {}).get("lineno") == demo_line(demo, "asyncio.to_thread(render")
        ]
        assert slow, panel["slow_steps"]
        assert slow[0]["duration_ms"] >= 40 - 1
        assert not any(call["lineno"] == pricing for call in panel["blocking_calls"])

    @pytest.mark.asyncio
    async def test_under_a_test_client_it_calls_nobody(self, demo: ModuleType) -> None:
        """A made-up host: the page says the rate was not fetched, and no call is tried."""
        transport = httpx.ASGITransport(app=demo.build_app(backend="taskfactory"))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=30
        ) as client:
            response = await client.get("/account")
        assert response.status_code == 200
        assert "exchange rate: not fetched (no server address" in response.text
        assert "invoice for Ada: 119.94 EUR" in response.text

    @pytest.mark.asyncio
    async def test_a_failed_call_is_reported_not_raised(self, demo: ModuleType) -> None:
        """An address nothing listens on (a test client's, here): the page says the call failed."""
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        transport = httpx.ASGITransport(app=demo.build_app(backend="taskfactory"))
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=30
        ) as client:
            response = await client.get("/account")
        assert response.status_code == 200
        assert "exchange rate: the call failed (ConnectError" in response.text
