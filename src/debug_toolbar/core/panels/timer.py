"""TimerPanel: how long the request took, and when its response started.

All durations are read from the request context's ``perf_counter_ns`` values, so they line up
with every other panel's timings. CPU time is shown only with its real meaning: the process's
CPU time is shared by every request running at the same moment, so under concurrency it is not
this request's cost, and the template says so.
"""

from __future__ import annotations

from time import perf_counter_ns, process_time_ns
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.panel import Panel

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext

__all__ = ("TimerPanel",)


class TimerPanel(Panel):
    """Total time, time to the first response byte, and process CPU time during the request."""

    title = "Time"
    template = "panels/timer.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cpu_start_ns: int | None = None
        self._cpu_end_ns: int | None = None

    async def process_request(self, context: RequestContext) -> None:
        self._cpu_start_ns = process_time_ns()

    async def process_response(self, context: RequestContext) -> None:
        self._cpu_end_ns = process_time_ns()

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        end_ns = context.end_ns if context.end_ns is not None else perf_counter_ns()
        total_ms = context.ms_since_start(end_ns)
        response_start_ms: float | None = None
        response_stream_ms: float | None = None
        if context.response_start_ns is not None:
            response_start_ms = context.ms_since_start(context.response_start_ns)
            response_stream_ms = max(total_ms - response_start_ms, 0.0)
        process_cpu_ms: float | None = None
        if self._cpu_start_ns is not None and self._cpu_end_ns is not None:
            process_cpu_ms = (self._cpu_end_ns - self._cpu_start_ns) / 1_000_000
        return {
            "started_at": context.started_at,
            "total_ms": total_ms,
            "response_start_ms": response_start_ms,
            "response_stream_ms": response_stream_ms,
            "process_cpu_ms": process_cpu_ms,
        }

    def get_nav_subtitle(self) -> str:
        total_ms = self.get_stats().get("total_ms")
        return "" if total_ms is None else f"{total_ms:,.1f} ms"
