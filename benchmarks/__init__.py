"""Benchmarks for debug-toolbar, run with ``python -m benchmarks`` (``make bench``).

Each ``bench_*.py`` module has a ``run()`` that measures and prints its own figures. A module
may also return ``Result`` rows: ``python -m benchmarks`` collects those into one summary table
at the end, with each figure next to its goal. Every benchmark bounds its own rounds and time,
measures the variants it compares side by side in one run (interleaved, medians), and binds
servers to 127.0.0.1 only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Result",)


@dataclass(frozen=True)
class Result:
    """One headline figure: a ratio (or a time) and the goal it is held to."""

    name: str
    value: float
    goal: float
    unit: str = "x"
    """``x`` for ratios; anything else is printed after the value."""
    at_least: bool = False
    """The goal is a floor (a throughput ratio), not a ceiling."""

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    @property
    def goal_text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.format_value(self.goal)}"

    def format_value(self, value: float) -> str:
        if self.unit == "x":
            return f"{value:.2f}x"
        # Small times in ms need the third decimal (a goal of +0.05 ms).
        return f"{value:.3f} {self.unit}" if abs(value) < 1 else f"{value:.2f} {self.unit}"
