"""Run every benchmark module (or those named): ``python -m benchmarks [tasks toolbar ...]``.

Modules are the ``bench_*.py`` files of this package, run in name order, each in turn; a name on
the command line selects ``bench_<name>``. The ``Result`` rows they return are printed together
at the end.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks import Result


def _module_names() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if info.name.startswith("bench_")
    )


def _summary(results: list[tuple[str, Result]]) -> None:
    if not results:
        return
    width = max(len(result.name) for _, result in results)
    print("\nsummary")
    print(f"  {'module':<16} {'figure':<{width}} {'measured':>10} {'goal':>10}")
    for module, result in results:
        verdict = "ok" if result.met else "UNDER GOAL" if result.at_least else "OVER GOAL"
        print(
            f"  {module:<16} {result.name:<{width}} {result.format_value(result.value):>10} "
            f"{result.goal_text:>10}  {verdict}"
        )


def main(argv: list[str]) -> int:
    available = _module_names()
    wanted = [f"bench_{name.removeprefix('bench_')}" for name in argv] or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    results: list[tuple[str, Result]] = []
    for name in wanted:
        print(f"\n=== {name}")
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        returned = module.run()
        if isinstance(returned, list):
            results.extend((name, row) for row in returned if isinstance(row, Result))
        print(f"  ({time.perf_counter() - started:.1f} s)")
    _summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
