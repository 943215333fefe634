"""One answer for X-Forwarded-* and X-Real-Ip wherever the proxy states them, against the real dockroute
process: what the backend receives, what a ``Header`` rule sees (router.forwarded_view) and what the
request to a forwardAuth server carries must agree, and agree with Traefik's forwardedheaders handler.

A proxy computing these values in several places drifts: one place labels a request ``ws`` that another
proxies as plain HTTP, one keeps an untrusted client's ``X_Forwarded_Host`` that another drops. Each case
sends one request and compares the places.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.hardening.backends import RecordingBackend
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers

pytestmark = pytest.mark.integration


@pytest.fixture
async def two():
    """Two recording backends: ``plain`` behind the ordinary route, ``labelled`` behind the rule tested."""
    started = [await RecordingBackend().start(), await RecordingBackend().start()]
    yield started
    for b in started:
        await b.stop()


async def test_only_what_is_tunnelled_is_labelled_ws(proxy, two):  # noqa: F811
    """``Connection: Upgrade`` with ``Upgrade: websocket, foo`` is not a WebSocket dockroute can tunnel
    (aiohttp reads raw bytes after an exact ``websocket`` alone), so it is proxied as plain HTTP without its
    Upgrade header. The backend must then not be told ``X-Forwarded-Proto: ws``, and a rule on
    X-Forwarded-Proto must see the same ``http`` (it once saw ws, from Traefik's "the first value lists
    websocket", while the request went on as plain HTTP)."""
    plain, labelled = two
    cfg = routers(
        ("r", "Host(`a.test`)", "plain"),
        ("ws", "Host(`a.test`) && Header(`X-Forwarded-Proto`, `ws`)", "labelled"),
        services={"plain": [plain.url], "labelled": [labelled.url]},
    )
    dr = await proxy(cfg)
    req = b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket, foo\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(req)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 "), head
    seen = await plain.one_head()
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert "Upgrade" not in seen
    assert labelled.received == b""
    # An exact WebSocket upgrade is both: labelled ws by the rule and towards the backend.
    ws = b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    ws += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(ws)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    seen = await labelled.one_head()
    assert seen.getall("X-Forwarded-Proto") == ["ws"] and seen["Upgrade"] == "websocket"


def _auth_route(auth_url: str, backend_url: str, **forward_auth) -> dict:
    cfg = routers(("r", "Host(`a.test`)", "s"), services={"s": [backend_url]})
    cfg["http"]["routers"]["r"]["middlewares"] = ["fa"]
    cfg["http"]["middlewares"] = {"fa": {"forwardAuth": {"address": auth_url + "/auth", **forward_auth}}}
    return cfg


async def test_the_auth_request_drops_what_the_backend_request_drops(proxy, two):  # noqa: F811
    """The forwardAuth request is a request to a server as much as the proxied one: httpoxy's ``Proxy``
    (CVE-2016-5385: a CGI auth server reads it as HTTP_PROXY), an h2c ``HTTP2-Settings`` and an untrusted
    client's ``Forwarded`` (RFC 7239: its claimed address) reach neither. ``Proxy-Authorization`` is the
    one hop-by-hop header the auth server gets (Traefik forwards it to the auth server on purpose, RFC 7235
    4.4); the backend does not."""
    auth, backend = two
    dr = await proxy(_auth_route(auth.url, backend.url))
    sent = (
        "Proxy: http://evil.test:3128",
        "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
        "Forwarded: for=203.0.113.66;proto=https",
        "Proxy-Authorization: Basic dTpw",
        "X-Keep: 1",
    )
    head = (
        "GET /h HTTP/1.1\r\nHost: a.test\r\n"
        + "".join(s + "\r\n" for s in sent)
        + "Connection: close\r\n\r\n"
    )
    answer = await exchange(dr.port, head.encode(), timeout=10)
    assert answer.status == 200, answer.data[:300]
    to_auth, to_backend = await auth.one_head(), await backend.one_head()
    for seen in (to_auth, to_backend):
        assert seen["X-Keep"] == "1"
        assert "Proxy" not in seen and "HTTP2-Settings" not in seen and "Forwarded" not in seen, seen
    assert to_auth["Proxy-Authorization"] == "Basic dTpw"
    assert "Proxy-Authorization" not in to_backend


def _static(tmp_path, **entry_point) -> dict:
    """The harness's static configuration with extra keys on entry point ``web``."""
    return {
        "entryPoints": {"web": {"address": "127.0.0.1:0", **entry_point}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "log": {"level": "DEBUG"},
    }


TRUSTING = {"forwardedHeaders": {"trustedIPs": ["127.0.0.1"]}}
SHARED = ("X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Host", "X-Real-Ip", "X-Forwarded-Server")


async def test_a_trusting_auth_server_is_told_what_the_backend_is_told(proxy, two):  # noqa: F811
    """forwardAuth with ``trustForwardHeader: true`` sends the headers the entry point set (Traefik's
    writeHeader copies the request its forwardedheaders handler rewrote): for a WebSocket upgrade
    X-Forwarded-Proto ``ws``, X-Forwarded-Port, -Host, -Server and X-Real-Ip exactly as the backend gets
    them. The auth request used to compute its own (``http`` for a WebSocket, no X-Real-Ip)."""
    auth, backend = two
    dr = await proxy(_auth_route(auth.url, backend.url, trustForwardHeader=True))
    ws = b"GET /h HTTP/1.1\r\nHost: a.test:8000\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    ws += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(ws)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 "), head
    to_auth, to_backend = await auth.one_head(), await backend.one_head()
    assert to_backend["X-Forwarded-Proto"] == "ws" and to_backend["X-Forwarded-Port"] == "8000"
    for name in SHARED:
        assert to_auth.getall(name) == to_backend.getall(name), name
    assert to_auth["X-Forwarded-For"] == "127.0.0.1"


async def test_an_auth_server_by_default_gets_the_entry_points_headers_and_http(proxy, two):  # noqa: F811
    """``trustForwardHeader`` unset (Traefik's oldWriteHeader): the request as the entry point left it is
    copied, X-Real-Ip, X-Forwarded-Port and -Server included, then X-Forwarded-Proto is set from the
    connection alone (``http``, never ws) and X-Forwarded-For to the peer; an untrusted client's own
    X-Forwarded-* never reach it."""
    auth, backend = two
    dr = await proxy(_auth_route(auth.url, backend.url))
    spoof = "X-Real-Ip: 10.0.0.1\r\nX-Forwarded-Port: 1\r\n"
    spoof += "X_Forwarded_Host: evil.test\r\nX-Forwarded-Prefix: /x\r\n"
    req = f"GET /h HTTP/1.1\r\nHost: a.test\r\n{spoof}Connection: close\r\n\r\n".encode()
    assert (await exchange(dr.port, req, timeout=10)).status == 200
    to_auth, to_backend = await auth.one_head(), await backend.one_head()
    for name in ("X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Host"):
        assert to_auth.getall(name) == to_backend.getall(name), name
    assert to_auth["X-Real-Ip"] == "127.0.0.1" and to_auth["X-Forwarded-Port"] == "80"
    assert to_auth["X-Forwarded-Proto"] == "http" and to_auth["X-Forwarded-For"] == "127.0.0.1"
    for seen in (to_auth, to_backend):
        assert "X_Forwarded_Host" not in seen and "X-Forwarded-Prefix" not in seen


def _secure_route(url: str, **headers) -> dict:
    cfg = routers(("r", "PathPrefix(`/`)", "s"), services={"s": [url]})
    cfg["http"]["routers"]["r"]["middlewares"] = ["sec"]
    cfg["http"]["middlewares"] = {"sec": {"headers": headers}}
    return cfg


async def test_the_headers_middleware_reads_the_trusted_proto_s_port(proxy, two, tmp_path):  # noqa: F811
    """A trusted proxy in front says ``X-Forwarded-Proto: https`` for a Host without a port: Traefik's
    entry point sets X-Forwarded-Port 443 from that proto, and its headers middleware reads that 443
    (``sslProxyHeaders``), as the backend is told 443. It used to read 80, from the entry point's scheme."""
    backend, _ = two
    cfg = _secure_route(backend.url, sslProxyHeaders={"X-Forwarded-Port": "443"}, stsSeconds=60)
    dr = await proxy(cfg, static=_static(tmp_path, **TRUSTING))
    req = b"GET /h HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    answer = await exchange(dr.port, req, timeout=10)
    assert answer.status == 200, answer.data[:300]
    assert b"\r\nStrict-Transport-Security: max-age=60\r\n" in answer.data
    assert (await backend.one_head())["X-Forwarded-Port"] == "443"


async def test_the_headers_middleware_sees_no_forwarded_for_from_an_untrusted_client(proxy, two):  # noqa: F811
    """Traefik's entry point deletes an untrusted client's X-Forwarded-For and the proxy appends the peer
    only when it sends the request on: a headers middleware before that finds none. ``hostsProxyHeaders:
    [X-Forwarded-For]`` then falls back to the Host, which ``allowedHosts`` lets in (the middleware used to
    read the peer's address there and answer 500)."""
    backend, _ = two
    dr = await proxy(
        _secure_route(backend.url, allowedHosts=["a.test"], hostsProxyHeaders=["X-Forwarded-For"])
    )
    answer = await exchange(
        dr.port, b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=10
    )
    assert answer.status == 200, answer.data[:300]


async def test_an_untrusted_underscore_spelling_is_not_read_by_the_headers_middleware(proxy, two):  # noqa: F811
    """``X_Forwarded_Host`` is X-Forwarded-Host to CGI and PHP, and Traefik's entry point deletes it from an
    untrusted client with the dash spelling: ``hostsProxyHeaders: [X_Forwarded_Host]`` must not let the
    client name an allowed host it did not ask for (it did: 200 where Traefik answers 500 Bad Host)."""
    backend, _ = two
    cfg = _secure_route(backend.url, allowedHosts=["a.test"], hostsProxyHeaders=["X_Forwarded_Host"])
    dr = await proxy(cfg)
    req = b"GET /h HTTP/1.1\r\nHost: b.test\r\nX_Forwarded_Host: a.test\r\nConnection: close\r\n\r\n"
    answer = await exchange(dr.port, req, timeout=10)
    assert answer.status == 500, answer.data[:300]
    assert backend.received == b""


async def test_a_trusted_forwarded_host_is_what_every_place_sees(proxy, two, tmp_path):  # noqa: F811
    """A trusted proxy in front says ``X-Forwarded-Host: orig.test``: Traefik's entry point keeps it, and
    then the ``Header`` rule, forwardAuth's request (with ``trustForwardHeader``: without it Traefik's
    writeHeader sets the Host), the headers middleware (``hostsProxyHeaders``) and the backend all see
    orig.test, not the Host the proxy in front connected with."""
    plain, labelled = two
    auth = await RecordingBackend().start()
    try:
        cfg = routers(
            ("r", "Host(`a.test`)", "plain"),
            ("xfh", "Host(`a.test`) && Header(`X-Forwarded-Host`, `orig.test`)", "labelled"),
            services={"plain": [plain.url], "labelled": [labelled.url]},
        )
        cfg["http"]["routers"]["xfh"]["middlewares"] = ["fa", "sec"]
        cfg["http"]["middlewares"] = {
            "fa": {"forwardAuth": {"address": auth.url + "/auth", "trustForwardHeader": True}},
            # Bad Host (500) unless the middleware reads orig.test from X-Forwarded-Host
            "sec": {"headers": {"allowedHosts": ["orig.test"], "hostsProxyHeaders": ["X-Forwarded-Host"]}},
        }
        dr = await proxy(cfg, static=_static(tmp_path, **TRUSTING))
        req = b"GET /h HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Host: orig.test\r\nConnection: close\r\n\r\n"
        answer = await exchange(dr.port, req, timeout=10)
        assert answer.status == 200, answer.data[:300]
        to_auth, to_backend = await auth.one_head(), await labelled.one_head()
        assert to_auth.getall("X-Forwarded-Host") == ["orig.test"]
        assert to_backend.getall("X-Forwarded-Host") == ["orig.test"]
        assert plain.received == b""  # the Header rule matched
    finally:
        await auth.stop()


async def test_a_refusing_auth_servers_proxy_headers_reach_the_client_as_in_traefik(proxy, two):  # noqa: F811
    """On a refusal Traefik's forwardAuth copies the auth answer's headers to the client and removes only
    its own hopHeaders list (Connection, Keep-Alive, Te, Trailers, Transfer-Encoding, Upgrade): a 407's
    ``Proxy-Authenticate`` (the challenge RFC 7235 3.2 requires with it) and ``Proxy-Connection`` reach
    the client; ``Connection`` and ``Keep-Alive`` do not, and the backend is never asked."""
    _, backend = two
    auth = await RecordingBackend(
        reply=b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="p"\r\n'
        b"Proxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Auth-Reason: no\r\n"
        b"Content-Length: 0\r\n\r\n"
    ).start()
    try:
        dr = await proxy(_auth_route(auth.url, backend.url))
        req = b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        answer = await exchange(dr.port, req, timeout=10)
        assert answer.status == 407, answer.data[:300]
        head = answer.data.split(b"\r\n\r\n", 1)[0].lower()
        assert b'\r\nproxy-authenticate: basic realm="p"' in head
        assert b"\r\nproxy-connection: keep-alive" in head
        assert b"\r\nx-auth-reason: no" in head
        assert b"\r\nkeep-alive:" not in head
        assert backend.received == b""
    finally:
        await auth.stop()
