"""A Litestar app with the debug toolbar and the Async Profiler panel: ``make demo``.

Runs on http://127.0.0.1:8000 (``uvicorn examples.demo_app:app --host 127.0.0.1 --port 8000``).
The home page's first link, ``/account``, is a handler as people write them: it awaits one
thing after another (two queries, an HTTP call to another service, a thread) and runs a little
synchronous code, spawning no task of its own; the Async panel says where its time went. The
other routes spawn asyncio tasks in different ways (a gather, nested children, a TaskGroup, a
fire-and-forget task, a failing and a cancelled task). ``DEMO_ASYNC_BACKEND`` picks the profiler
backend (``taskfactory`` by default, the cheap one; the Async panel's backend switch turns yappi
on for this browser).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery  # noqa: TC002 (Litestar reads handler annotations at runtime)
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

from debug_toolbar import AsyncProfilerPanel, DebugToolbarConfig
from debug_toolbar.litestar import DebugToolbarPlugin

__all__ = ("app", "build_app")

TEMPLATES = Path(__file__).parent / "templates"

_background: set[asyncio.Task[Any]] = set()
"""Fire-and-forget tasks, held so the garbage collector cannot cancel them mid-flight."""


@dataclass(frozen=True)
class DemoRoute:
    path: str
    description: str


ROUTES = (
    DemoRoute("/async/gather", "five lookups gathered concurrently"),
    DemoRoute("/async/nested", "children that spawn grandchildren"),
    DemoRoute("/async/taskgroup", "a TaskGroup of three workers (gather on Python 3.10)"),
    DemoRoute("/async/fire-and-forget", "a task still running when the response is sent"),
    DemoRoute("/async/failing", "a task that raises (the handler catches it)"),
    DemoRoute("/async/cancelled", "a slow task cancelled by a timeout"),
    DemoRoute("/async/everything", "all of the above in one request"),
)


# ----------------------------------------------------------------------- the account page
# What a handler usually looks like: no task of its own, one await after another. The sleeps
# and time.sleep calls stand for real work of the same length, so the panel's figures can be
# checked against them.

QUERY_S = 0.05
"""Each of the two "queries" (``load_user``, ``load_orders``)."""
RATES_SERVICE_S = 0.02
"""How long the "exchange-rate service" (``/api/exchange-rate``, this app) takes to answer."""
INVOICE_S = 0.03
"""Rendering the invoice, in a worker thread."""
PRICING_S = 0.04
"""The pricing rules, run on the event loop: long enough to be a slow step (the lag threshold
is 10 ms), short of a blocking call (100 ms)."""
HTTP_TIMEOUT_S = 5.0
TLS = ssl.create_default_context()
"""One SSL context for every client. Without ``verify=TLS``, each ``httpx.AsyncClient()`` builds
its own, loading the CA certificates synchronously: 50 ms or more on the event loop, which the
Async panel shows as a slow step (or a blocking call) at the ``async with`` line. Try it."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    currency: str


@dataclass(frozen=True)
class Order:
    id: int
    amount_usd: float


async def load_user(user_id: int) -> User:
    await asyncio.sleep(QUERY_S)  # stands for: SELECT ... FROM users WHERE id = $1
    return User(id=user_id, name="Ada", currency="EUR")


async def load_orders(user: User) -> list[Order]:
    await asyncio.sleep(QUERY_S)  # stands for: SELECT ... FROM orders WHERE user_id = $1
    return [Order(id=100 + i, amount_usd=19.99 * (i + 1)) for i in range(3)]


def price_orders(orders: list[Order], rate: float) -> list[float]:
    """Synchronous code on the event loop: the whole loop waits while it runs."""
    time.sleep(PRICING_S)  # stands for 40 ms of CPU work (pricing rules, tax tables...)
    return [round(order.amount_usd * rate, 2) for order in orders]


