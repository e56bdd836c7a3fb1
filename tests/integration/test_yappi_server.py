"""YappiBackend under a real uvicorn server: overlapping Litestar requests, each its own functions.

A small ASGI wrapper starts a ``YappiBackend`` in each request's own task (where the toolbar's
middleware runs its panels), so what is checked is what the panel will see: two requests in
flight at once share one yappi run, each gets only its own handler's functions and tasks, and
yappi is off again once the server is idle. The HTTP client runs in another thread and loop;
yappi traces it too, under no request's tag.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from debug_toolbar.core.panels.async_profiler.yappi_backend import YappiBackend, yappi_session

pytest.importorskip(
    "yappi", reason="yappi is not installed here; pip install 'debug-toolbar[yappi]'"
)
litestar = pytest.importorskip("litestar", reason="the Litestar extra is not installed here")

from litestar import Litestar, get  # noqa: E402  (after the skip: it needs the extra)

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


def names(backend: YappiBackend) -> set[str]:
    return {function["name"] for function in backend.get_stats()["functions"]}


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

        alpha_stats, beta_stats = alpha_backend.get_stats(), beta_backend.get_stats()
        nap = next(f for f in alpha_stats["functions"] if f["name"] == "alpha_nap")
        assert 40.0 <= nap["total_ms"] <= 250.0
        assert nap["is_coroutine"] is True
        assert [task["coro_name"].rsplit(".", 1)[-1] for task in alpha_stats["tasks"]] == [
            "alpha_nap"
        ]
        assert [task["coro_name"].rsplit(".", 1)[-1] for task in beta_stats["tasks"]] == [
            "beta_part"
        ] * 3
        # No request saw the HTTP client's code, which ran in this thread meanwhile.
        for stats in (alpha_stats, beta_stats):
            assert not any("httpx" in f["filename"] for f in stats["functions"])
