"""A suspended task's await chain: where it waits (the await site) and what for.

When a task suspends, every coroutine of its chain is suspended in an ``await`` of the next
one: the task's coroutine awaits the handler, which awaits ``httpx``, which awaits ``anyio``...
down to the Future that really waits. ``cr_await`` (``gi_yieldfrom`` for the generator-based
coroutines asyncio still uses) links them. The await site is the innermost application frame
of that chain (``stacks.is_app_code``: not the standard library, not an installed package, not
the toolbar); what was awaited is read from the Future the task received and from the frames
below the application's.

Walking a chain of 13 coroutines (uvicorn, Litestar's middleware, the toolbar, the handler)
costs several microseconds, and most of it never changes between two suspensions of a task.
So each task keeps the chain it walked last (``AwaitChain``) and walks again only below the
deepest coroutine of it that is still suspended: a coroutine that has not finished is still
awaited where it was (a coroutine can only be resumed by the one awaiting it), so everything
above it is unchanged. Between two sleeps of a handler that is one or two levels, not thirteen.
"""

from __future__ import annotations

import asyncio
import os
import sysconfig
import types
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panels.async_profiler.stacks import app_files, is_app_code, is_app_file

if TYPE_CHECKING:
    from types import CodeType

    from debug_toolbar.core.panels.async_profiler.steps import RawAwaited, RawSite

__all__ = ("AwaitChain", "package_of")

_Coroutine = types.CoroutineType
_Generator = types.GeneratorType
_Task = asyncio.Task
_GatheringFuture: type[Any] = getattr(asyncio.tasks, "_GatheringFuture", type(None))
_SLEEP_CODE = asyncio.sleep.__code__
_TO_THREAD_CODE = asyncio.to_thread.__code__
_ASYNCIO = "asyncio"
_SLEEP_0: RawAwaited = ("sleep", 0, None)
_THREAD: RawAwaited = ("thread", None, None)
_is_app_code = is_app_code
_is_app_file = is_app_file
_app_files = app_files

_STDLIB = os.path.normcase(os.path.abspath(sysconfig.get_paths()["stdlib"])) + os.sep
_PACKAGE_DIRS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_packages: dict[str, str] = {}
_PACKAGES_LIMIT = 4096


def package_of(filename: str) -> str:
    """The top-level package a library file belongs to: ``httpx``, ``asyncio``, ``anyio``.

    Installed packages are named after the folder under site-packages, the standard library
    after its first folder (or module); anything else after the file itself.
    """
    known = _packages.get(filename)
    if known is not None:
        return known
    path = os.path.normcase(os.path.abspath(filename))
    relative = None
    for marker in _PACKAGE_DIRS:
        _, found, rest = path.rpartition(marker)
        if found:
            relative = rest
            break
    if relative is None and path.startswith(_STDLIB):
        relative = path[len(_STDLIB) :]
    if relative is None:
        relative = os.path.basename(path)
    top = relative.split(os.sep, 1)[0]
    name = top[:-3] if top.endswith(".py") else top
    if len(_packages) >= _PACKAGES_LIMIT:
        _packages.clear()
    _packages[filename] = name or filename
    return _packages[filename]


def _code_of(node: Any) -> CodeType:
    return node.cr_code if type(node) is _Coroutine else node.gi_code


def _offset_of(node: Any) -> int:
    frame = node.cr_frame if type(node) is _Coroutine else node.gi_frame
    return 0 if frame is None else int(frame.f_lasti)


