"""The Async Profiler panel through a real uvicorn server, on asyncio and on uvloop.

50 requests are in flight at once on the server's loop, each spawning tasks named after itself
(children, grandchildren, a gather, a TaskGroup). Every record must hold exactly its own tasks:
none of another request's, none of the server's. The app installs its own task factory at start
up; afterwards it must be the loop's factory again, and it must have been called for the tasks
the profiler tracked (chained, not replaced).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.params import FromPath

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from debug_toolbar.litestar import DebugToolbarPlugin
from support import Rendezvous, load_demo

CONCURRENCY = 50
PREFIX = "/_debug_toolbar"


class AppTaskFactory:
    """The application's own task factory, installed on the server's loop at start up."""

    def __init__(self) -> None:
        self.coro_names: list[str] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        self.coro_names.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kwargs)


async def leaf() -> None:
    await asyncio.sleep(0)


async def branch(marker: str) -> None:
    await asyncio.gather(
        asyncio.create_task(leaf(), name=f"{marker}-grandchild-1"),
        asyncio.create_task(leaf(), name=f"{marker}-grandchild-2"),
    )


def expected_names(marker: str) -> set[str]:
    names = {f"{marker}-branch", f"{marker}-grandchild-1", f"{marker}-grandchild-2"}
    names |= {f"{marker}-gather-{i}" for i in range(3)}
    if sys.version_info >= (3, 11):
        names |= {f"{marker}-group-{i}" for i in range(2)}
    return names


@get("/spawn/{marker:str}")
async def spawn(marker: FromPath[str], state: State) -> dict[str, str]:
    await state.all_in_flight.wait()
    await asyncio.create_task(branch(marker), name=f"{marker}-branch")
    await asyncio.gather(
        *(asyncio.create_task(leaf(), name=f"{marker}-gather-{i}") for i in range(3))
    )
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
            for i in range(2):
                group.create_task(leaf(), name=f"{marker}-group-{i}")
    return {"marker": marker}


@get("/loop-state")
async def loop_state(state: State) -> dict[str, Any]:
    factory = asyncio.get_running_loop().get_task_factory()
    return {
        "is_app_factory": factory is state.app_factory,
        "factory": repr(factory),
        "app_factory_calls": list(state.app_factory.coro_names),
        "loop": type(asyncio.get_running_loop()).__module__,
    }


def build_app() -> tuple[Litestar, DebugToolbarPlugin]:
    config = DebugToolbarConfig(
        extra_panels=[AsyncProfilerPanel],
        async_profiler_backend="taskfactory",
        max_request_history=CONCURRENCY * 2,
        exclude_paths=["/loop-state"],  # not profiled: it reports the loop as the app left it
    )
    plugin = DebugToolbarPlugin(config)
    app_factory = AppTaskFactory()

    def install_app_factory(app: Litestar) -> None:
        asyncio.get_running_loop().set_task_factory(app_factory)

    app = Litestar(
        route_handlers=[spawn, loop_state],
        plugins=[plugin],
        on_startup=[install_app_factory],
        state=State({"all_in_flight": Rendezvous(CONCURRENCY), "app_factory": app_factory}),
        debug=False,
        logging_config=None,  # Litestar's default starts a queue thread per app, never stopped
    )
    return app, plugin


@pytest.mark.parametrize("loop_name", ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)])
@pytest.mark.asyncio
async def test_overlapping_requests_each_record_exactly_their_own_tasks(
    loop_name: str, uvicorn_server: Callable[..., Any]
) -> None:
    if loop_name == "uvloop":
        pytest.importorskip("uvloop")
    app, plugin = build_app()
    server = uvicorn_server(app, loop=loop_name)
    markers = [f"req{index:02d}" for index in range(CONCURRENCY)]
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        responses = await asyncio.gather(*(client.get(f"/spawn/{m}") for m in markers))
        assert [r.status_code for r in responses] == [200] * CONCURRENCY
        assert [r.json()["marker"] for r in responses] == markers
        request_ids = [r.headers[REQUEST_ID_HEADER] for r in responses]
        assert len(set(request_ids)) == CONCURRENCY
        records = await asyncio.gather(
            *(client.get(f"{PREFIX}/api/requests/{rid}") for rid in request_ids)
        )
        loop_state = (await client.get("/loop-state")).json()

    for marker, record_response in zip(markers, records, strict=True):
        assert record_response.status_code == 200
        record = record_response.json()
        assert record["path"] == f"/spawn/{marker}"
        stats = record["panels"]["AsyncProfilerPanel"]
        assert stats["backend"] == "taskfactory"
        names = [task["name"] for task in stats["tasks"]]
        assert sorted(names) == sorted(expected_names(marker)), marker
        assert all(task["state"] == "completed" for task in stats["tasks"])
        summary = stats["summary"]
        assert (summary["total_tasks"], summary["completed"], summary["dropped"]) == (
            len(expected_names(marker)),
            len(expected_names(marker)),
            0,
        )
        by_id = {task["task_id"]: task for task in stats["tasks"]}
        for task in stats["tasks"]:
            if "grandchild" in task["name"]:
                assert by_id[task["parent_id"]]["name"] == f"{marker}-branch"
            else:
                assert task["parent_id"] is None

    # The same records are in the plugin's history (the JSON API served them from there).
    assert len(plugin.history) == CONCURRENCY
    # The loop is as the app left it: its own factory, which was called for every tracked task.
    assert loop_state["loop"].startswith("uvloop" if loop_name == "uvloop" else "asyncio")
    assert loop_state["is_app_factory"], loop_state["factory"]
    calls = loop_state["app_factory_calls"]
    assert calls.count("leaf") == CONCURRENCY * (len(expected_names("x")) - 1)
    assert calls.count("branch") == CONCURRENCY


class TestDemoApp:
    @pytest.mark.asyncio
    async def test_every_scenario_shows_its_tasks(self, uvicorn_server: Callable[..., Any]) -> None:
        demo = load_demo()
        server = uvicorn_server(demo.build_app(backend="taskfactory"))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            home = await client.get("/")
            assert home.status_code == 200
            assert 'href="/async/everything"' in home.text
            assert "debug-toolbar" in home.text.rsplit("</body>", 1)[0]  # the injected toolbar
            states: dict[str, dict[str, str]] = {}
            for scenario in (
                "gather",
                "nested",
                "taskgroup",
                "fire-and-forget",
                "failing",
                "cancelled",
            ):
                response = await client.get(f"/async/{scenario}")
                assert response.status_code == 200, scenario
                record = (
                    await client.get(f"{PREFIX}/api/requests/{response.headers[REQUEST_ID_HEADER]}")
                ).json()
                tasks = record["panels"]["AsyncProfilerPanel"]["tasks"]
                states[scenario] = {task["name"]: task["state"] for task in tasks}
                if scenario == "failing":
                    (failed,) = tasks
                    assert failed["exception"] == {
                        "type": "ConnectionError",
                        "message": "payment gateway refused a charge of 1999 cents",
                    }
                if scenario == "nested":
                    by_id = {task["task_id"]: task["name"] for task in tasks}
                    parents = {task["name"]: by_id.get(task["parent_id"]) for task in tasks}
                    assert parents["header-title"] == "header"
                    assert parents["feed-body"] == "feed"
            assert (await client.get("/async/nope")).status_code == 404
        assert list(states["gather"].values()) == ["completed"] * 5
        assert states["nested"] == dict.fromkeys(
            ["header", "feed", "header-title", "header-body", "feed-title", "feed-body"],
            "completed",
        )
        assert list(states["taskgroup"].values()) == ["completed"] * 3
        assert states["fire-and-forget"] == {"welcome-email": "pending"}
        assert states["failing"] == {"charge-card": "failed"}
        assert states["cancelled"] == {"slow-report": "cancelled"}