def render_invoice(user: User, prices: list[float]) -> str:
    """Runs in a worker thread (``asyncio.to_thread``): the loop stays free meanwhile."""
    time.sleep(INVOICE_S)  # stands for rendering a PDF
    return f"invoice for {user.name}: {sum(prices):.2f} {user.currency}"


def own_base_url(request: Request[Any, Any, Any]) -> str | None:
    """This server's own address, for the call to its "exchange-rate service".

    Read from the socket the request came in on (``scope["server"]``), never from the Host
    header, which the client chooses. None when that is not an IP address: a test client's
    made-up host (``testserver``), where a call would go out to the network, not to this app.
    """
    server = request.scope.get("server")
    if not server or server[1] is None:
        return None
    host, port = str(server[0]), int(server[1])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    netloc = f"[{host}]:{port}" if address.version == 6 else f"{host}:{port}"
    return f"http://{netloc}{request.scope.get('root_path', '')}"


async def fetch_exchange_rate(base_url: str | None, currency: str) -> tuple[float, str]:
    """The rate from the "exchange-rate service", and a line saying how it went."""
    if base_url is None:
        return 1.0, "exchange rate: not fetched (no server address: a test client drives the app)"
    try:
        async with httpx.AsyncClient(
            base_url=base_url, timeout=HTTP_TIMEOUT_S, verify=TLS
        ) as client:
            response = await client.get("/api/exchange-rate", params={"to": currency})
            response.raise_for_status()
    except httpx.HTTPError as exc:
        return 1.0, f"exchange rate: the call failed ({type(exc).__name__}: {exc})"
    rate = float(response.json()["rate"])
    return rate, f"exchange rate USD->{currency}: {rate} (GET {response.url.path})"


# ----------------------------------------------------------------------- some async "work"


async def lookup(key: str, delay_s: float) -> str:
    await asyncio.sleep(delay_s)
    return f"{key}=ok"


async def load_section(name: str) -> list[str]:
    parts = await asyncio.gather(
        asyncio.create_task(lookup(f"{name}.title", 0.004), name=f"{name}-title"),
        asyncio.create_task(lookup(f"{name}.body", 0.008), name=f"{name}-body"),
    )
    return list(parts)


async def send_welcome_email(address: str) -> None:
    await asyncio.sleep(0.5)  # outlives the response: "pending" in the panel


async def charge_card(amount: int) -> None:
    await asyncio.sleep(0.002)
    raise ConnectionError(f"payment gateway refused a charge of {amount} cents")


async def slow_report() -> str:
    await asyncio.sleep(10)
    return "never"


# ----------------------------------------------------------------------- the scenarios


async def run_gather() -> list[str]:
    return list(await asyncio.gather(*(lookup(f"item-{i}", 0.002 * i) for i in range(5))))


async def run_nested() -> list[str]:
    sections = await asyncio.gather(
        *(asyncio.create_task(load_section(name), name=name) for name in ("header", "feed"))
    )
    return [part for section in sections for part in section]


async def run_taskgroup() -> list[str]:
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as group:
            workers = [
                group.create_task(lookup(f"worker-{i}", 0.003), name=f"worker-{i}")
                for i in range(3)
            ]
        return [worker.result() for worker in workers]
    return list(await asyncio.gather(*(lookup(f"worker-{i}", 0.003) for i in range(3))))


async def run_fire_and_forget() -> list[str]:
    task = asyncio.create_task(send_welcome_email("ada@example.com"), name="welcome-email")
    _background.add(task)
    task.add_done_callback(_background.discard)
    return ["welcome-email scheduled; the response does not wait for it"]


async def run_failing() -> list[str]:
    try:
        await asyncio.create_task(charge_card(1999), name="charge-card")
    except ConnectionError as exc:
        return [f"charge-card failed: {exc}"]
    return ["charge-card succeeded"]