class AwaitChain:
    """The await chain of one task's coroutine, as walked at its last suspension.

    ``nodes`` are the coroutines (and generators) from the task's own coroutine inwards,
    ``apps`` whether each is application code. Only the loop thread running the task uses it.
    """

    __slots__ = ("app_node", "apps", "nodes")

    def __init__(self, coro: Any) -> None:
        self.nodes: list[Any] = [coro]
        self.apps: list[bool] = [_is_app_code(_code_of(coro))]
        self.app_node: Any = None
        """The innermost application coroutine at the last walk, if any."""

    def suspended(  # noqa: C901, PLR0912, PLR0915 - one frame on the hot path, not three calls
        self, value: object, task_ids: dict[Any, int]
    ) -> tuple[RawSite, RawAwaited]:
        """The await site and what was awaited, at a suspension of the task.

        ``value`` is what the task's coroutine yielded to it (the Future it waits for, None
        for ``asyncio.sleep(0)``); ``task_ids`` maps the request's tasks to their index
        (``TaskRecorder.live``). Walking, finding the site and the two commonest answers are
        one method: it runs at every suspension, and a call costs about 0.1 µs.

        Fast path, no walk: the innermost application coroutine of the last walk is still
        suspended (so still in the chain), awaiting a Future, a sleep or a thread call directly,
        none of which runs application code: it is still the innermost, and the await site.
        """
        app = self.app_node
        if app is not None and app.cr_suspended:
            child = app.cr_await
            if type(child) is _Coroutine:
                code = child.cr_code
                if code is _SLEEP_CODE:
                    site = (app.cr_code, app.cr_frame.f_lasti, True)
                    if value is None:
                        return site, _SLEEP_0
                    return site, ("sleep", _sleep_delay_ns(child), None)
                if code is _TO_THREAD_CODE:
                    return (app.cr_code, app.cr_frame.f_lasti, True), _THREAD
            elif type(child) is not _Generator:
                site = (app.cr_code, app.cr_frame.f_lasti, True)
                if isinstance(value, _Task):
                    task_index = task_ids.get(value)
                    return site, ("task", 0 if task_index is None else task_index + 1, None)
                return site, _direct(value, task_ids)
        nodes, apps = self.nodes, self.apps
        keep = last = len(nodes) - 1
        while keep:
            node = nodes[keep]
            # cr_suspended / gi_suspended: 3.11+ (typeshed knows them from 3.11; mypy targets 3.10)
            if node.cr_suspended if type(node) is _Coroutine else node.gi_suspended:  # type: ignore[attr-defined]
                break
            keep -= 1
        if keep < last:
            del nodes[keep + 1 :]
            del apps[keep + 1 :]
        node = nodes[keep]
        while True:
            if type(node) is _Coroutine:
                node = node.cr_await
            elif type(node) is _Generator:
                node = node.gi_yieldfrom
            else:
                break
            if type(node) is _Coroutine:
                code = node.cr_code
            elif type(node) is _Generator:
                code = node.gi_code
            else:
                break
            nodes.append(node)
            known = _app_files.get(code.co_filename)
            apps.append(_is_app_file(code.co_filename) if known is None else known)
        index = len(apps) - 1
        while index >= 0 and not apps[index]:
            index -= 1
        node = nodes[index]  # nodes[-1] when no node is the application's
        self.app_node = node if index >= 0 and type(node) is _Coroutine else None
        if type(node) is _Coroutine:
            site = (node.cr_code, node.cr_frame.f_lasti, index >= 0)  # type: ignore[union-attr]
        else:
            site = (node.gi_code, node.gi_frame.f_lasti, index >= 0)
        if value is None:  # a bare yield: asyncio.sleep(0), if the app called it itself
            below = index + 1
            if (
                below < len(nodes)
                and type(nodes[below]) is _Coroutine
                and nodes[below].cr_code is _SLEEP_CODE
            ):
                return site, _SLEEP_0
        elif isinstance(value, _Task):
            task_index = task_ids.get(value)
            return site, ("task", 0 if task_index is None else task_index + 1, None)
        return site, self.awaited(value, None if index < 0 else index, task_ids)

    def callers(self, depth: int) -> tuple[tuple[CodeType, int], ...]:
        """Who called the site's function: the chain above the innermost application node,
        innermost first, at most ``depth`` nodes. Costs a frame read per node: taken once per
        function that awaited, per request (its awaits share their callers)."""
        apps = self.apps
        index = len(apps) - 1
        while index >= 0 and not apps[index]:
            index -= 1
        above = self.nodes[: index if index >= 0 else len(self.nodes) - 1]
        return tuple(
            (_code_of(node), _offset_of(node)) for node in reversed(above[-max(depth, 1) :])
        )

    def awaited(self, value: object, app_index: int | None, task_ids: dict[Any, int]) -> RawAwaited:
        """What the task waits for (``suspended`` answers the two commonest cases itself):
        ``app_index`` is the index of the innermost application node."""
        if value is None and app_index is not None and app_index >= len(self.nodes) - 1:
            return ("other", "yield", None)  # the application's own generator yielded
        if isinstance(value, _Task):
            index = task_ids.get(value)
            return ("task", 0 if index is None else index + 1, None)
        nodes = self.nodes
        if type(value) is _GatheringFuture or (
            app_index is not None and app_index == len(nodes) - 1
        ):
            return _direct(value, task_ids)
        inner = nodes[-1]
        code = _code_of(inner)
        if code is _SLEEP_CODE:
            return ("sleep", _sleep_delay_ns(inner), None)
        if code is _TO_THREAD_CODE:
            return _THREAD
        below = 0 if app_index is None else app_index + 1
        # Nearest the suspension: the innermost frame that is not asyncio's own machinery.
        via_node = None
        for node in reversed(nodes[below:]):
            if package_of(_code_of(node).co_filename) != _ASYNCIO:
                via_node = node
                break
        # What the application called; with no application frame, what really waited.
        called = nodes[below] if app_index is not None else via_node or inner
        called_code = _code_of(called)
        via = None
        if via_node is not None and via_node is not called:
            via = (_code_of(via_node), _offset_of(via_node))
        return (
            "library",
            (package_of(called_code.co_filename), _qualname(called_code)),
            via,
        )


