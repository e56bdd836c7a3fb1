"""Requests built to be large, through a real uvicorn that lets them in: the toolbar keeps, and
shows, a bounded part of each.

uvicorn refuses a request line over 16 KiB by default; ``h11_max_incomplete_event_size`` lifts
that, as a server or proxy without a URL cap would. Before records were bounded in size, fifty
such requests with 1 MB query strings held about 900 MB in the history, the detail page of one
was 16 to 33 MB rendered on the event loop, and the bar injected into each page carried the
query string twice.
"""

from __future__ import annotations

import http.client
import json
import re
from typing import Any
from urllib.parse import urlsplit

from debug_toolbar.asgi import REQUEST_ID_HEADER
from debug_toolbar.core.config import DebugToolbarConfig

MEGABYTE = 1024 * 1024
QUERY = "q=" + "a" * (MEGABYTE - 2)
PREFIX = "/_debug_toolbar"
TOOLBAR_BLOCK = re.compile(rb"<!-- debug-toolbar -->.*<!-- /debug-toolbar -->", re.DOTALL)
UNCAPPED = {"h11_max_incomplete_event_size": 4 * MEGABYTE}


def fetch(base_url: str, target: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    """GET without a client-side URL cap (httpx refuses URLs over 64 KiB)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


class TestMegabyteQueryStrings:
    def test_fifty_requests_keep_small_records_and_small_pages(
        self, uvicorn_server: Any, sample_app: Any
    ) -> None:
        sample = sample_app(DebugToolbarConfig())
        history = sample.plugin.history
        server = uvicorn_server(sample.app, **UNCAPPED)
        request_ids = []
        for _ in range(50):
            status, headers, page = fetch(server.url, f"/?{QUERY}")
            assert status == 200
            request_ids.append(headers[REQUEST_ID_HEADER])
            toolbar = TOOLBAR_BLOCK.search(page)
            assert toolbar is not None
            # The URL appears twice in the bar (its line and its tooltip), each cut to 200.
            assert toolbar.group(0).count(b"a" * 198 + "…(1,048,576 characters)".encode()) == 2
            assert b"a" * 201 not in page
            assert len(page) < 16 * 1024

        kept = history.records()
        assert [r.request_id for r in reversed(kept)] == request_ids
        assert history.evicted == 0
        assert history.size <= history.max_bytes
        assert history.size == sum(record.approx_size for record in kept)
        assert max(record.approx_size for record in kept) < 64 * 1024

        last = request_ids[-1]
        status, _, detail = fetch(server.url, f"{PREFIX}/requests/{last}")
        assert status == 200
        assert len(detail) < 128 * 1024
        text = detail.decode()
        # The query string as the record keeps it: cut, saying its full size.
        assert re.search(r"a…\(1,048,576 characters, [\d,]+ not kept\)", text)
        status, _, listing = fetch(server.url, f"{PREFIX}/")
        assert status == 200
        assert len(listing) < 128 * 1024
        status, _, api = fetch(server.url, f"{PREFIX}/api/requests/{last}")
        assert status == 200
        assert len(api) < 64 * 1024
        request_stats = json.loads(api)["panels"]["RequestPanel"]
        assert len(request_stats["query_string"]) <= 4096
        assert request_stats["query_params"][0][1].endswith("not kept)")

    def test_the_byte_budget_holds_and_says_what_it_dropped(
        self, uvicorn_server: Any, sample_app: Any
    ) -> None:
        # Large values kept (128 KiB each) in a small budget (1 MiB): a few records fit.
        config = DebugToolbarConfig(max_request_history_bytes=MEGABYTE, max_value_length=128 * 1024)
        sample = sample_app(config)
        history = sample.plugin.history
        server = uvicorn_server(sample.app, **UNCAPPED)
        for _ in range(12):
            # An HTML page: its record is stored before the response is sent (the bar needs it).
            status, _, _ = fetch(server.url, f"/?{QUERY}")
            assert status == 200
            assert history.size <= MEGABYTE
        assert 1 <= len(history) < 12
        assert history.evicted == history.evicted_for_size == 12 - len(history)
        status, _, listing = fetch(server.url, f"{PREFIX}/")
        assert status == 200
        dropped = history.evicted
        assert f"within 1 MiB; {dropped} older were dropped ({dropped} of them for size)." in (
            listing.decode()
        )
