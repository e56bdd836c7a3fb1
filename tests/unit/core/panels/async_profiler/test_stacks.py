"""stacks: reading another thread's stack and telling the application's frames from the rest."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from types import CodeType

import pytest

import debug_toolbar.core.panels.async_profiler.heartbeat as heartbeat_module
from debug_toolbar.core.panels.async_profiler.stacks import (
    innermost_app_frame,
    is_app_code,
    sample_thread_stack,
    stack_window,
)


def _here() -> int:
    return sys._getframe(1).f_lineno


def _codes(*names: str) -> list[CodeType]:
    """Distinct code objects (compiled under this file's name, so they count as app code)."""
    return [compile("pass", __file__, "exec").replace(co_name=name) for name in names]


class TestIsAppCode:
    def test_this_test_file_is_application_code(self) -> None:
        assert is_app_code(sys._getframe().f_code) is True

    def test_the_standard_library_is_not(self) -> None:
        assert is_app_code(json.dumps.__code__) is False
        assert is_app_code(asyncio.sleep.__code__) is False

    def test_installed_packages_are_not(self) -> None:
        assert is_app_code(pytest.fixture.__code__) is False

    def test_the_toolbar_itself_is_not(self) -> None:
        assert is_app_code(heartbeat_module.LoopHeartbeat.beat.__code__) is False

    def test_generated_code_is_not(self) -> None:
        generated = compile("x = 1", "<string>", "exec")
        frozen = compile("x = 1", "<frozen importlib._bootstrap>", "exec")
        assert is_app_code(generated) is False
        assert is_app_code(frozen) is False

    @pytest.mark.parametrize(
        "filename",
        [
            "/opt/venv/lib/python3.11/site-packages/requests/api.py",
            "/usr/lib/python3/dist-packages/yaml/__init__.py",
        ],
    )
    def test_any_site_or_dist_packages_path_is_a_library(self, filename: str) -> None:
        assert is_app_code(compile("x = 1", filename, "exec")) is False

    def test_a_project_path_is_application_code(self) -> None:
        assert is_app_code(compile("x = 1", "/srv/app/views.py", "exec")) is True

    def test_equal_code_in_different_files_is_classified_per_file(self) -> None:
        # Code objects compare equal whatever their file: the cache must not mix them up.
        library = compile("y = 2", "/opt/venv/lib/python3.12/site-packages/lib.py", "exec")
        app = compile("y = 2", "/srv/app/lib.py", "exec")
        assert library == app
        assert (is_app_code(library), is_app_code(app)) == (False, True)


class TestSampleThreadStack:
    def test_own_thread_innermost_first(self) -> None:
        line = _here() + 1
        stack = sample_thread_stack(threading.get_ident())
        assert stack is not None
        # The sampler's own frame, then this test's at the calling line.
        assert stack[0][0] is sample_thread_stack.__code__
        assert stack[1] == (sys._getframe().f_code, line)
        assert innermost_app_frame(stack) == 1

    def test_unknown_thread_has_no_stack(self) -> None:
        missing = max(thread.ident or 0 for thread in threading.enumerate()) + 1
        assert sample_thread_stack(missing) is None

    def test_limit_bounds_the_walk(self) -> None:
        stack = sample_thread_stack(threading.get_ident(), limit=3)
        assert stack is not None
        assert len(stack) == 3

    def test_another_thread_blocked_in_a_helper(self) -> None:
        release = threading.Event()
        entered = threading.Event()
        lines: dict[str, int] = {}

        def waiting_helper() -> None:
            entered.set()
            lines["wait"] = _here() + 1
            release.wait(5)

        def target() -> None:
            lines["call"] = _here() + 1
            waiting_helper()

        thread = threading.Thread(target=target, name="sampled")
        thread.start()
        try:
            assert entered.wait(5)
            stack = None
            for _ in range(100):  # until the thread is inside Event.wait
                stack = sample_thread_stack(thread.ident or 0)
                if stack and stack[0][0].co_name == "wait":
                    break
                threading.Event().wait(0.005)
            assert stack is not None
            index = innermost_app_frame(stack)
            assert index is not None
            code, lineno = stack[index]
            assert (code.co_name, lineno) == ("waiting_helper", lines["wait"])
            caller, caller_line = stack[index + 1]
            assert (caller.co_name, caller_line) == ("target", lines["call"])
            # The library frames it called (threading.Event.wait...) come first.
            assert all(not is_app_code(c) for c, _ in stack[:index])
            assert index >= 1
        finally:
            release.set()
            thread.join(5)


class TestInnermostAppFrame:
    def test_skips_library_frames(self) -> None:
        app = sys._getframe().f_code
        stack = ((json.dumps.__code__, 1), (asyncio.sleep.__code__, 2), (app, 3))
        assert innermost_app_frame(stack) == 2

    def test_none_when_only_libraries(self) -> None:
        assert innermost_app_frame(((json.dumps.__code__, 1),)) is None
        assert innermost_app_frame(()) is None


class TestStackWindow:
    @pytest.fixture
    def stack(self) -> tuple[tuple[CodeType, int], ...]:
        return tuple((code, n) for n, code in enumerate(_codes(*"abcdefghijklmnop")))

    def test_keeps_the_frame_and_its_callers(self, stack: tuple[tuple[CodeType, int], ...]) -> None:
        window = stack_window(stack, 0, 4)
        assert [line for _, line in window] == [0, 1, 2, 3]

    def test_a_third_of_the_budget_for_library_frames_inside(
        self, stack: tuple[tuple[CodeType, int], ...]
    ) -> None:
        window = stack_window(stack, 8, 10)
        # (10 - 1) // 3 = 3 library frames nearest to the app frame, then it and 6 callers.
        assert [line for _, line in window] == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]

    def test_depth_one_is_the_frame_alone(self, stack: tuple[tuple[CodeType, int], ...]) -> None:
        assert [line for _, line in stack_window(stack, 5, 1)] == [5]

    def test_short_stacks_are_returned_whole(self) -> None:
        short = tuple((code, n) for n, code in enumerate(_codes("x", "y")))
        assert stack_window(short, 1, 10) == short
