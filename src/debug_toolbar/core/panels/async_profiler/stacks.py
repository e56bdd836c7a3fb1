"""Stacks: capturing them cheaply, telling the application's frames from the rest, resolving.

Every stack the async profiler keeps (a task's creation stack, a blocked loop's sample) is kept
as (code object, line) pairs, innermost first (``RawStack``), and resolved into file, line,
function and source only when someone reads it (``resolve_stack``). "Application frame" has one
definition here (``is_app_code``), used wherever a stack is reduced to the line to show.

Reading another thread's stack:

The blocking-call watchdog runs in its own thread and looks at the event loop's thread while the
loop is stuck. What it keeps must be cheap to take (it holds the GIL, so the loop waits for it)
and must not keep frames alive (they hold every local of the blocked code): only (code object,
line) pairs are kept, and file names, source lines and formatting are resolved at render time.

"Application code" is everything that is not the standard library, an installed package
(site-packages / dist-packages), code generated at run time (``<string>``, ``<frozen ...>``) or
this toolbar. The innermost application frame is where the developer can act: the
``time.sleep(...)`` line of a handler, not the C function it called nor the server's
``run_asgi`` frame far above it.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import site
import sys
import sysconfig
from types import CodeType
from typing import TypeAlias

import debug_toolbar
from debug_toolbar.core.panels.async_profiler.models import StackFrame

__all__ = (
    "MAX_SAMPLED_FRAMES",
    "TOOLBAR_DIR",
    "RawStack",
    "app_files",
    "innermost_app_frame",
    "is_app_code",
    "is_app_file",
    "is_machinery",
    "is_toolbar_file",
    "resolve_frame",
    "resolve_stack",
    "sample_thread_stack",
    "stack_window",
)

RawStack: TypeAlias = tuple[tuple[CodeType, int], ...]
"""A stack as captured on the hot path: (code object, line) pairs, innermost first."""

MAX_SAMPLED_FRAMES = 256
"""Frames read per sample: far deeper than any real handler, but a bound for runaway recursion."""


TOOLBAR_DIR = os.path.dirname(os.path.abspath(debug_toolbar.__file__)) + os.sep
"""The toolbar's own code: never the application's, whoever calls it."""


def is_toolbar_file(filename: str) -> bool:
    """Whether ``filename`` is the toolbar's own code (the profiler's bookkeeping, not the app)."""
    return filename.startswith(TOOLBAR_DIR)


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    candidates = [paths.get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")]
    candidates.extend(site.getsitepackages() if hasattr(site, "getsitepackages") else ())
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    candidates.append(user_site)
    candidates.append(TOOLBAR_DIR)
    prefixes = {os.path.normcase(os.path.abspath(path)) + os.sep for path in candidates if path}
    # Longest first, only for readable debugging: startswith() with a tuple is order-free.
    return tuple(sorted(prefixes, key=len, reverse=True))


_LIBRARY_PREFIXES = _library_prefixes()
_PACKAGE_DIRS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
# Keyed by file name, not code object: code objects compare equal across files when their
# bodies match, and the answer only depends on the file anyway.
_is_app_cache: dict[str, bool] = {}
app_files = _is_app_cache
"""The classifier's cache, file name -> application code or not: a hot path may read it
directly and call ``is_app_file`` on a miss (it is cleared in place, never replaced)."""
_APP_CACHE_LIMIT = 4096


def _classify(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False  # <string>, <frozen importlib._bootstrap>, dataclass-generated code...
    normalized = os.path.normcase(os.path.abspath(filename))
    if any(part in normalized for part in _PACKAGE_DIRS):
        return False
    return not normalized.startswith(_LIBRARY_PREFIXES)


def is_app_code(code: CodeType) -> bool:
    """Whether ``code`` belongs to the application (cached per file: called per frame)."""
    known = _is_app_cache.get(code.co_filename)
    return is_app_file(code.co_filename) if known is None else known


def is_app_file(filename: str) -> bool:
    """Whether ``filename`` holds application code (``is_app_code`` for a resolved frame)."""
    known = _is_app_cache.get(filename)
    if known is None:
        if len(_is_app_cache) >= _APP_CACHE_LIMIT:
            _is_app_cache.clear()
        known = _is_app_cache[filename] = _classify(filename)
    return known


def sample_thread_stack(thread_id: int, limit: int = MAX_SAMPLED_FRAMES) -> RawStack | None:
    """The current stack of thread ``thread_id``, innermost first; None if it has no frame.

    ``sys._current_frames`` is the documented way (used by faulthandler-style tools and
    sampling profilers) to read another thread's frames; the frame objects are dropped before
    returning so the sampled code's locals are not kept alive.
    """
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return None
    pairs: list[tuple[CodeType, int]] = []
    while frame is not None and len(pairs) < limit:
        pairs.append((frame.f_code, frame.f_lineno or 0))
        frame = frame.f_back
    del frame
    return tuple(pairs)


def innermost_app_frame(stack: RawStack) -> int | None:
    """Index in ``stack`` (innermost first) of the first application frame, if any."""
    for index, (code, _lineno) in enumerate(stack):
        if is_app_code(code):
            return index
    return None


def stack_window(stack: RawStack, index: int, depth: int) -> RawStack:
    """At most ``depth`` contiguous frames around ``stack[index]``, innermost first.

    The frame at ``index`` is always kept, with its callers; up to a third of the budget goes to
    the library frames it called (``requests.get`` -> ``Session.request``...), the calls nearest
    to the application's line first, because those name what the application asked for.
    """
    depth = max(1, depth)
    inner = min(index, (depth - 1) // 3)
    start = index - inner
    return stack[start : start + depth]


# Frames in these directories are machinery (asyncio's and ours), not where a task was created.
_MACHINERY_DIRS = (os.path.dirname(asyncio.__file__) + os.sep, TOOLBAR_DIR)
_is_machinery_cache: dict[CodeType, bool] = {}
_MACHINERY_CACHE_LIMIT = 4096


def is_machinery(code: CodeType) -> bool:
    """Whether ``code`` is asyncio's or the profiler's own: where a task was created is above it."""
    known = _is_machinery_cache.get(code)
    if known is None:
        if len(_is_machinery_cache) >= _MACHINERY_CACHE_LIMIT:
            _is_machinery_cache.clear()
        known = _is_machinery_cache[code] = code.co_filename.startswith(_MACHINERY_DIRS)
    return known


_resolved_frames: dict[tuple[int, int], tuple[CodeType, StackFrame]] = {}
_RESOLVED_FRAMES_LIMIT = 4096


def resolve_frame(code: CodeType, lineno: int) -> StackFrame:
    """One (code, line) pair as a readable frame, cached per process.

    Keyed by the code object's identity (kept alive by the cache, so its id stays its own):
    code objects compare equal when their bodies match, whatever their files, and hashing one
    hashes its body.
    """
    key = (id(code), lineno)
    known = _resolved_frames.get(key)
    if known is not None and known[0] is code:
        return known[1]
    source = linecache.getline(code.co_filename, lineno).strip() if lineno else ""
    frame = StackFrame(
        filename=code.co_filename,
        lineno=lineno,
        function=getattr(code, "co_qualname", code.co_name),
        code=source or None,
    )
    if len(_resolved_frames) >= _RESOLVED_FRAMES_LIMIT:
        _resolved_frames.clear()
    _resolved_frames[key] = (code, frame)
    return frame


def resolve_stack(raw: RawStack) -> list[StackFrame]:
    """Turn captured (code, line) pairs into readable frames; done at render time, not per task.

    Each distinct frame is resolved once per process (a bounded cache, like ``linecache``'s own
    file cache): requests to the same routes share their frames, and reading source lines is
    the expensive part of a report.
    """
    return [resolve_frame(code, lineno) for code, lineno in raw]
