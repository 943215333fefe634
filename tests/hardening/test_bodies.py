"""Bodies pass through the proxy as they are: no decompression either way (aiohttp's ``auto_decompress``
off on both sides). A proxy that inflated bodies would be a decompression bomb target (a few kilobytes of
gzip becoming gigabytes in its memory: CWE-409; aiohttp's GHSA-6mq8-rvhq-8wgg / CVE-2025-69223 was that
bomb through ``auto_decompress``), and would change what the backend or the client was sent."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from tests.hardening.backends import RecordingBackend, recording  # noqa: F401  (a fixture)
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers

pytestmark = pytest.mark.integration

# 64 MiB of zeros: 64 KiB of gzip. Inflated anywhere on the way, it would show as a 64 MiB body.
BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)


def _config(url: str) -> dict:
    return routers(("r", "Host(`a.test`)", "s"), services={"s": [url]})


async def test_a_gzip_request_body_reaches_the_backend_as_sent(proxy, recording):  # noqa: F811
    dr = await proxy(_config(recording.url))
    head = (
        f"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Encoding: gzip\r\nContent-Length: {len(BOMB)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer = await exchange(dr.port, head + BOMB, timeout=10.0)
    assert answer.status == 200, answer.data[:200]
    received = bytes(recording.received)
    assert BOMB in received  # the compressed bytes, unchanged
    assert f"content-length: {len(BOMB)}".encode() in received.lower()
    assert len(received) < 2 * len(BOMB)


async def test_a_gzip_answer_reaches_the_client_as_sent(proxy):  # noqa: F811
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(len(BOMB)).encode() + b"\r\n\r\n" + BOMB
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        dr = await proxy(_config(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"))
        answer = await exchange(
            dr.port, b"GET /down HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=10.0
        )
        assert answer.status == 200, answer.data[:200]
        assert answer.body == BOMB
    finally:
        server.close()
