"""Integration fixtures: a sample Litestar app with (or without) the toolbar.

The real uvicorn server these tests run apps in, ``uvicorn_server``, is in tests/conftest.py
(the browser tests use it too).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, get, websocket
from litestar.connection import WebSocket
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Response, Stream

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.litestar import DebugToolbarPlugin
from support import Rendezvous

__all__ = ("SampleApp",)


# ---------------------------------------------------------------- a sample Litestar app

SAMPLE_PAGE = (
    "<!DOCTYPE html><html><head><title>Sample</title></head>"
    "<body><h1>Sample café</h1></body></html>"
)
sample_log = logging.getLogger("tests.sample_app")


@get("/", media_type="text/html")
async def sample_page() -> str:
    return SAMPLE_PAGE


@get("/json")
async def sample_json() -> dict[str, int]:
    return {"answer": 42}


@get("/log/{n:int}")
async def sample_log_some(n: FromPath[int], state: State) -> dict[str, int]:
    sample_log.warning("request %d before", n)
    await state.rendezvous.wait()

    async def child() -> None:
        await asyncio.sleep(0)
        sample_log.warning("request %d child", n)

    await asyncio.gather(child(), asyncio.create_task(child()))
    sample_log.warning("request %d after", n)
    return {"n": n}


@get("/boom")
async def sample_boom() -> None:
    raise RuntimeError("handler failed")


@get("/stream", media_type="text/html")
async def sample_stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"<html><body>", b"<p>streamed</p>", b"</body></html>"):
            yield part

    return Stream(chunks(), media_type="text/html")


@get("/gzip")
async def sample_gzip() -> Response[bytes]:
    return Response(
        gzip.compress(b"<html><body>zipped</body></html>"),
        media_type="text/html",
        headers={"content-encoding": "gzip"},
    )


@get("/started")
async def sample_started(state: State) -> dict[str, bool]:
    return {"started": bool(state.get("started"))}


@websocket("/ws")
async def sample_echo(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    text = await socket.receive_text()
    await socket.send_text(f"echo: {text}")
    await socket.close()


def _mark_started(app: Litestar) -> None:
    app.state.started = True


class SampleApp:
    """A Litestar app with (or without) the toolbar plugin, for the integration tests."""

    def __init__(
        self,
        config: DebugToolbarConfig | None = None,
        *,
        expected_concurrency: int = 1,
        with_plugin: bool = True,
    ) -> None:
        self.plugin = DebugToolbarPlugin(config)
        self.app = Litestar(
            route_handlers=[
                sample_page,
                sample_json,
                sample_log_some,
                sample_boom,
                sample_stream,
                sample_gzip,
                sample_started,
                sample_echo,
            ],
            plugins=[self.plugin] if with_plugin else [],
            on_startup=[_mark_started],
            logging_config=None,  # Litestar's default starts a queue thread per app, never stopped
            state=State({"rendezvous": Rendezvous(expected_concurrency)}),
            debug=False,
        )


@pytest.fixture
def sample_app() -> type[SampleApp]:
    """``sample_app(config, expected_concurrency=1, with_plugin=True)`` builds one."""
    return SampleApp
