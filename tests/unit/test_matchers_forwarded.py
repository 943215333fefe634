"""Header rules naming X-Forwarded-*/X-Real-Ip read Traefik's trust-aware view (router.forwarded_view);
every other header rule is compiled as before and costs what it did (CVE-2024-45410 family: a spoofed
X-Real-Ip must not open an "internal only" router)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from router.forwarded_view import (
    entry_values,
    forwarded_port,
    forwarded_proto,
    info_class,
    is_managed,
    is_websocket_upgrade,
    values,
)
from router.headers import TrustedNetworks
from router.rules import RequestInfo, parse_rule

PEER = "192.0.2.10"


def _handler(trusted: tuple[str, ...] = (), scheme: str = "http", insecure: bool = False) -> SimpleNamespace:
    return SimpleNamespace(trusted=TrustedNetworks(trusted, insecure), scheme=scheme, port_b=b"8000")


def _req(*headers: tuple[str, str], handler=None, authority: str = "a.test") -> RequestInfo:
    cls = info_class(handler if handler is not None else _handler())
    return cls("GET", "a.test", "/", "", CIMultiDict(headers), PEER, authority)


@pytest.mark.parametrize(
    ("rule", "closure"),
    [
        ("Header(`X-Role`, `a`)", "match_header"),
        ("HeaderRegexp(`X-Role`, `a`)", "match_header_re"),
        ("Header(`X-Real-Ip`, `a`)", "match_forwarded_header"),
        ("Header(`x_real_ip`, `a`)", "match_forwarded_header"),
        ("HeaderRegexp(`X-FORWARDED-FOR`, `a`)", "match_forwarded_header_re"),
        ("HeaderRegexp(`X_Forwarded_Proto`, `a`)", "match_forwarded_header_re"),
        ("Header(`Forwarded`, `a`)", "match_header"),  # not managed by Traefik's forwardedheaders
    ],
)
def test_matcher_is_chosen_when_the_rule_is_compiled(rule, closure):
    assert parse_rule(rule).match.__name__ == closure


def test_v2_headers_pick_per_pair():
    m = parse_rule("HeadersRegexp(`X-Role`, `^a$`, `X-Real-Ip`, `^10\\.`)", "v2").match
    spoofed = _req(("X-Role", "a"), ("X-Real-Ip", "10.0.0.1"))
    assert not m(spoofed)
    assert m(_req(("X-Role", "a"), ("X-Real-Ip", "10.0.0.1"), handler=_handler(("192.0.2.0/24",))))


def test_is_managed_covers_every_spelling_and_only_those():
    assert is_managed("X-Real-Ip") and is_managed("x_forwarded_host") and is_managed("X-Forwarded_Uri")
    assert not is_managed("X-Role") and not is_managed("Forwarded") and not is_managed("X-Forwarded")


def test_untrusted_peer_sees_the_proxys_values():
    spoof = [(n, "10.0.0.1") for n in ("X-Real-Ip", "X-Forwarded-For", "X_Real_Ip", "X-Forwarded-Uri")]
    r = _req(*spoof, ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil"), ("X-Forwarded-Port", "1"))
    assert values(r, "x-real-ip") == (PEER,)
    assert values(r, "x-forwarded-for") == ()
    assert values(r, "x_real_ip") == ()
    assert values(r, "x-forwarded-uri") == ()
    assert values(r, "x-forwarded-proto") == ("http",)
    assert values(r, "x-forwarded-host") == ("a.test",)
    assert values(r, "x-forwarded-port") == ("80",)
    assert values(r, "x-forwarded-server") == (socket.gethostname(),)


def test_trusted_peer_keeps_its_values_and_fills_the_empty_ones():
    handler = _handler(("192.0.2.0/24",))
    xff = (("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2"))
    r = _req(*xff, ("X_Real_Ip", "10.0.0.3"), ("X-Real-Ip", ""), ("X-Forwarded-Server", "x"), handler=handler)
    assert values(r, "x-forwarded-for") == ("10.0.0.1, 10.0.0.2",)  # joined, as Traefik does since 2.10
    assert values(r, "x_real_ip") == ("10.0.0.3",)
    assert values(r, "x-real-ip") == (PEER,)
    assert values(r, "x-forwarded-server") == (socket.gethostname(),)
    assert values(_req(("X-Forwarded-Proto", "https"), handler=handler), "x-forwarded-proto") == ("https",)
    insecure = _req(("X-Real-Ip", "10.0.0.1"), handler=_handler(insecure=True))
    assert values(insecure, "x-real-ip") == ("10.0.0.1",)


def test_one_computation_of_the_entry_points_values():
    """entry_values is what every reader of X-Forwarded-*/X-Real-Ip gets (rules, the backend's request,
    the headers middleware, forwardAuth): Traefik's forwardedheaders handler."""
    h = CIMultiDict([("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2"), ("X-Real-Ip", "")])
    h.add("X-Forwarded-Proto", "https")
    assert entry_values("http", h, "192.0.2.1", "a.test", True, False) == (
        "10.0.0.1, 10.0.0.2",
        "a.test",
        "https",
        "443",  # the trusted proto's port, not the entry point's scheme's
        "192.0.2.1",
    )
    # untrusted: nothing of the client's; ws for a WebSocket; the peer's address without its IPv6 zone
    assert entry_values("https", h, "fe80::1%eth0", "a.test:8443", False, True) == (
        "",
        "a.test:8443",
        "wss",
        "8443",
        "fe80::1",
    )


