"""Request headers a client controls and the backend trusts, against the real dockroute process: what the
proxy sets about the client (X-Forwarded-*, X-Real-Ip) cannot be removed or spoofed by the client, an h2c
upgrade never reaches a backend, and pooled backend connections carry nothing from one client to another.

Each case names the advisory or bug class it comes from. The backends are raw asyncio servers that keep the
exact bytes they receive, so a header the proxy dropped is provably absent (not hidden by a library that
folds or renames headers on the way in).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from router.headers import TrustedNetworks, underscore_guard
from router.settings import EntryPoint
from tests.hardening.backends import AnsweringBackend, RecordingBackend, recording  # noqa: F401  (a fixture)
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers
from tests.polling import wait_for
from tests.unavailable import unavailable

pytestmark = pytest.mark.integration

SPOOF = "203.0.113.66"  # the address a client pretends to be (TEST-NET-3)


def _static(tmp_path, address: str = "127.0.0.1:0", **http) -> dict:
    """The harness's static configuration with extra keys on entry point ``web``."""
    return {
        "entryPoints": {"web": {"address": address, **http}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }


def _get(*lines: str, host: str = "a.test") -> bytes:
    extra = "".join(line + "\r\n" for line in lines)
    return f"GET /h HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


def _route(url: str, **extra) -> dict:
    return routers(("r", "Host(`a.test`)", "s"), services={"s": [url]}, **extra)


OWN = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Server")


async def test_connection_header_cannot_remove_what_the_proxy_sets(proxy, recording):  # noqa: F811
    """Hop-by-hop abuse (Nathan Davison 2019; Traefik CVE-2024-45410 / GHSA-62c8-mh53-4cqv, X-Forwarded-*
    removed by listing them in ``Connection``; Traefik CVE-2021-32813 / GHSA-m697-4v8f-55qg, a header a
    middleware set removed the same way; the class hit HAProxy and nginx setups too): a proxy that removes
    Connection-named headers after adding its own lets the client delete them, hiding its address or a
    middleware's identity header from the backend.
    dockroute removes what ``Connection`` names from the client's headers only, before adding its own;
    a header of the client's listed there is removed (RFC 9110 7.6.1)."""
    cfg = _route(recording.url)
    cfg["http"]["routers"]["r"]["middlewares"] = ["who"]
    cfg["http"]["middlewares"] = {"who": {"headers": {"customRequestHeaders": {"X-Auth-User": "proxy-set"}}}}
    dr = await proxy(cfg)
    listed = ", ".join((*OWN, "X-Real-Ip", "X-Auth-User", "X-Hop"))
    answer = await exchange(dr.port, _get(f"Connection: {listed}", "X-Hop: client", "X-Kept: yes"))
    assert answer.status == 200, answer.data[:300]
    seen = await recording.one_head()
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.getall("X-Real-Ip") == ["127.0.0.1"]
    assert seen.getall("X-Forwarded-Host") == ["a.test"]
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert seen.getall("X-Forwarded-Port") == ["80"]  # Traefik's: no port in Host, plain HTTP
    assert len(seen.getall("X-Forwarded-Server")) == 1
    assert seen.getall("X-Auth-User") == ["proxy-set"]
    assert "X-Hop" not in seen and "Connection" not in seen
    assert seen["X-Kept"] == "yes"


async def test_connection_header_of_a_trusted_client_keeps_its_forwarded_headers(proxy, recording, tmp_path):  # noqa: F811
    """Traefik's removeConnectionHeaders never lets ``Connection`` name an X-Forwarded-* header it manages
    (RFC 7230 6.1; the fix for the hop-by-hop abuse above): from a trusted peer those headers are passed
    on, appended to, and not deleted because the client listed them."""
    static = _static(tmp_path, forwardedHeaders={"trustedIPs": ["127.0.0.1"]})
    dr = await proxy(_route(recording.url), static=static)
    raw = _get(
        "Connection: X-Forwarded-For, X-Forwarded-Prefix, X-Real-Ip",
        "X-Forwarded-For: 198.51.100.7",
        "X-Forwarded-Prefix: /base",
        "X-Real-Ip: 198.51.100.7",
    )
    assert (await exchange(dr.port, raw)).status == 200
    seen = await recording.one_head()
    assert seen.getall("X-Forwarded-For") == ["198.51.100.7, 127.0.0.1"]
    assert seen.getall("X-Forwarded-Prefix") == ["/base"]
    assert seen.getall("X-Real-Ip") == ["198.51.100.7"]


SPOOFED = [
    "X-Forwarded-For",
    "X_Forwarded_For",
    "x_forwarded-for",
    "X-Real-Ip",
    "X_Real_IP",
    "X-Forwarded-Host",
    "X_Forwarded_Host",
    "X-Forwarded-Proto",
    "X_Forwarded_Proto",
    "X-Forwarded-Port",
    "X_Forwarded_Port",
    "X-Forwarded-Server",
    "X-Forwarded-Prefix",
    "X_Forwarded_Prefix",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
    "X-Forwarded-Tls-Client-Cert",
    "X_Forwarded_Tls_Client_Cert_Info",
    "X-Forwarded-Scheme",
    "X-Scheme",
    "Forwarded",
]


async def test_untrusted_client_cannot_spoof_forwarded_headers_in_any_spelling(proxy, recording):  # noqa: F811
    """X-Forwarded-* / X-Real-Ip / Forwarded from a peer outside ``forwardedHeaders.trustedIPs`` are
    dropped (Traefik's DeleteXForwardedHeaders), and so are their underscore spellings: CGI, WSGI and PHP
    read ``X_Forwarded_For`` and ``X-Forwarded-For`` as the same ``HTTP_X_FORWARDED_FOR`` (traefik/traefik
    #12984, 2026: the underscore variants survived Traefik's untrusted-peer strip; nginx drops underscore
    names by default for this reason). ``Forwarded`` (RFC 7239) is not in Traefik's list
    and is dropped here too: a backend reading it would take the client's word for its address. ``Proxy``
    is the httpoxy header (CVE-2016-5385): a CGI backend reads it as ``HTTP_PROXY``."""
    dr = await proxy(_route(recording.url))
    lines = [f"{name}: {SPOOF}" for name in SPOOFED]
    lines[SPOOFED.index("Forwarded")] = f"Forwarded: for={SPOOF};proto=https"
    answer = await exchange(dr.port, _get(*lines, f"Proxy: http://{SPOOF}/"))
    assert answer.status == 200, answer.data[:300]
    seen = await recording.one_head()
    assert SPOOF.encode() not in recording.received, bytes(recording.received)
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.getall("X-Real-Ip") == ["127.0.0.1"]


async def test_trusted_client_passes_its_forwarded_headers_on(proxy, recording, tmp_path):  # noqa: F811
    """The other side of the strip: a trusted peer's headers (a load balancer's, say) reach the backend as
    Traefik passes them: its X-Forwarded-For with the peer appended, its ``Forwarded`` and underscore
    spellings untouched."""
    static = _static(tmp_path, forwardedHeaders={"trustedIPs": ["127.0.0.0/8"]})
    dr = await proxy(_route(recording.url), static=static)
    raw = _get(f"X-Forwarded-For: {SPOOF}", f"Forwarded: for={SPOOF}", f"X_Forwarded_Host: {SPOOF}")
    assert (await exchange(dr.port, raw)).status == 200
    seen = await recording.one_head()
    assert seen.getall("X-Forwarded-For") == [f"{SPOOF}, 127.0.0.1"]
    assert seen.getall("Forwarded") == [f"for={SPOOF}"]
    assert seen.getall("X_Forwarded_Host") == [SPOOF]


@pytest.mark.parametrize(
    ("trusted_ips", "trusted"),
    [
        pytest.param(["127.0.0.1"], True, id="ipv4-entry-matches-mapped-peer"),
        pytest.param(["::ffff:127.0.0.0/104"], True, id="mapped-cidr-entry-matches"),
        pytest.param(["::ffff:127.0.0.1"], True, id="mapped-address-entry-matches"),
        pytest.param(["::ffff:10.0.0.0/104"], False, id="mapped-cidr-entry-elsewhere-does-not"),
        pytest.param(["::1"], False, id="ipv6-loopback-is-not-ipv4-loopback"),
    ],
)
async def test_trusted_ips_match_ipv4_mapped_peers(proxy, recording, tmp_path, trusted_ips, trusted):  # noqa: F811
    """A dual-stack listener (``:80`` binds ``::``) sees an IPv4 client as ``::ffff:a.b.c.d``. Go unmaps it
    and its ``IPNet.Contains`` matches IPv4-mapped CIDRs (``::ffff:10.0.0.0/104`` is 10.0.0.0/8), so a
    Traefik ``trustedIPs`` list means the same whichever way it is written. A proxy comparing the mapped
    form to an IPv4 list (or an IPv4 peer to a mapped list) wrongly trusts or distrusts the client
    (the IPv4-mapped confusion class: CVE-2024-29415, node `ip` misjudging ``::ffff:127.0.0.1``)."""
    if not socket.has_dualstack_ipv6():
        unavailable("no dual-stack IPv6 socket on this machine")
    static = _static(tmp_path, address=":0", forwardedHeaders={"trustedIPs": trusted_ips})
    dr = await proxy(_route(recording.url), static=static)
    assert (await exchange(dr.port, _get(f"X-Forwarded-For: {SPOOF}"))).status == 200
    seen = await recording.one_head()
    assert seen["X-Forwarded-For"] == (f"{SPOOF}, 127.0.0.1" if trusted else "127.0.0.1")


async def test_request_trailers_never_carry_forwarded_headers(proxy, recording):  # noqa: F811
    """Traefik GHSA-v67p-phpq-fc8x / CVE-2026-88004: its X-Forwarded-* strip and underscoreHeadersStrategy
    scanned the headers but not the trailers, so a chunked request's trailer smuggled a managed or
    aliasing name to the backend. dockroute re-frames the body it forwards and sends no trailer at all."""
    dr = await proxy(_route(recording.url))
    trailer = f"X-Forwarded-Prefix: /admin\r\nX_Forwarded_For: {SPOOF}\r\nX-Trailer: {SPOOF}\r\n"
    raw = (
        b"POST /h HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n" + trailer.encode() + b"\r\n"
    )
    answer = await exchange(dr.port, raw)
    assert answer.status == 200, answer.data[:300]
    await wait_for(lambda: b"0\r\n\r\n" in recording.received, timeout=5)
    assert b"abc" in recording.received
    assert SPOOF.encode() not in recording.received and b"/admin" not in recording.received


def test_trusted_networks_unmap_both_sides():
    """The same rule without a process: every spelling of an entry matches every spelling of a peer."""
    for entry in ("10.0.0.0/8", "::ffff:10.0.0.0/104", "::ffff:a00:0/104"):
        nets = TrustedNetworks([entry])
        assert nets.trusts("10.1.2.3") and nets.trusts("::ffff:10.1.2.3"), entry
        assert not nets.trusts("11.0.0.1") and not nets.trusts("::ffff:11.0.0.1"), entry
    assert not TrustedNetworks(["::/0"]).trusts("10.1.2.3")  # Go: an IPv6 network never holds IPv4


@pytest.mark.parametrize(
    ("strategy", "status", "forwarded"),
    [
        ("keep", 200, {"X_Custom": "u", "X-Custom": "d"}),
        ("delete", 200, {"X-Custom": "d"}),
        ("reject", 400, None),
    ],
)
async def test_underscore_headers_strategy(proxy, recording, tmp_path, strategy, status, forwarded):  # noqa: F811
    """Traefik's ``entryPoints.<ep>.http.underscoreHeadersStrategy`` (Traefik v3.7.6, against identity
    headers spoofed past forwardAuth or a headers middleware as ``X_Auth_User``, which CGI, WSGI and PHP
    backends read as ``X-Auth-User``): ``keep`` forwards underscore names, ``delete`` removes them before
    routing, ``reject`` answers 400 and forwards nothing."""
    static = _static(tmp_path, http={"underscoreHeadersStrategy": strategy})
    dr = await proxy(_route(recording.url), static=static)
    answer = await exchange(dr.port, _get("X_Custom: u", "X-Custom: d"))
    assert answer.status == status, answer.data[:300]
    if forwarded is None:
        assert answer.body == b"400 Bad Request\n"
        good = await exchange(dr.port, _get("X-Custom: d"))
        assert good.status == 200
        seen = await recording.one_head()  # the good request is the only one that arrived
        assert "X_Custom" not in seen
        return
    seen = await recording.one_head()
    assert {k: v for k, v in seen.items() if k.lower().replace("_", "-") == "x-custom"} == forwarded


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _h2c_capable(head: bytes) -> bytes:
    """A backend that takes an h2c upgrade whenever it is offered one (as Go's h2c handler or hyper
    do): a 101 and then HTTP/2 frames, beyond the proxy's rules."""
    if b"upgrade: h2c" in head.lower():
        return b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    "connection",
    ["Connection: Upgrade, HTTP2-Settings", "Connection: Upgrade", "X-No-Connection: 1"],
    ids=["settings-listed-in-Connection", "settings-not-listed", "no-Connection-header"],
)
async def test_h2c_upgrade_is_never_forwarded(proxy, connection):  # noqa: F811
    """h2c smuggling (BishopFox, Jake Miller 2020; Traefik #9341, fixed by not forwarding h2c upgrades,
    traefik/traefik#13797; golang/go#80416): a proxy that passes ``Upgrade: h2c`` lets the backend switch the
    connection to HTTP/2, after which the client's requests go straight to the backend past every
    router rule and middleware. dockroute tunnels WebSocket only: the request reaches the backend as a
    plain request, without ``Upgrade`` and without the connection-specific ``HTTP2-Settings`` even when
    the client did not list them in ``Connection`` (RFC 9113 3.2.1 / RFC 7540 3.2.1; some backends
    upgrade on ``Upgrade: h2c`` alone, golang/go#45785)."""
    backend = await AnsweringBackend(_h2c_capable).start()
    try:
        dr = await proxy(_route(backend.url))
        raw = _get(connection, "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")
        answer = await exchange(dr.port, raw)
        assert answer.status == 200 and answer.answers == 1, answer.data[:300]
        assert answer.body == b"ok"
        (head,) = backend.heads
        assert b"h2c" not in head.lower() and b"http2-settings" not in head.lower(), head
    finally:
        await backend.stop()


