"""Limits and timeouts against the real dockroute process: how much of a request head the proxy holds, how
long a client may take to send a head or a body, and what a body limit does before reading.

Each case names the advisory or bug it comes from. The raw-socket client sends exactly the bytes under
test; the recording backend shows that a refused request never reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest

from tests.hardening.backends import RawBackend, RecordingBackend, recording  # noqa: F401  (a fixture)
from tests.hardening.rawclient import Answer, exchange
from tests.integration.conftest import backends, proxy  # noqa: F401  (the real process, fixtures)
from tests.integration.harness import expected_sha256, pattern_block, routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration

MIB = 1 << 20
GO_431 = b"431 Request Header Fields Too Large"


def _static(tmp_path, http: dict | None = None, timeouts: dict | None = None) -> dict:
    ep: dict = {"address": "127.0.0.1:0"}
    if http:
        ep["http"] = http
    if timeouts:
        ep["transport"] = {"respondingTimeouts": timeouts}
    return {
        "entryPoints": {"web": ep},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "log": {"level": "DEBUG"},
    }


def _config(url: str, **extra) -> dict:
    return routers(("r", "Host(`a.test`)", "s"), services={"s": [url]}, **extra)


async def _send_while_reading(port: int, data: bytes, timeout: float = 5.0) -> Answer:
    """Send ``data`` and read the answer at the same time: a server refusing a head it finds too large
    answers and closes while the client is still sending (Go's "undefined behavior" comment on its 431), so
    a client that only reads after sending everything may see a reset instead of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for at in range(0, len(data), 65536):
                writer.write(data[at : at + 65536])
                await writer.drain()

    sender = asyncio.create_task(send())
    out = bytearray()
    closed = False
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                out += chunk
            closed = True
    except TimeoutError:
        pass
    except ConnectionError:
        closed = True
    finally:
        sender.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await writer.wait_closed()
    return Answer(bytes(out), closed)


def _assert_431(answer: Answer) -> None:
    assert answer.status == 431, answer.data[:200]
    assert answer.body == GO_431  # Go's fixed text, nothing of the request
    assert answer.closed


# --- request head limits -------------------------------------------------------------------------------


async def test_a_head_over_the_default_1mib_gets_431_and_a_close(proxy, recording):  # noqa: F811
    """Go's DefaultMaxHeaderBytes (1 MiB, Traefik's ``maxHeaderBytes`` default): a request head over it is
    answered ``431 Request Header Fields Too Large`` and closed (Go's conn.serve errTooLarge), and the proxy
    holds no more than that per head (CWE-770; nginx's large_client_header_buffers is the same defence).
    aiohttp alone answers 400 at 8 KiB per line."""
    dr = await proxy(_config(recording.url))
    head = b"GET /p HTTP/1.1\r\nHost: a.test\r\nX-Big: " + b"a" * (MIB + 8192) + b"\r\n\r\n"
    _assert_431(await _send_while_reading(dr.port, head))
    assert recording.received == b""


async def test_many_short_headers_over_the_default_1mib_get_431(proxy, recording):  # noqa: F811
    """The whole-head count itself (Go's DefaultMaxHeaderBytes, 1 MiB, plus its 4096 bytes of slop; CWE-770,
    the many-small-headers shape of nginx's large_client_header_buffers): 300 headers of 4 KiB are each far
    under the per-line limit and together under the 1000-header count, so only the head counted as a whole
    refuses them: 431 and a close, nothing at the backend."""
    dr = await proxy(_config(recording.url))
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 4096) for i in range(300))
    assert len(lines) > MIB + 4096
    _assert_431(await _send_while_reading(dr.port, b"GET /p HTTP/1.1\r\nHost: a.test\r\n" + lines + b"\r\n"))
    assert recording.received == b""


async def test_a_uri_over_the_limit_gets_431_as_in_go(proxy, recording):  # noqa: F811
    """Go counts the request line in MaxHeaderBytes and answers 431 for a URI that is too long (it never
    sends 414): Traefik's answer, matched. nginx's large_client_header_buffers answers 414 instead."""
    dr = await proxy(_config(recording.url))
    head = b"GET /" + b"u" * (MIB + 8192) + b" HTTP/1.1\r\nHost: a.test\r\n\r\n"
    _assert_431(await _send_while_reading(dr.port, head))
    assert recording.received == b""


