"""Helpers shared by test modules (importable as ``support``: pytest's ``pythonpath``)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from debug_toolbar.core.panels.async_profiler.models import StackFrame, TaskEvent, TaskState

__all__ = ("REPO", "Rendezvous", "load_demo", "task_event")

REPO = Path(__file__).resolve().parents[1]


class Rendezvous:
    """Lets ``expected`` handlers through only once all of them are in flight, so concurrent
    requests really overlap without any timing guess."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.event: asyncio.Event | None = None

    async def wait(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.arrived += 1
        if self.arrived >= self.expected:
            self.event.set()
        await self.event.wait()


def load_demo(module_name: str = "demo_app_under_test") -> ModuleType:
    """examples/demo_app.py, by path: the examples folder is not an installed package."""
    spec = importlib.util.spec_from_file_location(module_name, REPO / "examples" / "demo_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def task_event(
    task_id: int,
    start_ms: float,
    end_ms: float | None,
    *,
    parent_id: int | None = None,
    state: TaskState | None = None,
    name: str | None = None,
    coro_name: str = "",
    exception: tuple[str, str] | None = None,
    stack: list[StackFrame] | None = None,
) -> TaskEvent:
    """A hand-built task record; pending when it has no end, completed otherwise."""
    if state is None:
        state = "pending" if end_ms is None else "completed"
    return TaskEvent(
        task_id=task_id,
        parent_id=parent_id,
        name=name if name is not None else f"Task-{task_id}",
        coro_name=coro_name,
        state=state,
        start_ms=start_ms,
        end_ms=end_ms,
        exception_type=None if exception is None else exception[0],
        exception_message=None if exception is None else exception[1],
        stack=list(stack or []),
    )
