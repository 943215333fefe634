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
from multidict import CIMultiDict

from tests.hardening.backends import RecordingBackend
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def _heads(data: bytes) -> list[CIMultiDict[str]]:
    """The request heads a backend received (bodiless requests), each as its header lines, in order."""
    out = []
    for head in bytes(data).split(b"\r\n\r\n")[:-1]:
        lines = head.split(b"\r\n")[1:]
        out.append(CIMultiDict(tuple(part.strip() for part in ln.decode().split(":", 1)) for ln in lines))
    return out


async def _one_head(backend: RecordingBackend) -> CIMultiDict[str]:
    await wait_for(lambda: b"\r\n\r\n" in backend.received, timeout=5)
    (head,) = _heads(backend.received)
    return head


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
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 "), head
    seen = await _one_head(plain)
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert "Upgrade" not in seen
    assert labelled.received == b""
    # An exact WebSocket upgrade is both: labelled ws by the rule and towards the backend.
    ws = b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    ws += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(ws)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    seen = await _one_head(labelled)
    assert seen.getall("X-Forwarded-Proto") == ["ws"] and seen["Upgrade"] == "websocket"
    await exchange(dr.port, b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")


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
    answer = await exchange(dr.port, head.encode())
    assert answer.status == 200, answer.data[:300]
    to_auth, to_backend = await _one_head(auth), await _one_head(backend)
    for seen in (to_auth, to_backend):
        assert seen["X-Keep"] == "1"
        assert "Proxy" not in seen and "HTTP2-Settings" not in seen and "Forwarded" not in seen, seen
    assert to_auth["Proxy-Authorization"] == "Basic dTpw"
    assert "Proxy-Authorization" not in to_backend