def _direct(value: object, task_ids: dict[Any, int]) -> RawAwaited:
    """What a Future awaited directly by application code is (not a sleep, not a task)."""
    if type(value) is _GatheringFuture:
        children = getattr(value, "_children", ())
        ids = tuple(task_ids[child] + 1 for child in children if child in task_ids)
        return ("gather", ids, len(children))
    if isinstance(value, _Task):
        index = task_ids.get(value)
        return ("task", 0 if index is None else index + 1, None)
    # run_in_executor, or a Future the application made itself.
    if _thread_source(value) is not None:
        return _THREAD
    return ("future", type(value).__name__, None)


def _qualname(code: CodeType) -> str:
    return str(getattr(code, "co_qualname", code.co_name))


def _sleep_delay_ns(sleep: Any) -> int:
    """The delay an ``asyncio.sleep`` coroutine was given (its frame's ``delay``)."""
    frame = sleep.cr_frame
    try:
        delay = frame.f_locals.get("delay", 0) if frame is not None else 0
        return max(round(float(delay) * 1e9), 0)
    except (TypeError, ValueError):
        return 0


def _thread_source(future: object) -> Any:
    """The ``concurrent.futures.Future`` an asyncio Future is chained to (a thread-pool call).

    ``loop.run_in_executor`` returns ``asyncio.wrap_future(executor.submit(...))``, whose
    cancellation callback closes over its source: that is how the call is recognised, and its
    source is where the thread's end can be seen exactly (its done callbacks run in the
    worker thread, as the call returns).
    """
    callbacks = getattr(future, "_callbacks", None)
    for entry in callbacks or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        code = getattr(callback, "__code__", None)
        if code is None or code.co_name != "_call_check_cancel":
            continue
        closure = getattr(callback, "__closure__", None) or ()
        try:
            return closure[code.co_freevars.index("source")].cell_contents
        except (ValueError, IndexError):
            return None
    return None


thread_source = _thread_source
