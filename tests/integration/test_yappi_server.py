"""YappiBackend under a real uvicorn server: overlapping Litestar requests, each its own functions.

A small ASGI wrapper starts a ``YappiBackend`` in each request's own task (where the toolbar's
middleware runs its panels), so what is checked is what the panel will see: two requests in
flight at once share one yappi run, each gets only its own handler's functions and tasks, and
yappi is off again once the server is idle. The HTTP client runs in another thread and loop;
yappi traces it too, under no request's tag.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from debug_toolbar.core.panels.async_profiler.yappi_backend import (
    YAPPI_KEEPS_COROUTINES,
    YappiBackend,
    yappi_session,
)

pytest.importorskip(
    "yappi", reason="yappi is not installed here; pip install 'debug-toolbar[yappi]'"
)
litestar = pytest.importorskip("litestar", reason="the Litestar extra is not installed here")

from litestar import Litestar, get  # noqa: E402  (after the skip: it needs the extra)
from litestar.params import FromPath  # noqa: E402  (Litestar reads annotations at runtime)

Scope = dict[str, Any]


@pytest.fixture(autouse=True)
def no_yappi_leak() -> Iterator[None]:
    yield
    import yappi

    assert yappi_session.users == 0
    assert not yappi.is_running()
    assert yappi.get_func_stats().empty()


class ProfileEachRequest:
    """Runs every HTTP request between ``YappiBackend.start`` and ``stop``, like the panel."""

    def __init__(self, app: Any, expected: int) -> None:
        self.app = app
        self.backends: dict[str, YappiBackend] = {}
        self._remaining = expected
        self._lock = threading.Lock()
        self.all_done = threading.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        backend = YappiBackend(max_functions=500)
        backend.start(asyncio.get_running_loop())
        try:
            await self.app(scope, receive, send)
        finally:
            backend.stop()
            with self._lock:
                self.backends[scope["path"]] = backend
                self._remaining -= 1
                if self._remaining == 0:
                    self.all_done.set()


def build_app() -> tuple[Litestar, dict[str, int]]:
    both_in = asyncio.Event()
    entered: list[str] = []
    users_seen: dict[str, int] = {}

    async def wait_for_the_other(name: str) -> None:
        entered.append(name)
        if len(entered) == 2:
            both_in.set()
        await both_in.wait()  # the client times out if the other never comes
        users_seen[name] = yappi_session.users

    async def alpha_nap() -> None:
        await asyncio.sleep(0.05)

    async def beta_part() -> int:
        await asyncio.sleep(0)
        return 1

    @get("/alpha")
    async def alpha_view() -> dict[str, str]:
        await wait_for_the_other("alpha")
        await asyncio.create_task(alpha_nap())
        return {"view": "alpha"}

    @get("/beta")
    async def beta_view() -> dict[str, int]:
        await wait_for_the_other("beta")
        parts = await asyncio.gather(*(beta_part() for _ in range(3)))
        return {"parts": sum(parts)}

    # No logging_config: Litestar's default starts a queue thread per app, never stopped, and
    # yappi hooks every thread of the process.
    return Litestar([alpha_view, beta_view], logging_config=None), users_seen


def function_dicts(backend: YappiBackend) -> list[dict[str, Any]]:
    functions = backend.collected().functions
    assert functions is not None
    return [function.to_dict() for function in functions.functions]


def names(backend: YappiBackend) -> set[str]:
    return {function["name"] for function in function_dicts(backend)}


class TestYappiUnderUvicorn:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("loop", ["asyncio", pytest.param("uvloop", marks=pytest.mark.uvloop)])
    async def test_overlapping_requests_each_see_their_own_functions(
        self, uvicorn_server: Callable[..., Any], loop: str
    ) -> None:
        if loop == "uvloop":
            pytest.importorskip("uvloop", reason="uvloop is not installed here")
        app, users_seen = build_app()
        profiled = ProfileEachRequest(app, expected=2)
        server = uvicorn_server(profiled, loop=loop)

        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            alpha, beta = await asyncio.gather(client.get("/alpha"), client.get("/beta"))
        assert profiled.all_done.wait(timeout=10)

        assert (alpha.json(), beta.json()) == ({"view": "alpha"}, {"parts": 3})
        assert users_seen == {"alpha": 2, "beta": 2}  # one shared run, two tags
        alpha_backend, beta_backend = profiled.backends["/alpha"], profiled.backends["/beta"]
        assert {"alpha_view", "alpha_nap"} <= names(alpha_backend)
        assert not {"beta_view", "beta_part"} & names(alpha_backend)
        assert {"beta_view", "beta_part"} <= names(beta_backend)
        assert not {"alpha_view", "alpha_nap"} & names(beta_backend)

        nap = next(f for f in function_dicts(alpha_backend) if f["name"] == "alpha_nap")
        assert 40.0 <= nap["total_ms"] <= 250.0
        assert nap["is_coroutine"] is True
        alpha_tasks = alpha_backend.collected().tasks.to_dicts()
        beta_tasks = beta_backend.collected().tasks.to_dicts()
        assert [task["coro_name"].rsplit(".", 1)[-1] for task in alpha_tasks] == ["alpha_nap"]
        assert [task["coro_name"].rsplit(".", 1)[-1] for task in beta_tasks] == ["beta_part"] * 3
        # No request saw the HTTP client's code, which ran in this thread meanwhile.
        for backend in (alpha_backend, beta_backend):
            assert not any("httpx" in f["filename"] for f in function_dicts(backend))


class TestYappiKeepsWhatItProfiles:
    """sumerc/yappi#217 through the whole toolbar on uvicorn, and the limit that bounds it."""

    @pytest.mark.asyncio
    async def test_profiled_requests_keep_their_coroutines_until_the_limit_stops_yappi(
        self, uvicorn_server: Callable[..., Any]
    ) -> None:
        from debug_toolbar.asgi import REQUEST_ID_HEADER
        from debug_toolbar.core.config import DebugToolbarConfig
        from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
        from debug_toolbar.litestar import DebugToolbarPlugin

        refs: dict[str, list[weakref.ref[Any]]] = {}

        async def part(index: int) -> int:
            await asyncio.sleep(0)
            return index

        @get("/gather/{marker:str}")
        async def gather_view(marker: FromPath[str]) -> dict[str, int]:
            coroutines = [part(index) for index in range(20)]
            refs[marker] = [weakref.ref(coroutine) for coroutine in coroutines]
            return {"sum": sum(await asyncio.gather(*coroutines))}

        limit = yappi_session.profiled + 2  # the count is per process: earlier tests add to it
        config = DebugToolbarConfig(
            extra_panels=[AsyncProfilerPanel],
            async_profiler_backend="yappi",
            async_yappi_max_requests=limit,
        )
        app = Litestar([gather_view], plugins=[DebugToolbarPlugin(config)], logging_config=None)
        server = uvicorn_server(app)
        markers = ["first", "second", "third", "fourth"]
        records = {}
        fragments = {}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for marker in markers:
                response = await client.get(f"/gather/{marker}")
                assert response.json() == {"sum": 190}
                request_id = response.headers[REQUEST_ID_HEADER]
                prefix = f"/_debug_toolbar/requests/{request_id}"
                records[marker] = (
                    await client.get(f"/_debug_toolbar/api/requests/{request_id}")
                ).json()["panels"]["AsyncProfilerPanel"]
                fragment = await client.get(f"{prefix}/panels/AsyncProfilerPanel")
                assert fragment.status_code == 200
                fragments[marker] = fragment.text

        assert [records[m]["backend"] for m in markers] == ["yappi", "yappi"] + ["taskfactory"] * 2
        assert "part" in {f["name"] for f in records["second"]["profile"]["functions"]}
        assert "async_yappi_max_requests" in records["third"]["backend_note"]
        assert [records[m]["yappi_retention"]["requests"] for m in markers] == [
            limit - 1,
            limit,
            limit,
            limit,
        ]
        # yappi is stopped and cleared (the autouse fixture checks it), yet it keeps every
        # coroutine the profiled requests ran; the requests past the limit keep none.
        gc.collect()
        kept = {m: sum(ref() is not None for ref in refs[m]) for m in markers}
        by_yappi = 20 if YAPPI_KEEPS_COROUTINES else 0  # Python 3.10: yappi keeps none
        assert kept == {"first": by_yappi, "second": by_yappi, "third": 0, "fourth": 0}
        assert "which keep at least" in fragments["second"]
        assert "uses the task-factory backend instead" in fragments["fourth"]
        assert "uses the task-factory backend instead" not in fragments["first"]
