"""Rendering: package templates, autoescaping always on, strict about missing values."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import StrictUndefined, TemplateNotFound, UndefinedError

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.records import PanelRecord, RequestRecord
from debug_toolbar.core.rendering import get_environment, render_panel, render_template

XSS = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


def _panel(
    *,
    template: str = "panels/response.html",
    stats: dict[str, object] | None = None,
    enabled: bool = True,
    error: str | None = None,
) -> PanelRecord:
    return PanelRecord(
        panel_id="ResponsePanel",
        title="Response",
        nav_title="Response",
        nav_subtitle="200 OK",
        template=template,
        has_content=True,
        enabled=enabled,
        stats={} if stats is None else stats,
        error=error,
    )


def _record(panel: PanelRecord) -> RequestRecord:
    return RequestRecord(
        request_id="0123abcd",
        method="GET",
        path="/",
        query_string="",
        status_code=200,
        duration_ms=1.0,
        started_at=0.0,
        panels=(panel,),
    )


RESPONSE_STATS = {
    "status_code": 200,
    "reason": "OK",
    "content_type": "text/html",
    "headers": [["x-note", XSS]],
}


class TestEnvironment:
    def test_one_shared_environment(self) -> None:
        assert get_environment() is get_environment()

    def test_safety_settings(self) -> None:
        env = get_environment()
        assert env.autoescape is True
        assert env.undefined is StrictUndefined

    @pytest.mark.parametrize(
        ("value", "digits", "expected"),
        [(None, 1, "–"), (0.0, 1, "0.0 ms"), (1234.56, 1, "1,234.6 ms"), (2.5, 3, "2.500 ms")],
    )
    def test_ms_filter(self, value: float | None, digits: int, expected: str) -> None:
        assert get_environment().filters["ms"](value, digits) == expected

    def test_timestamp_filter_is_utc(self) -> None:
        assert get_environment().filters["timestamp"](0) == "1970-01-01 00:00:00 UTC"

    def test_string_templates_autoescape_too(self) -> None:
        html = get_environment().from_string("<p>{{ value }}</p>").render(value=XSS)
        assert html == f"<p>{ESCAPED}</p>"


class TestRenderPanel:
    def test_stats_are_escaped(self) -> None:
        panel = _panel(stats=RESPONSE_STATS)
        html = render_panel(panel, _record(panel), "/_debug_toolbar")
        assert ESCAPED in html
        assert XSS not in html

    def test_missing_stats_key_is_an_error_not_a_blank(self) -> None:
        stats = {key: value for key, value in RESPONSE_STATS.items() if key != "reason"}
        panel = _panel(stats=stats)
        with pytest.raises(UndefinedError, match="reason"):
            render_panel(panel, _record(panel), "/_debug_toolbar")

    def test_render_template_by_name(self) -> None:
        html = render_template("panels/response.html", stats=RESPONSE_STATS)
        assert "dt-badge" in html

    def test_errored_panel_uses_the_unavailable_template(self) -> None:
        # The panel's own template would raise on the empty stats: it must not be used.
        panel = _panel(error=f"RuntimeError: {XSS}")
        html = render_panel(panel, _record(panel), "/_debug_toolbar")
        assert "RuntimeError: " + ESCAPED in html
        assert XSS not in html

    def test_disabled_panel_uses_the_unavailable_template(self) -> None:
        panel = _panel(enabled=False)
        html = render_panel(panel, _record(panel), "/_debug_toolbar")
        assert html == render_template(
            "panels/_unavailable.html",
            panel=panel,
            error=None,
            record=_record(panel),
            prefix="/_debug_toolbar",
        )
        assert "dt-badge" not in html

    def test_panel_without_template(self) -> None:
        panel = _panel(template="", stats={"anything": 1})
        html = render_panel(panel, _record(panel), "/_debug_toolbar")
        assert html == render_template(
            "panels/_unavailable.html",
            panel=panel,
            error=None,
            record=_record(panel),
            prefix="/_debug_toolbar",
        )


class TestRenderTimeContext:
    """A panel class can add view models built from stored stats when it is displayed."""

    def test_panel_class_context_reaches_the_template(self) -> None:
        from typing import Any, ClassVar

        from debug_toolbar.core.config import DebugToolbarConfig
        from debug_toolbar.core.panel import Panel

        class ReasonShoutingPanel(Panel):
            panel_id: ClassVar[str] = "ResponsePanel"
            template: ClassVar[str] = "panels/response.html"

            @classmethod
            def get_template_context(
                cls, stats: dict[str, Any], record: RequestRecord, config: DebugToolbarConfig
            ) -> dict[str, Any]:
                return {"stats": {**stats, "reason": stats["reason"].upper() + " FROM CLASS"}}

        config = DebugToolbarConfig(panels=[ReasonShoutingPanel])
        panel = _panel(stats={**RESPONSE_STATS, "reason": "fine"})

        with_config = render_panel(panel, _record(panel), "/_dt", config)
        without_config = render_panel(panel, _record(panel), "/_dt")

        assert "FINE FROM CLASS" in with_config
        assert "FINE FROM CLASS" not in without_config
        assert "fine" in without_config

    def test_unknown_panel_class_renders_with_stats_only(self) -> None:
        from debug_toolbar.core.config import DebugToolbarConfig

        panel = _panel(stats=RESPONSE_STATS)
        html = render_panel(panel, _record(panel), "/_dt", DebugToolbarConfig(panels=()))
        assert ESCAPED in html


class TestTemplateDirs:
    """Panels of your own keep their templates in folders given as ``template_dirs``."""

    @staticmethod
    def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return tmp_path

    def test_a_panel_template_from_a_folder_of_its_own(self, tmp_path: Path) -> None:
        folder = self._folder(
            tmp_path,
            {
                "panels/myapp_clock.html": (
                    '{% import "_macros.html" as m %}<p class="clock">{{ stats.wall_ms|ms }}</p>'
                    "<p>{{ stats.note }}</p>"
                )
            },
        )
        config = DebugToolbarConfig(panels=(), template_dirs=[folder])
        panel = _panel(template="panels/myapp_clock.html", stats={"wall_ms": 1.5, "note": XSS})
        html = render_panel(panel, _record(panel), "/_debug_toolbar", config)
        assert '<p class="clock">1.5 ms</p>' in html  # the toolbar's filters work there too
        assert ESCAPED in html  # and autoescaping
        with pytest.raises(TemplateNotFound):
            render_panel(panel, _record(panel), "/_debug_toolbar")  # not without the folder

    def test_the_toolbars_own_templates_cannot_be_replaced(self, tmp_path: Path) -> None:
        folder = self._folder(tmp_path, {"panels/response.html": "<p>impostor</p>"})
        config = DebugToolbarConfig(panels=(), template_dirs=[folder])
        panel = _panel(stats=RESPONSE_STATS)
        html = render_panel(panel, _record(panel), "/_debug_toolbar", config)
        assert "impostor" not in html
        assert "x-note" in html

    def test_one_environment_per_set_of_folders(self, tmp_path: Path) -> None:
        folder = str(tmp_path)
        assert get_environment((folder,)) is get_environment((folder,))
        assert get_environment((folder,)) is not get_environment()
        assert get_environment((folder,)).filters["ms"] is get_environment().filters["ms"]
