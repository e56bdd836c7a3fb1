"""Which ``Host`` a request may name to see the toolbar: the guard against DNS rebinding.

A page on an attacker's domain can make its own name resolve to 127.0.0.1 (DNS rebinding). The
browser then sends that page's requests to the developer's app on loopback, as same-origin
requests, with ``Host: attacker.example``: the client is loopback, so ``show_toolbar`` alone
would let the page read the toolbar's history (headers, cookies, source lines). A name the
attacker cannot control (``localhost``, an IP literal) closes that hole, so the toolbar answers
only requests whose Host is allowed.

The Host is the request's ``Host`` header (HTTP/2 servers put ``:authority`` there in the ASGI
scope); only when a request has none (HTTP/1.0) is the address it came in on (the scope's
``server``) used instead. A browser always sends a Host, so that fallback never serves a
rebinding page.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from debug_toolbar.core.context import RequestContext

__all__ = (
    "ANY_HOST",
    "DEFAULT_ALLOWED_HOSTS",
    "HostMatcher",
    "host_allowed",
    "normalize_allowed_hosts",
    "parse_host",
    "request_host",
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("localhost", ".localhost", "127.0.0.1", "[::1]")
"""Always allowed, on any port. Browsers resolve ``localhost`` and ``*.localhost`` to loopback
themselves (RFC 6761), never through DNS, so no attacker can rebind them."""

ANY_HOST = "*"
"""In ``allowed_hosts``: any Host at all, which turns the DNS-rebinding guard off."""

# One DNS label: letters, digits, "-" and "_" (seen in container names), not empty.
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_PORT = re.compile(r"[0-9]*")


def _ip(text: str) -> IPAddress | None:
    """An IP address in one spelling; None for names, and for zone ids (``fe80::1%eth0``)."""
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # "[::ffff:127.0.0.1]" is 127.0.0.1 spelled as IPv6.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_host(authority: str) -> str | IPAddress | None:
    """The host of a ``Host`` header value: an IP address, or a lowercase name without its
    trailing dot; the port, if any, is dropped. None for anything malformed.

    Strict on purpose: a Host that is not a plain name or IP literal (``a@b``, a bare IPv6
    address, a zone id, spaces) is refused rather than guessed at.
    """
    value = authority.lower()
    host: str | IPAddress | None
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or ":" not in inside or (rest and not rest.startswith(":")):
            return None
        host, port = _ip(inside), rest[1:]
    else:
        name, _, port = value.partition(":")
        name = name.removesuffix(".")
        if _NAME.fullmatch(name) is None:
            return None
        host = _ip(name) or name
    if host is None or _PORT.fullmatch(port) is None:
        return None
    return host


def request_host(context: RequestContext) -> str | None:
    """The authority the request was addressed to: its one ``Host`` header, or, when it has
    none, the address it came in on. None when it names several Hosts (ambiguous)."""
    hosts = [value for name, value in context.headers if name.lower() == "host"]
    if len(hosts) == 1:
        return hosts[0]
    if hosts:
        return None
    return context.server_host


class HostMatcher:
    """Answers "is this Host allowed?" for one set of validated patterns (see
    ``normalize_allowed_hosts``), precomputed so that a request costs a parse and a lookup."""

    __slots__ = ("addresses", "any_host", "names", "suffixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.any_host = False
        self.names: set[str] = set()
        suffixes: list[str] = []
        self.addresses: set[IPAddress] = set()
        for pattern in patterns:
            if pattern == ANY_HOST:
                self.any_host = True
            elif pattern.startswith("."):
                self.names.add(pattern[1:])
                suffixes.append(pattern)
            else:
                parsed = parse_host(pattern)
                if isinstance(parsed, str):
                    self.names.add(parsed)
                elif parsed is not None:
                    self.addresses.add(parsed)
        self.suffixes = tuple(suffixes)

    def __call__(self, authority: str | None) -> bool:
        if authority is None:
            return False
        host = parse_host(authority)
        if host is None:
            return False
        if self.any_host:
            return True
        if isinstance(host, str):
            return host in self.names or host.endswith(self.suffixes)
        return host in self.addresses


@functools.lru_cache(maxsize=16)
def _matcher(extra: tuple[str, ...]) -> HostMatcher:
    return HostMatcher((*DEFAULT_ALLOWED_HOSTS, *extra))


def host_allowed(context: RequestContext, allowed_hosts: tuple[str, ...] = ()) -> bool:
    """Whether the request's Host is one of ``DEFAULT_ALLOWED_HOSTS`` or ``allowed_hosts``
    (validated patterns, as ``DebugToolbarConfig`` keeps them)."""
    return _matcher(tuple(allowed_hosts))(request_host(context))


def _spelled(address: IPAddress) -> str:
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _normalize_pattern(entry: object) -> str:
    if not isinstance(entry, str):
        raise ValueError(f"allowed_hosts: {entry!r} is not a string")
    pattern = entry.lower()
    if pattern == ANY_HOST:
        return pattern
    if pattern.startswith("*."):
        raise ValueError(
            f"allowed_hosts: {entry!r}: write {pattern[1:]!r} for a domain and its subdomains"
        )
    if pattern.startswith("."):
        domain = pattern[1:].removesuffix(".")
        if _NAME.fullmatch(domain) is None or _ip(domain) is not None:
            raise ValueError(
                f"allowed_hosts: {entry!r} is not a domain name (a leading '.' means the "
                "domain and its subdomains)"
            )
        return "." + domain
    bare = pattern[1:-1] if pattern.startswith("[") and pattern.endswith("]") else pattern
    address = _ip(bare)
    if address is not None and (bare == pattern or ":" in bare):  # brackets for IPv6 only
        return _spelled(address)
    name = pattern.removesuffix(".")
    if _NAME.fullmatch(name) is not None:
        return name
    parsed = parse_host(pattern)
    if parsed is not None:  # valid, but with a port
        host = parsed if isinstance(parsed, str) else _spelled(parsed)
        raise ValueError(
            f"allowed_hosts: {entry!r} names a port; hosts are allowed on any port, so write "
            f"{host!r}"
        )
    raise ValueError(
        f"allowed_hosts: {entry!r} is not a host; expected a host name ('myapp.test'), an IP "
        "address ('192.168.1.20', '[fd00::1]'), '.example.test' for a domain and its "
        "subdomains, or '*' for any host"
    )


def normalize_allowed_hosts(value: object) -> tuple[str, ...]:
    """``allowed_hosts`` checked and put in one spelling (lowercase, no trailing dot, IPv6 in
    brackets); a ValueError naming the option for anything that is not a host pattern."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(
            f"allowed_hosts must be a sequence of host names or IP addresses, got {value!r}"
        )
    return tuple(dict.fromkeys(_normalize_pattern(entry) for entry in value))
