"""What the toolbar costs a request: toolbar on (default panels) vs no toolbar.

End to end (the goal's figure). One Litestar app is built twice from the same route handlers:
plain, and with ``DebugToolbarPlugin(DebugToolbarConfig())`` (the five default panels: timer,
request, response, logging, versions). Each is served by uvicorn on 127.0.0.1 in a process of
its own, on asyncio and then on uvloop. Two routes:

* ``/noop``: a JSON route doing nothing (``{"ok": true}``): the toolbar's fixed cost per
  request (the panels' lifecycle, the record, the history) against the least work an app does.
* ``/page``: an HTML page of about 10 kB: with the toolbar, also rendering the bar and
  inserting it into the body (Content-Length fixed).

One client, one keep-alive connection per server, sends the requests one at a time, in a fresh
random order every round: each route without and with the toolbar, and the noop route without
the toolbar a second time, the A/A check (how far two identical variants land apart on this
machine). The figures are p50 (median) latencies, their ratios and the time the toolbar adds.
The client is a minimal HTTP/1.1 one: a full client (httpx costs some 0.4 ms a request here)
would add the same large constant to every variant and pull the ratios towards 1.

Where the time goes (no server): the same app called in-process through ASGI, plain, with the
toolbar and no panels (the middleware's own cost), with each default panel alone and with all
five. Per request, best of several batches: these are the toolbar's CPU costs without any I/O.

Goal (issue 2): with the toolbar, at most 2x the no-toolbar p50 on the noop route.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from litestar import Litestar, MediaType, get

from benchmarks import Result
from benchmarks._in_process import batch_us
from benchmarks._servers import HttpConnection, UvicornProcess
from debug_toolbar.core.config import DEFAULT_PANELS, DebugToolbarConfig
from debug_toolbar.litestar import DebugToolbarPlugin

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency on POSIX
    uvloop = None  # type: ignore[assignment]

__all__ = ("plain_app", "run", "toolbar_app")

ROUNDS = 3_000
WARMUP_ROUNDS = 50
BUDGET_S = 40.0
SEED = 2
IN_PROCESS_BATCH = 1_000
IN_PROCESS_BATCHES = 7
GOAL_NOOP = 2.0
PAGE_ITEMS = 120
REQUEST_ID_HEADER = "x-debug-toolbar-request-id"
_MODULE = "benchmarks.bench_toolbar"
"""Importable name of this module (``__name__`` is ``__main__`` when it is run directly)."""

PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Benchmark page</title></head>"
    "<body><h1>Benchmark page</h1><ul>"
    + "".join(
        f"<li><a href='/items/{i}'>Item {i}</a>: some text about it</li>" for i in range(PAGE_ITEMS)
    )
    + "</ul></body></html>"
)

Variant = tuple[str, str, str]
"""(label, server key, path)."""
VARIANTS: tuple[Variant, ...] = (
    ("noop, no toolbar", "plain", "/noop"),
    ("noop, no toolbar again", "plain", "/noop"),
    ("noop, toolbar", "toolbar", "/noop"),
    ("page, no toolbar", "plain", "/page"),
    ("page, toolbar", "toolbar", "/page"),
)


@get("/noop", sync_to_thread=False)
def noop() -> dict[str, bool]:
    return {"ok": True}


@get("/page", media_type=MediaType.HTML, sync_to_thread=False)
def page() -> str:
    return PAGE


def _app(config: DebugToolbarConfig | None) -> Litestar:
    plugins = [] if config is None else [DebugToolbarPlugin(config)]
    # No logging_config: Litestar's default would send every log record of the process through
    # a queue handler to the console, noise in the very thing measured.
    return Litestar(route_handlers=[noop, page], plugins=plugins, debug=False, logging_config=None)


def plain_app() -> Litestar:
    """The app without the toolbar (a ``UvicornProcess`` factory)."""
    return _app(None)


def toolbar_app() -> Litestar:
    """The app with the toolbar and its default panels (a ``UvicornProcess`` factory)."""
    return _app(DebugToolbarConfig())


# ------------------------------------------------------------------------------ end to end


async def _measure(urls: dict[str, str]) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    connections = {key: await HttpConnection.open(url) for key, url in urls.items()}

    async def fetch(key: str, path: str) -> float:
        started = time.perf_counter_ns()
        status, headers, body = await connections[key].get(path)
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        assert status == 200, (key, path, status)
        assert (REQUEST_ID_HEADER in headers) == (key == "toolbar"), (key, path)
        if path == "/page":
            assert (b'id="debug-toolbar"' in body) == (key == "toolbar"), (key, path)
        return elapsed_ms

    try:
        for _ in range(WARMUP_ROUNDS):
            for _label, key, path in VARIANTS:
                await fetch(key, path)
        order = random.Random(SEED)
        deadline = time.perf_counter() + BUDGET_S / 2
        for _ in range(ROUNDS):
            # A fresh random order every round: no variant always follows the same one.
            for label, key, path in order.sample(VARIANTS, len(VARIANTS)):
                latencies[label].append(await fetch(key, path))
            if time.perf_counter() > deadline:
                break
    finally:
        for connection in connections.values():
            await connection.close()
    return latencies


def _report(loop_name: str, latencies: dict[str, list[float]]) -> float:
    p50 = {label: statistics.median(values) for label, values in latencies.items()}
    rounds = len(latencies[VARIANTS[0][0]])
    print(f"  {loop_name} ({rounds:,} requests per variant, p50):")
    for route in ("noop", "page"):
        bare = p50[f"{route}, no toolbar"]
        print(f"    {route + ', no toolbar':<24} {bare:6.3f} ms")
        if route == "noop":
            again = p50["noop, no toolbar again"]
            print(f"    {'noop, no toolbar again':<24} {again:6.3f} ms  {again / bare:4.2f}x (A/A)")
        on = p50[f"{route}, toolbar"]
        print(
            f"    {route + ', toolbar':<24} {on:6.3f} ms  {on / bare:4.2f}x no toolbar "
            f"(+{on - bare:.3f} ms)"
        )
    return p50["noop, toolbar"] / p50["noop, no toolbar"]


# ------------------------------------------------------------------------------ in process


async def _in_process() -> dict[str, dict[str, float]]:
    """Best per-request µs of each variant and route, batches interleaved."""
    configs: dict[str, DebugToolbarConfig | None] = {
        "no toolbar": None,
        "toolbar, no panels": DebugToolbarConfig(panels=()),
    }
    for dotted in DEFAULT_PANELS:
        configs[f"only {dotted.rsplit('.', 1)[1]}"] = DebugToolbarConfig(panels=(dotted,))
    configs["toolbar, default panels"] = DebugToolbarConfig()
    apps = {label: _app(config) for label, config in configs.items()}
    best: dict[str, dict[str, float]] = {"/noop": {}, "/page": {}}
    for path, figures in best.items():
        for app in apps.values():
            await batch_us(app, path, IN_PROCESS_BATCH)  # warm-up
        for _ in range(IN_PROCESS_BATCHES):
            for label, app in apps.items():
                figure = await batch_us(app, path, IN_PROCESS_BATCH)
                figures[label] = min(figures.get(label, figure), figure)
    return best


def _in_process_report(best: dict[str, dict[str, float]]) -> None:
    print(
        f"where the time goes: the app called in-process through ASGI, no server "
        f"(per request, best of {IN_PROCESS_BATCHES} batches of {IN_PROCESS_BATCH:,})"
    )
    for path, figures in best.items():
        bare = figures["no toolbar"]
        print(f"  {path}:")
        for label, value in figures.items():
            extra = "" if label == "no toolbar" else f"  +{value - bare:5.1f} µs"
            print(f"    {label:<26} {value:6.1f} µs{extra}")


# ------------------------------------------------------------------------------ run


def _loops() -> list[str]:
    return ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def run() -> list[Result]:
    """Print the end-to-end p50s and the in-process breakdown; return the noop ratios."""
    print(
        "toolbar overhead end to end: Litestar under uvicorn on 127.0.0.1 (one process per "
        "server), default panels vs no toolbar, interleaved, one keep-alive client"
    )
    results: list[Result] = []
    for loop_name in _loops():
        with (
            UvicornProcess(f"{_MODULE}:plain_app", loop_name) as plain,
            UvicornProcess(f"{_MODULE}:toolbar_app", loop_name) as toolbar,
        ):
            latencies = asyncio.run(_measure({"plain": plain.url, "toolbar": toolbar.url}))
        ratio = _report(loop_name, latencies)
        results.append(Result(f"{loop_name} noop JSON, toolbar (p50)", ratio, GOAL_NOOP))
    _in_process_report(asyncio.run(_in_process()))
    return results


if __name__ == "__main__":
    for result in run():
        print(result)