def test_websocket_upgrade_and_port_as_traefik_sets_them():
    ws = (("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"))
    assert values(_req(*ws), "x-forwarded-proto") == ("ws",)
    assert values(_req(*ws, handler=_handler(scheme="https")), "x-forwarded-proto") == ("wss",)
    assert values(_req(handler=_handler(scheme="https")), "x-forwarded-proto") == ("https",)
    assert values(_req(authority="a.test:81"), "x-forwarded-port") == ("81",)
    assert values(_req(authority="[::1]"), "x-forwarded-port") == ("80",)
    assert values(_req(handler=_handler(scheme="https")), "x-forwarded-port") == ("443",)
    trusted = _handler(("192.0.2.0/24",))
    assert values(_req(("X-Forwarded-Proto", "https"), handler=trusted), "x-forwarded-port") == ("443",)
    assert values(_req(("X-Forwarded-Port", "8443"), handler=trusted), "x-forwarded-port") == ("8443",)


@pytest.mark.parametrize(
    ("scheme", "authority", "tls", "port"),
    [
        ("http", "a.test", False, "80"),
        ("http", "a.test:8080", False, "8080"),
        ("https", "a.test", False, "443"),
        ("wss", "a.test", False, "443"),
        ("http", "a.test", True, "443"),
        ("http", "[::1]:81", False, "81"),
        ("http", "[::1]", False, "80"),
        ("http", "::1", False, "80"),  # Go's SplitHostPort: too many colons, no port
        ("http", "a.test:", False, "80"),
    ],
)
def test_forwarded_port_is_traefiks(scheme, authority, tls, port):
    """Traefik's forwardedPort: the Host's port, else 443 for https/wss or TLS, else 80 (never the
    entry point's listening port)."""
    assert forwarded_port(scheme, authority, tls) == port


def test_forwarded_proto_on_a_websocket_upgrade():
    assert forwarded_proto("http", True) == "ws" and forwarded_proto("https", True) == "wss"
    assert forwarded_proto("https", False) == "https"


@pytest.mark.parametrize(
    ("headers", "websocket"),
    [
        ([("Connection", "Upgrade"), ("Upgrade", "WebSocket")], True),
        ([("Connection", "keep-alive, upgrade"), ("Upgrade", "websocket")], True),
        ([("Connection", "keep-alive"), ("Connection", "Upgrade"), ("Upgrade", "websocket")], True),
        ([("Upgrade", "websocket")], False),  # no Connection: upgrade, llhttp sees no upgrade
        ([("Connection", "Upgrade"), ("Upgrade", "foo")], False),
        ([("Connection", "Upgrade"), ("Upgrade", "websocket, foo")], False),  # not tunnelled: not ws
        ([("Connection", "Upgrade"), ("Upgrade", "h2c")], False),
    ],
)
def test_a_websocket_upgrade_is_what_aiohttp_tunnels(headers, websocket):
    """One decision for the tunnel and the ws label: llhttp's upgrade flag (recomputed from the headers for
    rules) and the first Upgrade value exactly ``websocket``, as aiohttp's parser switches to raw bytes."""
    h = CIMultiDict(headers)
    assert is_websocket_upgrade(h) is websocket
    assert is_websocket_upgrade(h, True) is (h.get("Upgrade", "").lower() == "websocket")
    assert is_websocket_upgrade(h, False) is False


def test_request_info_built_elsewhere_reads_as_untrusted():
    """RequestInfo built outside an entry point (tests, the API) has no ``via``: nothing is trusted."""
    r = RequestInfo("GET", "a.test", "/", "", CIMultiDict([("X-Real-Ip", "10.0.0.1")]), PEER)
    assert r.via is None and values(r, "x-real-ip") == (PEER,)
    assert not parse_rule("HeaderRegexp(`X-Real-Ip`, `^10\\.`)").match(r)


def test_per_entry_point_class_adds_no_per_request_state():
    r = _req()
    assert isinstance(r, RequestInfo) and not hasattr(r, "__dict__") and r.via is not None
