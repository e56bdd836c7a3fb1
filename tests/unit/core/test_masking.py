"""Masking credentials in what a record keeps: which headers, and how each is shown."""

from __future__ import annotations

import pytest

from debug_toolbar.core.masking import (
    MASK,
    SENSITIVE_HEADERS,
    is_sensitive_header,
    mask_cookies,
    mask_header,
    mask_headers,
)


class TestWhichHeaders:
    @pytest.mark.parametrize("name", [*SENSITIVE_HEADERS, "Authorization", "X-API-KEY"])
    def test_listed(self, name: str) -> None:
        assert is_sensitive_header(name)

    @pytest.mark.parametrize(
        "name", ["X-GitHub-Token", "X-Client-Secret", "X-Password", "X-Vendor-ApiKey"]
    )
    def test_by_word(self, name: str) -> None:
        assert is_sensitive_header(name)

    @pytest.mark.parametrize(
        "name", ["host", "accept", "content-type", "user-agent", "x-forwarded-for", "referer"]
    )
    def test_ordinary(self, name: str) -> None:
        assert not is_sensitive_header(name)


class TestHowTheyAreShown:
    @pytest.mark.parametrize(
        ("name", "value", "shown"),
        [
            ("Authorization", "Bearer eyJhbGciOi.payload.sig", f"Bearer {MASK}"),
            ("authorization", "Basic dXNlcjpwYXNz", f"Basic {MASK}"),
            ("authorization", "rawtokenwithoutscheme", MASK),
            ("authorization", "", MASK),
            ("Proxy-Authorization", "Digest username=x, response=y", f"Digest {MASK}"),
            ("x-api-key", "k-123", MASK),
            ("cookie", "a=1; b=2", f"a={MASK}; b={MASK}"),
            (
                "cookie",
                "a=1;; debug_toolbar_disabled=TimerPanel;",
                f"a={MASK}; debug_toolbar_disabled=TimerPanel",
            ),
            ("cookie", "justavalue", MASK),
            (
                "set-cookie",
                "sid=abc; Path=/; Secure; HttpOnly",
                f"sid={MASK}; Path=/; Secure; HttpOnly",
            ),
            ("set-cookie", "sid=abc", f"sid={MASK}"),
            (
                "set-cookie",
                "debug_toolbar_backend=yappi; Path=/",
                "debug_toolbar_backend=yappi; Path=/",
            ),
            ("set-cookie", "garbage", MASK),
            ("accept", "text/html", "text/html"),
        ],
    )
    def test_values(self, name: str, value: str, shown: str) -> None:
        assert mask_header(name, value) == shown

    def test_pairs_keep_names_order_and_repeats(self) -> None:
        headers = [("host", "localhost"), ("cookie", "a=1"), ("cookie", "b=2")]
        assert mask_headers(headers) == [
            ["host", "localhost"],
            ["cookie", f"a={MASK}"],
            ["cookie", f"b={MASK}"],
        ]
        assert mask_headers(headers, mask=False) == [list(pair) for pair in headers]

    def test_cookies_keep_names_and_the_toolbars_own_values(self) -> None:
        cookies = [("session", "s3cr3t"), ("debug_toolbar_disabled", "VersionsPanel")]
        assert mask_cookies(cookies) == [
            ["session", MASK],
            ["debug_toolbar_disabled", "VersionsPanel"],
        ]
        assert mask_cookies(cookies, mask=False) == [list(pair) for pair in cookies]
