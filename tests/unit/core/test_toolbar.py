"""DebugToolbar: fresh panels per request, lifecycle order, errors isolated per panel."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import DISABLED_PANELS_COOKIE, RequestContext
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.toolbar import DebugToolbar

CALLS: list[tuple[str, str]] = []


class RecordingPanel(Panel):
    """Logs each lifecycle call to CALLS; ``fail_in`` makes one step raise."""

    title = "Recording"
    template = "panels/recording.html"
    fail_in: ClassVar[str | None] = None

    def _call(self, step: str) -> None:
        CALLS.append((self.panel_id, step))
        if self.fail_in == step:
            raise RuntimeError(f"{self.panel_id} broke in {step}")

    async def process_request(self, context: RequestContext) -> None:
        self._call("process_request")

    async def process_response(self, context: RequestContext) -> None:
        self._call("process_response")

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        self._call("generate_stats")
        return {"owner": self.panel_id, "path": context.path}

    def get_nav_subtitle(self) -> str:
        self._call("get_nav_subtitle")
        return f"sub {self.get_stats()['owner']}"


class FirstPanel(RecordingPanel):
    title = "First"


class SecondPanel(RecordingPanel):
    title = "Second"
    nav_title = "2nd"


class ThirdPanel(RecordingPanel):
    title = "Third"
    has_content = False


class NoStatsPanel(Panel):
    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        return None  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()
    for panel_class in (FirstPanel, SecondPanel, ThirdPanel):
        panel_class.fail_in = None


def _context(cookie: str | None = None) -> RequestContext:
    headers = [("host", "127.0.0.1:8000")]
    if cookie is not None:
        headers.append(("cookie", cookie))
    return RequestContext(
        method="GET", path="/things", query_string="a=1", headers=headers, client_host="127.0.0.1"
    )


def _toolbar(context: RequestContext | None = None) -> DebugToolbar:
    config = DebugToolbarConfig(panels=[FirstPanel, SecondPanel, ThirdPanel])
    return DebugToolbar(config, context or _context())


async def _run(toolbar: DebugToolbar) -> None:
    await toolbar.process_request()
    await toolbar.process_response()
    await toolbar.generate_stats()


class TestPanelInstances:
    def test_fresh_instances_per_toolbar(self) -> None:
        first, second = _toolbar(), _toolbar()
        assert [type(p) for p in first.panels] == [FirstPanel, SecondPanel, ThirdPanel]
        assert all(a is not b for a, b in zip(first.panels, second.panels, strict=True))
        assert all(p.toolbar is first for p in first.panels)
        assert first.panels[0].context is first.context
        assert first.panels[0].config is first.config

    def test_get_panel(self) -> None:
        toolbar = _toolbar()
        assert isinstance(toolbar.get_panel("SecondPanel"), SecondPanel)
        assert toolbar.get_panel("Missing") is None


class TestLifecycle:
    @pytest.mark.asyncio
    async def test_call_order(self) -> None:
        toolbar = _toolbar()
        await _run(toolbar)
        toolbar.build_record()
        assert CALLS == [
            ("FirstPanel", "process_request"),
            ("SecondPanel", "process_request"),
            ("ThirdPanel", "process_request"),
            # Stopped innermost first.
            ("ThirdPanel", "process_response"),
            ("SecondPanel", "process_response"),
            ("FirstPanel", "process_response"),
            ("FirstPanel", "generate_stats"),
            ("SecondPanel", "generate_stats"),
            ("ThirdPanel", "generate_stats"),
            ("FirstPanel", "get_nav_subtitle"),
            ("SecondPanel", "get_nav_subtitle"),
            ("ThirdPanel", "get_nav_subtitle"),
        ]
        assert toolbar.errors == {}

    @pytest.mark.asyncio
    async def test_end_ns_is_set_once(self) -> None:
        context = _context()
        toolbar = _toolbar(context)
        await toolbar.process_request()
        assert context.end_ns is None
        await toolbar.process_response()
        assert context.end_ns is not None
        assert context.end_ns >= context.start_ns
        preset = _context()
        preset.end_ns = preset.start_ns + 5_000_000
        toolbar = _toolbar(preset)
        await toolbar.process_response()
        assert preset.end_ns == preset.start_ns + 5_000_000

    @pytest.mark.asyncio
    async def test_missing_stats_become_empty(self) -> None:
        toolbar = DebugToolbar(DebugToolbarConfig(panels=[NoStatsPanel]), _context())
        await _run(toolbar)
        record = toolbar.build_record()
        panel = record.panel("NoStatsPanel")
        assert panel is not None
        assert panel.stats == {}
        assert panel.error is None


class TestErrorIsolation:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "step", ["process_request", "process_response", "generate_stats", "get_nav_subtitle"]
    )
    async def test_a_raising_panel_is_isolated(
        self, step: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        SecondPanel.fail_in = step
        toolbar = _toolbar()
        with caplog.at_level(logging.WARNING, logger="debug_toolbar"):
            await _run(toolbar)
            record = toolbar.build_record()

        assert toolbar.errors == {"SecondPanel": f"RuntimeError: SecondPanel broke in {step}"}
        broken = record.panel("SecondPanel")
        assert broken is not None
        assert broken.error == f"RuntimeError: SecondPanel broke in {step}"
        assert broken.stats == {}
        assert broken.nav_subtitle == "error"
        for panel_id in ("FirstPanel", "ThirdPanel"):
            healthy = record.panel(panel_id)
            assert healthy is not None
            assert healthy.error is None
            assert healthy.stats == {"owner": panel_id, "path": "/things"}
            assert healthy.nav_subtitle == f"sub {panel_id}"
        # Others ran every step; the broken one still got process_response to clean up.
        steps_of_others = [s for p, s in CALLS if p == "ThirdPanel"]
        assert steps_of_others == [
            "process_request",
            "process_response",
            "generate_stats",
            "get_nav_subtitle",
        ]
        assert ("SecondPanel", "process_response") in CALLS
        assert [r.getMessage() for r in caplog.records if r.name == "debug_toolbar"] == [
            f"debug toolbar panel SecondPanel failed in {step}"
        ]

    @pytest.mark.asyncio
    async def test_failed_panel_skips_generate_stats(self) -> None:
        SecondPanel.fail_in = "process_request"
        toolbar = _toolbar()
        await _run(toolbar)
        assert ("SecondPanel", "generate_stats") not in CALLS

    @pytest.mark.asyncio
    async def test_first_error_is_kept(self) -> None:
        SecondPanel.fail_in = "process_request"
        toolbar = _toolbar()
        await toolbar.process_request()
        SecondPanel.fail_in = "process_response"
        await toolbar.process_response()
        assert toolbar.errors["SecondPanel"] == "RuntimeError: SecondPanel broke in process_request"

    @pytest.mark.asyncio
    async def test_api_dict_separates_stats_and_errors(self) -> None:
        ThirdPanel.fail_in = "generate_stats"
        toolbar = _toolbar()
        await _run(toolbar)
        api = toolbar.build_record().to_api_dict()
        assert set(api["panels"]) == {"FirstPanel", "SecondPanel"}
        assert api["panel_errors"] == {
            "ThirdPanel": "RuntimeError: ThirdPanel broke in generate_stats"
        }


class TestDisabledPanels:
    @pytest.mark.asyncio
    async def test_disabled_by_cookie_does_not_run(self) -> None:
        context = _context(f"{DISABLED_PANELS_COOKIE}=SecondPanel")
        toolbar = _toolbar(context)
        assert [p.panel_id for p in toolbar.enabled_panels] == ["FirstPanel", "ThirdPanel"]
        await _run(toolbar)
        record = toolbar.build_record()
        assert all(panel_id != "SecondPanel" for panel_id, _ in CALLS)
        disabled = record.panel("SecondPanel")
        assert disabled is not None
        assert disabled.enabled is False
        assert disabled.stats == {}
        assert disabled.nav_subtitle == ""
        assert disabled.error is None
        assert "SecondPanel" not in record.to_api_dict()["panels"]

    @pytest.mark.asyncio
    async def test_unknown_ids_in_the_cookie_are_ignored(self) -> None:
        toolbar = _toolbar(_context(f"{DISABLED_PANELS_COOKIE}=Nope,AlsoNope"))
        assert len(toolbar.enabled_panels) == 3


class TestBuildRecord:
    @pytest.mark.asyncio
    async def test_record_contents(self) -> None:
        context = _context()
        context.status_code = 201
        toolbar = _toolbar(context)
        await _run(toolbar)
        record = toolbar.build_record()
        assert record.request_id == context.request_id
        assert record.method == "GET"
        assert record.path == "/things"
        assert record.query_string == "a=1"
        assert record.status_code == 201
        assert record.started_at == context.started_at
        assert context.end_ns is not None
        assert record.duration_ms == (context.end_ns - context.start_ns) / 1_000_000
        assert [p.panel_id for p in record.panels] == ["FirstPanel", "SecondPanel", "ThirdPanel"]
        second = record.panels[1]
        assert second.title == "Second"
        assert second.nav_title == "2nd"
        assert second.template == "panels/recording.html"
        assert second.has_content is True
        assert second.enabled is True
        assert record.panels[0].nav_title == "First"
        assert record.panels[2].has_content is False

    def test_record_before_response_has_zero_duration(self) -> None:
        record = _toolbar().build_record()
        assert record.duration_ms == 0.0
        assert record.status_code is None


class LazyPanel(Panel):
    """Records a count now and defers the costly list (``Panel.defer_stats``)."""

    title = "Lazy"
    built: ClassVar[int] = 0
    heads_built: ClassVar[int] = 0
    fail_in_generate: ClassVar[bool] = False

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        self.defer_stats(self._build)
        self.defer_stats(self._build_head, head=True, approx_size=100)
        if self.fail_in_generate:
            raise RuntimeError("broke after deferring")
        return {"count": 2}

    def get_nav_subtitle(self) -> str:
        return f"{self.get_stats()['count']} items"

    @classmethod
    def _build(cls) -> dict[str, Any]:
        cls.built += 1
        return {"items": ["a", "b"]}

    @classmethod
    def _build_head(cls) -> dict[str, Any]:
        cls.heads_built += 1
        return {"summary": "two"}


class TestDeferredStats:
    @pytest.fixture(autouse=True)
    def _reset(self) -> None:
        LazyPanel.built = LazyPanel.heads_built = 0
        LazyPanel.fail_in_generate = False

    @staticmethod
    async def _record(cookie: str | None = None) -> Any:
        config = DebugToolbarConfig(panels=[LazyPanel])
        toolbar = DebugToolbar(config, _context(cookie))
        await _run(toolbar)
        return toolbar.build_record()

    @pytest.mark.asyncio
    async def test_built_when_the_record_is_read_not_before(self) -> None:
        record = await self._record()
        (panel,) = record.panels
        assert panel.nav_subtitle == "2 items"
        assert (LazyPanel.built, LazyPanel.heads_built) == (0, 0)
        assert panel.head == {"count": 2, "summary": "two"}
        assert (LazyPanel.built, LazyPanel.heads_built) == (0, 1)
        assert panel.stats == {"count": 2, "summary": "two", "items": ["a", "b"]}
        assert (LazyPanel.built, LazyPanel.heads_built) == (1, 1)

    @pytest.mark.asyncio
    async def test_a_panel_failing_after_deferring_keeps_no_builder(self) -> None:
        LazyPanel.fail_in_generate = True
        (panel,) = (await self._record()).panels
        assert panel.error == "RuntimeError: broke after deferring"
        assert panel.stats == {}
        assert (LazyPanel.built, LazyPanel.heads_built) == (0, 0)

    @pytest.mark.asyncio
    async def test_a_disabled_panel_defers_nothing(self) -> None:
        (panel,) = (await self._record(f"{DISABLED_PANELS_COOKIE}=LazyPanel")).panels
        assert panel.enabled is False
        assert panel.stats == {}
        assert (LazyPanel.built, LazyPanel.heads_built) == (0, 0)
