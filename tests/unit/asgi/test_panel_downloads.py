"""Any panel's downloads through ``ToolbarPages``: served generically, linked from the base URL.

A panel of the test's own declares three downloads (bytes, JSON, and one whose builder raises);
the pages know nothing of it but its declaration.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from debug_toolbar.asgi.pages import ToolbarPages
from debug_toolbar.asgi.paths import download_url
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panel import DownloadContent, Panel, PanelDownload
from debug_toolbar.core.records import PanelRecord, RequestRecord
from debug_toolbar.core.storage import RequestHistory

PREFIX = "/_debug_toolbar"
LOOPBACK = ("127.0.0.1", 5000)
NOTES = ["first", "second <b>", "café"]
TEMPLATE = (
    "{% for d in downloads %}"
    '<a href="{{ d.url }}" download="{{ d.filename }}" data-download="{{ d.name }}">'
    "{{ d.title }}</a>"
    "{% endfor %}"
)


def notes_text(stats: dict[str, Any], record: RequestRecord) -> DownloadContent:
    notes = stats.get("notes")
    return "\n".join(notes).encode("utf-8") if notes else None


def notes_json(stats: dict[str, Any], record: RequestRecord) -> DownloadContent:
    return {"request_id": record.request_id, "notes": stats.get("notes", [])}


def broken(stats: dict[str, Any], record: RequestRecord) -> DownloadContent:
    raise RuntimeError("no <notes> today")


class NotesPanel(Panel):
    title = "Notes"
    template = "panels/utest_notes.html"
    downloads = (
        PanelDownload(
            name="notes.txt",
            title="Notes as text",
            media_type="text/plain; charset=utf-8",
            build=notes_text,
        ),
        PanelDownload(
            name="notes.json",
            title="Notes as JSON",
            media_type="application/json",
            build=notes_json,
        ),
        PanelDownload(
            name="broken.bin", title="Broken", media_type="application/octet-stream", build=broken
        ),
    )


class PlainPanel(Panel):
    title = "Plain"


def panel_record(panel_id: str = "NotesPanel", **changes: Any) -> PanelRecord:
    fields: dict[str, Any] = {
        "panel_id": panel_id,
        "title": "Notes" if panel_id == "NotesPanel" else "Plain",
        "nav_title": "Notes",
        "nav_subtitle": "",
        "template": NotesPanel.template if panel_id == "NotesPanel" else "",
        "has_content": True,
        "enabled": True,
        "stats": {"notes": list(NOTES)},
    }
    fields.update(changes)
    return PanelRecord(**fields)


def record(request_id: str, *panels: PanelRecord) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        method="GET",
        path="/notes",
        query_string="",
        status_code=200,
        duration_ms=3.0,
        started_at=1_700_000_000.0,
        panels=panels or (panel_record(), panel_record("PlainPanel")),
    )


@pytest.fixture
def config(tmp_path: Path) -> DebugToolbarConfig:
    (tmp_path / "panels").mkdir()
    (tmp_path / "panels" / "utest_notes.html").write_text(TEMPLATE, encoding="utf-8")
    return DebugToolbarConfig(panels=[NotesPanel, PlainPanel], template_dirs=[tmp_path])


@pytest.fixture
def history() -> RequestHistory:
    history = RequestHistory(10)
    history.add(record("r1"))
    history.add(record("empty", panel_record(stats={})))
    history.add(record("off", panel_record(enabled=False, stats={})))
    history.add(record("failed", panel_record(error="RuntimeError: collector <lost>", stats={})))
    history.add(record('odd id"x'))
    return history


def client(
    config: DebugToolbarConfig,
    history: RequestHistory,
    *,
    root_path: str = "",
    peer: tuple[str, int] = LOOPBACK,
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=ToolbarPages(config, history), client=peer, root_path=root_path
    )
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def url(request_id: str, name: str, panel_id: str = "NotesPanel") -> str:
    return download_url(PREFIX, request_id, panel_id, name)


class TestDownloadUrl:
    def test_under_the_request_and_panel(self) -> None:
        assert download_url("/app/_debug_toolbar", "ab12", "NotesPanel", "notes.txt") == (
            "/app/_debug_toolbar/requests/ab12/panels/NotesPanel/downloads/notes.txt"
        )

    def test_each_segment_is_quoted(self) -> None:
        assert download_url("/t", "a/b c", "P?", "n#.txt") == (
            "/t/requests/a%2Fb%20c/panels/P%3F/downloads/n%23.txt"
        )


class TestServing:
    @pytest.mark.asyncio
    async def test_bytes_are_sent_as_built_with_the_declared_type(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            response = await c.get(url("r1", "notes.txt"))
        assert response.status_code == 200
        assert response.content == "first\nsecond <b>\ncafé".encode()
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="notes-r1.txt"'
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"

    @pytest.mark.asyncio
    async def test_a_dict_is_sent_as_json_like_the_api(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            response = await c.get(url("r1", "notes.json"))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-disposition"] == 'attachment; filename="notes-r1.json"'
        assert response.json() == {"request_id": "r1", "notes": NOTES}
        assert "café".encode() in response.content  # UTF-8, as the JSON API sends it

    @pytest.mark.asyncio
    async def test_head_has_the_headers_and_length_without_the_body(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            response = await c.head(url("r1", "notes.txt"))
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-length"] == str(len("first\nsecond <b>\ncafé".encode()))
        assert response.headers["content-disposition"] == 'attachment; filename="notes-r1.txt"'

    @pytest.mark.asyncio
    async def test_the_saved_name_has_only_safe_characters(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            response = await c.get(url('odd id"x', "notes.txt"))
        assert response.status_code == 200
        assert response.headers["content-disposition"] == (
            'attachment; filename="notes-odd_id_x.txt"'
        )

    @pytest.mark.asyncio
    async def test_post_is_refused(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            response = await c.post(url("r1", "notes.txt"))
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"

    @pytest.mark.asyncio
    async def test_a_client_the_toolbar_does_not_serve_gets_a_bare_404(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history, peer=("203.0.113.9", 5000)) as c:
            response = await c.get(url("r1", "notes.txt"))
        assert response.status_code == 404
        assert response.text == "Not Found"
        assert "content-disposition" not in response.headers


class TestNothingToServe:
    @pytest.mark.parametrize(
        "case",
        [
            ("gone", "NotesPanel", "notes.txt", "No request &#39;gone&#39; in the history"),
            ("r1", "NoSuchPanel", "notes.txt", "has no panel &#39;NoSuchPanel&#39;"),
            ("r1", "NotesPanel", "notes.csv", "offers no download named &#39;notes.csv&#39;"),
            ("r1", "PlainPanel", "notes.txt", "The Plain panel offers no download named"),
            ("empty", "NotesPanel", "notes.txt", "has nothing to download as &#39;notes.txt&#39;"),
            ("off", "NotesPanel", "notes.txt", "The Notes panel did not run for this request"),
            ("failed", "NotesPanel", "notes.json", "failed on this request, so it has nothing"),
        ],
        ids=["request", "panel", "name", "no-downloads", "empty", "off", "failed"],
    )
    @pytest.mark.asyncio
    async def test_is_a_404_page_that_says_why(
        self, config: DebugToolbarConfig, history: RequestHistory, case: tuple[str, ...]
    ) -> None:
        request_id, panel_id, name, says = case
        async with client(config, history) as c:
            response = await c.get(url(request_id, name, panel_id))
        assert response.status_code == 404
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "content-disposition" not in response.headers
        assert says in response.text
        assert f'href="{PREFIX}/"' in response.text  # back to the history

    @pytest.mark.asyncio
    async def test_a_panel_no_longer_configured_offers_nothing(
        self, history: RequestHistory
    ) -> None:
        async with client(DebugToolbarConfig(panels=[PlainPanel]), history) as c:
            response = await c.get(url("r1", "notes.txt"))
        assert response.status_code == 404
        assert "offers no download named &#39;notes.txt&#39;" in response.text

    @pytest.mark.asyncio
    async def test_a_failing_builder_is_an_error_page_not_a_traceback(
        self,
        config: DebugToolbarConfig,
        history: RequestHistory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="debug_toolbar"):
            async with client(config, history) as c:
                response = await c.get(url("r1", "broken.bin"))
        assert response.status_code == 500
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "content-disposition" not in response.headers
        assert "<h1>Download failed</h1>" in response.text
        assert "RuntimeError: no &lt;notes&gt; today" in response.text
        assert "Traceback" not in response.text
        assert [r.getMessage() for r in caplog.records] == [
            "debug toolbar: download broken.bin of panel NotesPanel failed"
        ]
        assert caplog.records[0].exc_info is not None


class TestLinks:
    @pytest.mark.asyncio
    async def test_the_fragment_links_every_download_under_the_root_path(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history, root_path="/app") as c:
            fragment = await c.get(f"/app{PREFIX}/requests/r1/panels/NotesPanel")
            assert fragment.status_code == 200
            base = f"/app{PREFIX}/requests/r1/panels/NotesPanel/downloads"
            for name, filename, title in (
                ("notes.txt", "notes-r1.txt", "Notes as text"),
                ("notes.json", "notes-r1.json", "Notes as JSON"),
                ("broken.bin", "broken-r1.bin", "Broken"),
            ):
                link = (
                    f'<a href="{base}/{name}" download="{filename}" data-download="{name}">'
                    f"{title}</a>"
                )
                assert link in fragment.text
            # The link works as given, root path and all.
            followed = await c.get(f"{base}/notes.json")
        assert followed.status_code == 200
        assert json.loads(followed.content)["notes"] == NOTES

    @pytest.mark.asyncio
    async def test_the_detail_page_links_them_too(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            detail = await c.get(f"{PREFIX}/requests/r1")
        assert detail.status_code == 200
        assert f'href="{url("r1", "notes.txt")}"' in detail.text

    @pytest.mark.asyncio
    async def test_a_failed_panel_shows_its_error_and_no_links(
        self, config: DebugToolbarConfig, history: RequestHistory
    ) -> None:
        async with client(config, history) as c:
            fragment = await c.get(f"{PREFIX}/requests/failed/panels/NotesPanel")
        assert fragment.status_code == 200
        assert "collector &lt;lost&gt;" in fragment.text
        assert "data-download" not in fragment.text
