"""Server-Timing header values: the specification's syntax, escaping, and refusing bad metrics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from debug_toolbar.core.server_timing import (
    DurationMetric,
    ServerTimingMetric,
    quoted_string,
    server_timing,
)


class TestMetric:
    def test_name_duration_and_description(self) -> None:
        metric = ServerTimingMetric("run", 12.3456, "Running on the loop")
        assert str(metric) == 'run;dur=12.346;desc="Running on the loop"'

    def test_a_count_has_no_duration(self) -> None:
        assert str(ServerTimingMetric("tasks", None, "3 tasks spawned")) == (
            'tasks;desc="3 tasks spawned"'
        )

    def test_a_name_alone(self) -> None:
        assert str(ServerTimingMetric("miss")) == "miss"

    def test_zero_and_whole_durations(self) -> None:
        assert str(ServerTimingMetric("blocked", 0.0)) == "blocked;dur=0.000"
        assert str(ServerTimingMetric("wait", 50)) == "wait;dur=50.000"

    @pytest.mark.parametrize("name", ["", "two words", "a,b", 'q"', "é", "x;y", None])
    def test_a_name_must_be_a_token(self, name: Any) -> None:
        with pytest.raises(ValueError, match="is not a token"):
            ServerTimingMetric(name)

    @pytest.mark.parametrize("duration", [-0.001, math.inf, math.nan, True, "1"])
    def test_a_duration_must_be_finite_and_not_negative(self, duration: Any) -> None:
        with pytest.raises(ValueError, match="not a finite number of milliseconds"):
            ServerTimingMetric("run", duration)


class TestQuotedString:
    def test_plain_text_is_quoted(self) -> None:
        assert quoted_string("Other requests' stalls") == '"Other requests\' stalls"'

    def test_quotes_and_backslashes_are_escaped(self) -> None:
        assert quoted_string('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'

    def test_controls_and_non_ascii_are_replaced(self) -> None:
        # A newline would end the header; non-ASCII is obsolete in a header value.
        assert quoted_string("a\r\nb\x00c\x7f – café\tend") == '"a??b?c? ? caf?\tend"'

    def test_the_value_goes_out_as_latin_1(self) -> None:
        value = str(ServerTimingMetric("run", 1.0, 'naïve \u2603 "x"\n'))
        assert value.encode("latin-1").decode("ascii") == 'run;dur=1.000;desc="na?ve ? \\"x\\"?"'


class TestDurationMetric:
    def test_formats_as_the_metric_would(self) -> None:
        run = DurationMetric("run", 'Running "on" the loop')
        assert run(12.3456) == str(ServerTimingMetric("run", 12.3456, 'Running "on" the loop'))
        assert run(0) == 'run;dur=0.000;desc="Running \\"on\\" the loop"'
        assert DurationMetric("cpu")(1.5) == "cpu;dur=1.500"

    def test_checked_once_when_built(self) -> None:
        with pytest.raises(ValueError, match="is not a token"):
            DurationMetric("two words")

    @pytest.mark.parametrize("duration", [-0.5, math.inf, math.nan])
    def test_a_bad_duration_is_refused(self, duration: float) -> None:
        with pytest.raises(ValueError, match=r"wait: duration .* is not a finite number"):
            DurationMetric("wait")(duration)


class TestHeader:
    def test_metrics_in_order_comma_separated(self) -> None:
        value = server_timing(
            [ServerTimingMetric("run", 1.5, "Running"), DurationMetric("db")(2), 'x;desc="y"']
        )
        assert value == 'run;dur=1.500;desc="Running", db;dur=2.000, x;desc="y"'

    def test_no_metrics_is_empty(self) -> None:
        assert server_timing([]) == ""
