"""Reference counting of everything the profiled requests share: one hook per key.

Some instrumentation cannot be per request: a loop has one task factory, a logger's handlers
are process-wide, yappi is one profiler for the process. Installing and restoring such a hook
per request is wrong under concurrency: the second request saves the first one's state, the
first restores the original, the second then restores the first's. So every shared hook lives
in a ``SharedHooks`` registry: the first user of a key (an event loop, a logger's name, the
process) builds and installs its hook, the last one to release it uninstalls it, and nobody in
between touches it. Registries are named and listed (``hooks_in_use``), so a test can prove
that nothing is left installed, whatever the hook.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("LoopHooks", "SharedHook", "SharedHooks", "hooks_in_use")


class SharedHook(Protocol):
    """Something installed once per key while at least one request uses it."""

    def install(self) -> None: ...

    def uninstall(self) -> None: ...


K = TypeVar("K", bound=Hashable)
H = TypeVar("H", bound=SharedHook)

_registries: weakref.WeakSet[SharedHooks[object, SharedHook]] = weakref.WeakSet()


class SharedHooks(Generic[K, H]):
    """Reference-counts one hook per key across concurrent users (any thread).

    The first ``acquire`` of a key builds and installs the hook (if installing raises, nothing
    is kept); the matching last ``release`` uninstalls it and forgets the key, so no strong
    reference to a key (a loop) outlives its use. A hook with an ``admit()`` method is asked,
    under the registry's lock, before each further user joins: it raises to refuse (yappi's
    draining run).
    """

    def __init__(self, name: str, build: Callable[[K], H]) -> None:
        self.name = name
        self._build = build
        self._hooks: dict[K, tuple[H, int]] = {}
        self._lock = threading.Lock()
        _registries.add(self)  # type: ignore[arg-type]

    def acquire(self, key: K) -> H:
        with self._lock:
            current = self._hooks.get(key)
            if current is not None:
                hook, users = current
                admit = getattr(hook, "admit", None)
                if admit is not None:
                    admit()
                self._hooks[key] = (hook, users + 1)
                return hook
            hook = self._build(key)
            hook.install()
            self._hooks[key] = (hook, 1)
            return hook

    def release(self, key: K) -> None:
        """Give back one use of ``key``'s hook; the last one uninstalls it (outside the lock:
        uninstalling may join a thread). Releasing a key nobody holds does nothing."""
        with self._lock:
            current = self._hooks.get(key)
            if current is None:
                return
            hook, users = current
            if users > 1:
                self._hooks[key] = (hook, users - 1)
                return
            del self._hooks[key]
        hook.uninstall()

    def get(self, key: K) -> H | None:
        current = self._hooks.get(key)
        return None if current is None else current[0]

    def users(self, key: K) -> int:
        current = self._hooks.get(key)
        return 0 if current is None else current[1]

    def in_use(self) -> dict[K, int]:
        """Every key whose hook is installed, with its number of users."""
        with self._lock:
            return {key: users for key, (_hook, users) in self._hooks.items()}

    def clear(self) -> int:
        """Uninstall every hook whatever its users (for a test's clean-up after a leak)."""
        with self._lock:
            hooks = [hook for hook, _users in self._hooks.values()]
            self._hooks.clear()
        for hook in hooks:
            hook.uninstall()
        return len(hooks)


LoopHooks = SharedHooks[asyncio.AbstractEventLoop, H]
"""A registry of one hook per event loop (the task factory, the heartbeat)."""


def hooks_in_use() -> dict[str, int]:
    """Registry name -> hooks installed right now, for every registry with any (none: {})."""
    found: dict[str, int] = {}
    for registry in list(_registries):
        count = len(registry.in_use())
        if count:
            found[registry.name] = found.get(registry.name, 0) + count
    return found
