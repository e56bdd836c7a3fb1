"""``PanelDownload``: what a panel declares it offers for download, checked when declared."""

from __future__ import annotations

from typing import Any

import pytest

from debug_toolbar.core.panel import DownloadContent, Panel, PanelDownload
from debug_toolbar.core.records import RequestRecord


def nothing(stats: dict[str, Any], record: RequestRecord) -> DownloadContent:
    return None


def download(name: str = "notes.txt", media_type: str = "text/plain") -> PanelDownload:
    return PanelDownload(name=name, title="Notes", media_type=media_type, build=nothing)


class TestDeclaration:
    @pytest.mark.parametrize(
        "name",
        ["", ".hidden", "-x.txt", "../notes.txt", "a/b.txt", "a b.txt", "café.txt", "x" * 101],
    )
    def test_a_name_unfit_for_a_url_segment_and_a_header_is_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match="PanelDownload name") as raised:
            download(name)
        assert repr(name) in str(raised.value)

    @pytest.mark.parametrize("name", ["notes.txt", "async-trace.json", "README", "x" * 100])
    def test_plain_names_are_accepted(self, name: str) -> None:
        assert download(name).name == name

    @pytest.mark.parametrize(
        "media_type", ["", "json", "text/plain\r\nset-cookie: a=b", "text /plain", "a/b/c"]
    )
    def test_a_media_type_that_is_not_one_is_refused(self, media_type: str) -> None:
        with pytest.raises(ValueError, match="media_type"):
            download(media_type=media_type)

    @pytest.mark.parametrize(
        "media_type", ["application/json", "text/plain; charset=utf-8", "application/x-ndjson"]
    )
    def test_media_types_with_parameters_are_accepted(self, media_type: str) -> None:
        assert download(media_type=media_type).media_type == media_type

    def test_a_builder_must_be_callable(self) -> None:
        with pytest.raises(ValueError, match="build"):
            PanelDownload(name="a.txt", title="A", media_type="text/plain", build="a")  # type: ignore[arg-type]


class TestFilename:
    @pytest.mark.parametrize(
        ("name", "request_id", "expected"),
        [
            ("async-trace.json", "ab12", "async-trace-ab12.json"),
            ("trace.tar.gz", "ab12", "trace-ab12.tar.gz"),
            ("README", "ab12", "README-ab12"),
            # Whatever the id holds, the header gets only safe characters.
            ("notes.txt", 'a"b\r\n/c;d', "notes-a_b___c_d.txt"),
        ],
    )
    def test_the_request_id_goes_after_the_stem(
        self, name: str, request_id: str, expected: str
    ) -> None:
        assert download(name).filename(request_id) == expected

    def test_a_long_request_id_is_cut(self) -> None:
        assert download("n.txt").filename("f" * 500) == "n-" + "f" * 100 + ".txt"


class TestPanelDownloads:
    def test_a_panel_offers_nothing_by_default(self) -> None:
        class Quiet(Panel):
            title = "Quiet"

        assert Panel.downloads == ()
        assert Quiet.downloads == ()
        assert Quiet.get_download("anything") is None

    def test_get_download_finds_by_name(self) -> None:
        text, table = download("notes.txt"), download("notes.csv", "text/csv")

        class Notes(Panel):
            downloads = (text, table)

        assert Notes.get_download("notes.csv") is table
        assert Notes.get_download("notes.txt") is text
        assert Notes.get_download("notes") is None

    def test_two_downloads_of_one_name_fail_when_the_class_is_defined(self) -> None:
        with pytest.raises(ValueError, match="two downloads share a name"):

            class Twice(Panel):
                downloads = (download("a.txt"), download("a.txt", "text/csv"))
