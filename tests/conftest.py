"""Fixtures for the whole suite.

The async profiler changes shared state: the event loop's task factory (per loop, reference
counted in ``loop_hooks.task_hooks``). A leak there is exactly the bug this project exists to
avoid, so every test is checked for it, not only the profiler's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_asyncio import is_async_test

from debug_toolbar.core.panels.async_profiler.loop_hooks import task_hooks


def _loop_scope(item: pytest.Item) -> str:
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") if marker is not None else None
    return str(scope or "function")


def _loop_state(loop: asyncio.AbstractEventLoop) -> tuple[Any, bool]:
    return loop.get_task_factory(), loop.get_debug()


@pytest.fixture(autouse=True)
def _no_leaked_loop_instrumentation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a loop's task factory or debug flag changed, or a hook installed.

    For async tests the loop is the one pytest-asyncio runs the test on; requesting its runner
    here makes this check run before that loop is closed.
    """
    loop: asyncio.AbstractEventLoop | None = None
    if is_async_test(request.node):
        runner = request.getfixturevalue(f"_{_loop_scope(request.node)}_scoped_runner")
        loop = runner.get_loop()
    before = None if loop is None else _loop_state(loop)
    yield
    problems = []
    if loop is not None and before is not None:
        factory, debug = _loop_state(loop)
        if factory is not before[0]:
            problems.append(f"the loop's task factory changed: {before[0]!r} -> {factory!r}")
        if debug != before[1]:
            problems.append(f"the loop's debug flag changed: {before[1]} -> {debug}")
    leaked = dict(task_hooks._hooks)
    if leaked:
        # Clean up so one leak does not fail every following test.
        task_hooks._hooks.clear()
        for hook, _users in leaked.values():
            hook.uninstall()
        problems.append(f"task hooks still installed on {len(leaked)} loop(s)")
    if problems:
        pytest.fail("instrumentation leaked: " + "; ".join(problems), pytrace=False)
