"""The suite's leak guard (the autouse fixture in tests/conftest.py), on tests that leak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LEAKY_TESTS = """
import asyncio
import logging

import pytest
import yappi

from debug_toolbar.core.panels.async_profiler.detector import BlockingCallDetector
from debug_toolbar.core.panels.async_profiler.heartbeat import heartbeats
from debug_toolbar.core.panels.async_profiler.task_hooks import task_hooks
from debug_toolbar.core.panels.logging import log_handlers


def own_factory(loop, coro, **kwargs):
    return asyncio.Task(coro, loop=loop, **kwargs)


@pytest.mark.asyncio
async def test_leaves_a_task_factory():
    asyncio.get_running_loop().set_task_factory(own_factory)


@pytest.mark.asyncio
async def test_leaves_debug_on():
    asyncio.get_running_loop().set_debug(True)


@pytest.mark.asyncio
async def test_leaves_a_hook_installed():
    task_hooks.acquire(asyncio.get_running_loop())


@pytest.mark.asyncio
async def test_leaves_a_heartbeat():
    heartbeats.acquire(asyncio.get_running_loop())


@pytest.mark.asyncio
async def test_leaves_a_watchdog():
    BlockingCallDetector().install(asyncio.get_running_loop())


def test_leaves_a_log_handler():
    log_handlers.acquire("")


def test_leaves_yappi_running():
    yappi.start()


def test_sync_and_clean():
    logging.getLogger("clean").warning("nothing left behind")


@pytest.mark.asyncio
async def test_async_and_clean():
    await asyncio.sleep(0)
"""


EXPECTED = {
    "test_leaves_a_task_factory": "the loop's task factory changed",
    "test_leaves_debug_on": "the loop's debug flag changed: False -> True",
    "test_leaves_a_hook_installed": "shared hooks still installed: {'task factory': 1}",
    "test_leaves_a_heartbeat": "shared hooks still installed: {'heartbeat': 1}",
    "test_leaves_a_watchdog": "1 watchdog thread(s) still watching a heartbeat",
    "test_leaves_a_log_handler": "shared hooks still installed: {'log handler': 1}",
    "test_leaves_yappi_running": "yappi is still running",
}
"""Each leaky test, and what the guard must say about it at its teardown."""


class TestLeakGuard:
    def test_the_suite_guard_fails_leaky_tests(self, tmp_path: Path) -> None:
        (tmp_path / "conftest.py").write_text(
            (Path(__file__).parents[1] / "conftest.py").read_text()
        )
        (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(tmp_path),
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(tmp_path),
                "-o",
                "asyncio_default_fixture_loop_scope=function",
                "-rA",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        out = result.stdout
        assert result.returncode == 1, out
        assert "9 passed, 7 errors" in out  # the seven leaky ones fail at teardown
        errors = {block.split(" ", 1)[0]: block for block in out.split("ERROR at teardown of ")[1:]}
        assert sorted(errors) == sorted(EXPECTED)
        for name, problem in EXPECTED.items():
            assert problem in errors[name], (name, errors[name])
        assert "teardown of test_sync_and_clean" not in out
        assert "teardown of test_async_and_clean" not in out
