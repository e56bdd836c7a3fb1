"""LoggingPanel: the log records emitted while this request ran, and only those.

Records are attributed by context, not by time window: one handler on the root logger, shared by
every profiled request, looks up the collector of the request that emitted the record in a
ContextVar. asyncio copies the context into every task a request creates, so records from its
child tasks and ``gather`` calls land in the request's collector, while records of concurrent
requests, and of the server itself, do not. Worker threads are attributed when the context was
copied into them: ``asyncio.to_thread`` copies it; ``loop.run_in_executor`` and a bare
``threading.Thread`` do not, so their records are not shown.

The handler is installed by the first profiled request and removed when the last one ends
(a reference count under a lock), so nothing is left on the root logger when no request is being
profiled. It never touches logger levels or any other logging configuration: a record below the
effective level of its logger is never emitted, so it cannot be shown; nor can a record from a
logger that does not propagate to the root logger.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, ClassVar

from debug_toolbar.core.bounds import DEFAULT_MAX_VALUE_LENGTH, shorten
from debug_toolbar.core.panel import Panel
from debug_toolbar.core.shared_hooks import SharedHooks

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext

__all__ = (
    "MAX_RECORDS_PER_REQUEST",
    "ROOT_LOGGER",
    "LogCollector",
    "LogHandlerHook",
    "LoggingPanel",
    "RequestLogHandler",
    "current_collector",
    "log_handlers",
)

MAX_RECORDS_PER_REQUEST = 1000
"""Records kept per request; further ones are counted as dropped (a chatty loop must not eat
the memory of the whole request history)."""

current_collector: ContextVar[LogCollector | None] = ContextVar(
    "debug_toolbar_log_collector", default=None
)

_formatter = logging.Formatter()


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _message(record: logging.LogRecord) -> str:
    # A bad format string or args must not cost the request its other records.
    try:
        return record.getMessage()
    except Exception as exc:
        return (
            f"[unformattable log message {_safe_str(record.msg)!r} with args "
            f"{_safe_str(record.args)}: {type(exc).__name__}: {_safe_str(exc)}]"
        )


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_text:
        return record.exc_text
    if not record.exc_info or record.exc_info[0] is None:
        return None
    try:
        return _formatter.formatException(record.exc_info)
    except Exception as exc:
        return f"[exception could not be formatted: {type(exc).__name__}: {_safe_str(exc)}]"


class LogCollector:
    """The records of one request, as plain dicts ready to become stats.

    Filled from the loop thread and from worker threads that inherited the request's context,
    hence the lock. The message is formatted when the record is emitted, because the arguments
    may change afterwards, and shortened to ``max_value_length`` there: a message may quote a
    megabyte of request data, a thousand times. Tracebacks and stacks keep their start and
    their end, where the error is named.
    """

    __slots__ = (
        "_lock",
        "closed",
        "dropped",
        "max_records",
        "max_value_length",
        "records",
        "start_ns",
    )

    def __init__(
        self,
        start_ns: int,
        max_records: int = MAX_RECORDS_PER_REQUEST,
        max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
    ) -> None:
        self.start_ns = start_ns
        self.max_records = max_records
        self.max_value_length = max_value_length
        self.records: list[dict[str, Any]] = []
        self.dropped = 0
        self.closed = False
        self._lock = threading.Lock()

    def _has_room(self) -> bool:
        """Under the lock: False (and counted) when the record cannot be kept."""
        if self.closed:
            return False
        if len(self.records) >= self.max_records:
            self.dropped += 1
            return False
        return True

    def add(self, record: logging.LogRecord) -> None:
        now_ns = time.perf_counter_ns()
        with self._lock:
            if not self._has_room():
                return
        limit = self.max_value_length
        exc_text = _exception_text(record)
        stack_info = record.stack_info
        entry = {
            "level": record.levelname,
            "levelno": record.levelno,
            "logger": record.name,
            "message": shorten(_message(record), limit),
            "time": (now_ns - self.start_ns) / 1_000_000,
            "filename": record.filename,
            "pathname": record.pathname,
            "lineno": record.lineno,
            "func": record.funcName,
            "thread": record.threadName,
            "exc_text": None if exc_text is None else shorten(exc_text, limit, keep_end=True),
            "stack_info": None if stack_info is None else shorten(stack_info, limit, keep_end=True),
        }
        with self._lock:
            if self._has_room():
                self.records.append(entry)

    def close(self) -> None:
        """Stop collecting: tasks that outlive the request no longer add to its records."""
        with self._lock:
            self.closed = True

    def snapshot(self) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            return list(self.records), self.dropped


class RequestLogHandler(logging.Handler):
    """Routes each record to the collector of the request that emitted it, if any.

    It also stands in for ``logging.lastResort``: Python prints a record to stderr when no
    handler at all was found for it, and this handler's mere presence would otherwise make such
    warnings vanish from the console of an app that never configured logging.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            collector = current_collector.get()
            if collector is not None:
                collector.add(record)
            self._stand_in_for_last_resort(record)
        except Exception:
            self.handleError(record)

    def _stand_in_for_last_resort(self, record: logging.LogRecord) -> None:
        last_resort = logging.lastResort
        if last_resort is None or record.levelno < last_resort.level:
            return
        if not self._is_only_handler(record):
            return
        last_resort.handle(record)

    def _is_only_handler(self, record: logging.LogRecord) -> bool:
        """Would Python have found no handler for this record without this one?"""
        found = logging.Logger.manager.loggerDict.get(record.name)
        current: logging.Logger | None = (
            found if isinstance(found, logging.Logger) else logging.getLogger()
        )
        while current is not None:
            if any(handler is not self for handler in current.handlers):
                return False
            current = current.parent if current.propagate else None
        return True


