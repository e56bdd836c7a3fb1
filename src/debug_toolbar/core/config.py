"""The toolbar's one validated configuration object.

Every option is checked when the config is built, so a mistake surfaces at application start-up
with the option's name and what it accepts, instead of as a broken page later.
"""

from __future__ import annotations

import importlib
import ipaddress
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast, get_args

from debug_toolbar.core.bounds import (
    DEFAULT_MAX_VALUE_LENGTH,
    MAX_MAX_VALUE_LENGTH,
    MIN_MAX_VALUE_LENGTH,
)
from debug_toolbar.core.hosts import normalize_allowed_hosts
from debug_toolbar.core.storage import DEFAULT_MAX_BYTES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.panel import Panel

__all__ = (
    "DEFAULT_PANELS",
    "AsyncProfilerBackendName",
    "DebugToolbarConfig",
    "is_loopback_client",
    "resolve_panel",
)

AsyncProfilerBackendName = Literal["auto", "taskfactory", "yappi"]
"""``taskfactory``: stdlib task tracking (cheap). ``yappi``: adds per-coroutine wall-clock
profiling (costly, needs the ``yappi`` extra). ``auto``: yappi when installed, else taskfactory."""

DEFAULT_PANELS: tuple[str, ...] = (
    "debug_toolbar.core.panels.timer.TimerPanel",
    "debug_toolbar.core.panels.request.RequestPanel",
    "debug_toolbar.core.panels.response.ResponsePanel",
    "debug_toolbar.core.panels.logging.LoggingPanel",
    "debug_toolbar.core.panels.versions.VersionsPanel",
)


