"""Calling an ASGI app in-process, without a server or I/O: what the toolbar itself costs."""

from __future__ import annotations

import time
from typing import Any

__all__ = ("batch_us",)


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def batch_us(app: Any, path: str, requests: int) -> float:
    """Microseconds per request over ``requests`` GETs of ``path``, one after the other."""
    started = time.perf_counter_ns()
    for _ in range(requests):
        await app(_scope(path), _receive, _send)
    return (time.perf_counter_ns() - started) / requests / 1e3
