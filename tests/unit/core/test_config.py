"""DebugToolbarConfig validation: every bad value names its field; panels resolve cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from debug_toolbar.core.config import (
    DEFAULT_PANELS,
    DebugToolbarConfig,
    is_loopback_client,
    resolve_panel,
)
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.panels import (
    LoggingPanel,
    RequestPanel,
    ResponsePanel,
    TimerPanel,
    VersionsPanel,
)


class ExtraPanel(Panel):
    title = "Extra"


class NotAPanel:
    pass


class TestDefaults:
    def test_default_panels_resolve_in_order(self) -> None:
        config = DebugToolbarConfig()
        assert config.panel_classes == (
            TimerPanel,
            RequestPanel,
            ResponsePanel,
            LoggingPanel,
            VersionsPanel,
        )
        assert len(DEFAULT_PANELS) == 5

    def test_default_values(self) -> None:
        config = DebugToolbarConfig()
        assert config.enabled is True
        assert config.url_prefix == "/_debug_toolbar"
        assert config.max_request_history == 50
        assert config.show_toolbar is is_loopback_client
        assert config.async_profiler_backend == "auto"


class TestInvalidValues:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"enabled": "yes"}, "enabled"),
            ({"async_enable_blocking_detection": 1}, "async_enable_blocking_detection"),
            ({"async_enable_event_loop_monitoring": None}, "async_enable_event_loop_monitoring"),
            ({"async_capture_task_stacks": "no"}, "async_capture_task_stacks"),
            ({"max_request_history": 0}, "max_request_history"),
            ({"max_request_history": -5}, "max_request_history"),
            ({"max_request_history": True}, "max_request_history"),
            ({"max_request_history": 2.5}, "max_request_history"),
            ({"url_prefix": "_debug"}, "url_prefix"),
            ({"url_prefix": ""}, "url_prefix"),
            ({"url_prefix": "/"}, "url_prefix"),
            ({"url_prefix": "//"}, "url_prefix"),
            ({"url_prefix": None}, "url_prefix"),
            ({"exclude_paths": "/health"}, "exclude_paths"),
            ({"exclude_paths": ["health"]}, "exclude_paths"),
            ({"show_toolbar": True}, "show_toolbar"),
            ({"insert_before": ""}, "insert_before"),
            ({"async_profiler_backend": "cprofile"}, "async_profiler_backend"),
            ({"async_blocking_threshold_ms": 0}, "async_blocking_threshold_ms"),
            ({"async_blocking_threshold_ms": -1.0}, "async_blocking_threshold_ms"),
            ({"async_event_loop_lag_threshold_ms": 0.0}, "async_event_loop_lag_threshold_ms"),
            ({"async_lag_sample_interval_ms": False}, "async_lag_sample_interval_ms"),
            ({"async_lag_sample_interval_ms": "10"}, "async_lag_sample_interval_ms"),
            ({"async_max_stack_depth": 0}, "async_max_stack_depth"),
            ({"async_max_tasks": 0}, "async_max_tasks"),
            ({"async_max_timeline_rows": 0}, "async_max_timeline_rows"),
            ({"panels": "debug_toolbar.core.panels.timer.TimerPanel"}, "panels"),
            ({"extra_panels": "x.Y"}, "extra_panels"),
            ({"exclude_panels": "TimerPanel"}, "exclude_panels"),
            ({"template_dirs": "templates"}, "template_dirs"),
            ({"template_dirs": [42]}, "template_dirs"),
            ({"template_dirs": ["/no/such/folder/anywhere"]}, "template_dirs"),
            ({"template_dirs": [__file__]}, "template_dirs"),
        ],
    )
    def test_error_names_the_field(self, kwargs: dict[str, Any], field: str) -> None:
        with pytest.raises(ValueError, match=rf"^{field}\b"):
            DebugToolbarConfig(**kwargs)

    def test_template_dirs_must_exist_and_are_kept_absolute(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="'missing' is not an existing directory"):
            DebugToolbarConfig(template_dirs=["missing"])
        config = DebugToolbarConfig(template_dirs=[tmp_path, str(tmp_path)])
        assert config.template_dirs == (str(tmp_path), str(tmp_path))

    def test_backend_error_lists_the_choices(self) -> None:
        with pytest.raises(ValueError, match="'auto', 'taskfactory', 'yappi'"):
            DebugToolbarConfig(async_profiler_backend="cprofile")  # type: ignore[arg-type]

    def test_positive_thresholds_accept_small_floats(self) -> None:
        config = DebugToolbarConfig(async_blocking_threshold_ms=0.5, async_max_stack_depth=1)
        assert config.async_blocking_threshold_ms == 0.5
        assert config.async_max_stack_depth == 1


class TestPanelResolution:
    def test_not_a_dotted_path(self) -> None:
        with pytest.raises(ValueError, match=r"panels: 'TimerPanel' is not a dotted path"):
            DebugToolbarConfig(panels=["TimerPanel"])

    def test_unimportable_module(self) -> None:
        with pytest.raises(ValueError, match=r"panels: cannot import module 'no_such_pkg\.mod'"):
            DebugToolbarConfig(panels=["no_such_pkg.mod.Panel"])

    def test_missing_attribute(self) -> None:
        with pytest.raises(ValueError, match=r"has no attribute 'NoSuchPanel'"):
            DebugToolbarConfig(panels=["debug_toolbar.core.panels.timer.NoSuchPanel"])

    def test_class_that_is_not_a_panel(self) -> None:
        with pytest.raises(ValueError, match=r"is not a subclass of debug_toolbar\.Panel"):
            DebugToolbarConfig(panels=[NotAPanel])  # type: ignore[list-item]

    def test_dotted_path_to_a_non_panel(self) -> None:
        with pytest.raises(ValueError, match=r"'collections\.OrderedDict' is not a subclass"):
            DebugToolbarConfig(panels=["collections.OrderedDict"])

    def test_dotted_path_to_a_function(self) -> None:
        with pytest.raises(ValueError, match="is not a subclass"):
            resolve_panel("debug_toolbar.core.config.is_loopback_client")

    def test_class_and_path_resolve_to_the_same_class(self) -> None:
        assert resolve_panel("debug_toolbar.core.panels.timer.TimerPanel") is TimerPanel
        assert resolve_panel(TimerPanel) is TimerPanel

    def test_exclude_panels_removes_by_id(self) -> None:
        config = DebugToolbarConfig(exclude_panels=["VersionsPanel", "LoggingPanel"])
        assert config.panel_classes == (TimerPanel, RequestPanel, ResponsePanel)

    def test_exclude_applies_to_extra_panels(self) -> None:
        config = DebugToolbarConfig(
            panels=[TimerPanel], extra_panels=[ExtraPanel], exclude_panels=["ExtraPanel"]
        )
        assert config.panel_classes == (TimerPanel,)

    def test_extra_panels_come_last(self) -> None:
        config = DebugToolbarConfig(panels=[TimerPanel, RequestPanel], extra_panels=[ExtraPanel])
        assert config.panel_classes == (TimerPanel, RequestPanel, ExtraPanel)

    def test_duplicates_are_dropped_keeping_the_first(self) -> None:
        config = DebugToolbarConfig(
            panels=[RequestPanel, "debug_toolbar.core.panels.timer.TimerPanel", RequestPanel],
            extra_panels=[TimerPanel],
        )
        assert config.panel_classes == (RequestPanel, TimerPanel)

    def test_panel_id_defaults_to_class_name(self) -> None:
        assert ExtraPanel.panel_id == "ExtraPanel"
        assert ExtraPanel.nav_title == "Extra"


class TestUrlPrefixAndExcludedPaths:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [("/_debug_toolbar/", "/_debug_toolbar"), ("/dt///", "/dt"), ("/a/b", "/a/b")],
    )
    def test_trailing_slash_stripped(self, given: str, expected: str) -> None:
        assert DebugToolbarConfig(url_prefix=given).url_prefix == expected

    def test_own_pages_are_excluded(self) -> None:
        config = DebugToolbarConfig()
        assert config.is_excluded_path("/_debug_toolbar")
        assert config.is_excluded_path("/_debug_toolbar/")
        assert config.is_excluded_path("/_debug_toolbar/requests/abc")

    def test_prefix_lookalikes_are_not_excluded(self) -> None:
        config = DebugToolbarConfig()
        assert not config.is_excluded_path("/_debug_toolbarx")
        assert not config.is_excluded_path("/")
        assert not config.is_excluded_path("/items/_debug_toolbar")

    def test_exclude_paths_are_segment_prefixes(self) -> None:
        config = DebugToolbarConfig(exclude_paths=["/health", "/static/"])
        assert config.is_excluded_path("/health")
        assert config.is_excluded_path("/health/db")
        assert not config.is_excluded_path("/healthy")
        assert not config.is_excluded_path("/healthz")
        assert config.is_excluded_path("/static/app.css")
        assert not config.is_excluded_path("/static")
        assert not config.is_excluded_path("/items")


class TestIsLoopbackClient:
    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("127.0.0.1", True),
            ("127.8.9.10", True),
            ("::1", True),
            ("localhost", True),
            ("192.168.1.20", False),
            ("10.0.0.1", False),
            ("::ffff:8.8.8.8", False),
            ("example.com", False),
            ("", False),
            (None, False),
        ],
    )
    def test_loopback_only(self, host: str | None, expected: bool) -> None:
        context = RequestContext(method="GET", path="/", client_host=host)
        assert is_loopback_client(context) is expected
