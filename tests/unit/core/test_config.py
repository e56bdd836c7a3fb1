"""DebugToolbarConfig validation: every bad value names its field; panels resolve cleanly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

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
from debug_toolbar.core.panels.async_profiler.backends import BackendUnavailableError
from debug_toolbar.core.panels.async_profiler.panel import AsyncProfilerPanel


class ExtraPanel(Panel):
    title = "Extra"


class NotAPanel:
    pass


INF = float("inf")
NAN = float("nan")


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
        assert config.max_request_history_bytes == 64 * 1024 * 1024
        assert config.max_value_length == 4096
        assert config.show_toolbar is is_loopback_client
        assert config.async_profiler_backend == "taskfactory"


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
            # Not finite, or outside the documented range.
            ({"async_blocking_threshold_ms": INF}, "async_blocking_threshold_ms"),
            ({"async_blocking_threshold_ms": NAN}, "async_blocking_threshold_ms"),
            ({"async_blocking_threshold_ms": -INF}, "async_blocking_threshold_ms"),
            ({"async_blocking_threshold_ms": 0.5}, "async_blocking_threshold_ms"),
            ({"async_blocking_threshold_ms": 3_600_001}, "async_blocking_threshold_ms"),
            ({"async_event_loop_lag_threshold_ms": INF}, "async_event_loop_lag_threshold_ms"),
            ({"async_event_loop_lag_threshold_ms": NAN}, "async_event_loop_lag_threshold_ms"),
            ({"async_event_loop_lag_threshold_ms": 10**400}, "async_event_loop_lag_threshold_ms"),
            ({"async_lag_sample_interval_ms": INF}, "async_lag_sample_interval_ms"),
            ({"async_lag_sample_interval_ms": NAN}, "async_lag_sample_interval_ms"),
            ({"async_lag_sample_interval_ms": 1e-6}, "async_lag_sample_interval_ms"),
            ({"async_lag_sample_interval_ms": 0.999}, "async_lag_sample_interval_ms"),
            ({"async_lag_sample_interval_ms": 60_001}, "async_lag_sample_interval_ms"),
            ({"max_request_history": 10_001}, "max_request_history"),
            ({"max_request_history": 10**12}, "max_request_history"),
            ({"max_request_history_bytes": 2**20 - 1}, "max_request_history_bytes"),
            ({"max_request_history_bytes": 2**36 + 1}, "max_request_history_bytes"),
            ({"max_request_history_bytes": 64.0 * 2**20}, "max_request_history_bytes"),
            ({"max_request_history_bytes": True}, "max_request_history_bytes"),
            ({"max_value_length": 255}, "max_value_length"),
            ({"max_value_length": 2**24 + 1}, "max_value_length"),
            ({"max_value_length": "4096"}, "max_value_length"),
            ({"max_value_length": None}, "max_value_length"),
            ({"async_max_stack_depth": 1_001}, "async_max_stack_depth"),
            ({"async_max_tasks": 100_001}, "async_max_tasks"),
            ({"async_max_tasks": INF}, "async_max_tasks"),
            ({"async_max_timeline_rows": 10_001}, "async_max_timeline_rows"),
            ({"async_yappi_max_requests": 0}, "async_yappi_max_requests"),
            ({"async_yappi_max_requests": 1_000_001}, "async_yappi_max_requests"),
            ({"async_yappi_max_requests": True}, "async_yappi_max_requests"),
            ({"async_yappi_max_requests": "500"}, "async_yappi_max_requests"),
            ({"async_yappi_max_requests": 500.0}, "async_yappi_max_requests"),
            # None or a single object where a sequence belongs.
            ({"exclude_paths": None}, "exclude_paths"),
            ({"exclude_paths": [None]}, "exclude_paths"),
            ({"exclude_paths": ["/health?full=1"]}, "exclude_paths"),
            ({"exclude_paths": ["/docs#top"]}, "exclude_paths"),
            ({"panels": None}, "panels"),
            ({"panels": TimerPanel}, "panels"),
            ({"extra_panels": None}, "extra_panels"),
            ({"extra_panels": ExtraPanel}, "extra_panels"),
            ({"extra_panels": [42]}, "extra_panels"),
            ({"extra_panels": ["no_such_pkg.mod.Panel"]}, "extra_panels"),
            ({"exclude_panels": None}, "exclude_panels"),
            ({"exclude_panels": [1]}, "exclude_panels"),
            ({"exclude_panels": [""]}, "exclude_panels"),
            ({"exclude_panels": [TimerPanel]}, "exclude_panels"),
            ({"exclude_panels": ["VersionPanel"]}, "exclude_panels"),
            # Characters a URL path segment does not carry unchanged.
            ({"url_prefix": "/a b?x=1#f"}, "url_prefix"),
            ({"url_prefix": "/debug?x=1"}, "url_prefix"),
            ({"url_prefix": "/debug#frag"}, "url_prefix"),
            ({"url_prefix": "/de bug"}, "url_prefix"),
            ({"url_prefix": "/debug\n"}, "url_prefix"),
            ({"url_prefix": "/debug\t/x"}, "url_prefix"),
            ({"url_prefix": "/.."}, "url_prefix"),
            ({"url_prefix": "/../admin"}, "url_prefix"),
            ({"url_prefix": "/a/./b"}, "url_prefix"),
            ({"url_prefix": "/a//b"}, "url_prefix"),
            ({"url_prefix": "/a%20b"}, "url_prefix"),
            ({"url_prefix": "/a;b=1"}, "url_prefix"),
            ({"url_prefix": "/{id}"}, "url_prefix"),
            ({"url_prefix": "/débug"}, "url_prefix"),
            ({"url_prefix": "/a\\b"}, "url_prefix"),
            ({"url_prefix": b"/debug"}, "url_prefix"),
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

    def test_range_errors_say_what_is_accepted(self) -> None:
        with pytest.raises(ValueError, match=r"from 1 to 3600000, got inf$"):
            DebugToolbarConfig(async_blocking_threshold_ms=INF)
        with pytest.raises(ValueError, match=r"from 1 to 60000, got 1e-06$"):
            DebugToolbarConfig(async_lag_sample_interval_ms=1e-6)
        with pytest.raises(ValueError, match=r"greater than 0 and at most 3600000, got nan$"):
            DebugToolbarConfig(async_event_loop_lag_threshold_ms=NAN)
        with pytest.raises(ValueError, match=r"an integer from 1 to 100000, got 10000000000$"):
            DebugToolbarConfig(async_max_tasks=10**10)

    def test_sequence_errors_name_the_option_and_what_it_holds(self) -> None:
        with pytest.raises(
            ValueError,
            match=r"^extra_panels must be a sequence of panel classes or dotted paths, "
            r"got <class '.*ExtraPanel'>$",
        ):
            DebugToolbarConfig(extra_panels=ExtraPanel)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^exclude_paths must be a sequence .* got None$"):
            DebugToolbarConfig(exclude_paths=None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^exclude_panels: 1 is not a panel id"):
            DebugToolbarConfig(exclude_panels=[1])  # type: ignore[list-item]


class TestRanges:
    """Each number's documented range: both ends are accepted, ints and floats alike."""

    @pytest.mark.parametrize(
        ("option", "lowest", "highest"),
        [
            ("async_blocking_threshold_ms", 1, 3_600_000),
            ("async_event_loop_lag_threshold_ms", 0.001, 3_600_000),
            ("async_lag_sample_interval_ms", 1, 60_000),
            ("max_request_history", 1, 10_000),
            ("max_request_history_bytes", 2**20, 2**36),
            ("max_value_length", 256, 2**24),
            ("async_max_stack_depth", 1, 1_000),
            ("async_max_tasks", 1, 100_000),
            ("async_max_timeline_rows", 1, 10_000),
            ("async_yappi_max_requests", 1, 1_000_000),
        ],
    )
    def test_both_ends_are_accepted(self, option: str, lowest: float, highest: float) -> None:
        for value in (lowest, highest):
            options: dict[str, Any] = {option: value}
            assert getattr(DebugToolbarConfig(**options), option) == value

    @pytest.mark.parametrize(
        "option",
        [
            "async_blocking_threshold_ms",
            "async_event_loop_lag_threshold_ms",
            "async_lag_sample_interval_ms",
        ],
    )
    def test_milliseconds_take_ints_and_floats(self, option: str) -> None:
        for value in (25, 2.5):
            options: dict[str, Any] = {option: value}
            assert getattr(DebugToolbarConfig(**options), option) == value

    def test_defaults_are_inside_the_ranges(self) -> None:
        config = DebugToolbarConfig()
        assert (
            config.async_blocking_threshold_ms,
            config.async_event_loop_lag_threshold_ms,
            config.async_lag_sample_interval_ms,
            config.max_request_history,
            config.async_max_stack_depth,
            config.async_max_tasks,
            config.async_max_timeline_rows,
        ) == (100.0, 10.0, 10.0, 50, 10, 1000, 500)


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

    def test_errors_in_extra_panels_name_extra_panels(self) -> None:
        with pytest.raises(ValueError, match=r"^extra_panels: 'TimerPanel' is not a dotted path"):
            DebugToolbarConfig(extra_panels=["TimerPanel"])
        with pytest.raises(ValueError, match=r"^extra_panels: cannot import module 'nope\.mod'"):
            DebugToolbarConfig(extra_panels=["nope.mod.Panel"])

    def test_generators_are_read_once_and_kept(self) -> None:
        config = DebugToolbarConfig(
            panels=(p for p in [TimerPanel, RequestPanel]),  # type: ignore[arg-type]
            exclude_panels=(p for p in ["RequestPanel"]),  # type: ignore[arg-type]
            exclude_paths=(p for p in ["/health"]),  # type: ignore[arg-type]
        )
        assert config.panel_classes == (TimerPanel,)
        assert config.exclude_paths == ("/health",)
        assert config.is_excluded_path("/health/db")

    def test_unknown_excluded_id_is_named_with_the_known_ones(self) -> None:
        with pytest.raises(
            ValueError,
            match=r"^exclude_panels: 'VersionPanel' is not the id of a panel in panels or "
            r"extra_panels \('RequestPanel', 'TimerPanel'\)$",
        ):
            DebugToolbarConfig(panels=[TimerPanel, RequestPanel], exclude_panels=["VersionPanel"])

    def test_excluding_every_panel_is_allowed(self) -> None:
        config = DebugToolbarConfig(panels=[TimerPanel], exclude_panels=["TimerPanel"])
        assert config.panel_classes == ()


