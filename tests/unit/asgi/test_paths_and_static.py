"""Where a request points (root_path, mounts) and how the static files are found."""

from __future__ import annotations

from typing import Any

import pytest

from debug_toolbar.asgi.paths import app_path, page_path, toolbar_base_url
from debug_toolbar.asgi.static import _content_type, load_static, static_url

PREFIX = "/_debug_toolbar"


def scope(path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "path": path, "root_path": root_path}


class TestAppPath:
    @pytest.mark.parametrize(
        ("path", "root", "expected"),
        [
            ("/x", "", "/x"),
            ("/api/x", "/api", "/x"),  # ASGI spec: path includes root_path
            ("/x", "/api", "/x"),  # older servers: it does not
            ("/api", "/api", "/"),
            ("/apix/y", "/api", "/apix/y"),  # a prefix of a segment is not the root
            ("", "", "/"),
        ],
    )
    def test_strips_root_path_only_when_present(self, path: str, root: str, expected: str) -> None:
        assert app_path(scope(path, root)) == expected


class TestPagePath:
    @pytest.mark.parametrize(
        ("path", "root", "expected"),
        [
            (PREFIX, "", ""),
            (PREFIX + "/", "", "/"),
            (PREFIX + "/requests/abc", "", "/requests/abc"),
            ("/api" + PREFIX + "/requests/abc", "/api", "/requests/abc"),
            ("/requests/abc/", "", "/requests/abc/"),  # a Litestar mount's remainder
        ],
    )
    def test_full_or_mounted(self, path: str, root: str, expected: str) -> None:
        assert page_path(scope(path, root), PREFIX) == expected


class TestToolbarBaseUrl:
    def test_plain(self) -> None:
        assert toolbar_base_url(scope("/x"), PREFIX) == PREFIX

    def test_behind_a_root_path(self) -> None:
        assert toolbar_base_url(scope("/api/x", "/api/"), PREFIX) == "/api" + PREFIX

    def test_mount_moved_into_root_path(self) -> None:
        assert toolbar_base_url(scope("/x", "/app" + PREFIX), PREFIX) == "/app" + PREFIX


class TestLoadStatic:
    def test_packaged_files_with_their_types(self) -> None:
        css = load_static("toolbar.css")
        js = load_static("toolbar.js")
        assert css is not None
        assert js is not None
        assert css.content_type == "text/css; charset=utf-8"
        assert js.content_type == "text/javascript; charset=utf-8"
        assert b"#debug-toolbar" in css.content
        assert b"dt:panel-loaded" in js.content
        assert len(css.digest) == 16
        assert css.digest != js.digest

    @pytest.mark.parametrize(
        "name",
        [
            "../__init__.py",
            "..",
            ".hidden",
            "sub/toolbar.css",
            "..\\templates\\base.html",
            "toolbar.css/",
            "/etc/passwd",
            "%2e%2e",
            "",
            "missing.css",
        ],
    )
    def test_refuses_unknown_and_unsafe_names(self, name: str) -> None:
        assert load_static(name) is None

    def test_url_is_versioned_by_content(self) -> None:
        css = load_static("toolbar.css")
        assert css is not None
        assert static_url("/p", "toolbar.css") == f"/p/static/toolbar.css?v={css.digest}"
        assert static_url("/p", "missing.css") == "/p/static/missing.css"

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("a.woff2", "font/woff2"),
            ("a.SVG", "image/svg+xml"),
            ("a.txt", "text/plain"),
            ("README", "application/octet-stream"),
        ],
    )
    def test_content_types(self, name: str, expected: str) -> None:
        assert _content_type(name) == expected
