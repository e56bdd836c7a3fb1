"""RequestHistory: bounded, newest first, oldest evicted first, safe under many threads."""

from __future__ import annotations

import threading

import pytest

from debug_toolbar.core.records import RequestRecord
from debug_toolbar.core.storage import RequestHistory


def _record(request_id: str) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        method="GET",
        path=f"/{request_id}",
        query_string="",
        status_code=200,
        duration_ms=1.0,
        started_at=1_700_000_000.0,
        panels=(),
    )


class TestBounds:
    @pytest.mark.parametrize("size", [0, -1, True, 1.5, "3"])
    def test_invalid_size(self, size: object) -> None:
        with pytest.raises(ValueError, match="max_size"):
            RequestHistory(size)  # type: ignore[arg-type]

    def test_keeps_newest_and_counts_evictions(self) -> None:
        history = RequestHistory(max_size=3)
        for index in range(5):
            history.add(_record(f"r{index}"))
        assert len(history) == 3
        assert [r.request_id for r in history.records()] == ["r4", "r3", "r2"]
        assert history.evicted == 2
        assert history.get("r0") is None
        assert history.get("r1") is None
        assert "r0" not in history
        assert "r2" in history

    def test_eviction_order_is_insertion_order(self) -> None:
        history = RequestHistory(max_size=2)
        history.add(_record("a"))
        history.add(_record("b"))
        history.add(_record("c"))
        assert "a" not in history
        history.add(_record("d"))
        assert [r.request_id for r in history.records()] == ["d", "c"]

    def test_re_adding_an_id_replaces_and_refreshes_it(self) -> None:
        history = RequestHistory(max_size=2)
        first = _record("a")
        history.add(first)
        history.add(_record("b"))
        replacement = _record("a")
        history.add(replacement)
        assert len(history) == 2
        assert history.get("a") is replacement
        history.add(_record("c"))
        # "a" was refreshed, so "b" is now the oldest and goes first.
        assert [r.request_id for r in history.records()] == ["c", "a"]

    def test_get_and_clear(self) -> None:
        history = RequestHistory(max_size=5)
        record = _record("x")
        history.add(record)
        assert history.get("x") is record
        assert history.get("missing") is None
        history.clear()
        assert len(history) == 0
        assert history.records() == []

    def test_records_returns_a_copy(self) -> None:
        history = RequestHistory(max_size=5)
        history.add(_record("x"))
        listing = history.records()
        listing.clear()
        assert len(history) == 1


class TestThreadSafety:
    def test_concurrent_adds_and_reads(self) -> None:
        max_size = 25
        threads_count = 16
        per_thread = 400
        history = RequestHistory(max_size=max_size)
        errors: list[BaseException] = []
        sizes: list[int] = []
        start = threading.Barrier(threads_count + 1)

        def writer(thread_index: int) -> None:
            try:
                start.wait()
                for index in range(per_thread):
                    history.add(_record(f"t{thread_index}-{index}"))
                    if index % 20 == 0:
                        sizes.append(len(history.records()))
            except BaseException as exc:  # pragma: no cover - only on failure
                errors.append(exc)

        def reader() -> None:
            try:
                start.wait()
                for _ in range(per_thread):
                    sizes.append(len(history))
                    for record in history.records():
                        history.get(record.request_id)
            except BaseException as exc:  # pragma: no cover - only on failure
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count - 1)]
        threads.append(threading.Thread(target=reader))
        for thread in threads:
            thread.start()
        start.wait()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert max(sizes) <= max_size
        assert len(history) == max_size
        total = (threads_count - 1) * per_thread
        assert history.evicted == total - max_size
        # Each writer's own records are kept in the order it added them.
        kept = [r.request_id for r in reversed(history.records())]
        for thread_index in range(threads_count - 1):
            own = [int(rid.split("-")[1]) for rid in kept if rid.startswith(f"t{thread_index}-")]
            assert own == sorted(own)