class CheckedPanel(Panel):
    """Refuses configs whose history is shorter than 10 (as a panel needing an option would)."""

    title = "Checked"
    checked: ClassVar[list[DebugToolbarConfig]] = []

    @classmethod
    def check_config(cls, config: DebugToolbarConfig) -> None:
        cls.checked.append(config)
        if config.max_request_history < 10:
            raise ValueError("max_request_history must be at least 10 for CheckedPanel")


class TestPanelCheckConfig:
    """Panels are asked once, when the config is built, whether they can run with it."""

    def test_each_configured_panel_is_asked_once(self) -> None:
        CheckedPanel.checked.clear()
        config = DebugToolbarConfig(panels=[TimerPanel, CheckedPanel], extra_panels=[CheckedPanel])
        assert CheckedPanel.checked == [config]

    def test_its_error_stops_the_config(self) -> None:
        with pytest.raises(ValueError, match=r"^max_request_history must be at least 10"):
            DebugToolbarConfig(panels=[CheckedPanel], max_request_history=5)

    def test_an_excluded_panel_is_not_asked(self) -> None:
        CheckedPanel.checked.clear()
        DebugToolbarConfig(
            panels=[CheckedPanel], exclude_panels=["CheckedPanel"], max_request_history=5
        )
        assert CheckedPanel.checked == []