async def test_h2c_prior_knowledge_is_refused_and_never_forwarded(proxy, recording):  # noqa: F811
    """The other h2c door (BishopFox's h2csmuggler ``--prior-knowledge`` mode): HTTP/2's preface sent
    straight to the HTTP/1.1 entry point is a bad request, 400 and closed, with nothing at the backend
    (a proxy relaying unparsed bytes would hand the backend an HTTP/2 connection)."""
    dr = await proxy(_route(recording.url))
    answer = await exchange(dr.port, PREFACE)
    assert answer.status == 400 and answer.closed, answer.data[:300]
    assert answer.body == b"400 Bad Request\n"
    good = await exchange(dr.port, _get())
    assert good.status == 200
    seen = await recording.one_head()  # the good request is the only thing that arrived
    assert "X-Forwarded-For" in seen and b"PRI" not in recording.received


async def test_pooled_backend_connection_carries_no_cookie_between_clients(proxy):  # noqa: F811
    """Session mix-up through connection reuse (the class of nginx's and Varnish's cached-Set-Cookie
    leaks, and of client libraries with a shared cookie jar such as aiohttp's ClientSession, whose
    ``cookie_jar`` a proxy must never use): client A's login sets a cookie on the backend connection's
    answer; client B, on another client connection, reaches the backend over the same pooled
    connection and must send neither A's cookie nor the one set for A, nor get A's Set-Cookie back."""

    def answer(head: bytes) -> bytes:
        if head.startswith(b"GET /login "):
            return b"HTTP/1.1 200 OK\r\nSet-Cookie: session=A-secret; Path=/\r\nContent-Length: 2\r\n\r\nok"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    backend = await AnsweringBackend(answer).start()
    try:
        dr = await proxy(_route(backend.url))
        login = b"GET /login HTTP/1.1\r\nHost: a.test\r\nCookie: pref=A-own\r\nConnection: close\r\n\r\n"
        a = await exchange(dr.port, login)
        assert a.status == 200 and b"A-secret" in a.data
        b = await exchange(dr.port, b"GET /me HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        assert b.status == 200, b.data[:300]
        assert b"A-secret" not in b.data and b"Set-Cookie" not in b.data
        assert len(backend.heads) == 2 and backend.connections == 1  # the same pooled connection
        assert b"Cookie: pref=A-own" in backend.heads[0]
        assert b"cookie" not in backend.heads[1].lower(), backend.heads[1]
    finally:
        await backend.stop()


def test_keep_underscore_headers_costs_nothing_per_request():
    """``keep`` (Traefik's default) hands aiohttp the entry point's own handler: no wrapper, no check."""

    class Handler:
        entry_point = EntryPoint("web", ":0")

        async def __call__(self, request: object) -> None:
            return None

    handler = Handler()
    assert underscore_guard(handler) is handler


async def test_forwarded_proto_and_port_are_traefiks(proxy, recording):  # noqa: F811
    """The backend gets what Traefik's forwardedheaders handler sets, as the routing rules see it
    (router.forwarded_view): X-Forwarded-Proto ``ws`` for a WebSocket upgrade (Traefik's isWebsocketRequest),
    and X-Forwarded-Port from the Host's port, else 80 for plain HTTP, never the port dockroute happens to
    listen on (behind a port mapping that is not the port the client used)."""
    dr = await proxy(_route(recording.url))
    upgrade = (
        "GET /ws HTTP/1.1\r\nHost: a.test:8000\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:  # the backend declines (a 200): the answer's head is relayed and the connection stays open
        writer.write(upgrade.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 "), head
    seen = await recording.one_head()
    assert seen.getall("X-Forwarded-Proto") == ["ws"]
    assert seen.getall("X-Forwarded-Port") == ["8000"]
    recording.received.clear()
    await exchange(dr.port, _get())
    seen = await recording.one_head()
    assert seen.getall("X-Forwarded-Proto") == ["http"] and seen.getall("X-Forwarded-Port") == ["80"]
