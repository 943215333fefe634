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