async def run_cancelled() -> list[str]:
    try:
        await asyncio.wait_for(asyncio.create_task(slow_report(), name="slow-report"), 0.02)
    except asyncio.TimeoutError:
        return ["slow-report cancelled after 20 ms"]
    return ["slow-report finished"]


SCENARIOS = {
    "gather": run_gather,
    "nested": run_nested,
    "taskgroup": run_taskgroup,
    "fire-and-forget": run_fire_and_forget,
    "failing": run_failing,
    "cancelled": run_cancelled,
}


# ----------------------------------------------------------------------- routes


@get("/", sync_to_thread=False)
def home() -> Template:
    backend = os.environ.get("DEMO_ASYNC_BACKEND", "taskfactory")
    return Template(template_name="home.html", context={"routes": ROUTES, "backend": backend})


@get("/account")
async def account_page(request: Request[Any, Any, Any]) -> Template:
    """Two queries, a call to another service, synchronous pricing, an invoice in a thread."""
    user = await load_user(42)
    orders = await load_orders(user)
    rate, rate_note = await fetch_exchange_rate(own_base_url(request), user.currency)
    prices = price_orders(orders, rate)
    invoice = await asyncio.to_thread(render_invoice, user, prices)
    return Template(
        template_name="account.html",
        context={
            "user": user,
            "orders": list(zip(orders, prices, strict=True)),
            "rate_note": rate_note,
            "invoice": invoice,
        },
    )


@get("/api/exchange-rate")
async def exchange_rate(to: FromQuery[str] = "EUR") -> dict[str, Any]:
    """The "exchange-rate service" the account page calls over HTTP (this app, in fact)."""
    await asyncio.sleep(RATES_SERVICE_S)
    return {"from": "USD", "to": to, "rate": 0.92}


@get("/json", sync_to_thread=False)
def json_route() -> dict[str, Any]:
    return {"message": "JSON responses are recorded too", "routes": [r.path for r in ROUTES]}


@get("/async/{scenario:str}")
async def async_scenario(scenario: FromPath[str]) -> Template:
    route = next((r for r in ROUTES if r.path == f"/async/{scenario}"), None)
    if route is None:
        raise NotFoundException(f"no demo scenario {scenario!r}; see the home page")
    if scenario == "everything":
        outcome = []
        for run_scenario in SCENARIOS.values():
            outcome.extend(await run_scenario())
    else:
        outcome = await SCENARIOS[scenario]()
    return Template(
        template_name="result.html",
        context={"title": scenario, "description": route.description, "outcome": outcome},
    )


@get("/async-timeline")
async def timeline_demo() -> Template:
    """Three tasks of known lengths (40, 80, 160 ms), then one 150 ms block of the loop.

    The browser tests measure the Gantt against these durations; the docs' screenshot shows it.
    """
    await asyncio.gather(
        *(
            asyncio.create_task(asyncio.sleep(ms / 1000), name=f"sleep-{ms}ms")
            for ms in (40, 80, 160)
        )
    )
    time.sleep(0.15)  # noqa: ASYNC251 (blocks the event loop on purpose: the blocking band)
    return Template(
        template_name="result.html",
        context={
            "title": "timeline",
            "description": "tasks of 40, 80 and 160 ms, then a 150 ms blocking call",
            "outcome": ["sleep-40ms", "sleep-80ms", "sleep-160ms", "time.sleep(0.15)"],
        },
    )


def build_app(backend: str | None = None) -> Litestar:
    """The demo app; ``backend`` overrides ``DEMO_ASYNC_BACKEND``."""
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel],
        async_profiler_backend=backend or os.environ.get("DEMO_ASYNC_BACKEND", "taskfactory"),  # type: ignore[arg-type]
    )
    return Litestar(
        route_handlers=[
            home,
            account_page,
            exchange_rate,
            json_route,
            async_scenario,
            timeline_demo,
        ],
        plugins=[DebugToolbarPlugin(config)],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        debug=True,
    )


app = build_app()
