"""VersionsPanel: interpreter and package versions, read from package metadata once per process."""

from __future__ import annotations

import asyncio
import platform
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import debug_toolbar
from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.panels.versions import (
    HIGHLIGHTED_PACKAGES,
    VersionsPanel,
    process_versions,
)
from debug_toolbar.core.rendering import render_panel

ScopeFactory = Callable[..., dict[str, Any]]
Lifecycle = Callable[..., Any]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    process_versions.cache_clear()
    yield
    process_versions.cache_clear()


def _dist_info(root: Path, dirname: str, metadata_text: str) -> None:
    info = root / dirname
    info.mkdir()
    (info / "METADATA").write_text(metadata_text, encoding="utf-8")


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Real dist-info directories in tmp_path stand in for site-packages; returns a call count."""
    _dist_info(
        tmp_path, "Jinja2-3.1.6.dist-info", "Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.6\n"
    )
    _dist_info(
        tmp_path,
        "Fancy_Pkg-1.2.3.dist-info",
        "Metadata-Version: 2.1\nName: Fancy_Pkg\nVersion: 1.2.3\n",
    )
    _dist_info(tmp_path, "broken-0.dist-info", "Metadata-Version: 2.1\nSummary: no name here\n")
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    _dist_info(
        shadow, "fancy.pkg-0.1.dist-info", "Metadata-Version: 2.1\nName: fancy.pkg\nVersion: 0.1\n"
    )
    calls: list[int] = []
    original = metadata.distributions

    def distributions(**kwargs: Any) -> Any:
        calls.append(1)
        return original(path=[str(tmp_path), str(shadow)])

    monkeypatch.setattr(metadata, "distributions", distributions)
    return calls


def _versions_panel(record: Any) -> Any:
    panel = record.panel("VersionsPanel")
    assert panel is not None
    assert panel.error is None
    return panel


class TestStats:
    @pytest.mark.asyncio
    async def test_interpreter_platform_and_loop(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        _, record = await run_lifecycle([VersionsPanel], RequestContext.from_scope(make_scope()))
        stats = _versions_panel(record).stats
        assert stats["python_version"] == platform.python_version()
        assert stats["python_implementation"] == platform.python_implementation()
        assert stats["platform"] == platform.platform()
        assert stats["executable"] == sys.executable
        loop_class = type(asyncio.get_running_loop())
        assert stats["event_loop"] == f"{loop_class.__module__}.{loop_class.__qualname__}"
        assert _versions_panel(record).nav_subtitle == f"Python {platform.python_version()}"

    @pytest.mark.asyncio
    async def test_real_installed_packages(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle
    ) -> None:
        _, record = await run_lifecycle([VersionsPanel], RequestContext.from_scope(make_scope()))
        stats = _versions_panel(record).stats
        packages = {p["name"].lower(): p["version"] for p in stats["packages"]}
        assert len(stats["packages"]) == len(HIGHLIGHTED_PACKAGES)
        assert packages["debug-toolbar"] == debug_toolbar.__version__
        assert packages["litestar"] == metadata.version("litestar")
        assert packages["jinja2"] == metadata.version("jinja2")
        listed = {d["name"].lower(): d["version"] for d in stats["distributions"]}
        assert listed["pytest"] == metadata.version("pytest")
        names = [d["name"].lower() for d in stats["distributions"]]
        assert names == sorted(names, key=lambda n: n.replace("_", "-").replace(".", "-"))

    @pytest.mark.asyncio
    async def test_normalized_names_missing_packages_and_broken_metadata(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle, fake_site: list[int]
    ) -> None:
        _, record = await run_lifecycle([VersionsPanel], RequestContext.from_scope(make_scope()))
        stats = _versions_panel(record).stats
        packages = {p["name"]: p["version"] for p in stats["packages"]}
        assert packages["Jinja2"] == "3.1.6"  # found under its normalized name "jinja2"
        assert packages["litestar"] is None  # not in the fake site
        # Not installed in the fake site, so the package's own version is used.
        assert packages["debug-toolbar"] == debug_toolbar.__version__
        # The first "fancy-pkg" on the path wins; the nameless distribution is skipped.
        assert stats["distributions"] == [
            {"name": "Fancy_Pkg", "version": "1.2.3"},
            {"name": "Jinja2", "version": "3.1.6"},
        ]


class TestComputedOnce:
    @pytest.mark.asyncio
    async def test_metadata_is_read_once_for_many_requests(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle, fake_site: list[int]
    ) -> None:
        _, first = await run_lifecycle([VersionsPanel], RequestContext.from_scope(make_scope()))
        _, second = await run_lifecycle([VersionsPanel], RequestContext.from_scope(make_scope()))
        assert fake_site == [1]
        first_stats = _versions_panel(first).stats
        second_stats = _versions_panel(second).stats
        assert first_stats == second_stats
        # Shared, not copied per request: 50 kept records hold one list, not 50.
        assert first_stats["distributions"] is second_stats["distributions"]

    def test_cache_clear_reads_again(self, fake_site: list[int]) -> None:
        process_versions()
        process_versions()
        process_versions.cache_clear()
        process_versions()
        assert fake_site == [1, 1]


class TestTemplate:
    @pytest.mark.asyncio
    async def test_renders_versions_and_not_installed(
        self, make_scope: ScopeFactory, run_lifecycle: Lifecycle, fake_site: list[int]
    ) -> None:
        _, record = await run_lifecycle([VersionsPanel], RequestContext.from_scope(make_scope()))
        html = render_panel(_versions_panel(record), record, "/_debug_toolbar")
        assert f"{platform.python_implementation()} {platform.python_version()}" in html
        assert "<td>Jinja2</td>" in html
        assert "3.1.6" in html
        assert "not installed" in html
        assert "All installed distributions (2)" in html
        assert "<details>" in html
