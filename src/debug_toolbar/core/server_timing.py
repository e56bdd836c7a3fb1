"""The ``Server-Timing`` response header (W3C Server Timing): what a browser's network tab shows.

A panel adds it through ``Panel.response_headers`` (the Async panel's breakdown), so a JSON
route that gets no toolbar still tells its story in the browser's developer tools. The syntax,
from the specification::

    Server-Timing = #server-timing-metric
    server-timing-metric = metric-name *( OWS ";" OWS server-timing-param )
    metric-name = token
    server-timing-param = "dur" "=" number (milliseconds) / "desc" "=" (token / quoted-string)

A metric may have no ``dur``: browsers then show its description alone, which is how a count
is said (``dur`` is a duration; a count there would read as milliseconds).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("DurationMetric", "ServerTimingMetric", "quoted_string", "server_timing")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE = re.compile(r'[^\t\x20-\x7e]|["\\]')
"""What a quoted-string cannot hold as is: controls and non-ASCII (replaced), ``"`` and ``\\``
(escaped). Non-ASCII (obs-text) is legal but obsolete, and header values go out as latin-1."""


def quoted_string(text: str) -> str:
    """``text`` as an HTTP quoted-string: ``"`` and ``\\`` escaped; a control character or a
    non-ASCII one, which a header cannot carry safely, becomes ``?``."""
    return '"' + _UNSAFE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return "\\" + char if char in '"\\' else "?"


@dataclass(frozen=True, slots=True)
class ServerTimingMetric:
    """One metric of a ``Server-Timing`` header: a name, maybe a duration and a description."""

    name: str
    """A token: letters, digits and ``!#$%&'*+-.^_`|~``."""
    duration_ms: float | None = None
    """Milliseconds (finite, not negative); None when the metric is not a duration."""
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TOKEN.fullmatch(self.name):
            raise ValueError(f"Server-Timing metric name {self.name!r} is not a token")
        duration = self.duration_ms
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not 0 <= duration < math.inf
        ):
            raise ValueError(
                f"Server-Timing metric {self.name}: duration {duration!r} is not a finite "
                "number of milliseconds >= 0"
            )

    def __str__(self) -> str:
        text = self.name
        if self.duration_ms is not None:
            text += f";dur={self.duration_ms:.3f}"
        if self.description is not None:
            text += f";desc={quoted_string(self.description)}"
        return text


def server_timing(metrics: Iterable[ServerTimingMetric | str]) -> str:
    """The header's value: the metrics in order, comma-separated (a ``str`` is a metric's
    text already, as a ``DurationMetric`` formats it)."""
    return ", ".join(map(str, metrics))


class DurationMetric:
    """A metric whose name and description are fixed and whose duration is not, for a header
    built on every response: checked and escaped once, here, then formatted with one string
    operation (a ``ServerTimingMetric`` per metric and response costs some microseconds).
    """

    __slots__ = ("_head", "_tail", "name")

    def __init__(self, name: str, description: str | None = None) -> None:
        checked = ServerTimingMetric(name, 0.0, description)
        self.name = name
        self._head = f"{name};dur="
        self._tail = str(checked).removeprefix(f"{name};dur=0.000")

    def __call__(self, duration_ms: float) -> str:
        """The metric's text with ``duration_ms`` (finite, not negative)."""
        if not 0 <= duration_ms < math.inf:
            raise ValueError(
                f"Server-Timing metric {self.name}: duration {duration_ms!r} is not a finite "
                "number of milliseconds >= 0"
            )
        return f"{self._head}{duration_ms:.3f}{self._tail}"
