"""Reference counting of what the profiled requests share: one hook per event loop.

Installing and restoring a loop-wide hook per request is wrong under concurrency: the second
request saves the first one's state, the first restores the original, the second then restores
the first's. Here the first user of a loop builds and installs the hook, the last one to release
it uninstalls it, and nobody in between touches it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ("LoopHook", "PerLoopRegistry")


class LoopHook(Protocol):
    """Something installed once per loop while at least one request uses it."""

    def install(self) -> None: ...

    def uninstall(self) -> None: ...


H = TypeVar("H", bound=LoopHook)


class PerLoopRegistry(Generic[H]):
    """Reference-counts one hook per event loop across concurrent users.

    The first ``acquire`` on a loop builds and installs the hook; the matching last ``release``
    uninstalls it and forgets the loop, so no strong reference to a loop outlives its use.
    Loops in different threads may acquire at the same time, hence the lock.
    """

    def __init__(self, build: Callable[[asyncio.AbstractEventLoop], H]) -> None:
        self._build = build
        self._hooks: dict[asyncio.AbstractEventLoop, tuple[H, int]] = {}
        self._lock = threading.Lock()

    def acquire(self, loop: asyncio.AbstractEventLoop) -> H:
        with self._lock:
            current = self._hooks.get(loop)
            if current is not None:
                hook, users = current
                self._hooks[loop] = (hook, users + 1)
                return hook
            hook = self._build(loop)
            hook.install()
            self._hooks[loop] = (hook, 1)
            return hook

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            current = self._hooks.get(loop)
            if current is None:
                return
            hook, users = current
            if users > 1:
                self._hooks[loop] = (hook, users - 1)
                return
            del self._hooks[loop]
        hook.uninstall()

    def get(self, loop: asyncio.AbstractEventLoop) -> H | None:
        current = self._hooks.get(loop)
        return None if current is None else current[0]

    def users(self, loop: asyncio.AbstractEventLoop) -> int:
        current = self._hooks.get(loop)
        return 0 if current is None else current[1]
