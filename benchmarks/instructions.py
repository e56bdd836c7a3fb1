"""Instructions per request, counted by valgrind: a figure the machine's noise does not move.

Timings on a shared VM drift by 10-20 % within minutes; an instruction count is the same on
every run. This runs an in-process noop request (``benchmarks._in_process.batch_us``, no
server, no I/O) 100 and 600 times under ``valgrind --tool=callgrind`` and divides the
difference by 500, so start-up and warm-up cancel out (with a fixed hash seed, the count varies
by about 1 % between runs; without, by 1-2 %). Variants: the toolbar without the Async
panel, the panel with its defaults, and the panel with task tracking alone.

    python -m benchmarks.instructions                 # every variant, this interpreter
    python -m benchmarks.instructions panel toolbar   # some of them
    .venv-3.13/bin/python -m benchmarks.instructions  # another interpreter (step timing on)

Needs ``valgrind`` on the PATH (``apt-get install valgrind``); says so and exits 2 without it.
Not part of ``make bench``: it takes a minute or two per variant.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._in_process import batch_us

__all__ = ("VARIANTS", "count", "main")

REPO = Path(__file__).resolve().parent.parent
WARM_UP = 300
FEW, MANY = 100, 600
VARIANTS: dict[str, dict[str, Any] | None] = {
    "toolbar": None,
    "panel": {},
    "tasks-only": {
        "async_enable_blocking_detection": False,
        "async_enable_event_loop_monitoring": False,
    },
}
"""Variant name -> the Async panel's options (None: the toolbar without the panel)."""

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _app(variant: str) -> Any:
    from benchmarks.bench_async_panel import _panel_config, _routes
    from debug_toolbar.asgi import DebugToolbarMiddleware
    from debug_toolbar.core.config import DebugToolbarConfig

    options = VARIANTS[variant]
    config = DebugToolbarConfig() if options is None else _panel_config(**options)
    return DebugToolbarMiddleware(_routes, config)


async def _requests(variant: str, requests: int) -> None:
    app = _app(variant)
    await batch_us(app, "/noop", WARM_UP)
    await batch_us(app, "/noop", requests)


def _instructions(variant: str, requests: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--inner",
        variant,
        str(requests),
    ]
    # A fixed hash seed: set and dict orders, and so the counts, are then the same every run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind failed for {variant!r}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def count(variant: str) -> int:
    """Instructions per noop request for ``variant``."""
    return (_instructions(variant, MANY) - _instructions(variant, FEW)) // (MANY - FEW)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--inner"]:
        asyncio.run(_requests(argv[1], int(argv[2])))
        return 0
    unknown = [name for name in argv if name not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}", file=sys.stderr)
        return 2
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    print(f"Python {sys.version.split()[0]}: instructions per in-process noop request")
    counts: dict[str, int] = {}
    for variant in argv or list(VARIANTS):
        counts[variant] = count(variant)
        extra = ""
        if variant != "toolbar" and "toolbar" in counts:
            extra = f"  (+{counts[variant] - counts['toolbar']:,} over the toolbar)"
        print(f"  {variant:12s} {counts[variant]:>12,}{extra}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
