"""The Async panel's ``Server-Timing`` header: where the request's time went, in the network tab.

Added to every profiled response when it starts (``async_server_timing``), HTML or not, so a
JSON route that gets no toolbar shows its breakdown in the browser's developer tools. Computed
from what was collected up to that moment (``AsyncRequestProfiler.progress``): the request's own
task from the start of profiling to the response's start, as the panel's breakdown measures it
(``run``, ``wait``, ``queued``, ``blocked``), and the tasks it spawned so far (``tasks``).

Only what is known is said. Without steps (Python before 3.12, ``async_step_timing`` off, no
free ``sys.monitoring`` tool) the header has ``tasks`` alone; without blocking detection there
is no ``blocked`` (other requests' stalls are not watched, so their time is in the other parts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from debug_toolbar.core.server_timing import ServerTimingMetric, server_timing

if TYPE_CHECKING:
    from debug_toolbar.core.panels.async_profiler.profiler import RequestProgress

__all__ = ("server_timing_metrics", "server_timing_value")


def server_timing_metrics(progress: RequestProgress) -> list[ServerTimingMetric]:
    """The header's metrics, breakdown first; a count has no ``dur`` (it is no duration)."""
    metrics: list[ServerTimingMetric] = []
    breakdown = progress.breakdown
    if breakdown is not None:
        metrics += [
            ServerTimingMetric("run", breakdown.running_ms, "Running on the loop"),
            ServerTimingMetric("wait", breakdown.waiting_ms, "Awaiting"),
            ServerTimingMetric("queued", breakdown.queued_ms, "Ready, queued behind other work"),
        ]
        if progress.blocked_known:
            metrics.append(
                ServerTimingMetric("blocked", breakdown.blocked_ms, "Other requests' stalls")
            )
        if breakdown.unrecorded_ms > 0:
            metrics.append(
                ServerTimingMetric(
                    "unrecorded", breakdown.unrecorded_ms, "Past the step cap (async_max_steps)"
                )
            )
    tasks = progress.tasks  # no thousands separator: naive readers split the header at commas
    metrics.append(
        ServerTimingMetric("tasks", None, f"{tasks} task{'' if tasks == 1 else 's'} spawned")
    )
    return metrics


def server_timing_value(progress: RequestProgress) -> str:
    """The ``Server-Timing`` header's value for ``progress``."""
    return server_timing(server_timing_metrics(progress))