class TestYappiBackendAtStartUp:
    """``async_profiler_backend="yappi"`` that cannot run fails when the config is built.

    Before, the config was accepted and every request's Async panel failed with the same
    error (and a logged traceback).
    """

    def test_missing_yappi_is_a_start_up_error_naming_the_extra(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)  # `import yappi` now fails
        with pytest.raises(
            ValueError, match=r"^async_profiler_backend='yappi' needs the yappi"
        ) as e:
            DebugToolbarConfig(extra_panels=[AsyncProfilerPanel], async_profiler_backend="yappi")
        assert str(e.value).endswith("install the extra: pip install 'debug-toolbar[yappi]'")
        assert isinstance(e.value.__cause__, BackendUnavailableError)

    def test_a_dotted_path_to_the_panel_is_checked_too(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        with pytest.raises(ValueError, match=r"pip install 'debug-toolbar\[yappi\]'"):
            DebugToolbarConfig(
                panels=["debug_toolbar.core.panels.async_profiler.panel.AsyncProfilerPanel"],
                async_profiler_backend="yappi",
            )

    def test_missing_yappi_with_auto_falls_back_quietly(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        for backend in ("auto", "taskfactory"):
            config = DebugToolbarConfig(
                extra_panels=[AsyncProfilerPanel],
                async_profiler_backend=backend,
            )
            assert config.panel_classes[-1] is AsyncProfilerPanel

    def test_missing_yappi_without_the_async_panel_is_no_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "yappi", None)
        config = DebugToolbarConfig(async_profiler_backend="yappi")
        assert AsyncProfilerPanel not in config.panel_classes
        excluded = DebugToolbarConfig(
            extra_panels=[AsyncProfilerPanel],
            exclude_panels=["AsyncProfilerPanel"],
            async_profiler_backend="yappi",
        )
        assert AsyncProfilerPanel not in excluded.panel_classes

    def test_yappi_installed_is_accepted(self) -> None:
        pytest.importorskip("yappi")
        config = DebugToolbarConfig(
            extra_panels=[AsyncProfilerPanel], async_profiler_backend="yappi"
        )
        assert config.panel_classes[-1] is AsyncProfilerPanel
        assert config.async_profiler_backend == "yappi"


class TestUrlPrefixAndExcludedPaths:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [("/_debug_toolbar/", "/_debug_toolbar"), ("/dt///", "/dt"), ("/a/b", "/a/b")],
    )
    def test_trailing_slash_stripped(self, given: str, expected: str) -> None:
        assert DebugToolbarConfig(url_prefix=given).url_prefix == expected

    @pytest.mark.parametrize(
        "prefix", ["/_debug_toolbar", "/debug-toolbar.v2", "/~dev/Tool_bar-1", "/a/b.c/d~e", "/..a"]
    )
    def test_unreserved_characters_are_accepted(self, prefix: str) -> None:
        assert DebugToolbarConfig(url_prefix=prefix).url_prefix == prefix

    def test_url_prefix_error_says_what_is_allowed(self) -> None:
        with pytest.raises(
            ValueError,
            match=r"^url_prefix must be '/'-separated segments of ASCII letters, digits, "
            r"'-', '\.', '_' and '~' .*, got '/a b\?x=1#f'$",
        ):
            DebugToolbarConfig(url_prefix="/a b?x=1#f")

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


