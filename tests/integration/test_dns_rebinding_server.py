"""DNS rebinding and recorded secrets, through a real uvicorn server on 127.0.0.1.

The attack: a page on ``rebind.attacker.example`` makes its name resolve to 127.0.0.1, so the
developer's browser sends its requests to the app, from loopback, with that Host. Before the
Host check, the toolbar's pages and JSON API answered them with the headers and cookies of
earlier requests. Requests are sent raw, so that the Host header is exactly the attacker's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import Cookie

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.storage import RequestHistory
from debug_toolbar.litestar import DebugToolbarPlugin
from support import RawResponse, raw_request

PREFIX = "/_debug_toolbar"
PAGE = b"<!DOCTYPE html><html><head></head><body><h1>Plain</h1></body></html>"
SECRETS = ("TOPSECRET", "COOKIESECRET", "KEYSECRET", "SETCOOKIESECRET")
CREDENTIALS = (
    ("Authorization", "Bearer TOPSECRET"),
    ("Cookie", "session=COOKIESECRET; debug_toolbar_disabled=VersionsPanel"),
    ("X-API-Key", "KEYSECRET"),
)


async def plain_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(PAGE)).encode()),
                (b"set-cookie", b"sid=SETCOOKIESECRET; Path=/; HttpOnly"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": PAGE})


@get("/", media_type=MediaType.HTML)
async def litestar_page() -> Response[bytes]:
    cookie = Cookie(key="sid", value="SETCOOKIESECRET", path="/", httponly=True)
    return Response(PAGE, media_type=MediaType.HTML, cookies=[cookie])


class Site:
    """A server with the toolbar (plain middleware or Litestar plugin) and its history."""

    def __init__(self, url: str, history: RequestHistory) -> None:
        self.url = url
        self.history = history
        self.port = int(url.rpartition(":")[2])

    def get(
        self, path: str, host: str | None, headers: tuple[tuple[str, str], ...] = ()
    ) -> RawResponse:
        return raw_request(self.url, path, host, headers)

    def record_a_request(self) -> str:
        """A request from the developer, with credentials: what the attacker is after."""
        response = self.get("/", f"127.0.0.1:{self.port}", CREDENTIALS)
        assert response.status == 200
        return response.headers[REQUEST_ID_HEADER.lower()]

    def pages(self, request_id: str) -> list[str]:
        return [
            f"{PREFIX}/",
            f"{PREFIX}",
            f"{PREFIX}/api/requests",
            f"{PREFIX}/api/requests/{request_id}",
            f"{PREFIX}/requests/{request_id}",
            f"{PREFIX}/requests/{request_id}/panels/RequestPanel",
            f"{PREFIX}/requests/{request_id}/panels/ResponsePanel",
            f"{PREFIX}/static/toolbar.js",
        ]


SiteFactory = Callable[..., Site]


@pytest.fixture(params=["middleware", "litestar"])
def site(request: pytest.FixtureRequest, uvicorn_server: Any) -> SiteFactory:
    """``site(**config)``: the plain middleware around an ASGI app, or a Litestar app with the
    plugin, served by uvicorn; both answer ``/`` with an HTML page and a session cookie."""

    def start(**options: Any) -> Site:
        config = DebugToolbarConfig(**options)
        if request.param == "middleware":
            middleware = DebugToolbarMiddleware(plain_app, config)
            server = uvicorn_server(middleware)
            return Site(server.url, middleware.history)
        plugin = DebugToolbarPlugin(config)
        app = Litestar([litestar_page], plugins=[plugin], logging_config=None)
        server = uvicorn_server(app)
        return Site(server.url, plugin.history)

    return start


def assert_no_record_data(response: RawResponse, request_id: str) -> None:
    assert request_id.encode() not in response.body
    for secret in SECRETS:
        assert secret.encode() not in response.body


class TestForeignHost:
    def test_pages_and_api_answer_a_bare_404(self, site: SiteFactory) -> None:
        served = site()
        request_id = served.record_a_request()
        attacker = f"rebind.attacker.example:{served.port}"
        for path in served.pages(request_id):
            response = served.get(path, attacker)
            assert (response.status, response.body) == (404, b"Not Found"), path
            assert_no_record_data(response, request_id)
        # The same pages, asked under the developer's own Host, exist.
        assert served.get(f"{PREFIX}/api/requests", f"localhost:{served.port}").status == 200

    def test_the_app_is_served_unchanged_without_toolbar_or_profiling(
        self, site: SiteFactory
    ) -> None:
        served = site()
        mine = served.get("/", f"localhost:{served.port}")
        theirs = served.get("/", f"rebind.attacker.example:{served.port}")
        assert REQUEST_ID_HEADER.lower() in mine.headers
        assert b'id="debug-toolbar"' in mine.body
        assert theirs.status == 200
        assert REQUEST_ID_HEADER.lower() not in theirs.headers
        assert b"debug-toolbar" not in theirs.body
        assert theirs.body.startswith(b"<!DOCTYPE html>")
        assert int(theirs.headers["content-length"]) == len(theirs.body)
        assert len(served.history) == 1  # only the developer's request was recorded

    @pytest.mark.parametrize(
        "host",
        [
            "localhost:{port}",
            "LOCALHOST.:{port}",
            "app.localhost:{port}",
            "127.0.0.1:{port}",
            "[::1]:{port}",
            "[0:0:0:0:0:0:0:1]:{port}",
        ],
    )
    def test_the_developers_own_hosts(self, site: SiteFactory, host: str) -> None:
        served = site()
        response = served.get(f"{PREFIX}/api/requests", host.format(port=served.port))
        assert response.status == 200
        assert json.loads(response.body)["requests"] == []

    @pytest.mark.parametrize(
        "host",
        [
            "rebind.attacker.example",
            "localhost.attacker.example:{port}",
            "127.0.0.1.attacker.example:{port}",
            "10.0.0.5:{port}",
            "",
            "localhost@attacker.example",
        ],
    )
    def test_other_hosts(self, site: SiteFactory, host: str) -> None:
        served = site()
        response = served.get(f"{PREFIX}/api/requests", host.format(port=served.port))
        assert (response.status, response.body) == (404, b"Not Found")

    def test_allowed_hosts_adds_names(self, site: SiteFactory) -> None:
        served = site(allowed_hosts=["myapp.test", ".dev.test"])
        for host in ("myapp.test", "api.dev.test", "localhost"):
            response = served.get(f"{PREFIX}/api/requests", f"{host}:{served.port}")
            assert response.status == 200, host
        assert served.get(f"{PREFIX}/api/requests", "other.test").status == 404

    def test_http_1_0_without_host_is_judged_by_the_server_address(self, site: SiteFactory) -> None:
        # No browser sends a request without Host; the address it reached (127.0.0.1) is all
        # there is to judge.
        served = site()
        response = raw_request(served.url, f"{PREFIX}/api/requests", None, http_version="1.0")
        assert response.status == 200


class TestSecretsInRecords:
    def test_credentials_never_reach_the_history_by_default(self, site: SiteFactory) -> None:
        served = site()
        request_id = served.record_a_request()
        local = f"localhost:{served.port}"
        api = served.get(f"{PREFIX}/api/requests/{request_id}", local)
        detail = served.get(f"{PREFIX}/requests/{request_id}", local)
        for response in (api, detail):
            assert response.status == 200
            for secret in SECRETS:
                assert secret.encode() not in response.body
        data = json.loads(api.body)
        request_panel = data["panels"]["RequestPanel"]
        headers = dict(map(tuple, request_panel["headers"]))
        assert headers["authorization"] == "Bearer ********"
        assert headers["cookie"] == "session=********; debug_toolbar_disabled=VersionsPanel"
        assert headers["x-api-key"] == "********"
        assert request_panel["cookies"] == [
            ["session", "********"],
            ["debug_toolbar_disabled", "VersionsPanel"],
        ]
        response_headers = dict(map(tuple, data["panels"]["ResponsePanel"]["headers"]))
        assert response_headers["set-cookie"].startswith("sid=********; ")
        assert "httponly" in response_headers["set-cookie"].lower()
        assert b'<code class="dt-code">session</code>' in detail.body

    def test_mask_secrets_false_keeps_them(self, site: SiteFactory) -> None:
        served = site(mask_secrets=False)
        request_id = served.record_a_request()
        api = served.get(f"{PREFIX}/api/requests/{request_id}", f"localhost:{served.port}")
        data = json.loads(api.body)
        headers = dict(map(tuple, data["panels"]["RequestPanel"]["headers"]))
        assert headers["authorization"] == "Bearer TOPSECRET"
        assert headers["x-api-key"] == "KEYSECRET"
        assert ["session", "COOKIESECRET"] in data["panels"]["RequestPanel"]["cookies"]
        response_headers = dict(map(tuple, data["panels"]["ResponsePanel"]["headers"]))
        assert response_headers["set-cookie"].startswith("sid=SETCOOKIESECRET; ")