class LogHandlerHook:
    """One ``RequestLogHandler`` on a logger (the root by default), shared by every request.

    Installed by the first request's ``log_handlers.acquire`` and removed by the last one's
    release (``core.shared_hooks``): a handler added and removed per request would race
    between overlapping requests.
    """

    def __init__(self, logger_name: str = "") -> None:
        self.logger_name = logger_name
        self.handler = RequestLogHandler()

    @property
    def installed(self) -> bool:
        return self.handler in logging.getLogger(self.logger_name).handlers

    def install(self) -> None:
        logging.getLogger(self.logger_name).addHandler(self.handler)

    def ensure_installed(self) -> None:
        """Put the handler back if a logging reconfiguration removed it meanwhile."""
        if not self.installed:
            self.install()

    def uninstall(self) -> None:
        logging.getLogger(self.logger_name).removeHandler(self.handler)


log_handlers: SharedHooks[str, LogHandlerHook] = SharedHooks("log handler", LogHandlerHook)
"""The process's log handlers, one per logger name (the toolbar uses the root logger's)."""

ROOT_LOGGER = ""


class LoggingPanel(Panel):
    """Log records emitted by this request's task, its child tasks and context-copying threads.

    ``process_request`` and ``process_response`` must run in the request's own task (the
    middleware does so): the collector is set in a ContextVar there, so that the app, running
    afterwards in the same task, and everything it spawns, inherit it.
    """

    title = "Logging"
    template = "panels/logging.html"

    max_records: ClassVar[int] = MAX_RECORDS_PER_REQUEST
    """Records kept per request; override in a subclass to keep more or fewer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._collector: LogCollector | None = None
        self._token: Token[LogCollector | None] | None = None
        self._acquired = False

    async def process_request(self, context: RequestContext) -> None:
        self._collector = LogCollector(
            context.start_ns, self.max_records, self.config.max_value_length
        )
        log_handlers.acquire(ROOT_LOGGER).ensure_installed()
        self._acquired = True
        self._token = current_collector.set(self._collector)

    async def process_response(self, context: RequestContext) -> None:
        if self._collector is not None:
            self._collector.close()
        if self._token is not None:
            token, self._token = self._token, None
            # ValueError: called from another context. The variable then dies with the
            # request's context, and the closed collector ignores whatever is still logged there.
            with contextlib.suppress(ValueError):
                current_collector.reset(token)
        if self._acquired:
            self._acquired = False
            log_handlers.release(ROOT_LOGGER)

    async def generate_stats(self, context: RequestContext) -> dict[str, Any]:
        if self._collector is None:
            return {"records": [], "dropped": 0}
        records, dropped = self._collector.snapshot()
        return {"records": records, "dropped": dropped}

    def get_nav_subtitle(self) -> str:
        stats = self.get_stats()
        if "records" not in stats:
            return ""
        count = len(stats["records"]) + stats["dropped"]
        return f"{count:,} message" if count == 1 else f"{count:,} messages"
