"""Bounded, thread-safe history of request records.

Shared by the middleware (writes, from the event loop) and the toolbar's pages (reads, possibly
from another loop or thread under some servers), hence the lock.

Bounded twice: by count (``max_size`` records) and by size (``max_bytes``, from each record's
``approx_size``). A count alone does not bound memory: fifty records of requests with 1 MB
query strings held some 900 MB before records were bounded in size.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.records import RequestRecord

__all__ = ("DEFAULT_MAX_BYTES", "RequestHistory")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""The default byte budget of a history (``max_request_history_bytes``)."""


class RequestHistory:
    """Keeps the newest ``max_size`` records within ``max_bytes``; the oldest go first.

    The newest record is always kept, even alone over the budget: it is the one the page just
    served links to. A record's size can grow after it was added, when its deferred stats are
    built (the Async panel's tasks, on first read); the history is told, and drops older
    records if the budget is exceeded.
    """

    def __init__(self, max_size: int = 50, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be an integer >= 1, got {max_size!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be an integer >= 1, got {max_bytes!r}")
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._records: OrderedDict[str, RequestRecord] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._lock = threading.Lock()
        self._evicted = 0
        self._evicted_for_size = 0

    @classmethod
    def for_config(cls, config: DebugToolbarConfig) -> RequestHistory:
        """A history bounded as ``config`` says (``max_request_history`` and its bytes)."""
        return cls(config.max_request_history, config.max_request_history_bytes)

    def add(self, record: RequestRecord) -> None:
        size = record.approx_size
        with self._lock:
            request_id = record.request_id
            replaced = self._records.pop(request_id, None)
            if replaced is not None:
                self._forget(replaced)
            self._records[request_id] = record
            self._sizes[request_id] = size
            self._total += size
            while len(self._records) > self.max_size:
                self._drop_oldest(for_size=False)
            self._drop_for_size()
        growth = functools.partial(self._grew, record)
        for panel in record.panels:
            panel.on_growth(growth)

    def _grew(self, record: RequestRecord, growth: int) -> None:
        """A kept record's deferred stats were built: count them, keep within the budget."""
        with self._lock:
            request_id = record.request_id
            if self._records.get(request_id) is not record:
                return  # dropped meanwhile: nothing to count
            self._sizes[request_id] += growth
            self._total += growth
            self._drop_for_size()

    def _drop_for_size(self) -> None:
        """Under the lock: drop the oldest records until the rest fit (the newest stays)."""
        while self._total > self.max_bytes and len(self._records) > 1:
            self._drop_oldest(for_size=True)

    def _drop_oldest(self, *, for_size: bool) -> None:
        _, record = self._records.popitem(last=False)
        self._forget(record)
        self._evicted += 1
        if for_size:
            self._evicted_for_size += 1

    def _forget(self, record: RequestRecord) -> None:
        self._total -= self._sizes.pop(record.request_id)
        for panel in record.panels:
            panel.on_growth(None)

    def get(self, request_id: str) -> RequestRecord | None:
        with self._lock:
            return self._records.get(request_id)

    def records(self) -> list[RequestRecord]:
        """All kept records, newest first."""
        with self._lock:
            return list(reversed(self._records.values()))

    @property
    def evicted(self) -> int:
        """How many records were dropped, to respect ``max_size`` or ``max_bytes``."""
        return self._evicted

    @property
    def evicted_for_size(self) -> int:
        """How many of the ``evicted`` records were dropped to respect ``max_bytes``."""
        return self._evicted_for_size

    @property
    def size(self) -> int:
        """Estimated bytes held by the kept records (``RequestRecord.approx_size``)."""
        return self._total

    def clear(self) -> None:
        with self._lock:
            for record in self._records.values():
                for panel in record.panels:
                    panel.on_growth(None)
            self._records.clear()
            self._sizes.clear()
            self._total = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __contains__(self, request_id: object) -> bool:
        with self._lock:
            return request_id in self._records
