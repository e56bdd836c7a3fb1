"""RequestHistory: bounded, newest first, oldest evicted first, safe under many threads."""

from __future__ import annotations

import threading

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.records import PanelRecord, RequestRecord
from debug_toolbar.core.storage import DEFAULT_MAX_BYTES, RequestHistory

KIB = 1024


def _record(
    request_id: str, query_string: str = "", panels: tuple[PanelRecord, ...] = ()
) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        method="GET",
        path=f"/{request_id}",
        query_string=query_string,
        status_code=200,
        duration_ms=1.0,
        started_at=1_700_000_000.0,
        panels=panels,
    )


def _sized(request_id: str, kib: int) -> RequestRecord:
    """A record of about ``kib`` KiB (a query string that long)."""
    return _record(request_id, "q=" + "a" * (kib * KIB))


def _lazy_panel(built: dict[str, object], deferred_size: int = 0) -> PanelRecord:
    return PanelRecord(
        panel_id="Lazy",
        title="Lazy",
        nav_title="Lazy",
        nav_subtitle="",
        template="",
        has_content=True,
        enabled=True,
        stats={},
        deferred=(lambda: built,),
        deferred_size=deferred_size,
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


class TestByteBudget:
    @pytest.mark.parametrize("max_bytes", [0, -1, True, 1.5, "3"])
    def test_invalid_budget(self, max_bytes: object) -> None:
        with pytest.raises(ValueError, match="max_bytes"):
            RequestHistory(5, max_bytes)  # type: ignore[arg-type]

    def test_for_config_takes_both_bounds(self) -> None:
        config = DebugToolbarConfig(max_request_history=7, max_request_history_bytes=2**21)
        history = RequestHistory.for_config(config)
        assert (history.max_size, history.max_bytes) == (7, 2**21)
        assert RequestHistory().max_bytes == DEFAULT_MAX_BYTES

    def test_oldest_dropped_first_to_stay_within_the_budget(self) -> None:
        history = RequestHistory(max_size=50, max_bytes=100 * KIB)
        for index in range(10):
            history.add(_sized(f"r{index}", 30))
            assert history.size <= history.max_bytes
        kept = [r.request_id for r in history.records()]
        assert kept == ["r9", "r8", "r7"]
        assert history.size == sum(r.approx_size for r in history.records())
        assert (history.evicted, history.evicted_for_size) == (7, 7)

    def test_dropped_by_count_and_by_size_are_told_apart(self) -> None:
        history = RequestHistory(max_size=2, max_bytes=100 * KIB)
        for index in range(4):
            history.add(_record(f"small{index}"))
        assert (history.evicted, history.evicted_for_size) == (2, 0)
        # Within the budget alone, over it with any other record.
        small = _record("small9").approx_size
        length = history.max_bytes - small // 2 - _record("big").approx_size
        history.add(_record("big", "q" * length))
        assert [r.request_id for r in history.records()] == ["big"]
        assert (history.evicted, history.evicted_for_size) == (4, 1)  # one by count first

    def test_the_newest_is_kept_even_alone_over_the_budget(self) -> None:
        history = RequestHistory(max_size=5, max_bytes=10 * KIB)
        history.add(_record("small"))
        history.add(_sized("huge", 50))
        assert [r.request_id for r in history.records()] == ["huge"]
        assert history.size > history.max_bytes
        history.add(_record("next"))
        assert [r.request_id for r in history.records()] == ["next"]
        assert history.size <= history.max_bytes

    def test_replacing_a_record_counts_only_the_new_one(self) -> None:
        history = RequestHistory(max_size=5, max_bytes=DEFAULT_MAX_BYTES)
        history.add(_sized("a", 40))
        history.add(_record("a"))
        assert history.size == _record("a").approx_size

    def test_deferred_stats_built_later_count_and_can_drop_older_records(self) -> None:
        history = RequestHistory(max_size=10, max_bytes=100 * KIB)
        history.add(_sized("old", 60))
        lazy = _record("lazy", panels=(_lazy_panel({"tasks": ["t" * 50 * KIB]}, 1 * KIB),))
        history.add(lazy)
        unbuilt = lazy.approx_size
        assert len(history) == 2
        panel = lazy.panel("Lazy")
        assert panel is not None
        assert panel.stats["tasks"][0].startswith("t")
        # The 50 KiB built replace the 1 KiB the panel estimated: the old record has to go.
        assert 48 * KIB < lazy.approx_size - unbuilt < 50 * KIB
        assert [r.request_id for r in history.records()] == ["lazy"]
        assert history.evicted_for_size == 1
        assert history.size == lazy.approx_size <= history.max_bytes

    def test_a_dropped_record_built_later_is_not_counted(self) -> None:
        history = RequestHistory(max_size=1, max_bytes=DEFAULT_MAX_BYTES)
        lazy = _record("lazy", panels=(_lazy_panel({"tasks": ["t" * 10 * KIB]}),))
        history.add(lazy)
        history.add(_record("next"))
        panel = lazy.panel("Lazy")
        assert panel is not None
        assert panel.stats["tasks"]
        assert history.size == _record("next").approx_size

    def test_clear_forgets_the_size(self) -> None:
        history = RequestHistory(max_size=5)
        history.add(_sized("a", 10))
        history.clear()
        assert history.size == 0


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
