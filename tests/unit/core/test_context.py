"""RequestContext: built from a real ASGI scope; cookies, query and disabled panels parsed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from debug_toolbar.core.context import (
    DISABLED_PANELS_COOKIE,
    RequestContext,
    current_request,
    get_current_request,
)

ScopeFactory = Callable[..., dict[str, Any]]


class TestFromScope:
    def test_fields_come_from_the_scope(self, make_scope: ScopeFactory) -> None:
        scope = make_scope(
            method="POST",
            path="/orders/7",
            query_string=b"a=1",
            scheme="https",
            http_version="2",
            root_path="/api",
            client=("::1", 40000),
        )
        context = RequestContext.from_scope(scope)
        assert context.method == "POST"
        assert context.path == "/orders/7"
        assert context.query_string == "a=1"
        assert context.scheme == "https"
        assert context.http_version == "2"
        assert context.root_path == "/api"
        assert context.client_host == "::1"
        assert context.client_port == 40000
        assert ("host", "127.0.0.1:8000") in context.headers

    def test_headers_decode_as_latin1(self, make_scope: ScopeFactory) -> None:
        context = RequestContext.from_scope(make_scope(headers=[(b"x-name", "Zoë".encode())]))
        # Bytes that are not ASCII survive as latin-1 (ASGI headers are bytes, not text).
        assert context.headers == [("x-name", "ZoÃ«")]
        assert context.header("X-NAME") == "ZoÃ«"

    def test_missing_client_and_defaults(self) -> None:
        context = RequestContext.from_scope({"type": "http"})
        assert context.client_host is None
        assert context.client_port is None
        assert context.method == "GET"
        assert context.path == "/"
        assert context.headers == []

    def test_unique_ids_and_clock(self, make_scope: ScopeFactory) -> None:
        first = RequestContext.from_scope(make_scope())
        second = RequestContext.from_scope(make_scope())
        assert first.request_id != second.request_id
        # 32 lowercase hex digits: safe in URLs and file names as they are.
        assert re.fullmatch(r"[0-9a-f]{32}", first.request_id)
        assert re.fullmatch(r"[0-9a-f]{32}", second.request_id)
        assert second.start_ns >= first.start_ns


class TestHeaders:
    def test_first_header_wins_and_missing_is_none(self) -> None:
        context = RequestContext(method="GET", path="/", headers=[("Accept", "a"), ("accept", "b")])
        assert context.header("accept") == "a"
        assert context.header("x-missing") is None


class TestQueryParams:
    def test_repeated_and_blank_values_are_kept(self) -> None:
        context = RequestContext(method="GET", path="/", query_string="tag=a&tag=b&empty=&x=%20y")
        assert context.query_params == [("tag", "a"), ("tag", "b"), ("empty", ""), ("x", " y")]

    def test_empty_query(self) -> None:
        assert RequestContext(method="GET", path="/").query_params == []


class TestCookies:
    def _context(self, *cookie_headers: str) -> RequestContext:
        return RequestContext(
            method="GET", path="/", headers=[("cookie", value) for value in cookie_headers]
        )

    def test_simple_cookies(self) -> None:
        assert self._context("sessionid=abc123; theme=dark").cookies == {
            "sessionid": "abc123",
            "theme": "dark",
        }

    def test_quoted_value_is_unquoted(self) -> None:
        assert self._context('msg="hello world"').cookies == {"msg": "hello world"}

    def test_several_cookie_headers_merge(self) -> None:
        assert self._context("a=1", "b=2").cookies == {"a": "1", "b": "2"}

    def test_malformed_parts_are_skipped_not_fatal(self) -> None:
        cookies = self._context('good=1; bad"name=2; =novalue; alsogood=3').cookies
        assert cookies == {"good": "1", "alsogood": "3"}

    def test_header_name_is_case_insensitive(self) -> None:
        context = RequestContext(method="GET", path="/", headers=[("Cookie", "a=1")])
        assert context.cookies == {"a": "1"}

    def test_no_cookie_header(self) -> None:
        assert self._context().cookies == {}


class TestDisabledPanels:
    def test_comma_separated_ids(self) -> None:
        context = RequestContext(
            method="GET",
            path="/",
            headers=[("cookie", f"{DISABLED_PANELS_COOKIE}=VersionsPanel,LoggingPanel,; x=1")],
        )
        assert context.disabled_panels == frozenset({"VersionsPanel", "LoggingPanel"})

    def test_none_without_the_cookie(self) -> None:
        context = RequestContext(method="GET", path="/", headers=[("cookie", "x=1")])
        assert context.disabled_panels == frozenset()


class TestTiming:
    def test_ms_since_start_and_duration(self) -> None:
        context = RequestContext(method="GET", path="/", start_ns=1_000_000_000)
        assert context.duration_ms is None
        assert context.ms_since_start(1_012_500_000) == 12.5
        context.end_ns = 1_250_000_000
        assert context.duration_ms == 250.0


class TestCurrentRequest:
    @pytest.mark.asyncio
    async def test_child_tasks_see_their_request_only(self) -> None:
        seen: dict[str, str | None] = {}

        async def child(label: str) -> None:
            await asyncio.sleep(0)
            found = get_current_request()
            seen[label] = None if found is None else found.path

        async def request(path: str) -> None:
            current_request.set(RequestContext(method="GET", path=path))
            await asyncio.gather(child(f"{path}-a"), asyncio.create_task(child(f"{path}-b")))

        await asyncio.gather(request("/one"), request("/two"))
        assert get_current_request() is None
        assert seen == {
            "/one-a": "/one",
            "/one-b": "/one",
            "/two-a": "/two",
            "/two-b": "/two",
        }


class TestOneCookie:
    def test_read_without_parsing_unrelated_cookie_headers(self) -> None:
        context = RequestContext(
            method="GET",
            path="/",
            headers=[
                ("cookie", "session=abc; theme=dark"),
                ("Cookie", "debug_toolbar_disabled=TimerPanel,LoggingPanel"),
            ],
        )
        assert context.cookie("debug_toolbar_disabled") == "TimerPanel,LoggingPanel"
        assert context.cookie("theme") == "dark"
        assert context.cookie("absent") is None
        assert context.disabled_panels == frozenset({"TimerPanel", "LoggingPanel"})

    def test_a_name_only_inside_another_value_is_not_a_cookie(self) -> None:
        context = RequestContext(
            method="GET", path="/", headers=[("cookie", "note=debug_toolbar_disabled")]
        )
        assert context.cookie("debug_toolbar_disabled") is None
        assert context.disabled_panels == frozenset()