def is_loopback_client(context: RequestContext) -> bool:
    """Default ``show_toolbar``: only clients on 127.0.0.0/8 or ::1 see the toolbar.

    A debug toolbar exposes headers, cookies and source lines; it must not be reachable from the
    network just because the app was started with the toolbar enabled.
    """
    host = context.client_host
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def resolve_panel(spec: type[Panel] | str, option: str = "panels") -> type[Panel]:
    """Turn a panel class or dotted path into a Panel subclass, or raise a clear ValueError.

    ``option`` is the config option the spec came from, named in the error.
    """
    from debug_toolbar.core.panel import Panel

    if isinstance(spec, str):
        module_name, _, attr = spec.rpartition(".")
        if not module_name:
            raise ValueError(
                f"{option}: {spec!r} is not a dotted path; expected 'package.module.ClassName'"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(
                f"{option}: cannot import module {module_name!r} for {spec!r}: {exc}"
            ) from exc
        try:
            resolved = getattr(module, attr)
        except AttributeError:
            raise ValueError(
                f"{option}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    else:
        resolved = spec
    if not (isinstance(resolved, type) and issubclass(resolved, Panel)):
        raise ValueError(f"{option}: {spec!r} is not a subclass of debug_toolbar.Panel")
    return resolved


_HOUR_MS = 3_600_000
"""One hour in milliseconds: the upper bound of the async thresholds."""

_MINUTE_MS = 60_000
"""One minute in milliseconds: the upper bound of the heartbeat interval."""

_URL_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
"""RFC 3986's unreserved characters: the same encoded or not, in a path, a page or a header."""


def _number(value: object) -> bool:
    """A real number that is finite: ``inf`` passes every ``> 0`` check and overflows later."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _positive(name: str, value: float, maximum: float | None = None) -> None:
    if not _number(value) or not value > 0 or (maximum is not None and value > maximum):
        limit = "" if maximum is None else f" and at most {maximum}"
        raise ValueError(f"{name} must be a finite number greater than 0{limit}, got {value!r}")


def _between(name: str, value: float, minimum: float, maximum: float) -> None:
    """A finite number in ``[minimum, maximum]`` (ints and floats; not bools)."""
    if not _number(value) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be a number from {minimum} to {maximum}, got {value!r}")


def _at_least(name: str, value: int, minimum: int, maximum: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        expected = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{name} must be an integer {expected}, got {value!r}")


def _sequence(name: str, value: object, items: str) -> tuple[object, ...]:
    """A list or tuple of ``items``, as a tuple: iterated once, so a generator is not lost.

    A string, a class or ``None`` given where a sequence belongs is the usual mistake
    (``extra_panels=AsyncProfilerPanel``); it gets the option's name, not a bare TypeError.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a sequence of {items}, got {value!r}")
    return tuple(value)


def _url_prefix(value: object) -> str:
    """The prefix without trailing slashes; only segments a URL carries unchanged.

    The prefix is compared with the decoded request path and written as is into links, so a
    percent sign, a space, ``?`` or ``#`` would make pages that never match or links that
    break; ``.`` and ``..`` segments are rewritten by clients before the request is sent.
    """
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"url_prefix must be a path starting with '/', got {value!r}")
    # "//" strips to "", a prefix of every path: refuse it like "/".
    prefix = value.rstrip("/")
    if not prefix:
        raise ValueError("url_prefix must not be '/': the toolbar would shadow the whole app")
    for segment in prefix[1:].split("/"):
        if segment in (".", "..") or not _URL_SEGMENT.fullmatch(segment):
            raise ValueError(
                "url_prefix must be '/'-separated segments of ASCII letters, digits, "
                "'-', '.', '_' and '~' (no empty, '.' or '..' segment, no space, query or "
                f"fragment), got {value!r}"
            )
    return prefix


def _directories(name: str, value: object) -> tuple[str, ...]:
    """Existing directories, as absolute paths; a clear error for anything else."""
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a sequence of directory paths, got {value!r}")
    directories = []
    for entry in value:
        if not isinstance(entry, (str, os.PathLike)):
            raise ValueError(f"{name}: {entry!r} is not a path")
        path = os.path.abspath(os.fspath(entry))
        if not os.path.isdir(path):
            raise ValueError(f"{name}: {os.fspath(entry)!r} is not an existing directory")
        directories.append(path)
    return tuple(directories)


def _boolean(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


@dataclass
class DebugToolbarConfig:
    """Configuration for the toolbar and its panels. Invalid values raise ``ValueError``."""

    enabled: bool = True
    """Master switch. When False the middleware passes every request straight through."""

    panels: Sequence[type[Panel] | str] = DEFAULT_PANELS
    """The panels to run, in toolbar order, as classes or dotted paths (a list or tuple)."""

    extra_panels: Sequence[type[Panel] | str] = ()
    """Panels appended after ``panels`` (the usual way to add the Async Profiler panel); a list
    or tuple, even for one panel."""

    exclude_panels: Sequence[str] = ()
    """Panel ids (class names, e.g. ``"VersionsPanel"``) to leave out of ``panels``. Each must
    be the id of a panel in ``panels`` or ``extra_panels``: a typo would exclude nothing."""

    max_request_history: int = 50
    """How many request records to keep (1 to 10,000); the oldest is dropped first."""

    max_request_history_bytes: int = DEFAULT_MAX_BYTES
    """Byte budget of the kept records (1 MiB to 64 GiB; 64 MiB by default), from each record's
    estimated size: the oldest are dropped first to stay within it (the newest is always kept).
    A count alone does not bound memory when requests are large."""

    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH
    """Characters a record keeps of each value (256 to 16,777,216): a longer path, query string,
    header, cookie, log message or exception is cut, and the cut says its full length. Lists of
    query parameters, headers and cookies also keep their first 100 entries only."""

    url_prefix: str = "/_debug_toolbar"
    """Where the toolbar serves its own pages; requests under it are never profiled. A path of
    segments of ASCII letters, digits, ``-``, ``.``, ``_`` and ``~`` (no ``.``/``..``
    segment, no space, query or fragment); trailing slashes are dropped."""

    exclude_paths: Sequence[str] = ()
    """Path prefixes never profiled (health checks, static files, ...), matched by whole
    segments: ``/health`` covers ``/health/db`` but not ``/healthy``. Each starts with ``/``
    and has no ``?`` or ``#``: the path they are matched with has no query or fragment."""

    show_toolbar: Callable[[RequestContext], bool] = is_loopback_client
    """Decides per request whether to profile, inject the toolbar and serve its pages.
    The default allows loopback clients only. Asked only for requests whose Host is allowed
    (``allowed_hosts``)."""

    allowed_hosts: Sequence[str] = ()
    """Hosts, besides ``localhost``, ``*.localhost``, ``127.0.0.1`` and ``[::1]``, that a
    request may name in its ``Host`` header to get the toolbar (any port): a name
    (``"myapp.test"``), an IP address (``"192.168.1.20"``, ``"[fd00::1]"``), a domain and its
    subdomains (``".example.test"``), or ``"*"`` for any host, which turns the protection
    against DNS rebinding off. Other Hosts get no toolbar and a 404 from its pages: a page on
    another site that makes its name resolve to 127.0.0.1 must not read the recorded data."""

    mask_secrets: bool = True
    """Replace the values of credential headers (``SENSITIVE_HEADERS``: ``Authorization``,
    ``Cookie``, ``Set-Cookie``, API keys, ...) and of cookies with a mask in what the toolbar
    records; cookie names stay visible. False records them as received."""

    insert_before: str = "</body>"
    """The toolbar is inserted before the last occurrence of this string in HTML responses."""

    template_dirs: Sequence[str | os.PathLike[str]] = ()
    """Folders where your own panels' templates live, searched after the toolbar's own
    templates (which they cannot replace). Each must be an existing directory."""

    async_profiler_backend: AsyncProfilerBackendName = "taskfactory"
    """Async Profiler backend: ``"taskfactory"`` (the default: cheap, always there),
    ``"yappi"`` or ``"auto"`` (yappi when installed). yappi costs a lot and keeps memory (see
    docs/async-profiler-yappi.md), so it runs only when asked for, here or with the panel's
    per-browser switch. With the Async Profiler panel configured, ``"yappi"`` without yappi
    installed is an error here, at start-up, naming the extra to install."""

    async_yappi_max_requests: int = 500
    """Requests this process profiles with yappi (1 to 1,000,000); later ones use the task
    factory, with a note. yappi 1.7.6 keeps memory of every request it profiles until the
    process exits (about 50 to 100 KB each on small routes), so 500 stay around 50 MB."""

    async_blocking_threshold_ms: float = 100.0
    """A loop stall longer than this is reported as a blocking call (1 to 3,600,000 ms: the
    heartbeat runs at least every threshold / 4, so a lower one would busy the loop)."""

    async_enable_blocking_detection: bool = True
    """Run the watchdog thread that names the line blocking the event loop."""

    async_enable_event_loop_monitoring: bool = True
    """Record event-loop lag samples while a request runs."""

    async_event_loop_lag_threshold_ms: float = 10.0
    """Lag samples at or below this are not kept (greater than 0, at most 3,600,000 ms)."""

    async_lag_sample_interval_ms: float = 10.0
    """How often the loop heartbeat runs (it measures lag and feeds the watchdog): 1 to
    60,000 ms. Below 1 ms the heartbeat alone would keep a CPU core busy."""

    async_capture_task_stacks: bool = True
    """Record where each task was created (a cheap frame walk, resolved at render time)."""

    async_max_stack_depth: int = 10
    """Frames kept per creation stack and per blocking-call stack (1 to 1,000: Python's
    default recursion limit, deeper than any real stack)."""

    async_max_tasks: int = 1000
    """Tasks recorded per request (1 to 100,000); more are counted as dropped. Each is kept in
    the history with its creation stack, so the cap bounds a record's memory."""

    async_step_timing: bool = True
    """Time every step of the request's own task and of the tasks it spawns (each run between
    two suspensions, with its await site and what it awaited), for the time breakdown, the
    await-site table and the slow steps. Needs Python 3.12+ (``sys.monitoring``); older
    versions get the request's own task and a note. False removes all of it (no monitoring)."""

    async_server_timing: bool = True
    """Add a ``Server-Timing`` header to every profiled response (HTML or not), so a browser's
    network tab shows the request's time breakdown up to the response's start (``run``,
    ``wait``, ``queued``, ``blocked``) and the tasks it spawned (``tasks``). Without step
    timing (Python before 3.12, ``async_step_timing`` off) it has ``tasks`` alone. An app's
    own ``Server-Timing`` header is kept: this one is added after it."""

    async_max_steps: int = 10_000
    """Steps recorded per request (1 to 1,000,000); more are counted as dropped, and the time
    breakdown stops where the request's own task lost its first one."""

    async_max_timeline_rows: int = 500
    """Rows drawn on the timeline (1 to 10,000: more makes a page the browser struggles
    with); the rest are counted as "N more" and are all in the trace download."""

    panel_classes: tuple[type[Panel], ...] = field(init=False, repr=False)
    """The resolved, de-duplicated panel classes in toolbar order (derived)."""

    def __post_init__(self) -> None:
        _boolean("enabled", self.enabled)
        for name in (
            "async_enable_blocking_detection",
            "async_enable_event_loop_monitoring",
            "async_capture_task_stacks",
            "async_step_timing",
            "async_server_timing",
        ):
            _boolean(name, getattr(self, name))
        _at_least("max_request_history", self.max_request_history, 1, 10_000)
        _at_least("max_request_history_bytes", self.max_request_history_bytes, 2**20, 2**36)
        _at_least(
            "max_value_length",
            self.max_value_length,
            MIN_MAX_VALUE_LENGTH,
            MAX_MAX_VALUE_LENGTH,
        )
        self.url_prefix = _url_prefix(self.url_prefix)
        self.exclude_paths = self._exclude_paths()
        if not callable(self.show_toolbar):
            raise ValueError(
                "show_toolbar must be a callable taking the request context, "
                f"got {self.show_toolbar!r}"
            )
        self.allowed_hosts = normalize_allowed_hosts(self.allowed_hosts)
        _boolean("mask_secrets", self.mask_secrets)
        if not isinstance(self.insert_before, str) or not self.insert_before:
            raise ValueError(
                f"insert_before must be a non-empty string, got {self.insert_before!r}"
            )
        self.template_dirs = _directories("template_dirs", self.template_dirs)
        backends = get_args(AsyncProfilerBackendName)
        if self.async_profiler_backend not in backends:
            raise ValueError(
                f"async_profiler_backend must be one of {', '.join(map(repr, backends))}, "
                f"got {self.async_profiler_backend!r}"
            )
        _between("async_blocking_threshold_ms", self.async_blocking_threshold_ms, 1, _HOUR_MS)
        _positive(
            "async_event_loop_lag_threshold_ms",
            self.async_event_loop_lag_threshold_ms,
            _HOUR_MS,
        )
        _between("async_lag_sample_interval_ms", self.async_lag_sample_interval_ms, 1, _MINUTE_MS)
        _at_least("async_max_stack_depth", self.async_max_stack_depth, 1, 1_000)
        _at_least("async_max_tasks", self.async_max_tasks, 1, 100_000)
        _at_least("async_max_steps", self.async_max_steps, 1, 1_000_000)
        _at_least("async_max_timeline_rows", self.async_max_timeline_rows, 1, 10_000)
        _at_least("async_yappi_max_requests", self.async_yappi_max_requests, 1, 1_000_000)
        self.panel_classes = self._resolve_panels()

    def _exclude_paths(self) -> tuple[str, ...]:
        paths = _sequence("exclude_paths", self.exclude_paths, "paths starting with '/'")
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"exclude_paths: {path!r} is not a path starting with '/'")
            if "?" in path or "#" in path:
                raise ValueError(
                    f"exclude_paths: {path!r} has a query or fragment, which request paths "
                    "never have: it would exclude nothing"
                )
        return cast("tuple[str, ...]", paths)

    def _resolve_panels(self) -> tuple[type[Panel], ...]:
        specs = "panel classes or dotted paths"
        panels = _sequence("panels", self.panels, specs)
        extra_panels = _sequence("extra_panels", self.extra_panels, specs)
        exclude_panels = _sequence("exclude_panels", self.exclude_panels, "panel ids")
        for panel_id in exclude_panels:
            if not isinstance(panel_id, str) or not panel_id:
                raise ValueError(
                    f"exclude_panels: {panel_id!r} is not a panel id (a class name such as "
                    "'VersionsPanel')"
                )
        excluded = set(exclude_panels)
        resolved: list[type[Panel]] = []
        seen: set[str] = set()
        for option, specs_given in (("panels", panels), ("extra_panels", extra_panels)):
            for spec in specs_given:
                panel_class = resolve_panel(cast("type[Panel] | str", spec), option)
                if panel_class.panel_id in seen:
                    continue
                seen.add(panel_class.panel_id)
                if panel_class.panel_id not in excluded:
                    resolved.append(panel_class)
        unknown = [panel_id for panel_id in exclude_panels if panel_id not in seen]
        if unknown:
            raise ValueError(
                f"exclude_panels: {', '.join(map(repr, unknown))} is not the id of a panel in "
                f"panels or extra_panels ({', '.join(map(repr, sorted(seen))) or 'none'})"
            )
        # A panel that cannot run with these options says so now, once, not on every request.
        for panel_class in resolved:
            panel_class.check_config(self)
        return tuple(resolved)

    def is_excluded_path(self, path: str) -> bool:
        """True for the toolbar's own pages and for ``exclude_paths``.

        Prefixes match whole path segments: ``/health`` excludes ``/health`` and
        ``/health/db`` but not ``/healthy``.
        """
        return any(_under(path, prefix) for prefix in (self.url_prefix, *self.exclude_paths))


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")
