"""The toolbar's one validated configuration object.

Every option is checked when the config is built, so a mistake surfaces at application start-up
with the option's name and what it accepts, instead of as a broken page later.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

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


def resolve_panel(spec: type[Panel] | str) -> type[Panel]:
    """Turn a panel class or dotted path into a Panel subclass, or raise a clear ValueError."""
    from debug_toolbar.core.panel import Panel

    if isinstance(spec, str):
        module_name, _, attr = spec.rpartition(".")
        if not module_name:
            raise ValueError(
                f"panels: {spec!r} is not a dotted path; expected 'package.module.ClassName'"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(
                f"panels: cannot import module {module_name!r} for {spec!r}: {exc}"
            ) from exc
        try:
            resolved = getattr(module, attr)
        except AttributeError:
            raise ValueError(f"panels: module {module_name!r} has no attribute {attr!r}") from None
    else:
        resolved = spec
    if not (isinstance(resolved, type) and issubclass(resolved, Panel)):
        raise ValueError(f"panels: {spec!r} is not a subclass of debug_toolbar.Panel")
    return resolved


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number greater than 0, got {value!r}")


def _at_least(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


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
    """The panels to run, in toolbar order, as classes or dotted paths."""

    extra_panels: Sequence[type[Panel] | str] = ()
    """Panels appended after ``panels`` (the usual way to add the Async Profiler panel)."""

    exclude_panels: Sequence[str] = ()
    """Panel ids (class names, e.g. ``"VersionsPanel"``) to leave out of ``panels``."""

    max_request_history: int = 50
    """How many request records to keep; the oldest is dropped first."""

    url_prefix: str = "/_debug_toolbar"
    """Where the toolbar serves its own pages; requests under it are never profiled."""

    exclude_paths: Sequence[str] = ()
    """Path prefixes never profiled (health checks, static files, ...), matched by whole
    segments: ``/health`` covers ``/health/db`` but not ``/healthy``."""

    show_toolbar: Callable[[RequestContext], bool] = is_loopback_client
    """Decides per request whether to profile, inject the toolbar and serve its pages.
    The default allows loopback clients only."""

    insert_before: str = "</body>"
    """The toolbar is inserted before the last occurrence of this string in HTML responses."""

    template_dirs: Sequence[str | os.PathLike[str]] = ()
    """Folders where your own panels' templates live, searched after the toolbar's own
    templates (which they cannot replace). Each must be an existing directory."""

    async_profiler_backend: AsyncProfilerBackendName = "auto"
    """Async Profiler backend: ``"taskfactory"``, ``"yappi"`` or ``"auto"``."""

    async_blocking_threshold_ms: float = 100.0
    """A loop stall longer than this is reported as a blocking call."""

    async_enable_blocking_detection: bool = True
    """Run the watchdog thread that names the line blocking the event loop."""

    async_enable_event_loop_monitoring: bool = True
    """Record event-loop lag samples while a request runs."""

    async_event_loop_lag_threshold_ms: float = 10.0
    """Lag samples at or below this are not kept."""

    async_lag_sample_interval_ms: float = 10.0
    """How often the loop heartbeat runs (it measures lag and feeds the watchdog)."""

    async_capture_task_stacks: bool = True
    """Record where each task was created (a cheap frame walk, resolved at render time)."""

    async_max_stack_depth: int = 10
    """Frames kept per creation stack and per blocking-call stack."""

    async_max_tasks: int = 1000
    """Tasks recorded per request; more are counted as dropped."""

    async_max_timeline_rows: int = 500
    """Rows drawn on the timeline; the rest are counted as "N more"."""

    panel_classes: tuple[type[Panel], ...] = field(init=False, repr=False)
    """The resolved, de-duplicated panel classes in toolbar order (derived)."""

    def __post_init__(self) -> None:
        _boolean("enabled", self.enabled)
        for name in (
            "async_enable_blocking_detection",
            "async_enable_event_loop_monitoring",
            "async_capture_task_stacks",
        ):
            _boolean(name, getattr(self, name))
        _at_least("max_request_history", self.max_request_history, 1)
        if not isinstance(self.url_prefix, str) or not self.url_prefix.startswith("/"):
            raise ValueError(
                f"url_prefix must be a path starting with '/', got {self.url_prefix!r}"
            )
        # "//" strips to "", a prefix of every path: refuse it like "/".
        self.url_prefix = self.url_prefix.rstrip("/")
        if not self.url_prefix:
            raise ValueError("url_prefix must not be '/': the toolbar would shadow the whole app")
        if isinstance(self.exclude_paths, str) or not all(
            isinstance(p, str) and p.startswith("/") for p in self.exclude_paths
        ):
            raise ValueError(
                "exclude_paths must be a sequence of paths starting with '/', "
                f"got {self.exclude_paths!r}"
            )
        if not callable(self.show_toolbar):
            raise ValueError(
                "show_toolbar must be a callable taking the request context, "
                f"got {self.show_toolbar!r}"
            )
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
        _positive("async_blocking_threshold_ms", self.async_blocking_threshold_ms)
        _positive("async_event_loop_lag_threshold_ms", self.async_event_loop_lag_threshold_ms)
        _positive("async_lag_sample_interval_ms", self.async_lag_sample_interval_ms)
        _at_least("async_max_stack_depth", self.async_max_stack_depth, 1)
        _at_least("async_max_tasks", self.async_max_tasks, 1)
        _at_least("async_max_timeline_rows", self.async_max_timeline_rows, 1)
        self.panel_classes = self._resolve_panels()

    def _resolve_panels(self) -> tuple[type[Panel], ...]:
        for name in ("panels", "extra_panels", "exclude_panels"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a sequence of panels, not a single string")
        excluded = set(self.exclude_panels)
        resolved: list[type[Panel]] = []
        seen: set[str] = set()
        for spec in (*self.panels, *self.extra_panels):
            panel_class = resolve_panel(spec)
            if panel_class.panel_id in excluded or panel_class.panel_id in seen:
                continue
            seen.add(panel_class.panel_id)
            resolved.append(panel_class)
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
