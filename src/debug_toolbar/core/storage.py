"""Bounded, thread-safe history of request records.

Shared by the middleware (writes, from the event loop) and the toolbar's pages (reads, possibly
from another loop or thread under some servers), hence the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from debug_toolbar.core.records import RequestRecord

__all__ = ("RequestHistory",)


class RequestHistory:
    """Keeps the newest ``max_size`` records; adding one more drops the oldest."""

    def __init__(self, max_size: int = 50) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be an integer >= 1, got {max_size!r}")
        self.max_size = max_size
        self._records: OrderedDict[str, RequestRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._evicted = 0

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records[record.request_id] = record
            self._records.move_to_end(record.request_id)
            while len(self._records) > self.max_size:
                self._records.popitem(last=False)
                self._evicted += 1

    def get(self, request_id: str) -> RequestRecord | None:
        with self._lock:
            return self._records.get(request_id)

    def records(self) -> list[RequestRecord]:
        """All kept records, newest first."""
        with self._lock:
            return list(reversed(self._records.values()))

    @property
    def evicted(self) -> int:
        """How many records were dropped to respect ``max_size``."""
        return self._evicted

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __contains__(self, request_id: object) -> bool:
        with self._lock:
            return request_id in self._records
