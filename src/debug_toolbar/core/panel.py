"""The Panel base class: one instance per request, named after the request's lifecycle.

Panels hold only their own request's state. Anything shared across requests (a loop hook, a
logging handler) lives in a module built for sharing, never on the panel class.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from debug_toolbar.core.records import HeadBuilder

if TYPE_CHECKING:
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.context import RequestContext
    from debug_toolbar.core.records import RequestRecord, StatsBuilder
    from debug_toolbar.core.toolbar import DebugToolbar

__all__ = (
    "DownloadBuilder",
    "DownloadContent",
    "DownloadLink",
    "HistoryCell",
    "HistoryColumn",
    "Panel",
    "PanelDownload",
)

DownloadContent: TypeAlias = bytes | dict[str, Any] | list[Any] | None
"""What a download's builder returns: bytes sent as they are, a JSON-ready dict or list (sent as
JSON, encoded as the JSON API encodes), or None when this request has nothing to offer."""

DownloadBuilder: TypeAlias = Callable[[dict[str, Any], "RequestRecord"], DownloadContent]
"""Builds a download from the panel's stored stats (deferred parts included) and the record."""

_DOWNLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;[ -~]*)?")


@dataclass(frozen=True, slots=True)
class PanelDownload:
    """A file a panel offers for each request it ran on (``Panel.downloads``).

    Declared on the class, built only when someone asks: the toolbar's pages serve it at
    ``{toolbar}/requests/{id}/panels/{panel_id}/downloads/{name}`` and hand its link to the
    panel's template, so a panel never builds URLs (which depend on where the app is mounted).
    ``build`` runs at download time, from the history: it sees only the stored stats and the
    record, never a panel instance.
    """

    name: str
    """The URL's last segment and the file name's pattern (``async-trace.json`` is saved as
    ``async-trace-{request_id}.json``): letters, digits, ``_``, ``.`` and ``-``."""
    title: str
    """The link's text in the panel."""
    media_type: str
    """The response's Content-Type (``application/json``)."""
    build: DownloadBuilder

    def __post_init__(self) -> None:
        # Checked at class definition: the name goes into a URL and a header, unescaped.
        if not isinstance(self.name, str) or not _DOWNLOAD_NAME.fullmatch(self.name):
            raise ValueError(
                f"PanelDownload name {self.name!r}: 1 to 100 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        if not isinstance(self.media_type, str) or not _MEDIA_TYPE.fullmatch(self.media_type):
            raise ValueError(f"PanelDownload media_type {self.media_type!r} is not a media type")
        if not callable(self.build):
            raise ValueError(f"PanelDownload build {self.build!r} is not callable")

    def filename(self, request_id: str) -> str:
        """The saved file's name: the request's id after the name's stem, only safe characters.

        ``async-trace.json`` for request ``ab12`` is ``async-trace-ab12.json``.
        """
        stem, dot, extension = self.name.partition(".")
        safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", request_id)[:100]
        return f"{stem}-{safe_id}{dot}{extension}"


@dataclass(frozen=True, slots=True)
class DownloadLink:
    """A download as a panel's template shows it (the ``downloads`` template variable)."""

    name: str
    title: str
    url: str
    """Where the browser fetches it: the toolbar's base URL, the app's root path included."""
    filename: str


_COLUMN_KEY = re.compile(r"[A-Za-z0-9_-]{1,50}")


@dataclass(frozen=True, slots=True)
class HistoryColumn:
    """A column a panel adds to the history's list of requests (``Panel.history_columns``).

    So that the request worth opening can be found in the list: the Async panel's tasks,
    blocking calls and slowest await. Declared on the class; the cells come from each
    record's stored stats (``Panel.history_cells``).
    """

    key: str
    """Names the column's cell in ``history_cells``: letters, digits, ``_`` and ``-``."""
    title: str
    """The column's heading."""
    description: str = ""
    """What the column counts (the heading's tooltip)."""
    numeric: bool = False
    """Right-aligned, as figures are."""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _COLUMN_KEY.fullmatch(self.key):
            raise ValueError(f"HistoryColumn key {self.key!r}: 1 to 50 letters, digits, '_' or '-'")


@dataclass(frozen=True, slots=True)
class HistoryCell:
    """One request's value in a panel's history column: plain text, escaped when shown."""

    text: str
    note: str = ""
    """Shown after the text, quieter (a second figure, a file:line)."""
    title: str = ""
    """The tooltip: the figure's details."""
    warn: bool = False
    """Worth attention (the request blocked the loop): shown as a warning."""


class Panel:
    """Base class for toolbar panels.

    Lifecycle, for each profiled request: ``process_request`` before the app runs (inside the
    request's own task, so ContextVars set there reach every task the request spawns),
    ``process_response`` once the app has finished (stop collecting here), then
    ``generate_stats`` (turn what was collected into JSON-compatible stats), then
    ``get_nav_subtitle`` (reads the recorded stats). Stats are plain data: they are stored in
    the history, rendered by the panel's template and served by the JSON API.
    """

    panel_id: ClassVar[str] = "Panel"
    """Stable identifier, used in URLs, cookies and the API. Defaults to the class name."""

    title: ClassVar[str] = ""
    """Heading of the panel's content."""

    nav_title: ClassVar[str] = ""
    """Label in the toolbar's list of panels."""

    template: ClassVar[str] = ""
    """Template (under ``debug_toolbar/templates``) rendering the stats as an HTML fragment."""

    has_content: ClassVar[bool] = True
    """False for panels whose nav entry says everything (nothing to open)."""

    downloads: ClassVar[tuple[PanelDownload, ...]] = ()
    """Files this panel offers for each request it ran on; the toolbar's pages serve them and
    give the template their links (``downloads``). Names are unique within a panel."""

    history_columns: ClassVar[tuple[HistoryColumn, ...]] = ()
    """Columns this panel adds to the history's list of requests, filled by
    ``history_cells``. Keys are unique within a panel."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "panel_id" not in cls.__dict__:
            cls.panel_id = cls.__name__
        if "nav_title" not in cls.__dict__ and "title" in cls.__dict__:
            cls.nav_title = cls.title
        names = [download.name for download in cls.downloads]
        if len(set(names)) != len(names):
            raise ValueError(f"{cls.__name__}.downloads: two downloads share a name in {names}")
        keys = [column.key for column in cls.history_columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{cls.__name__}.history_columns: two columns share a key in {keys}")

    @classmethod
    def get_download(cls, name: str) -> PanelDownload | None:
        """The download called ``name``, or None when this panel offers none by that name."""
        return next((download for download in cls.downloads if download.name == name), None)

    @classmethod
    def history_cells(cls, stats: Mapping[str, Any]) -> dict[str, HistoryCell]:
        """This panel's cells in one request's row of the history, by column key.

        ``stats`` is the record's head (``PanelRecord.head``: what the panel recorded while
        the request was answered, and its deferred head, built on this first read), never the
        deferred detail: the history shows a hundred requests a page and must not build any
        record's detail. So what a column needs is in the head, small. A record kept by an
        older version may lack what a column reads: give no cell for it (the column shows a
        dash), never an error. Default: none.
        """
        return {}

    def response_headers(self) -> list[tuple[str, str]]:
        """Headers this panel adds to the response, asked when the app starts its response.

        For what a browser's developer tools show without the toolbar (the Async panel's
        ``Server-Timing``): called on the loop's thread while the request is still being
        profiled, so it reads what was collected so far. Default: none.
        """
        return []

    @classmethod
    def on_shutdown(cls) -> None:
        """Release what the panel's class keeps across requests; the application is shutting
        down (ASGI lifespan shutdown, or the framework's shutdown hook), on its loop's thread.

        Most panels keep nothing (the default); the Async panel ends its loop's watchdog.
        """

    @classmethod
    def check_config(cls, config: DebugToolbarConfig) -> None:
        """Raise ``ValueError`` naming the option if this panel cannot run with ``config``.

        Called once, when a config that lists the panel is built: what cannot work in this
        environment (an optional dependency that is not installed) is reported at start-up
        instead of as this panel's error on every request.
        """

    def __init__(self, toolbar: DebugToolbar) -> None:
        self.toolbar = toolbar
        self._stats: dict[str, Any] = {}
        self.deferred_stats: list[StatsBuilder] = []
        """Builders of the stats left for later (``defer_stats``), in order."""
        self.deferred_size = 0
        """Estimated bytes the deferred builders hold until they run (``defer_stats``)."""

    @property
    def config(self) -> DebugToolbarConfig:
        return self.toolbar.config

    @property
    def context(self) -> RequestContext:
        return self.toolbar.context

    async def process_request(self, context: RequestContext) -> None:
        """Start collecting for this request."""

    async def process_response(self, context: RequestContext) -> None:
        """Stop collecting. Called even when ``process_request`` failed, so clean up here."""

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        """Turn what was collected into JSON-compatible stats."""
        return {}

    def get_nav_subtitle(self) -> str:
        """Short text under the nav title (for example "12.3 ms"), from the recorded stats."""
        return ""

    def record_stats(self, stats: dict[str, Any]) -> None:
        self._stats.update(stats)

    def get_stats(self) -> dict[str, Any]:
        """The stats recorded so far (not the deferred ones: they are built from the record)."""
        return self._stats

    def defer_stats(self, build: StatsBuilder, *, approx_size: int = 0, head: bool = False) -> None:
        """Leave part of the stats to ``build``, run when someone first reads the record.

        For stats that are costly to build and rarely all looked at: while the request is
        being answered, a panel records what its nav subtitle and the toolbar need, and defers
        the rest. ``build`` runs once, maybe in another thread and long after the request, so
        it must only read data the panel no longer changes (call it from ``generate_stats``,
        after collecting has stopped). Its dict is merged into the recorded stats.

        ``approx_size`` estimates the bytes ``build`` holds until it runs (what it will turn into
        stats), so that the history's byte budget counts them meanwhile; once built, the stats
        are measured and that estimate is replaced.

        With ``head``, ``build`` makes (part of) the record's head, what the history's columns
        read (``PanelRecord.head``): it runs when the head or the stats are first read. For a
        panel whose head costs more than most requests should pay while answered, and which
        can say its nav subtitle without it (the subtitle is computed when the record is
        built). A page showing the toolbar reads only subtitles; the history builds the heads
        of the records it lists.
        """
        self.deferred_stats.append(HeadBuilder(build) if head else build)
        self.deferred_size += approx_size

    @classmethod
    def get_template_context(
        cls, stats: dict[str, Any], record: RequestRecord, config: DebugToolbarConfig
    ) -> dict[str, Any]:
        """Extra template variables built from stored stats when the panel is displayed.

        Runs at render time, from the history, so it sees only plain data: no panel instance.
        """
        return {}
