"""The pure rules of toolbar injection: which responses, which charset, where, what length."""

from __future__ import annotations

import pytest

from debug_toolbar.asgi.injection import (
    get_header,
    inject_toolbar,
    insert_before_last,
    is_injectable,
    parse_content_type,
    with_content_length,
)

HTML = [(b"content-type", b"text/html; charset=utf-8")]


class TestParseContentType:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, ("", None)),
            (b"text/html", ("text/html", None)),
            (b"Text/HTML; Charset=ISO-8859-1", ("text/html", "iso-8859-1")),
            ('text/html; charset="utf-8"', ("text/html", "utf-8")),
            (b"text/html;charset=", ("text/html", None)),
            (b"application/json; boundary=x; charset=utf-16", ("application/json", "utf-16")),
        ],
    )
    def test_media_type_and_charset(
        self, value: bytes | str | None, expected: tuple[str, str | None]
    ) -> None:
        assert parse_content_type(value) == expected


class TestGetHeader:
    def test_first_match_case_insensitive(self) -> None:
        headers = [(b"X-A", b"1"), (b"x-a", b"2")]
        assert get_header(headers, b"x-a") == b"1"
        assert get_header(headers, b"x-b") is None


class TestIsInjectable:
    def test_plain_html_page(self) -> None:
        assert is_injectable("GET", 200, HTML) is True

    def test_html_error_page(self) -> None:
        assert is_injectable("POST", 500, HTML) is True

    @pytest.mark.parametrize(
        "content_type",
        [b"application/json", b"text/plain", b"application/xhtml+xml", b"text/htmlx"],
    )
    def test_other_media_types(self, content_type: bytes) -> None:
        assert is_injectable("GET", 200, [(b"content-type", content_type)]) is False

    def test_missing_content_type(self) -> None:
        assert is_injectable("GET", 200, []) is False

    @pytest.mark.parametrize("encoding", [b"gzip", b"br", b"deflate"])
    def test_compressed(self, encoding: bytes) -> None:
        assert is_injectable("GET", 200, [*HTML, (b"content-encoding", encoding)]) is False

    def test_identity_encoding_is_not_compression(self) -> None:
        assert is_injectable("GET", 200, [*HTML, (b"Content-Encoding", b"identity")]) is True

    @pytest.mark.parametrize("status", [101, 204, 205, 304])
    def test_bodyless_statuses(self, status: int) -> None:
        assert is_injectable("GET", status, HTML) is False

    def test_head_request(self) -> None:
        assert is_injectable("HEAD", 200, HTML) is False


class TestInsertBeforeLast:
    def test_inserts_before_the_last_marker(self) -> None:
        doc = "<body><script>x='</body>'</script><p>page</p></body></html>"
        assert insert_before_last(doc, "<TB>", "</body>") == (
            "<body><script>x='</body>'</script><p>page</p><TB></body></html>"
        )

    def test_marker_matched_case_insensitively(self) -> None:
        assert insert_before_last("<P>x</P></BODY>", "<TB>", "</body>") == "<P>x</P><TB></BODY>"

    def test_absent_marker_leaves_the_document_alone(self) -> None:
        assert insert_before_last("<div>htmx partial</div>", "<TB>", "</body>") is None

    def test_custom_marker(self) -> None:
        assert insert_before_last("<main></main><footer/>", "<TB>", "<footer") == (
            "<main></main><TB><footer/>"
        )


class TestInjectToolbar:
    def test_utf8_by_default(self) -> None:
        body = "<body>café</body>".encode()
        assert inject_toolbar(body, b"text/html", "<b>é</b>", "</body>") == (
            "<body>café<b>é</b></body>".encode()
        )

    def test_uses_the_declared_charset(self) -> None:
        body = "<body>café</body>".encode("latin-1")
        result = inject_toolbar(body, b"text/html; charset=latin-1", "<i>ü</i>", "</body>")
        assert result == "<body>café<i>ü</i></body>".encode("latin-1")

    def test_unencodable_toolbar_characters_become_references(self) -> None:
        body = b"<body>x</body>"
        result = inject_toolbar(body, b"text/html; charset=ascii", "<i>\u2013</i>", "</body>")
        assert result == b"<body>x<i>&#8211;</i></body>"

    def test_undecodable_body_is_left_alone(self) -> None:
        body = b"<body>\xff\xfe</body>"
        assert inject_toolbar(body, b"text/html; charset=utf-8", "<TB>", "</body>") is None

    def test_unknown_charset_is_left_alone(self) -> None:
        assert (
            inject_toolbar(b"<body></body>", b"text/html; charset=nope-9", "x", "</body>") is None
        )

    def test_missing_marker_is_left_alone(self) -> None:
        assert inject_toolbar(b"<p>fragment</p>", b"text/html", "<TB>", "</body>") is None


class TestWithContentLength:
    def test_replaces_every_content_length(self) -> None:
        headers = [(b"Content-Length", b"10"), (b"x-a", b"1"), (b"content-length", b"10")]
        assert with_content_length(headers, 42) == [
            (b"Content-Length", b"42"),
            (b"x-a", b"1"),
            (b"content-length", b"42"),
        ]

    def test_does_not_add_one(self) -> None:
        assert with_content_length([(b"x-a", b"1")], 42) == [(b"x-a", b"1")]
