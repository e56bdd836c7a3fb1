"""Helpers for the async profiler tests: run a body the way a profiled request runs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

import pytest

T = TypeVar("T")


class Collector(Protocol):
    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...

    def stop(self) -> None: ...


async def _run_in_request(collector: Collector, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` in its own task between ``start`` and ``stop``, like the middleware does.

    The request task itself is created before ``start``, so it is the root, not a tracked task.
    """

    async def request_task() -> T:
        collector.start(asyncio.get_running_loop())
        try:
            return await body()
        finally:
            collector.stop()

    return await asyncio.create_task(request_task())


def _next_line() -> int:
    """The line after the caller's current line: where the caller creates a task next."""
    return sys._getframe(1).f_lineno + 1


RunInRequest = Callable[[Collector, Callable[[], Awaitable[Any]]], Awaitable[Any]]


@pytest.fixture
def run_in_request() -> RunInRequest:
    return _run_in_request


@pytest.fixture
def next_line() -> Callable[[], int]:
    return _next_line


def _function_name(qualname: str) -> str:
    """The name the profiler can give a function: qualified on 3.11+, bare on 3.10.

    Frames are named from their code object, and ``co_qualname`` only exists since 3.11.
    """
    return qualname if sys.version_info >= (3, 11) else qualname.rpartition(".")[2]


@pytest.fixture
def function_name() -> Callable[[str], str]:
    return _function_name


@pytest.fixture
def restore_task_factory() -> Iterator[Callable[[asyncio.AbstractEventLoop], None]]:
    """Remember a loop's factory and put it back after the test, for tests that install one."""
    saved: list[tuple[asyncio.AbstractEventLoop, Any]] = []

    def remember(loop: asyncio.AbstractEventLoop) -> None:
        saved.append((loop, loop.get_task_factory()))

    yield remember
    for loop, factory in reversed(saved):
        loop.set_task_factory(factory)
