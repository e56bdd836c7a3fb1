"""PanelRecord / RequestRecord: immutable plain data, and the JSON API's view of it."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from debug_toolbar.core.config import DEFAULT_PANELS
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE, RequestContext
from debug_toolbar.core.records import PanelRecord, RequestRecord

ScopeFactory = Callable[..., dict[str, Any]]
Lifecycle = Callable[..., Any]


def _panel(panel_id: str, *, enabled: bool = True, error: str | None = None) -> PanelRecord:
    return PanelRecord(
        panel_id=panel_id,
        title=panel_id.title(),
        nav_title=panel_id,
        nav_subtitle="",
        template=f"panels/{panel_id}.html",
        has_content=True,
        enabled=enabled,
        stats={} if error or not enabled else {"value": panel_id},
        error=error,
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
