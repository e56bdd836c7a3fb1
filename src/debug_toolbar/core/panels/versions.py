"""VersionsPanel: the interpreter, the platform and the installed packages.

Reading package metadata touches the file system for every installed distribution, and the
answer cannot change while the process runs, so it is read once per process
(``functools.cache``) and every request shares the result. Only the event loop's class is looked
up per request: it is per loop, not per process, and costs nothing.
"""

from __future__ import annotations

import asyncio
import functools
import platform
import re
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

import debug_toolbar
from debug_toolbar.core.bounds import share
from debug_toolbar.core.panel import Panel

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext

__all__ = ("HIGHLIGHTED_PACKAGES", "VersionsPanel", "process_versions")

HIGHLIGHTED_PACKAGES: tuple[str, ...] = (
    "debug-toolbar",
    "litestar",
    "msgspec",
    "jinja2",
    "markupsafe",
    "uvicorn",
    "hypercorn",
    "granian",
    "uvloop",
    "anyio",
    "yappi",
)
"""Shown at the top, installed or not: what usually explains an async app's behaviour."""


def _normalize(name: str) -> str:
    """PEP 503 name normalization, so "Jinja2" and "jinja2" are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_distributions() -> dict[str, tuple[str, str]]:
    """normalized name -> (display name, version), the first one on sys.path winning."""
    found: dict[str, tuple[str, str]] = {}
    for dist in metadata.distributions():
        # ``metadata`` parses the file on each access: read it once. Membership tests first,
        # because a missing key is deprecated (and will raise) on newer Pythons; ``.get`` is not
        # part of the PackageMetadata protocol before 3.12.
        meta = dist.metadata
        name = meta["Name"] if "Name" in meta else None  # noqa: SIM401
        if not name:
            continue  # broken metadata: nothing sensible to show
        version = meta["Version"] if "Version" in meta else "unknown"  # noqa: SIM401
        found.setdefault(_normalize(name), (name, version))
    return found


@functools.cache
def process_versions() -> dict[str, Any]:
    """Everything the panel shows that is fixed for the life of the process (computed once).

    The result is shared by all requests' stats: treat it as read-only.
    """
    installed = _installed_distributions()
    highlighted = []
    for name in HIGHLIGHTED_PACKAGES:
        display, version = installed.get(name, (name, None))
        highlighted.append({"name": display, "version": version})
    if highlighted[0]["version"] is None:
        # Running from a source tree without an install: the package still knows its version.
        highlighted[0]["version"] = debug_toolbar.__version__
    # Shared: the history counts it once, not once per record (``bounds.share``).
    return share(
        {
            "python_version": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "python_build": " ".join(platform.python_build()),
            "python_compiler": platform.python_compiler(),
            "executable": sys.executable,
            "platform": platform.platform(),
            "packages": highlighted,
            "distributions": [
                {"name": display, "version": version}
                for _, (display, version) in sorted(installed.items())
            ],
        }
    )


def _event_loop_name() -> str | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    loop_class = type(loop)
    return f"{loop_class.__module__}.{loop_class.__qualname__}"


class VersionsPanel(Panel):
    """Python, platform, event loop and package versions."""

    title = "Versions"
    template = "panels/versions.html"

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        return {**process_versions(), "event_loop": _event_loop_name()}

    def get_nav_subtitle(self) -> str:
        version = self.get_stats().get("python_version")
        return f"Python {version}" if version else ""
