"""ResponsePanel: status, reason phrase and headers as sent to the client, and whether the
body arrived whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.response import ResponsePanel, reason_phrase
from debug_toolbar.core.rendering import render_panel

ScopeFactory = Callable[..., dict[str, Any]]
Lifecycle = Callable[..., Any]


class TestReasonPhrase:
    @pytest.mark.parametrize(
        ("code", "phrase"),
        [(200, "OK"), (404, "Not Found"), (418, "I'm a Teapot"), (599, ""), (None, "")],
    )
    def test_standard_phrases(self, code: int | None, phrase: str) -> None:
        assert reason_phrase(code) == phrase


class TestStats:
    @pytest.mark.asyncio
    async def test_status_and_headers(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        headers = [
            ("Content-Type", "application/json"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]
        _, record = await run_lifecycle(
            [ResponsePanel],
            RequestContext.from_scope(make_scope()),
            status_code=404,
            response_headers=headers,
        )
        panel = record.panel("ResponsePanel")
        assert panel is not None
        assert panel.error is None
        assert panel.stats == {
            "status_code": 404,
            "reason": "Not Found",
            "content_type": "application/json",
            "headers": [
                ["Content-Type", "application/json"],
                ["set-cookie", "a=********"],
                ["set-cookie", "b=********"],
            ],
            "headers_dropped": 0,
            "masked": True,
            "body_bytes": 0,
            "body_cut_at": None,
            "error": None,
            "client_disconnected": False,
        }
        assert panel.nav_subtitle == "404 Not Found"
        assert panel.title == "Response"

    @pytest.mark.asyncio
    async def test_set_cookie_attributes_stay_and_the_option_shows_values(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        headers = [("set-cookie", "sid=s3cr3t; Path=/; HttpOnly; SameSite=Lax")]
        for mask, shown in (
            (True, "sid=********; Path=/; HttpOnly; SameSite=Lax"),
            (False, headers[0][1]),
        ):
            _, record = await run_lifecycle(
                [ResponsePanel],
                RequestContext.from_scope(make_scope()),
                response_headers=headers,
                mask_secrets=mask,
            )
            panel = record.panel("ResponsePanel")
            assert panel is not None
            assert panel.stats["headers"] == [["set-cookie", shown]]

    @pytest.mark.asyncio
    async def test_a_body_cut_short_by_an_error(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        async def fails_halfway(context: RequestContext) -> None:
            # What the middleware notes of an app that sent 16 bytes of its body, then raised.
            context.status_code = 200
            context.response_headers = [("content-type", "text/html")]
            context.response_start_ns = context.start_ns
            context.response_body_bytes = 16
            context.error = "RuntimeError: failed halfway"

        _, record = await run_lifecycle(
            [ResponsePanel],
            RequestContext.from_scope(make_scope()),
            fails_halfway,
            status_code=None,
        )
        panel = record.panel("ResponsePanel")
        assert panel is not None
        assert panel.stats["body_bytes"] == 16
        assert panel.stats["body_cut_at"] == 16
        assert panel.stats["client_disconnected"] is False
        assert panel.stats["error"] == "RuntimeError: failed halfway"
        assert panel.nav_subtitle == "200 OK, ended early"
        assert record.body_cut_at == 16
        assert record.error == "RuntimeError: failed halfway"
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "the body was cut after 16 bytes" in html
        assert "RuntimeError: failed halfway" in html

    @pytest.mark.asyncio
    async def test_ok(self, make_scope: ScopeFactory, run_lifecycle: Lifecycle) -> None:
        _, record = await run_lifecycle([ResponsePanel], RequestContext.from_scope(make_scope()))
        panel = record.panel("ResponsePanel")
        assert panel is not None
        assert panel.nav_subtitle == "200 OK"
        assert panel.stats["content_type"] == "text/html; charset=utf-8"

    @pytest.mark.asyncio
    async def test_non_standard_status(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        _, record = await run_lifecycle(
            [ResponsePanel], RequestContext.from_scope(make_scope()), status_code=599
        )
        panel = record.panel("ResponsePanel")
        assert panel is not None
        assert panel.nav_subtitle == "599"
        assert "non-standard status" in render_panel(panel, record, "/_debug_toolbar")

    @pytest.mark.asyncio
    async def test_no_response_started(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        _, record = await run_lifecycle(
            [ResponsePanel], RequestContext.from_scope(make_scope()), status_code=None
        )
        panel = record.panel("ResponsePanel")
        assert panel is not None
        assert panel.stats == {
            "status_code": None,
            "reason": "",
            "content_type": None,
            "headers": [],
            "headers_dropped": 0,
            "masked": True,
            "body_bytes": 0,
            "body_cut_at": None,
            "error": None,
            "client_disconnected": False,
        }
        assert panel.nav_subtitle == "no response"
        html = render_panel(panel, record, "/_debug_toolbar")
        assert "no response was started" in html
        assert "No headers." in html


class TestTemplate:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("code", "badge"),
        [(200, 'class="dt-badge "'), (404, "dt-badge-warn"), (503, "dt-badge-error")],
    )
    async def test_status_badge_and_escaping(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle, code: int, badge: str
    ) -> None:
        _, record = await run_lifecycle(
            [ResponsePanel],
            RequestContext.from_scope(make_scope()),
            status_code=code,
            response_headers=[("x-note", "<b>bold</b>"), ("content-type", "text/plain")],
        )
        panel = record.panel("ResponsePanel")
        assert panel is not None
        html = render_panel(panel, record, "/_debug_toolbar")
        assert badge in html
        assert f">{code}</span>" in html
        assert "&lt;b&gt;bold&lt;/b&gt;" in html
        assert "<b>" not in html
        assert "text/plain" in html
