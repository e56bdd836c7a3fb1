"""The Async panel's columns in the history's list of requests: its async story at a glance.

Tasks spawned, blocking calls (its own; those it suffered as a second figure) and the slowest
await of the request's own task (how long, and at which line), so the bad request is found
without opening each. Read from the record's head only (the profile's summary, recorded when
the request was answered): the history shows a hundred records a page and builds none of their
details. A record kept by an older version lacks the slowest await: that cell stays empty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from debug_toolbar.core.panel import HistoryCell, HistoryColumn
from debug_toolbar.core.panels.async_profiler.steps import format_ms

__all__ = ("HISTORY_COLUMNS", "history_cells")

HISTORY_COLUMNS = (
    HistoryColumn("tasks", "Tasks", "Tasks the request spawned", numeric=True),
    HistoryColumn(
        "blocking",
        "Blocking",
        "Blocking calls the request made; + those it suffered (other requests', or unknown)",
        numeric=True,
    ),
    HistoryColumn(
        "slowest_await",
        "Slowest await",
        "The longest await of the request's own task (waiting and queued), and its line",
    ),
)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tasks(summary: Mapping[str, Any]) -> HistoryCell | None:
    total = _count(summary.get("total_tasks"))
    if total is None:
        return None
    parts = [
        f"{count:,} {state}"
        for state in ("completed", "cancelled", "failed", "pending", "dropped")
        if (count := _count(summary.get(state)))
    ]
    return HistoryCell(
        f"{total:,}",
        title=", ".join(parts) if parts else "No task spawned",
        warn=bool(_count(summary.get("failed"))),
    )


def _blocking(summary: Mapping[str, Any]) -> HistoryCell | None:
    own = _count(summary.get("blocking_calls"))
    if own is None:
        return None
    suffered = _count(summary.get("suffered_blocking_calls")) or 0
    title = f"{own:,} blocking call{'' if own == 1 else 's'} of its own"
    if suffered:
        title += f"; {suffered:,} suffered (the loop blocked by another request, or unknown)"
    return HistoryCell(
        f"{own:,}", note=f"+{suffered:,} suffered" if suffered else "", title=title, warn=own > 0
    )


def _slowest(stats: Mapping[str, Any], summary: Mapping[str, Any]) -> HistoryCell | None:
    if "slowest_await" not in summary:
        return None  # recorded by an older version
    slowest = summary["slowest_await"]
    if not isinstance(slowest, Mapping):
        why = stats.get("steps_unavailable")
        return HistoryCell(
            "–",
            title=f"No steps: {why}" if why else "The request's own task never awaited",
        )
    duration = slowest.get("duration_ms")
    if not isinstance(duration, (int, float)):
        return None
    filename, lineno = slowest.get("filename"), slowest.get("lineno")
    where = "" if filename is None else f"{os.path.basename(str(filename))}:{lineno}"
    details = [f"{format_ms(float(duration))} awaiting {slowest.get('awaited') or 'something'}"]
    if filename is not None:
        details.append(f"in {slowest.get('function')} at {filename}:{lineno}")
    if slowest.get("code"):
        details.append(str(slowest["code"]))
    return HistoryCell(format_ms(float(duration)), note=where, title="\n".join(details))


def history_cells(stats: Mapping[str, Any]) -> dict[str, HistoryCell]:
    """The cells of one record from the panel's stored head (``AsyncProfile.head_dict``)."""
    summary = stats.get("summary")
    if not isinstance(summary, Mapping):
        return {}
    cells = {
        "tasks": _tasks(summary),
        "blocking": _blocking(summary),
        "slowest_await": _slowest(stats, summary),
    }
    return {key: cell for key, cell in cells.items() if cell is not None}
