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

from debug_toolbar.core.server_timing import DurationMetric, ServerTimingMetric, server_timing

if TYPE_CHECKING:
    from debug_toolbar.core.panels.async_profiler.profiler import RequestProgress

__all__ = ("server_timing_value",)

_RUN = DurationMetric("run", "Running on the loop")
_WAIT = DurationMetric("wait", "Awaiting")
_QUEUED = DurationMetric("queued", "Ready but queued behind other work")
_BLOCKED = DurationMetric("blocked", "Other requests' stalls")
_UNRECORDED = DurationMetric("unrecorded", "Past the step cap (async_max_steps)")
# The count's text is built per response from an int and fixed words (nothing to escape); this
# checks it once. No thousands separator: naive readers split the header at commas.
ServerTimingMetric("tasks", None, "0 tasks spawned")


def server_timing_value(progress: RequestProgress) -> str:
    """The ``Server-Timing`` header's value: the breakdown first, then the count (no ``dur``:
    a count is no duration)."""
    metrics: list[str] = []
    breakdown = progress.breakdown
    if breakdown is not None:
        metrics += (
            _RUN(breakdown.running_ms),
            _WAIT(breakdown.waiting_ms),
            _QUEUED(breakdown.queued_ms),
        )
        if progress.blocked_known:
            metrics.append(_BLOCKED(breakdown.blocked_ms))
        if breakdown.unrecorded_ms > 0:
            metrics.append(_UNRECORDED(breakdown.unrecorded_ms))
    tasks = progress.tasks
    metrics.append(f'tasks;desc="{tasks} task{"" if tasks == 1 else "s"} spawned"')
    return server_timing(metrics)
