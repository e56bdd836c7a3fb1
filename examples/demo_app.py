"""A Litestar app with the debug toolbar and the Async Profiler panel: ``make demo``.

Runs on http://127.0.0.1:8000 (``uvicorn examples.demo_app:app --host 127.0.0.1 --port 8000``).
The home page links to routes that spawn asyncio tasks in different ways (a gather, nested
children, a TaskGroup, a fire-and-forget task, a failing and a cancelled task); the Async panel
of each request shows them. ``DEMO_ASYNC_BACKEND`` picks the profiler backend (``taskfactory``
by default, the cheap one; the Async panel's backend switch turns yappi on for this browser).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath  # noqa: TC002 (Litestar reads handler annotations at runtime)
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
        route_handlers=[home, json_route, async_scenario, timeline_demo],
        plugins=[DebugToolbarPlugin(config)],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        debug=True,
    )


app = build_app()