async def test_headers_under_the_limit_pass_as_in_traefik(proxy, recording):  # noqa: F811
    """A 100 KiB cookie and 300 headers are within Go's limits (Traefik forwards them); aiohttp's defaults
    (8190 bytes a line, 128 headers) refused both with 400. The head is counted as a whole, as Go does."""
    dr = await proxy(_config(recording.url))
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
    req = b"GET /p HTTP/1.1\r\nHost: a.test\r\nCookie: c=" + b"c" * (100 << 10) + b"\r\n" + many
    answer = await exchange(dr.port, req + b"Connection: close\r\n\r\n", timeout=5.0)
    assert answer.status == 200, answer.data[:200]
    assert b"c" * (100 << 10) in recording.received and b"X-H299: v" in recording.received


async def test_a_configured_max_header_bytes_counts_the_whole_head(proxy, recording, tmp_path):  # noqa: F811
    """``entryPoints.<ep>.http.maxHeaderBytes`` as Go reads MaxHeaderBytes: request line and headers
    together (with Go's 4096 bytes of slop). 60 lines of 500 bytes are each small, together over 16 KiB:
    431 (CWE-770, the many-small-headers shape of nginx's large_client_header_buffers)."""
    dr = await proxy(_config(recording.url), static=_static(tmp_path, http={"maxHeaderBytes": 16384}))
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(60))
    _assert_431(await _send_while_reading(dr.port, b"GET /p HTTP/1.1\r\nHost: a.test\r\n" + lines + b"\r\n"))
    assert recording.received == b""
    ok = b"GET /p HTTP/1.1\r\nHost: a.test\r\n" + lines[: 20 * 510] + b"Connection: close\r\n\r\n"
    assert (await exchange(dr.port, ok)).status == 200


async def test_a_small_max_header_bytes_never_counts_the_body(proxy, backends, tmp_path):  # noqa: F811
    """The head limit counts the head only: a 1 MiB body sent in the same write as a 200-byte head passes a
    4 KiB maxHeaderBytes (Go resets its read limit once the head is read)."""
    (b,) = await backends("up")
    dr = await proxy(_config(b.url), static=_static(tmp_path, http={"maxHeaderBytes": 4096}))
    body = pattern_block() * 16
    req = b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    answer = await exchange(dr.port, req % len(body) + body, timeout=10.0)
    assert answer.status == 200, answer.data[:200]
    assert expected_sha256(len(body)).encode() in answer.body


async def test_too_many_headers_get_431(proxy, recording):  # noqa: F811
    """A head of thousands of tiny headers (CVE-2019-9516-like shapes: many small fields, each a Python
    object) is refused past a fixed count of 1000 with 431; HAProxy refuses above 101, Apache above 100."""
    dr = await proxy(_config(recording.url))
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(1100))
    _assert_431(await _send_while_reading(dr.port, b"GET /p HTTP/1.1\r\nHost: a.test\r\n" + lines + b"\r\n"))
    assert recording.received == b""


@pytest.mark.parametrize(
    "extra",
    [b"", b"Connection: Upgrade\r\nUpgrade: foo\r\n"],
    ids=["plain", "behind-a-non-websocket-upgrade"],
)
async def test_a_pipelined_head_is_counted_too(proxy, backends, tmp_path, extra):  # noqa: F811
    """A second request pipelined behind one being handled is a head as well: its size is limited while the
    first is answered (aiohttp parses pipelined heads at once; its fix for the unbounded pipelined queue,
    3.14.1, bounded their number, not their size). The first gets its answer, then the 431.

    The same behind a request asking ``Connection: Upgrade`` with ``Upgrade: foo``: only a WebSocket
    upgrade is tunnelled (aiohttp reads raw bytes after that one alone), so this request is proxied as plain
    HTTP and what follows it is a head, limited as any other. Taking every Upgrade for a tunnel left such a
    head uncounted and the connection open."""
    (b,) = await backends("slow")
    dr = await proxy(_config(b.url), static=_static(tmp_path, http={"maxHeaderBytes": 16384}))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(b"GET /slow?delay=1 HTTP/1.1\r\nHost: a.test\r\n" + extra + b"\r\n")
        await wait_for(lambda: b.hits == 1)
        writer.write(b"GET /q HTTP/1.1\r\nHost: a.test\r\n")
        with contextlib.suppress(ConnectionError):
            for i in range(64):
                writer.write(b"X-H%d: %s\r\n" % (i, b"v" * 500))
                await writer.drain()
        async with asyncio.timeout(10):
            data = await reader.read(-1)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert b"slow from slow" in data
    assert data.endswith(b"\r\n\r\n" + GO_431), data[-300:]
    assert b.hits == 1


