"""RequestPanel: the request as received, credentials masked unless told not to, everything
escaped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.request import RequestPanel
from debug_toolbar.core.rendering import render_panel

ScopeFactory = Callable[..., dict[str, Any]]
Lifecycle = Callable[..., Any]

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"accept", b"application/json"),
    (b"authorization", b"Bearer s3cr3t-token"),
    (b"x-forwarded-for", b"10.0.0.1"),
    (b"x-forwarded-for", b"10.0.0.2"),
    (b"cookie", b"sessionid=abc123; theme=dark"),
]
SCOPE = {
    "method": "POST",
    "path": "/orders/7",
    "query_string": b"tag=a&tag=b&empty=&q=caf%C3%A9",
    "headers": HEADERS,
    "scheme": "https",
    "http_version": "2",
    "root_path": "/api",
    "client": ("127.0.0.1", 51234),
}


class TestStats:
    @pytest.mark.asyncio
    async def test_everything_the_client_sent(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        scope = make_scope(**SCOPE)
        _, record = await run_lifecycle(
            [RequestPanel], RequestContext.from_scope(scope), mask_secrets=False
        )
        panel = record.panel("RequestPanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats == {
            "method": "POST",
            "path": "/orders/7",
            "root_path": "/api",
            "query_string": "tag=a&tag=b&empty=&q=caf%C3%A9",
            "query_params": [["tag", "a"], ["tag", "b"], ["empty", ""], ["q", "café"]],
            "query_params_dropped": 0,
            "headers": [
                ["host", "127.0.0.1:8000"],
                ["accept", "application/json"],
                ["authorization", "Bearer s3cr3t-token"],
                ["x-forwarded-for", "10.0.0.1"],
                ["x-forwarded-for", "10.0.0.2"],
                ["cookie", "sessionid=abc123; theme=dark"],
            ],
            "headers_dropped": 0,
            "cookies": [["sessionid", "abc123"], ["theme", "dark"]],
            "cookies_dropped": 0,
            "masked": False,
            "client_host": "127.0.0.1",
            "client_port": 51234,
            "scheme": "https",
            "http_version": "2",
        }
        assert panel.nav_subtitle == "POST /orders/7"
        assert panel.title == "Request"

    @pytest.mark.asyncio
    async def test_credentials_are_masked_in_the_record_by_default(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        headers = [*HEADERS, (b"cookie", b"debug_toolbar_disabled=TimerPanel")]
        context = RequestContext.from_scope(make_scope(**{**SCOPE, "headers": headers}))
        _, record = await run_lifecycle([RequestPanel], context)
        panel = record.panel("RequestPanel")
        assert panel is not None
        assert panel.stats["headers"] == [
            ["host", "127.0.0.1:8000"],
            ["accept", "application/json"],
            ["authorization", "Bearer ********"],
            ["x-forwarded-for", "10.0.0.1"],
            ["x-forwarded-for", "10.0.0.2"],
            ["cookie", "sessionid=********; theme=********"],
            ["cookie", "debug_toolbar_disabled=TimerPanel"],
        ]
        assert panel.stats["cookies"] == [
            ["sessionid", "********"],
            ["theme", "********"],
            ["debug_toolbar_disabled", "TimerPanel"],
        ]
        assert panel.stats["masked"] is True
        assert "s3cr3t" not in repr(record.to_api_dict())
        assert "abc123" not in repr(record.to_api_dict())
        # The live context keeps what was received: panels and the app read it while running.
        assert context.header("authorization") == "Bearer s3cr3t-token"
        assert context.cookies["sessionid"] == "abc123"

    @pytest.mark.asyncio
    async def test_long_paths_are_shortened_in_the_nav_only(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        path = "/a/very/long/path/that/goes/on/and/on/forever"
        _, record = await run_lifecycle(
            [RequestPanel], RequestContext.from_scope(make_scope(path=path))
        )
        panel = record.panel("RequestPanel")
        assert panel is not None
        assert panel.nav_subtitle == "GET /a/very/long/path/that/goes…"
        assert len(panel.nav_subtitle) == 32
        assert panel.stats["path"] == path

    @pytest.mark.asyncio
    async def test_no_client_no_query_no_cookies(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        scope = make_scope(query_string=b"", headers=[(b"host", b"x")], client=None)
        _, record = await run_lifecycle([RequestPanel], RequestContext.from_scope(scope))
        panel = record.panel("RequestPanel")
        assert panel is not None
        assert panel.stats["client_host"] is None
        assert panel.stats["client_port"] is None
        assert panel.stats["query_params"] == []
        assert panel.stats["cookies"] == []
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "No query parameters." in html
        assert "No cookies." in html
        assert "unknown" in html


class TestTemplate:
    @pytest.mark.asyncio
    async def test_values_are_shown_unmasked_and_escaped(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        scope = make_scope(
            query_string=b"next=%3Cscript%3Ealert(1)%3C/script%3E",
            headers=[*HEADERS, (b"x-evil", b"<img src=x onerror=alert(1)>")],
        )
        _, record = await run_lifecycle(
            [RequestPanel], RequestContext.from_scope(scope), mask_secrets=False
        )
        panel = record.panel("RequestPanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "Bearer s3cr3t-token" in html
        assert "abc123" in html
        assert "127.0.0.1:51234" in html
        assert "http, HTTP/1.1" in html
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "mask_secrets</code> is off" in html

    @pytest.mark.asyncio
    async def test_masked_values_say_so(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        scope = make_scope(headers=HEADERS)
        _, record = await run_lifecycle([RequestPanel], RequestContext.from_scope(scope))
        panel = record.panel("RequestPanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "s3cr3t" not in html
        assert "abc123" not in html
        assert '<code class="dt-code">sessionid</code>' in html
        assert "Bearer ********" in html
        assert "are masked in what the toolbar records" in html


class TestSize:
    """A request built to be large: only a bounded part of it is kept, and the page says so."""

    @pytest.mark.asyncio
    async def test_long_values_and_long_lists_are_cut_and_counted(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        query = "&".join(f"k{i}=v" for i in range(300)) + "&big=" + "b" * 1_000_000
        headers = [(b"host", b"127.0.0.1:8000"), (b"x-long", b"L" * 100_000)]
        headers += [(f"x-h{i}".encode(), b"1") for i in range(150)]
        scope = make_scope(query_string=query.encode(), headers=headers)
        _, record = await run_lifecycle(
            [RequestPanel], RequestContext.from_scope(scope), max_value_length=1000
        )
        panel = record.panel("RequestPanel")
        assert panel is not None
        stats = panel.stats
        assert len(stats["query_string"]) <= 1000
        kept = stats["query_string"].index("…")
        assert stats["query_string"][:kept] == query[:kept]
        assert stats["query_string"][kept:] == (
            f"…({len(query):,} characters, {len(query) - kept:,} not kept)"
        )
        assert stats["query_params"][:2] == [["k0", "v"], ["k1", "v"]]
        assert (len(stats["query_params"]), stats["query_params_dropped"]) == (100, 201)
        assert stats["headers"][1][0] == "x-long"
        assert stats["headers"][1][1].endswith("…(100,000 characters, 99,039 not kept)")
        assert (len(stats["headers"]), stats["headers_dropped"]) == (100, 52)
        assert record.query_string == stats["query_string"]
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "and 201 more, not kept: a record keeps the first 100." in html
        assert "and 52 more, not kept: a record keeps the first 100." in html
        assert "(100,000 characters, 99,039 not kept)" in html
        assert len(html) < 100_000
