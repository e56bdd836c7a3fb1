"""LoggingPanel: records attributed by context to the request that emitted them.

Concurrent requests run as real asyncio tasks in one loop, each through its own toolbar
lifecycle, and must each see only their own records, including those of their child tasks.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar

import pytest

from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.logging import (
    ROOT_LOGGER,
    LogCollector,
    LoggingPanel,
    current_collector,
    log_handlers,
)
from debug_toolbar.core.rendering import render_panel
from debug_toolbar.core.toolbar import DebugToolbar

ScopeFactory = Callable[..., dict[str, Any]]
Lifecycle = Callable[..., Any]

LOGGER = logging.getLogger("tests.debug_toolbar.app")


@pytest.fixture(autouse=True)
def app_logger() -> Iterator[logging.Logger]:
    """An app logger at DEBUG; and no test may leave the shared handler installed."""
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    previous = LOGGER.level
    LOGGER.setLevel(logging.DEBUG)
    yield LOGGER
    LOGGER.setLevel(previous)
    assert log_handlers.users(ROOT_LOGGER) == 0
    assert log_handlers.get(ROOT_LOGGER) is None
    assert root.level == root_level
    assert root.handlers == root_handlers


def _messages(toolbar: DebugToolbar) -> list[str]:
    panel = toolbar.get_panel("LoggingPanel")
    assert panel is not None
    return [entry["message"] for entry in panel.get_stats()["records"]]


def _toolbar(
    make_scope: ScopeFactory, path: str, panel: type[LoggingPanel] = LoggingPanel
) -> DebugToolbar:
    context = RequestContext.from_scope(make_scope(path=path))
    return DebugToolbar(DebugToolbarConfig(panels=[panel]), context)


async def _serve(toolbar: DebugToolbar, app: Callable[[], Awaitable[None]]) -> DebugToolbar:
    """The middleware's part: the whole lifecycle inside the request's own task."""
    await toolbar.process_request()
    try:
        await app()
    finally:
        await toolbar.process_response()
    await toolbar.generate_stats()
    return toolbar


class TestConcurrentRequests:
    @pytest.mark.asyncio
    async def test_each_request_gets_only_its_own_records(self, make_scope: ScopeFactory) -> None:
        both_started = asyncio.Barrier(2) if sys.version_info >= (3, 11) else None
        started = {"/a": asyncio.Event(), "/b": asyncio.Event()}
        refcounts_seen: list[int] = []

        async def child(label: str, n: int) -> None:
            await asyncio.sleep(0)
            LOGGER.warning("%s child %d", label, n)

        async def grandparent(label: str) -> None:
            await asyncio.create_task(child(label, 99))

        def app_for(label: str, other: str) -> Callable[[], Awaitable[None]]:
            async def app() -> None:
                LOGGER.info("%s handler start", label)
                started[label].set()
                await started[other].wait()  # both requests are now in flight
                if both_started is not None:
                    await both_started.wait()
                refcounts_seen.append(log_handlers.users(ROOT_LOGGER))
                await asyncio.create_task(child(label, 0))
                await asyncio.gather(child(label, 1), child(label, 2))
                await asyncio.create_task(grandparent(label))
                LOGGER.debug("%s handler end", label)

            return app

        request_a = asyncio.create_task(_serve(_toolbar(make_scope, "/a"), app_for("/a", "/b")))
        request_b = asyncio.create_task(_serve(_toolbar(make_scope, "/b"), app_for("/b", "/a")))
        await started["/a"].wait()
        await started["/b"].wait()
        LOGGER.error("outside any request")  # the server's own logging, during both requests
        toolbar_a, toolbar_b = await asyncio.gather(request_a, request_b)

        assert refcounts_seen == [2, 2]
        for toolbar, label in ((toolbar_a, "/a"), (toolbar_b, "/b")):
            assert _messages(toolbar) == [
                f"{label} handler start",
                f"{label} child 0",
                f"{label} child 1",
                f"{label} child 2",
                f"{label} child 99",
                f"{label} handler end",
            ]
            assert toolbar.errors == {}

    @pytest.mark.asyncio
    async def test_overlapping_lifecycles_keep_the_handler_until_the_last_ends(
        self, make_scope: ScopeFactory
    ) -> None:
        a_may_end, b_may_end, a_ended = asyncio.Event(), asyncio.Event(), asyncio.Event()
        observed: dict[str, Any] = {}

        async def app_a() -> None:
            LOGGER.info("a before")
            await a_may_end.wait()

        async def app_b() -> None:
            LOGGER.info("b before")
            a_may_end.set()
            await a_ended.wait()
            observed["refcount_after_a"] = log_handlers.users(ROOT_LOGGER)
            observed["installed_after_a"] = log_handlers.get(ROOT_LOGGER) is not None
            LOGGER.info("b after a ended")
            await b_may_end.wait()

        async def request_a() -> DebugToolbar:
            toolbar = await _serve(_toolbar(make_scope, "/a"), app_a)
            a_ended.set()
            return toolbar

        task_a = asyncio.create_task(request_a())
        await asyncio.sleep(0)
        assert log_handlers.users(ROOT_LOGGER) == 1
        task_b = asyncio.create_task(_serve(_toolbar(make_scope, "/b"), app_b))
        toolbar_a = await task_a
        b_may_end.set()
        toolbar_b = await task_b

        assert observed == {"refcount_after_a": 1, "installed_after_a": True}
        assert _messages(toolbar_a) == ["a before"]
        assert _messages(toolbar_b) == ["b before", "b after a ended"]
        assert log_handlers.users(ROOT_LOGGER) == 0
        assert log_handlers.get(ROOT_LOGGER) is None


class TestAttribution:
    @pytest.mark.asyncio
    async def test_threads_inherit_only_a_copied_context(self, make_scope: ScopeFactory) -> None:
        def log_from_thread(message: str) -> None:
            LOGGER.info(message)

        async def app() -> None:
            await asyncio.to_thread(log_from_thread, "from to_thread")
            plain = threading.Thread(target=log_from_thread, args=("from a bare thread",))
            plain.start()
            plain.join()
            await asyncio.get_running_loop().run_in_executor(
                None, log_from_thread, "from run_in_executor"
            )

        toolbar = await _serve(_toolbar(make_scope, "/t"), app)
        panel = toolbar.get_panel("LoggingPanel")
        assert panel is not None
        records = panel.get_stats()["records"]
        assert [r["message"] for r in records] == ["from to_thread"]
        assert records[0]["thread"] != threading.current_thread().name

    @pytest.mark.asyncio
    async def test_record_fields(self, make_scope: ScopeFactory) -> None:
        async def app() -> None:
            await asyncio.sleep(0)
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError:
                LOGGER.exception("division failed for %s", "user 7")

        toolbar = await _serve(_toolbar(make_scope, "/f"), app)
        panel = toolbar.get_panel("LoggingPanel")
        assert panel is not None
        (entry,) = panel.get_stats()["records"]
        assert toolbar.context.duration_ms is not None
        assert 0 <= entry["time"] <= toolbar.context.duration_ms
        assert entry["level"] == "ERROR"
        assert entry["levelno"] == logging.ERROR
        assert entry["logger"] == "tests.debug_toolbar.app"
        assert entry["message"] == "division failed for user 7"
        assert entry["filename"] == "test_logging.py"
        assert entry["pathname"] == __file__
        assert entry["func"] == "app"
        assert isinstance(entry["lineno"], int)
        assert entry["exc_text"].startswith("Traceback (most recent call last):")
        assert entry["exc_text"].endswith("ZeroDivisionError: division by zero")
        assert entry["stack_info"] is None
        assert panel.get_nav_subtitle() == "1 message"

    @pytest.mark.asyncio
    async def test_levels_are_not_touched(self, make_scope: ScopeFactory) -> None:
        quiet = logging.getLogger("tests.debug_toolbar.quiet")
        quiet.setLevel(logging.WARNING)

        async def app() -> None:
            quiet.info("below the level: never emitted")
            quiet.warning("at the level")

        try:
            toolbar = await _serve(_toolbar(make_scope, "/q"), app)
            assert quiet.level == logging.WARNING
        finally:
            quiet.setLevel(logging.NOTSET)
        assert _messages(toolbar) == ["at the level"]

    @pytest.mark.asyncio
    async def test_non_propagating_loggers_are_not_seen(self, make_scope: ScopeFactory) -> None:
        private = logging.getLogger("tests.debug_toolbar.private")
        private.propagate = False
        private.setLevel(logging.INFO)

        async def app() -> None:
            private.info("kept to itself")
            LOGGER.info("propagates")

        try:
            toolbar = await _serve(_toolbar(make_scope, "/p"), app)
        finally:
            private.propagate = True
            private.setLevel(logging.NOTSET)
        assert _messages(toolbar) == ["propagates"]

    @pytest.mark.asyncio
    async def test_tasks_outliving_the_request_are_not_added(
        self, make_scope: ScopeFactory
    ) -> None:
        release = asyncio.Event()
        leftovers: list[asyncio.Task[None]] = []

        async def background() -> None:
            await release.wait()
            LOGGER.info("after the response")

        async def app() -> None:
            leftovers.append(asyncio.create_task(background()))
            LOGGER.info("during the request")

        toolbar = await _serve(_toolbar(make_scope, "/bg"), app)
        release.set()
        await leftovers[0]
        panel = toolbar.get_panel("LoggingPanel")
        assert panel is not None
        assert _messages(toolbar) == ["during the request"]
        assert current_collector.get() is None


class CappedLoggingPanel(LoggingPanel):
    panel_id = "LoggingPanel"
    max_records: ClassVar[int] = 3


class TestCap:
    @pytest.mark.asyncio
    async def test_records_beyond_the_cap_are_counted(self, make_scope: ScopeFactory) -> None:
        async def app() -> None:
            for index in range(5):
                LOGGER.info("message %d", index)

        toolbar = await _serve(_toolbar(make_scope, "/cap", CappedLoggingPanel), app)
        panel = toolbar.get_panel("LoggingPanel")
        assert panel is not None
        stats = panel.get_stats()
        assert [r["message"] for r in stats["records"]] == ["message 0", "message 1", "message 2"]
        assert stats["dropped"] == 2
        assert panel.get_nav_subtitle() == "5 messages"
        record = toolbar.build_record()
        panel_record = record.panel("LoggingPanel")
        assert panel_record is not None
        html = render_panel(panel_record, record, "/_debug_toolbar")
        assert "and 2 more" in html

    def test_default_cap(self) -> None:
        assert LoggingPanel.max_records == 1000


class TestCollector:
    def _record(self, msg: str, args: Any, **extra: Any) -> logging.LogRecord:
        return logging.makeLogRecord(
            {"name": "x", "levelno": 20, "levelname": "INFO", "msg": msg, "args": args, **extra}
        )

    def test_bad_format_arguments_do_not_raise(self) -> None:
        collector = LogCollector(start_ns=0)
        collector.add(self._record("%d items", ("many",)))
        records, dropped = collector.snapshot()
        assert dropped == 0
        assert records[0]["message"] == (
            "[unformattable log message '%d items' with args ('many',): "
            "TypeError: %d format: a real number is required, not str]"
        )

    def test_unprintable_message_object(self) -> None:
        class Unprintable:
            def __str__(self) -> str:
                raise RuntimeError("nope")

        collector = LogCollector(start_ns=0)
        collector.add(self._record(Unprintable(), None))  # type: ignore[arg-type]
        records, _ = collector.snapshot()
        assert records[0]["message"].startswith("[unformattable log message '<unprintable")

    def test_closed_collector_ignores_records(self) -> None:
        collector = LogCollector(start_ns=0)
        collector.close()
        collector.add(self._record("late", None))
        assert collector.snapshot() == ([], 0)

    def test_long_messages_and_tracebacks_are_shortened_when_emitted(self) -> None:
        collector = LogCollector(start_ns=0, max_value_length=500)
        try:
            raise ValueError("at the end")
        except ValueError:
            exc_info = sys.exc_info()
        frames = "".join(f"  line {i}\n" for i in range(2000))
        collector.add(
            self._record(
                "query was %s", ("q" * 1_000_000,), exc_info=exc_info, stack_info=frames + "last"
            )
        )
        records, _ = collector.snapshot()
        entry = records[0]
        assert len(entry["message"]) <= 500
        assert entry["message"].startswith("query was qqq")
        assert entry["message"].endswith("…(1,000,010 characters, 999,553 not kept)")
        assert len(entry["exc_text"]) <= 500
        assert entry["exc_text"].startswith("Traceback (most recent call last):")
        assert entry["exc_text"].endswith("ValueError: at the end")
        assert len(entry["stack_info"]) <= 500
        assert entry["stack_info"].endswith("  line 1999\nlast")
        assert f"…({len(frames) + 4:,} characters, " in entry["stack_info"]

    def test_default_length_is_the_config_default(self) -> None:
        assert LogCollector(start_ns=0).max_value_length == 4096

    def test_concurrent_adds_respect_the_cap(self) -> None:
        collector = LogCollector(start_ns=0, max_records=100)
        start = threading.Barrier(8)

        def add_many() -> None:
            start.wait()
            for index in range(50):
                collector.add(self._record("m %d", (index,)))

        threads = [threading.Thread(target=add_many) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        records, dropped = collector.snapshot()
        assert len(records) == 100
        assert dropped == 300


class TestSharedHandler:
    def test_refcount_installs_and_removes(self) -> None:
        name = "tests.debug_toolbar.refcount"
        logger = logging.getLogger(name)
        assert log_handlers.get(name) is None
        hook = log_handlers.acquire(name)
        assert log_handlers.acquire(name) is hook
        assert log_handlers.users(name) == 2
        assert logger.handlers == [hook.handler]
        log_handlers.release(name)
        assert hook.installed
        log_handlers.release(name)
        assert log_handlers.users(name) == 0
        assert logger.handlers == []
        log_handlers.release(name)  # an extra release is harmless
        assert log_handlers.users(name) == 0

    def test_reinstalled_after_a_logging_reconfiguration(self) -> None:
        name = "tests.debug_toolbar.reconfigured"
        logger = logging.getLogger(name)
        log_handlers.acquire(name)
        logger.handlers.clear()  # what dictConfig / basicConfig(force=True) do
        hook = log_handlers.acquire(name)
        hook.ensure_installed()  # what the panel does on every acquire
        assert logger.handlers == [hook.handler]
        log_handlers.release(name)
        log_handlers.release(name)
        assert logger.handlers == []

    def test_thread_safe_refcount(self) -> None:
        name = "tests.debug_toolbar.threads"
        start = threading.Barrier(16)

        def churn() -> None:
            start.wait()
            for _ in range(500):
                log_handlers.acquire(name)
                log_handlers.release(name)

        threads = [threading.Thread(target=churn) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log_handlers.users(name) == 0
        assert logging.getLogger(name).handlers == []

    def test_handler_ignores_records_outside_requests(self) -> None:
        name = "tests.debug_toolbar.outside"
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        log_handlers.acquire(name)
        try:
            logger.info("nobody is listening")  # must neither fail nor be stored anywhere
            assert current_collector.get() is None
        finally:
            log_handlers.release(name)
            logger.setLevel(logging.NOTSET)


class TestLastResort:
    """An app that never configured logging still sees its warnings on stderr."""

    def _emit_all(self, child: logging.Logger) -> None:
        child.warning("warned %d", 1)
        child.info("informed")
        child.error("failed")

    def test_console_output_is_unchanged_by_the_handler(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        stream = io.StringIO()
        last_resort = logging.StreamHandler(stream)
        last_resort.setLevel(logging.WARNING)
        monkeypatch.setattr(logging, "lastResort", last_resort)
        # A logger tree with no handlers that does not reach pytest's handlers on the root.
        top = logging.getLogger("tests.debug_toolbar.unconfigured")
        monkeypatch.setattr(top, "propagate", False)
        child = logging.getLogger("tests.debug_toolbar.unconfigured.child")
        child.setLevel(logging.INFO)
        try:
            self._emit_all(child)
            without_toolbar = stream.getvalue()
            stream.seek(0)
            stream.truncate()
            log_handlers.acquire("tests.debug_toolbar.unconfigured")
            try:
                self._emit_all(child)
            finally:
                log_handlers.release(top.name)
            with_toolbar = stream.getvalue()
        finally:
            child.setLevel(logging.NOTSET)
        assert without_toolbar == "warned 1\nfailed\n"
        assert with_toolbar == without_toolbar

    def test_no_stand_in_when_the_app_has_a_handler(self, monkeypatch: pytest.MonkeyPatch) -> None:
        stream = io.StringIO()
        monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(stream))
        top = logging.getLogger("tests.debug_toolbar.configured")
        monkeypatch.setattr(top, "propagate", False)
        app_stream = io.StringIO()
        app_handler = logging.StreamHandler(app_stream)
        top.addHandler(app_handler)
        log_handlers.acquire("tests.debug_toolbar.configured")
        try:
            top.warning("once")
        finally:
            log_handlers.release(top.name)
            top.removeHandler(app_handler)
        assert app_stream.getvalue() == "once\n"
        assert stream.getvalue() == ""


class TestLifecycleEdges:
    @pytest.mark.asyncio
    async def test_process_response_from_another_task(self, make_scope: ScopeFactory) -> None:
        toolbar = _toolbar(make_scope, "/split")

        async def start() -> None:
            await toolbar.process_request()
            LOGGER.info("in the starting task")

        await asyncio.create_task(start())
        assert log_handlers.users(ROOT_LOGGER) == 1
        await asyncio.create_task(toolbar.process_response())
        await toolbar.generate_stats()
        assert toolbar.errors == {}
        assert log_handlers.users(ROOT_LOGGER) == 0
        assert _messages(toolbar) == ["in the starting task"]

    @pytest.mark.asyncio
    async def test_app_exception_still_releases(self, make_scope: ScopeFactory) -> None:
        async def app() -> None:
            LOGGER.warning("about to fail")
            raise RuntimeError("app failed")

        toolbar = _toolbar(make_scope, "/boom")
        with pytest.raises(RuntimeError, match="app failed"):
            await _serve(toolbar, app)
        assert log_handlers.users(ROOT_LOGGER) == 0
        await toolbar.generate_stats()
        assert _messages(toolbar) == ["about to fail"]


class TestTemplate:
    @pytest.mark.asyncio
    async def test_empty(self, make_scope: ScopeFactory, run_lifecycle: Lifecycle) -> None:
        _, record = await run_lifecycle([LoggingPanel], RequestContext.from_scope(make_scope()))
        panel = record.panel("LoggingPanel")
        assert panel is not None
        assert panel.stats == {"records": [], "dropped": 0}
        assert panel.nav_subtitle == "0 messages"
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "No records. Loggers below their level emit nothing." in html

    @pytest.mark.asyncio
    async def test_messages_are_escaped_with_level_badges(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        async def app(context: RequestContext) -> None:
            LOGGER.info("user said <script>alert(1)</script>")
            LOGGER.warning("careful")
            LOGGER.critical("on fire")

        _, record = await run_lifecycle(
            [LoggingPanel], RequestContext.from_scope(make_scope()), app
        )
        panel = record.panel("LoggingPanel")
        assert panel is not None
        assert panel.nav_subtitle == "3 messages"
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "<script>" not in html
        assert "user said &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert '<span class="dt-badge dt-badge-warn">WARNING</span>' in html
        assert '<span class="dt-badge dt-badge-error">CRITICAL</span>' in html
        assert '<span class="dt-badge ">INFO</span>' in html
        assert "test_logging.py:" in html
        assert "No records." not in html