# --- header deadline -----------------------------------------------------------------------------------


async def test_a_slowloris_head_is_cut_in_seconds_by_default(proxy, recording):  # noqa: F811
    """Slowloris (CVE-2007-6750 against Apache; Go's ReadHeaderTimeout; Traefik GHSA-4vwx-54mw-vqfw /
    CVE-2024-28869 made readTimeout 60 s by default): a head trickled one line a second is closed within
    dockroute's default 10 s header deadline, not after aiohttp's keep-alive hour."""
    dr = await proxy(_config(recording.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    t0 = time.monotonic()
    writer.write(b"GET /p HTTP/1.1\r\nHost: a.test\r\n")
    closed = False
    try:
        async with asyncio.timeout(20):
            while not closed:
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                try:
                    closed = await asyncio.wait_for(reader.read(100), 1.0) == b""
                except TimeoutError:
                    continue
                except ConnectionError:
                    closed = True
    finally:
        writer.close()
    assert closed
    assert time.monotonic() - t0 < 13
    assert recording.received == b""


async def test_a_partial_head_pipelined_during_a_request_is_cut_by_the_header_deadline(
    proxy,  # noqa: F811
    backends,  # noqa: F811
    tmp_path,
):
    """Slowloris behind a request (Go's ReadHeaderTimeout starts when the next request's read begins, once
    the handler is done): two header lines of a second request sent while the first is being handled, then
    nothing. The first is answered, and the connection is closed when the header deadline (here readTimeout,
    3 s) runs out from the end of that answer; bytes arriving while a request was handled used to start no
    deadline at all, and the connection stayed open."""
    (b,) = await backends("slow")
    dr = await proxy(_config(b.url), static=_static(tmp_path, timeouts={"readTimeout": "3s"}))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(b"GET /slow?delay=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        await wait_for(lambda: b.hits == 1)
        t0 = time.monotonic()
        writer.write(b"GET /q HTTP/1.1\r\nHost: a.test\r\n")  # the head never ends
        async with asyncio.timeout(15):
            data = await reader.read(-1)
        took = time.monotonic() - t0
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert data.endswith(b"slow from slow"), data[-300:]
    assert took < 9, took  # about 1 s of handling and the 3 s deadline
    assert b.hits == 1


# --- request body --------------------------------------------------------------------------------------


@pytest.fixture
async def sink():
    backend = await RecordingBackend(reply=None).start()  # never answers
    yield backend
    await backend.stop()


async def test_a_stalled_body_is_cut_by_read_timeout(proxy, sink, tmp_path):  # noqa: F811
    """A client that stops sending mid-body (Traefik GHSA-4vwx-54mw-vqfw / CVE-2024-28869: a
    Content-Length and no body held a connection forever) is cut when readTimeout runs out, the backend's
    connection with it."""
    dr = await proxy(_config(sink.url), static=_static(tmp_path, timeouts={"readTimeout": "2s"}))
    t0 = time.monotonic()
    answer = await exchange(
        dr.port, b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10, timeout=8.0
    )
    assert answer.closed
    assert time.monotonic() - t0 < 6
    # The request had reached the backend, and the proxy let go of that connection too.
    await wait_for(lambda: sink.connections == 1 and sink.ended == 1)
    assert sink.received.startswith(b"POST /p HTTP/1.1\r\n")


async def test_a_stalled_or_trickled_body_is_cut_even_without_read_timeout(proxy, sink, tmp_path):  # noqa: F811
    """``readTimeout: 0``, the usual answer to Traefik cutting long uploads at 60 s (traefik#10654, #10611),
    left a body that stalls or trickles holding its connection and the backend's forever (the body shape of
    slowloris, Traefik's CVE-2024-28869). dockroute applies Apache mod_reqtimeout's default body rule
    whatever readTimeout is: 20 s, plus one second per 500 bytes. A body stalled after 10 bytes and one
    trickled at 100 bytes a second are both cut within about 25 s."""
    dr = await proxy(_config(sink.url), static=_static(tmp_path, timeouts={"readTimeout": "0s"}))
    head = b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n"

    async def client(step: bytes) -> float:
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        writer.write(head + b"x" * 10)
        try:
            async with asyncio.timeout(40):
                while True:
                    try:
                        if not await asyncio.wait_for(reader.read(65536), 1.0):
                            return time.monotonic() - t0  # closed by the proxy
                    except TimeoutError:
                        writer.write(step)  # one more trickle a second (nothing for the stalled one)
            raise AssertionError("unreachable")
        except ConnectionError:
            return time.monotonic() - t0
        finally:
            writer.close()

    stalled, trickled = await asyncio.gather(client(b""), client(b"t" * 100))
    assert 18 < stalled < 30, stalled
    assert 20 < trickled < 35, trickled
    # Both requests had reached the backend; the proxy let go of both of its connections.
    await wait_for(lambda: sink.connections == 2 and sink.ended == 2)


async def test_a_stalled_body_read_by_buffering_is_cut_by_read_timeout(proxy, recording, tmp_path):  # noqa: F811
    """The same stall (Traefik GHSA-4vwx-54mw-vqfw / CVE-2024-28869) where the proxy reads the body whole
    itself before sending it on (the buffering middleware here; forwardAuth's body and retry read it the same
    way): readTimeout cuts it there too, and the backend, never reached, gets nothing."""
    cfg = _buffered(recording.url, 100 * MIB)
    dr = await proxy(cfg, static=_static(tmp_path, timeouts={"readTimeout": "2s"}))
    t0 = time.monotonic()
    head = b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n"
    answer = await exchange(dr.port, head + b"x" * 500, timeout=8.0)  # stalls half way
    assert answer.closed
    assert time.monotonic() - t0 < 6
    assert recording.connections == 0 and recording.received == b""


async def test_a_fast_large_upload_passes(proxy, backends, tmp_path):  # noqa: F811
    """Traefik's readTimeout (60 s by default since v2.11.2) cut large uploads (traefik#10654, #10611): a
    fast 300 MiB upload over loopback goes through whole, with readTimeout switched off as those users do
    (the minimum pace never cuts a body that keeps coming)."""
    (b,) = await backends("up")
    dr = await proxy(_config(b.url), static=_static(tmp_path, timeouts={"readTimeout": "0s"}))
    size = 300 * MIB
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    t0 = time.monotonic()
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size
    )
    block = pattern_block()
    for _ in range(size // len(block)):
        writer.write(block)
        await writer.drain()
    async with asyncio.timeout(60):
        data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert expected_sha256(size).encode() in data
    assert time.monotonic() - t0 < 60


# --- response to a client that stops reading --------------------------------------------------------------


class StreamingBackend(RawBackend):
    """Answers every request with a 1 GiB body written as fast as the proxy takes it, counting the bytes
    the proxy accepted (``sent``) and noticing when the proxy drops the connection (``dropped``)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.dropped = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
        block = b"d" * 65536
        for _ in range((1 << 30) // len(block)):
            writer.write(block)
            await writer.drain()
            self.sent += len(block)

    def ended_early(self) -> None:
        self.dropped = True

    async def settled(self) -> bool:
        """Whether the backend has stopped making progress (the proxy stopped reading it)."""
        before = self.sent
        await asyncio.sleep(0.3)
        return self.sent == before and self.sent > 0


@pytest.fixture
async def streaming():
    backend = await StreamingBackend().start()
    yield backend
    await backend.stop()


async def _stop_reading(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that asks for the 1 GiB answer, reads its head and then reads nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    writer.write(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.transport.pause_reading()  # from here on the client reads nothing
    return reader, writer


async def test_a_client_that_stops_reading_holds_bounded_memory(proxy, streaming):  # noqa: F811
    """A client that stops reading a large answer (the "slow read" attack, sockstress/CVE-2008-4609 shape;
    Traefik's writeTimeout is 0 by default) must not make the proxy buffer the answer: the backend is
    throttled to the client's pace, so of 1 GiB only what the socket buffers hold leaves the backend and
    the proxy's memory stays flat."""
    dr = await proxy(_config(streaming.url))
    before = dr.rss_kib()
    _, writer = await _stop_reading(dr.port)
    try:
        await wait_for(streaming.settled, timeout=15)
        assert streaming.sent < 64 * MIB, streaming.sent
        assert dr.rss_kib() - before < 64 * 1024, (before, dr.rss_kib())
    finally:
        writer.close()


async def test_write_timeout_closes_a_client_that_stops_reading(proxy, streaming, tmp_path):  # noqa: F811
    """``respondingTimeouts.writeTimeout`` (Go's WriteTimeout, the whole response) closes a client that
    stopped reading a large answer, and the backend's connection with it: nothing is held past it."""
    dr = await proxy(_config(streaming.url), static=_static(tmp_path, timeouts={"writeTimeout": "2s"}))
    t0 = time.monotonic()
    _, writer = await _stop_reading(dr.port)
    try:
        await wait_for(lambda: streaming.dropped, timeout=10)
        assert time.monotonic() - t0 < 8
    finally:
        writer.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's")
async def test_a_client_that_stops_reading_is_dropped_after_a_minute(proxy, streaming):  # noqa: F811
    """With writeTimeout at Traefik's default (0, none), backpressure alone would hold a client that stops
    reading, and the backend's connection, forever (the "slow read" attack; Go's net/http has no bound
    either). dockroute drops it once nothing it sent has been taken for 60 s, nginx's send_timeout default
    (TCP_USER_TIMEOUT, which also ends zero-window probing), and the backend's connection with it."""
    dr = await proxy(_config(streaming.url))
    t0 = time.monotonic()
    _, writer = await _stop_reading(dr.port)
    try:
        await wait_for(lambda: streaming.dropped, timeout=120, interval=0.5)
        assert 55 < time.monotonic() - t0 < 100
    finally:
        writer.close()


# --- buffering: maxRequestBodyBytes ----------------------------------------------------------------------


def _buffered(url: str, limit: int) -> dict:
    cfg = _config(url, middlewares={"buf": {"buffering": {"maxRequestBodyBytes": limit}}})
    cfg["http"]["routers"]["r"]["middlewares"] = ["buf"]
    return cfg


async def test_expect_continue_over_the_body_limit_gets_413_without_100(proxy, recording):  # noqa: F811
    """RFC 9110 10.1.1: a server that will refuse the body answers the final status instead of ``100
    Continue``; Go's expectContinueReader sends 100 only on the first body read, and oxy's buffer (Traefik's
    buffering) checks Content-Length against maxRequestBodyBytes before reading. So the client is told 413
    at once, never invited to send, and the backend gets nothing."""
    dr = await proxy(_buffered(recording.url, 1000))
    head = b"POST /p HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(head)
        # The client never sends the body: a 413 at all proves it was decided before the body (the bound
        # is wide so a loaded machine cannot flake it).
        async with asyncio.timeout(5):
            first = await reader.readuntil(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 413"), first
        async with asyncio.timeout(5):
            rest = await reader.read()  # and the connection is closed (the body was never read)
    finally:
        writer.close()
    assert b"100 Continue" not in first + rest
    assert recording.received == b""


async def test_a_chunked_body_over_the_limit_is_cut_as_soon_as_it_passes(proxy, recording):  # noqa: F811
    """A chunked body has no length to check first: it is refused 413 as soon as the bytes read pass
    maxRequestBodyBytes, not after the client decides to end it (oxy's MaxBytesReader; CWE-400)."""
    dr = await proxy(_buffered(recording.url, 1000))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(b"POST /p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"800\r\n" + b"x" * 0x800 + b"\r\n")  # past the limit; the body goes on (no last chunk)
    await writer.drain()
    try:
        # The client never ends its body: a 413 at all proves it came while the body was still going (the
        # bound is wide so a loaded machine cannot flake it).
        async with asyncio.timeout(5):
            first = await reader.readuntil(b"\r\n\r\n")
        async with asyncio.timeout(5):
            await reader.read()  # and closed: the rest of the body is never read
    finally:
        writer.close()
    assert first.startswith(b"HTTP/1.1 413"), first
    assert recording.received == b""
