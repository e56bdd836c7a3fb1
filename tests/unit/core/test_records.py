"""PanelRecord / RequestRecord: immutable plain data, and the JSON API's view of it."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from debug_toolbar.core.bounds import bound
from debug_toolbar.core.config import DEFAULT_PANELS
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE, RequestContext
from debug_toolbar.core.records import HeadBuilder, PanelRecord, PanelStats, RequestRecord

ScopeFactory = Callable[..., dict[str, Any]]
Lifecycle = Callable[..., Any]


def _panel(
    panel_id: str,
    *,
    enabled: bool = True,
    error: str | None = None,
    stats: dict[str, Any] | None = None,
    deferred: tuple[Callable[[], dict[str, Any]], ...] = (),
) -> PanelRecord:
    if stats is None:
        stats = {} if error or not enabled else {"value": panel_id}
    return PanelRecord(
        panel_id=panel_id,
        title=panel_id.title(),
        nav_title=panel_id,
        nav_subtitle=f"{panel_id} subtitle",
        template=f"panels/{panel_id}.html",
        has_content=True,
        enabled=enabled,
        stats=stats,
        error=error,
        deferred=deferred,
    )


def _record(*panels: PanelRecord) -> RequestRecord:
    return RequestRecord(
        request_id="abc",
        method="GET",
        path="/p",
        query_string="x=1",
        status_code=200,
        duration_ms=3.5,
        started_at=1_700_000_000.0,
        panels=panels,
    )


class TestRecords:
    def test_frozen(self) -> None:
        record = _record(_panel("one"))
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.status_code = 500  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.panels[0].error = "x"  # type: ignore[misc]

    def test_panel_lookup(self) -> None:
        one, two = _panel("one"), _panel("two")
        record = _record(one, two)
        assert record.panel("two") is two
        assert record.panel("three") is None

    def test_api_dict(self) -> None:
        record = _record(
            _panel("ok"), _panel("off", enabled=False), _panel("broken", error="KeyError: 'x'")
        )
        assert record.to_api_dict() == {
            "request_id": "abc",
            "method": "GET",
            "path": "/p",
            "query_string": "x=1",
            "status_code": 200,
            "duration_ms": 3.5,
            "started_at": 1_700_000_000.0,
            "error": None,
            "body_cut_at": None,
            "client_disconnected": False,
            "panels": {"ok": {"value": "ok"}},
            "panel_errors": {"broken": "KeyError: 'x'"},
        }


class TestStandardPanelsAreJsonData:
    @pytest.mark.asyncio
    async def test_api_dict_round_trips_through_json(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        async def app(context: RequestContext) -> None:
            logging.getLogger("debug_toolbar").warning("a record for the logging panel")

        _, record = await run_lifecycle(
            list(DEFAULT_PANELS), RequestContext.from_scope(make_scope()), app
        )
        api = record.to_api_dict()
        assert api["panel_errors"] == {}
        assert list(api["panels"]) == [
            "TimerPanel",
            "RequestPanel",
            "ResponsePanel",
            "LoggingPanel",
            "VersionsPanel",
        ]
        assert json.loads(json.dumps(api)) == api
        assert api["panels"]["LoggingPanel"]["records"][0]["message"] == (
            "a record for the logging panel"
        )

    @pytest.mark.asyncio
    async def test_disabled_standard_panel_is_left_out(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        headers = [(b"cookie", f"{DISABLED_PANELS_COOKIE}=VersionsPanel".encode())]
        _, record = await run_lifecycle(
            list(DEFAULT_PANELS), RequestContext.from_scope(make_scope(headers=headers))
        )
        assert "VersionsPanel" not in record.to_api_dict()["panels"]
        versions = record.panel("VersionsPanel")
        assert versions is not None
        assert versions.enabled is False


class _CountingBuilder:
    """A deferred-stats builder that counts its calls (and can be made slow or broken)."""

    def __init__(self, result: dict[str, Any], *, delay_s: float = 0.0, fail: bool = False):
        self.result = result
        self.delay_s = delay_s
        self.fail = fail
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise ValueError("no stats today")
        return self.result


def _deferred_panel(*builders: _CountingBuilder) -> PanelRecord:
    return _panel("lazy", stats={"summary": 3}, deferred=builders)


class TestDeferredStats:
    def test_built_on_first_read_then_plain_data(self) -> None:
        tasks = _CountingBuilder({"tasks": [1, 2, 3]})
        extra = _CountingBuilder({"extra": True})
        panel = _deferred_panel(tasks, extra)
        assert (tasks.calls, extra.calls) == (0, 0)
        assert panel.resolve() == PanelStats(
            {"summary": 3, "tasks": [1, 2, 3], "extra": True}, None
        )
        assert panel.stats == panel.resolve().stats
        assert (tasks.calls, extra.calls) == (1, 1)  # built once, whatever the reads

    def test_reading_the_error_or_the_nav_does_not_build(self) -> None:
        builder = _CountingBuilder({"tasks": []})
        panel = _deferred_panel(builder)
        assert panel.error is None
        assert panel.nav_subtitle == "lazy subtitle"
        assert builder.calls == 0

    def test_what_the_builders_closed_over_is_freed_once_built(self) -> None:
        builder = _CountingBuilder({"tasks": ["t"]})
        alive = weakref.ref(builder)
        panel = _deferred_panel(builder)
        del builder
        gc.collect()
        assert alive() is not None  # held by the record until someone reads it
        assert panel.resolve().stats == {"summary": 3, "tasks": ["t"]}
        gc.collect()
        assert alive() is None
        assert panel.resolve().stats == {"summary": 3, "tasks": ["t"]}

    def test_the_api_view_includes_the_deferred_part(self) -> None:
        record = _record(_deferred_panel(_CountingBuilder({"tasks": ["t"]})))
        assert record.to_api_dict()["panels"]["lazy"] == {"summary": 3, "tasks": ["t"]}

    def test_concurrent_first_reads_build_once(self) -> None:
        builder = _CountingBuilder({"tasks": ["t"]}, delay_s=0.05)
        panel = _deferred_panel(builder)
        barrier = threading.Barrier(4)
        seen: list[dict[str, Any]] = []

        def read() -> None:
            barrier.wait()
            seen.append(panel.stats)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert builder.calls == 1
        assert all(stats == {"summary": 3, "tasks": ["t"]} for stats in seen)

    def test_a_failing_builder_becomes_the_panels_error(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        broken = _CountingBuilder({}, fail=True)
        fine = _CountingBuilder({"tasks": []})
        panel = _deferred_panel(broken, fine)
        assert panel.error is None  # known at build time: nothing failed yet
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            resolved = panel.resolve()
        # One call, stats and error together: no order of reads to get right.
        assert resolved == PanelStats({"summary": 3, "tasks": []}, "ValueError: no stats today")
        assert "lazy failed building its stats" in caplog.text
        assert panel.resolve() == resolved
        assert broken.calls == 1  # not retried on every read

    def test_the_api_view_lists_a_failed_build_as_an_error(self) -> None:
        record = _record(_deferred_panel(_CountingBuilder({}, fail=True)))
        view = record.to_api_dict()
        assert view["panels"] == {}
        assert view["panel_errors"] == {"lazy": "ValueError: no stats today"}

    def test_with_error_keeps_everything_else(self) -> None:
        panel = _deferred_panel(_CountingBuilder({"tasks": ["t"]}))
        failed = panel.with_error("rendering its template failed: boom")
        assert failed.error == "rendering its template failed: boom"
        assert failed.stats == panel.stats == {"summary": 3, "tasks": ["t"]}
        assert (failed.panel_id, failed.nav_subtitle) == ("lazy", "lazy subtitle")
        assert panel.error is None

    def test_frozen_even_while_pending(self) -> None:
        panel = _deferred_panel(_CountingBuilder({"tasks": []}))
        with pytest.raises(dataclasses.FrozenInstanceError):
            panel.stats = {}  # type: ignore[misc]


def _lazy_head_panel(
    head: _CountingBuilder, *detail: _CountingBuilder, stats: dict[str, Any] | None = None
) -> PanelRecord:
    return PanelRecord(
        panel_id="lazy",
        title="Lazy",
        nav_title="Lazy",
        nav_subtitle="3 tasks",
        template="",
        has_content=True,
        enabled=True,
        stats={} if stats is None else stats,
        deferred=(HeadBuilder(head), *detail),
        value_limit=2000,
        deferred_size=700,
    )


class TestDeferredHead:
    def test_the_head_is_built_on_its_first_read_without_the_detail(self) -> None:
        head = _CountingBuilder({"summary": {"tasks": 3}})
        detail = _CountingBuilder({"tasks": [1, 2, 3]})
        panel = _lazy_head_panel(head, detail)
        assert (panel.nav_subtitle, panel.error) == ("3 tasks", None)
        assert (head.calls, detail.calls) == (0, 0)
        assert panel.head == {"summary": {"tasks": 3}}
        assert panel.head == {"summary": {"tasks": 3}}
        assert (head.calls, detail.calls) == (1, 0)  # the history reads heads only

    def test_the_stats_are_the_head_and_the_detail(self) -> None:
        head = _CountingBuilder({"summary": {"tasks": 3}})
        detail = _CountingBuilder({"tasks": [1, 2, 3]})
        panel = _lazy_head_panel(head, detail, stats={"eager": True})
        assert panel.resolve() == PanelStats(
            {"eager": True, "summary": {"tasks": 3}, "tasks": [1, 2, 3]}, None
        )
        assert panel.head == {"eager": True, "summary": {"tasks": 3}}
        assert (head.calls, detail.calls) == (1, 1)
        record = _record(panel)
        assert record.to_api_dict()["panels"]["lazy"] == panel.stats

    def test_a_failing_head_is_the_panels_error_and_the_detail_still_shows(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        panel = _lazy_head_panel(_CountingBuilder({}, fail=True), _CountingBuilder({"tasks": []}))
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            assert panel.head == {}  # the history shows dashes, not an error page
            resolved = panel.resolve()
        assert resolved == PanelStats({"tasks": []}, "ValueError: no stats today")

    def test_its_size_is_estimated_until_built_then_measured_and_reported(self) -> None:
        grown: list[int] = []
        panel = _lazy_head_panel(_CountingBuilder({"summary": {"name": "n" * 50_000}}))
        panel.on_growth(grown.append)
        unbuilt = panel.approx_size
        assert unbuilt >= 700
        assert len(panel.head["summary"]["name"]) <= 2000  # bounded like any stats
        assert grown == [panel.approx_size - unbuilt]
        assert grown[0] > 2000 - 700

    def test_built_head_then_detail_the_size_ends_measured(self) -> None:
        grown: list[int] = []
        head = _CountingBuilder({"summary": {"tasks": 3}})
        detail = _CountingBuilder({"tasks": ["t" * 3000]})
        panel = _lazy_head_panel(head, detail)
        panel.on_growth(grown.append)
        unbuilt = panel.approx_size
        assert panel.head == {"summary": {"tasks": 3}}
        (measured_head,) = grown  # the estimate still stands for the detail
        assert measured_head > 0
        (task,) = panel.stats["tasks"]
        assert len(task) <= 2000  # the detail is bounded too
        assert (head.calls, detail.calls) == (1, 1)
        assert len(grown) == 2
        assert panel.approx_size == unbuilt + sum(grown)
        # All measured now, the estimate (700 bytes) gone: the head's and the detail's sizes.
        assert panel.approx_size - (unbuilt - 700) > measured_head + len(task)

    def test_a_head_alone_is_measured_once_built(self) -> None:
        grown: list[int] = []
        panel = _lazy_head_panel(_CountingBuilder({"summary": {"tasks": 3}}))
        panel.on_growth(grown.append)
        unbuilt = panel.approx_size
        assert panel.head == {"summary": {"tasks": 3}}
        # Nothing else was deferred: the 700-byte estimate is replaced by the measure.
        _bounded, measured = bound({"summary": {"tasks": 3}}, 2000)
        assert grown == [measured - 700]
        assert panel.approx_size == unbuilt + grown[0]
        assert panel.stats == {"summary": {"tasks": 3}}
        assert len(grown) == 1

    def test_concurrent_first_reads_build_it_once(self) -> None:
        head = _CountingBuilder({"summary": {"tasks": 3}}, delay_s=0.05)
        panel = _lazy_head_panel(head)
        barrier = threading.Barrier(4)
        seen: list[dict[str, Any]] = []

        def read() -> None:
            barrier.wait()
            seen.append(panel.head)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert head.calls == 1
        assert seen == [{"summary": {"tasks": 3}}] * 4


class TestSize:
    """With a value limit, a record keeps every string at most that long and knows its size."""

    def test_stats_subtitle_and_error_are_shortened(self) -> None:
        panel = PanelRecord(
            panel_id="big",
            title="Big",
            nav_title="Big",
            nav_subtitle="s" * 5000,
            template="",
            has_content=True,
            enabled=True,
            stats={"rows": [["name", "v" * 100_000]], "count": 1},
            error="KeyError: " + "k" * 100_000,
            value_limit=1000,
        )
        assert len(panel.stats["rows"][0][1]) <= 1000
        assert panel.stats["rows"][0][1].endswith("not kept)")
        assert "(100,000 characters, " in panel.stats["rows"][0][1]
        assert len(panel.nav_subtitle) <= 1000
        assert panel.error is not None
        assert panel.error.startswith("KeyError: kkk")
        assert len(panel.error) <= 1000
        assert 3000 < panel.approx_size < 5000

    def test_without_a_limit_nothing_is_cut(self) -> None:
        panel = _panel("plain", stats={"text": "t" * 10_000})
        assert panel.stats["text"] == "t" * 10_000
        assert panel.approx_size > 10_000

    def test_deferred_stats_are_shortened_and_their_size_reported_when_built(self) -> None:
        grown: list[int] = []
        panel = PanelRecord(
            panel_id="lazy",
            title="Lazy",
            nav_title="Lazy",
            nav_subtitle="",
            template="",
            has_content=True,
            enabled=True,
            stats={},
            deferred=(lambda: {"tasks": [{"name": "n" * 50_000}] * 3},),
            value_limit=2000,
            deferred_size=500,
        )
        panel.on_growth(grown.append)
        unbuilt = panel.approx_size
        tasks = panel.stats["tasks"]
        assert all(len(task["name"]) <= 2000 for task in tasks)
        assert grown == [panel.approx_size - unbuilt]
        assert grown[0] > 2000 - 500
        assert panel.stats["tasks"] is tasks
        assert grown == [grown[0]]  # reported once

    def test_a_failed_build_is_shortened_too(self) -> None:
        def broken() -> dict[str, Any]:
            raise ValueError("v" * 50_000)

        panel = PanelRecord(
            panel_id="lazy",
            title="Lazy",
            nav_title="Lazy",
            nav_subtitle="",
            template="",
            has_content=True,
            enabled=True,
            stats={},
            deferred=(broken,),
            value_limit=300,
        )
        stats, error = panel.resolve().stats, panel.resolve().error
        assert stats == {}
        assert error is not None
        assert error.startswith("ValueError: vvv")
        assert len(error) <= 300

    def test_a_request_record_adds_up_its_panels(self) -> None:
        one, two = _panel("one"), _panel("two", stats={"text": "x" * 5000})
        record = _record(one, two)
        assert record.approx_size > one.approx_size + two.approx_size

    @pytest.mark.asyncio
    async def test_the_toolbar_bounds_what_it_records(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        async def app(context: RequestContext) -> None:
            logging.getLogger("debug_toolbar").warning("saw %s", context.query_string)

        query = "q=" + "a" * 1_048_574
        scope = make_scope(path="/p" + "p" * 10_000, query_string=query.encode())
        _, record = await run_lifecycle(
            list(DEFAULT_PANELS), RequestContext.from_scope(scope), app, max_value_length=4096
        )
        assert record.query_string.endswith(
            f"…(1,048,576 characters, {1_048_576 - record.query_string.index('…'):,} not kept)"
        )
        assert len(record.query_string) <= 4096
        assert len(record.path) <= 4096
        logs = record.panel("LoggingPanel")
        assert logs is not None
        assert len(logs.stats["records"][0]["message"]) <= 4096
        assert record.approx_size < 64 * 1024
        assert len(json.dumps(record.to_api_dict())) < 64 * 1024
