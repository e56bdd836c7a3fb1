"""Helpers shared by test modules (importable as ``support``: pytest's ``pythonpath``)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.async_profiler.models import StackFrame, TaskEvent, TaskState
from debug_toolbar.core.panels.async_profiler.profiler import AsyncRequestProfiler
from debug_toolbar.core.panels.async_profiler.taskfactory_backend import TaskFactoryBackend

if TYPE_CHECKING:
    from debug_toolbar.core.panels.async_profiler.profile import AsyncProfile

__all__ = (
    "REPO",
    "HtmlNode",
    "ProcessPauses",
    "RawResponse",
    "Rendezvous",
    "fetch_record",
    "html_tree",
    "in_request",
    "live_objects_reachable",
    "load_demo",
    "marked_line",
    "profiled",
    "raw_request",
    "task_event",
)

REPO = Path(__file__).resolve().parents[1]
TOOLBAR_PREFIX = "/_debug_toolbar"


def live_objects_reachable(
    root: object, forbidden: tuple[type, ...], limit: int = 200_000
) -> list[str]:
    """The names of the ``forbidden`` objects reachable from ``root`` (what a profile or a
    record must not keep alive: a loop, a task, a frame, a request's context, a collector).

    Bound methods (a record's deferred builders) are followed to their instance; classes,
    modules and functions are not followed: every instance reaches its class, and a class
    reaches everything.
    """
    found: list[str] = []
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, forbidden):
            found.append(type(obj).__name__)
        elif isinstance(obj, MethodType):
            stack.append(obj.__self__)
        elif not isinstance(obj, (type, ModuleType, FunctionType)):
            stack.extend(gc.get_referents(obj))
    return found


def marked_line(path: str | Path, marker: str) -> int:
    """The line of ``path`` that ends with ``# marker``: tests name the lines they expect the
    toolbar to report by a comment on them, not by a number that moves with every edit."""
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise LookupError(f"no line ends with '# {marker}' in {path}")


async def profiled(body: Callable[[], Awaitable[Any]], **options: Any) -> AsyncProfile:
    """``body`` as a profiled request runs: in its own task named ``the-request``, the panel's
    profiler around it, with the panel's defaults and ``options``."""
    config = DebugToolbarConfig(**options)
    context = RequestContext(method="GET", path="/profiled", client_host="127.0.0.1")
    backend = TaskFactoryBackend(origin_ns=context.start_ns)
    profiler = AsyncRequestProfiler(context, config, backend)
    return await in_request(profiler, body, name="the-request")


async def in_request(
    profiler: AsyncRequestProfiler, body: Callable[[], Awaitable[Any]], name: str | None = None
) -> AsyncProfile:
    """``body`` in a task of its own (named ``name``), profiled from that task by
    ``profiler``, as the middleware runs a request: started there, stopped whatever happens."""

    async def request() -> AsyncProfile:
        profiler.start()
        try:
            await body()
        finally:
            profile = profiler.stop()
        return profile

    return await asyncio.create_task(request(), name=name)


async def fetch_record(client: Any, response: Any, prefix: str = TOOLBAR_PREFIX) -> dict[str, Any]:
    """The toolbar's record of ``response`` (an httpx response), through its JSON API."""
    from debug_toolbar.asgi import REQUEST_ID_HEADER

    found = await client.get(f"{prefix}/api/requests/{response.headers[REQUEST_ID_HEADER]}")
    assert found.status_code == 200, found.text
    data: dict[str, Any] = found.json()
    return data


class Rendezvous:
    """Lets ``expected`` handlers through only once all of them are in flight, so concurrent
    requests really overlap without any timing guess."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.event: asyncio.Event | None = None

    async def wait(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.arrived += 1
        if self.arrived >= self.expected:
            self.event.set()
        await self.event.wait()


class ProcessPauses:
    """Records when this whole process stopped running, seen from an independent thread.

    A shared CI machine sometimes freezes the process (CPU steal, a long garbage collection
    holding the GIL): the event loop then really misses its heartbeat, and the blocking-call
    detector honestly reports a stall that no code of the test caused. This thread ticks every
    millisecond with the GIL released in between; a gap between two ticks longer than
    ``min_gap_ms`` is a pause of the whole process. A ``time.sleep`` on the loop's thread (the
    blocking the tests cause on purpose) releases the GIL, so it never shows up here.
    """

    def __init__(self, *, tick_s: float = 0.001, min_gap_ms: float = 15.0) -> None:
        self.tick_s = tick_s
        self.min_gap_ns = round(min_gap_ms * 1_000_000)
        self.pauses: list[tuple[int, int]] = []
        """(start, end) of each pause, ``perf_counter_ns``."""
        self._wall_offset_s = time.time() - time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-pause-watch", daemon=True)

    def __enter__(self) -> ProcessPauses:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        previous = time.perf_counter_ns()
        while not self._stop.wait(self.tick_s):
            now = time.perf_counter_ns()
            if now - previous > self.min_gap_ns:
                self.pauses.append((previous, now))
            previous = now

    def paused_ns(self, start_ns: int, end_ns: int) -> int:
        """How much of [start_ns, end_ns] (``perf_counter_ns``) the process spent paused."""
        return sum(max(0, min(end, end_ns) - max(start, start_ns)) for start, end in self.pauses)

    def paused_ms_at(self, started_at: float, start_ms: float, duration_ms: float) -> float:
        """How much of a period the process spent paused, in ms; the period as a record has
        it: ``started_at`` (``time.time()``) plus ``start_ms``, lasting ``duration_ms``."""
        start_ns = round((started_at - self._wall_offset_s) * 1e9 + start_ms * 1e6)
        return self.paused_ns(start_ns, start_ns + round(duration_ms * 1e6)) / 1e6

    def explains(self, started_at: float, call: dict[str, Any], threshold_ms: float) -> bool:
        """Whether a reported blocking call (``BlockingCall.to_dict()``) is the machine's:
        without the time the process was paused, it would not have reached the threshold."""
        paused = self.paused_ms_at(started_at, call["start_ms"], call["duration_ms"])
        return bool(call["duration_ms"] - paused <= threshold_ms)


def load_demo(module_name: str = "demo_app_under_test") -> ModuleType:
    """examples/demo_app.py, by path: the examples folder is not an installed package."""
    spec = importlib.util.spec_from_file_location(module_name, REPO / "examples" / "demo_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def task_event(
    task_id: int,
    start_ms: float,
    end_ms: float | None,
    *,
    parent_id: int | None = None,
    state: TaskState | None = None,
    name: str | None = None,
    coro_name: str = "",
    exception: tuple[str, str] | None = None,
    stack: list[StackFrame] | None = None,
) -> TaskEvent:
    """A hand-built task record; pending when it has no end, completed otherwise."""
    if state is None:
        state = "pending" if end_ms is None else "completed"
    return TaskEvent(
        task_id=task_id,
        parent_id=parent_id,
        name=name if name is not None else f"Task-{task_id}",
        coro_name=coro_name,
        state=state,
        start_ms=start_ms,
        end_ms=end_ms,
        exception_type=None if exception is None else exception[0],
        exception_message=None if exception is None else exception[1],
        stack=list(stack or []),
    )


@dataclass(frozen=True)
class RawResponse:
    """What a raw HTTP/1.x client received, byte for byte: for what an HTTP library would
    refuse to hand over (a truncated chunked body) or rewrite (the Host header)."""

    status: int
    headers: dict[str, str]
    """Lowercase names; the last value of a repeated name."""
    body: bytes
    """The body as received; chunked transfer coding is decoded."""
    complete: bool
    """False when the connection closed before the body's announced end."""


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    body = b""
    while True:
        size_line, crlf, rest = data.partition(b"\r\n")
        if not crlf:
            return body, False
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body, True
        if len(rest) < size + 2:
            return body + rest[:size], False
        body += rest[:size]
        data = rest[size + 2 :]


def raw_request(
    url: str,
    path: str,
    host: str | None,
    headers: tuple[tuple[str, str], ...] = (),
    *,
    http_version: str = "1.1",
) -> RawResponse:
    """Send one GET exactly as written (``host`` None: no Host header at all) to the server at
    ``url`` (``http://127.0.0.1:PORT``) and read the response until the server closes."""
    address = url.removeprefix("http://")
    server_host, _, port = address.rpartition(":")
    lines = [f"GET {path} HTTP/{http_version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    received = bytearray()
    with socket.create_connection((server_host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    complete = True
    if parsed.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(body)
    elif "content-length" in parsed:
        complete = len(body) == int(parsed["content-length"])
    return RawResponse(int(status_line.split()[1]), parsed, body, complete)


def render_async_panel(
    stats: dict[str, Any],
    *,
    duration_ms: float = 100.0,
    max_rows: int = 500,
    with_downloads: bool = True,
) -> str:
    """The Async panel's fragment for ``stats`` as stored, rendered the way the pages do (with
    the panel's render-time context, and its download links under a root path)."""
    from debug_toolbar.core.config import DebugToolbarConfig
    from debug_toolbar.core.panel import DownloadLink
    from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
    from debug_toolbar.core.records import PanelRecord, RequestRecord
    from debug_toolbar.core.rendering import render_panel

    panel = PanelRecord(
        panel_id=AsyncProfilerPanel.panel_id,
        title="Async",
        nav_title="Async",
        nav_subtitle="",
        template=AsyncProfilerPanel.template,
        has_content=True,
        enabled=True,
        stats=stats,
        error=None,
    )
    record = RequestRecord(
        request_id="abc123",
        method="GET",
        path="/",
        query_string="",
        status_code=200,
        duration_ms=duration_ms,
        started_at=0.0,
        panels=(panel,),
    )
    config = DebugToolbarConfig(extra_panels=[AsyncProfilerPanel], async_max_timeline_rows=max_rows)
    # The links the toolbar's pages hand over (asgi.views.download_links), under a root path.
    downloads = [
        DownloadLink(
            name=download.name,
            title=download.title,
            url=f"/app{config.url_prefix}/requests/abc123/panels/x/downloads/{download.name}",
            filename=download.filename("abc123"),
        )
        for download in AsyncProfilerPanel.downloads
        if with_downloads
    ]
    return render_panel(panel, record, config.url_prefix, config, downloads)


_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "col", "wbr", "source"})
_BLOCKS = frozenset(
    {"p", "div", "pre", "li", "ol", "ul", "details", "summary", "dt", "dd", "h4", "section"}
)


class HtmlNode:
    """An element of a rendered fragment (``html_tree``), to find by class or id and read."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[HtmlNode | str] = []

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    @property
    def elements(self) -> list[HtmlNode]:
        """Its child elements (text left out)."""
        return [child for child in self.children if isinstance(child, HtmlNode)]

    def text(self) -> str:
        """Its text as the page reads it, whitespace collapsed (blocks apart)."""
        return " ".join(self._raw().split())

    def _raw(self) -> str:
        raw = "".join(child if isinstance(child, str) else child._raw() for child in self.children)
        return f" {raw} " if self.tag in _BLOCKS else raw

    def walk(self) -> list[HtmlNode]:
        """This element and every element inside it, in document order."""
        found = [self]
        for child in self.elements:
            found += child.walk()
        return found

    def find_all(self, cls: str) -> list[HtmlNode]:
        return [node for node in self.walk() if cls in node.classes]

    def find(self, cls: str) -> HtmlNode:
        """The one element with class ``cls`` (fails on none or several)."""
        [node] = self.find_all(cls)
        return node

    def by_id(self, element_id: str) -> HtmlNode:
        [node] = [node for node in self.walk() if node.attrs.get("id") == element_id]
        return node


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = HtmlNode("#fragment", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = HtmlNode(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def html_tree(html: str) -> HtmlNode:
    """A rendered fragment as a tree; fails on unbalanced or misnested tags (the toolbar
    inserts fragments with innerHTML, which would silently rebalance them)."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], [node.tag for node in builder.stack]
    return builder.root
