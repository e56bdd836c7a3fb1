"""The Host check against DNS rebinding: parsing a Host, matching it, normalizing patterns."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from debug_toolbar.core.context import RequestContext
from debug_toolbar.core.hosts import (
    DEFAULT_ALLOWED_HOSTS,
    HostMatcher,
    host_allowed,
    normalize_allowed_hosts,
    parse_host,
    request_host,
)


def context(*hosts: str, server: Any = ("127.0.0.1", 8000)) -> RequestContext:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"host", host.encode("latin-1")) for host in hosts],
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
    return RequestContext.from_scope(scope)


class TestParseHost:
    @pytest.mark.parametrize(
        ("authority", "host"),
        [
            ("localhost", "localhost"),
            ("LocalHost:8000", "localhost"),
            ("localhost.", "localhost"),
            ("localhost.:8000", "localhost"),
            ("app.localhost:3000", "app.localhost"),
            ("my_container:80", "my_container"),
            ("localhost:", "localhost"),  # an empty port is allowed by RFC 3986
        ],
    )
    def test_names(self, authority: str, host: str) -> None:
        assert parse_host(authority) == host

    @pytest.mark.parametrize(
        ("authority", "address"),
        [
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1:8000", "127.0.0.1"),
            ("127.0.0.1.", "127.0.0.1"),
            ("[::1]", "::1"),
            ("[::1]:8000", "::1"),
            ("[0:0:0:0:0:0:0:1]:8000", "::1"),
            ("[FD00::AB]:1", "fd00::ab"),
            ("[::ffff:127.0.0.1]:8000", "127.0.0.1"),  # IPv4 spelled as IPv6
        ],
    )
    def test_ip_literals(self, authority: str, address: str) -> None:
        assert parse_host(authority) == ipaddress.ip_address(address)

    @pytest.mark.parametrize(
        "authority",
        [
            "",
            ":8000",
            "::1",  # IPv6 without brackets is not a Host
            "::1:8000",
            "[::1",
            "[::1]8000",
            "[127.0.0.1]",  # brackets are for IPv6 only
            "[fe80::1%25eth0]:80",  # zone ids
            "localhost:80x",
            "localhost:80:80",
            "user@localhost",
            "local host",
            "localhost/evil",
            "localhost..",
            ".localhost",
            "localhost\x00.evil.example",
        ],
    )
    def test_malformed_is_none(self, authority: str) -> None:
        assert parse_host(authority) is None


class TestDefaults:
    @pytest.mark.parametrize(
        "authority",
        [
            "localhost:8000",
            "LOCALHOST",
            "localhost.:8000",
            "app.localhost:8000",
            "a.b.localhost",
            "127.0.0.1:65535",
            "[::1]:8000",
            "[0::1]",
        ],
    )
    def test_allowed(self, authority: str) -> None:
        assert HostMatcher(DEFAULT_ALLOWED_HOSTS)(authority) is True

    @pytest.mark.parametrize(
        "authority",
        [
            "rebind.attacker.example:8000",
            "localhost.attacker.example",
            "attackerlocalhost",
            "localhost-attacker.example",
            "127.0.0.2",  # allowed only when listed
            "10.0.0.5:8000",
            "[fd00::1]",
            "::1",
            "",
            None,
        ],
    )
    def test_refused(self, authority: str | None) -> None:
        assert HostMatcher(DEFAULT_ALLOWED_HOSTS)(authority) is False


class TestPatterns:
    def test_names_domains_and_addresses(self) -> None:
        matcher = HostMatcher(
            normalize_allowed_hosts(["myapp.test", ".example.test", "192.168.1.20", "fd00::1"])
        )
        assert matcher("myapp.test:8000")
        assert matcher("MYAPP.TEST.")
        assert not matcher("www.myapp.test")
        assert matcher("example.test")
        assert matcher("api.v2.example.test:443")
        assert not matcher("badexample.test")
        assert matcher("192.168.1.20:8000")
        assert not matcher("192.168.1.21")
        assert matcher("[fd00:0::1]:8000")
        assert not matcher("localhost")  # the defaults are added by host_allowed, not here

    def test_any_host_still_needs_a_well_formed_one(self) -> None:
        matcher = HostMatcher(["*"])
        assert matcher("whatever.example:1")
        assert matcher("10.1.2.3")
        assert not matcher("a b")
        assert not matcher(None)


class TestNormalizeAllowedHosts:
    def test_one_spelling(self) -> None:
        assert normalize_allowed_hosts(
            [
                "MyApp.Test.",
                ".Example.TEST.",
                "::1",
                "[FD00:0::1]",
                "10.0.0.1",
                "::ffff:10.0.0.1",  # the same address again: kept once
                "*",
            ]
        ) == ("myapp.test", ".example.test", "[::1]", "[fd00::1]", "10.0.0.1", "*")

    def test_a_generator_is_read_once(self) -> None:
        assert normalize_allowed_hosts(host for host in ["a.test", "b.test"]) == (
            "a.test",
            "b.test",
        )

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("myapp.test", "allowed_hosts must be a sequence of host names"),
            (b"myapp.test", "allowed_hosts must be a sequence of host names"),
            (None, "allowed_hosts must be a sequence of host names"),
            ([5], "allowed_hosts: 5 is not a string"),
            (
                ["localhost:8000"],
                "names a port; hosts are allowed on any port, so write 'localhost'",
            ),
            (["[::1]:8000"], "names a port; hosts are allowed on any port, so write '[::1]'"),
            (["*.example.test"], "write '.example.test' for a domain and its subdomains"),
            ([".1.2.3.4"], "is not a domain name"),
            (["."], "is not a domain name"),
            ([""], "'' is not a host"),
            (["http://myapp.test"], "is not a host"),
            (["my app"], "is not a host"),
            (["[127.0.0.1]"], "is not a host"),
        ],
    )
    def test_bad_values_name_the_option(self, value: Any, message: str) -> None:
        with pytest.raises(ValueError, match="allowed_hosts") as raised:
            normalize_allowed_hosts(value)
        assert message in str(raised.value)


class TestRequestHost:
    def test_the_host_header_wins_over_the_server_address(self) -> None:
        # In a rebinding attack the server address is 127.0.0.1: only the Host tells.
        request = context("rebind.attacker.example:8000", server=("127.0.0.1", 8000))
        assert request_host(request) == "rebind.attacker.example:8000"
        assert host_allowed(request) is False

    def test_no_host_header_falls_back_to_the_server_address(self) -> None:
        # HTTP/1.0 without Host: what the client connected to is the only name there is.
        assert request_host(context(server=("127.0.0.1", 8000))) == "127.0.0.1"
        assert host_allowed(context(server=("127.0.0.1", 8000))) is True
        assert host_allowed(context(server=("10.0.0.5", 8000))) is False
        assert host_allowed(context(server=None)) is False
        assert host_allowed(context(server=("/tmp/app.sock", None))) is False

    def test_several_host_headers_are_refused(self) -> None:
        request = context("localhost", "rebind.attacker.example")
        assert request_host(request) is None
        assert host_allowed(request) is False

    def test_an_empty_host_is_refused(self) -> None:
        assert host_allowed(context("")) is False

    def test_http2_authority_arrives_as_the_host_header(self) -> None:
        # ASGI servers (hypercorn, granian) put HTTP/2's :authority into the "host" header.
        assert host_allowed(context("localhost:8443")) is True
        assert host_allowed(context("rebind.attacker.example:8443")) is False

    def test_allowed_hosts_extend_the_defaults(self) -> None:
        extra = normalize_allowed_hosts(["myapp.test"])
        assert host_allowed(context("myapp.test:8000"), extra) is True
        assert host_allowed(context("localhost:8000"), extra) is True
        assert host_allowed(context("other.test:8000"), extra) is False