class TestAllowedHostsAndMasking:
    def test_defaults(self) -> None:
        config = DebugToolbarConfig()
        assert config.allowed_hosts == ()
        assert config.mask_secrets is True

    def test_allowed_hosts_are_kept_in_one_spelling(self) -> None:
        config = DebugToolbarConfig(allowed_hosts=["MyApp.Test.", ".Dev.Test", "::1", "*"])
        assert config.allowed_hosts == ("myapp.test", ".dev.test", "[::1]", "*")

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("myapp.test", "allowed_hosts must be a sequence of host names"),
            (["localhost:8000"], "allowed_hosts: 'localhost:8000' names a port"),
            (["*.myapp.test"], "write '.myapp.test' for a domain and its subdomains"),
            (["http://myapp.test/"], "allowed_hosts: 'http://myapp.test/' is not a host"),
            ([None], "allowed_hosts: None is not a string"),
        ],
    )
    def test_bad_allowed_hosts(self, value: Any, message: str) -> None:
        with pytest.raises(ValueError, match="allowed_hosts") as raised:
            DebugToolbarConfig(allowed_hosts=value)
        assert message in str(raised.value)

    @pytest.mark.parametrize("value", ["yes", 1, None])
    def test_mask_secrets_is_a_boolean(self, value: Any) -> None:
        with pytest.raises(ValueError, match="mask_secrets must be True or False"):
            DebugToolbarConfig(mask_secrets=value)
