"""Which backend class runs for a configured ``async_profiler_backend`` name.

The one place that knows the backends, so adding one (the yappi adapter lives in its own
module, ``yappi_backend``, with a ``YappiBackend`` class) does not touch the panel. A backend
that was asked for by name and cannot run is an error that says what to install; it never
silently becomes another backend. Only ``"auto"`` falls back.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

if TYPE_CHECKING:
    from debug_toolbar.core.panels.async_profiler.base import AsyncProfilerBackend

__all__ = ("YAPPI_BACKEND_MODULE", "BackendUnavailableError", "select_backend")

YAPPI_BACKEND_MODULE = "debug_toolbar.core.panels.async_profiler.yappi_backend"
"""Where ``YappiBackend`` lives; imported only when yappi is asked for (or by ``auto``)."""

_YAPPI_EXTRA = "pip install 'debug-toolbar[yappi]'"


class BackendUnavailableError(ImportError):
    """The configured backend cannot run in this environment; the message names the fix."""


def _yappi_backend() -> type[AsyncProfilerBackend]:
    try:
        import yappi  # noqa: F401  (only checking that it imports)
    except ImportError as exc:
        raise BackendUnavailableError(
            "async_profiler_backend='yappi' needs the yappi package, which cannot be imported "
            f"({exc}); install the extra: {_YAPPI_EXTRA}"
        ) from exc
    try:
        module = importlib.import_module(YAPPI_BACKEND_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != YAPPI_BACKEND_MODULE:
            raise
        raise BackendUnavailableError(
            "async_profiler_backend='yappi': the yappi backend is not available in this version "
            "of debug-toolbar; use 'taskfactory' or 'auto'"
        ) from None
    backend: type[AsyncProfilerBackend] = module.YappiBackend
    if not backend.is_available():
        raise BackendUnavailableError(
            f"async_profiler_backend='yappi': yappi is installed but unusable here; {_YAPPI_EXTRA}"
        )
    return backend


def select_backend(name: str) -> type[AsyncProfilerBackend]:
    """The backend class for ``name`` ("taskfactory", "yappi" or "auto").

    ``auto`` is yappi when both yappi and its backend module can be imported, else the task
    factory. Raises ``BackendUnavailableError`` for ``yappi`` when it cannot run, and
    ``ValueError`` for a name no backend has (the config rejects those earlier).
    """
    if name == "taskfactory":
        return TaskFactoryBackend
    if name == "yappi":
        return _yappi_backend()
    if name == "auto":
        try:
            return _yappi_backend()
        except BackendUnavailableError:
            return TaskFactoryBackend
    raise ValueError(
        f"async_profiler_backend must be one of 'auto', 'taskfactory', 'yappi', got {name!r}"
    )
