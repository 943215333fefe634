"""Backends that misbehave on purpose, against the real dockroute process: each bad answer becomes a 502,
its connection is discarded (never pooled for another client's request), and nothing of it is relayed.

A proxy that frames a backend's answer differently from the backend desynchronises its keep-alive pool:
the bytes it did not count as the first answer are read as the answer to the NEXT request on that
connection, which may be another client's (response-queue poisoning, the response side of request
smuggling). The backend here is a raw asyncio server that sends exact bytes: the first answer on its first
connection is the bad one, everything else is a normal ``200`` whose body is the request's path, so a
second client demonstrably gets its own answer, on a fresh connection.

WebSocket: a proxy that opens a raw tunnel on any ``101`` lets a client smuggle requests past it to the
backend, when the backend can be made to answer 101 (an SSRF to a status code, a health check that echoes
one) or the proxy tunnels without a 101 at all (0ang3el's "websocket-smuggle"; Varnish VSV00006 and
HAProxy's checks of the handshake). dockroute tunnels only a 101 whose ``Sec-WebSocket-Accept`` answers the
client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2); any other answer leaves the client's connection HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable

import pytest

from router.upstream import Connection, UpstreamBroken
from tests.hardening.backends import RawBackend
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration

MARK = b"zq-backend-marker"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key


def ws_accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def ok(head: bytes) -> bytes:
    """The normal answer: a 200 whose body is the request's path."""
    path = head.split(b" ", 2)[1]
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path)


Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Conn:
    """One connection the proxy made to the backend: the request heads it carried, and whether the proxy
    closed it."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.closed = False
        self.extra = bytearray()  # bytes after an accepted upgrade (what a tunnel would carry)


class ScriptedBackend(RawBackend):
    """Answers the first request of its first connection with ``first`` (bytes, or a coroutine writing to
    the stream), every other request with :func:`ok`. Records every connection."""

    def __init__(self, first: bytes | Script) -> None:
        super().__init__()
        self.first = first
        self.conns: list[Conn] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        conn = Conn()
        self.conns.append(conn)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                conn.heads.append(head)
                if len(self.conns) == 1 and len(conn.heads) == 1:
                    if isinstance(self.first, bytes):
                        writer.write(self.first)
                    else:
                        await self.first(writer)
                        continue
                    if self.first.startswith(b"HTTP/1.1 101"):
                        while data := await reader.read(65536):
                            conn.extra += data
                        break
                else:
                    writer.write(ok(head))
                await writer.drain()
        finally:
            conn.closed = True
            self.tasks.discard(task)

    def paths(self) -> list[bytes]:
        return [h.split(b" ", 2)[1] for c in self.conns for h in c.heads]

    async def stop(self) -> None:
        """The server closed, and the scripts still running (an endless filler) cancelled."""
        await super().stop()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def scripted():
    async with contextlib.AsyncExitStack() as stack:

        async def make(first: bytes | Script) -> ScriptedBackend:
            b = await ScriptedBackend(first).start()
            stack.push_async_callback(b.stop)
            return b

        yield make


def _config(url: str, middleware: bool = False) -> dict:
    """One route to ``url``; with ``middleware``, through a ``headers`` middleware (the exchange path)."""
    if not middleware:
        return routers(("r", "Host(`a.test`)", "s"), services={"s": [url]})
    mw = {"h": {"headers": {"customResponseHeaders": {"X-Seen": "1"}}}}
    cfg = routers(("r", "Host(`a.test`)", "s"), services={"s": [url]}, middlewares=mw)
    cfg["http"]["routers"]["r"]["middlewares"] = ["h"]
    return cfg


def get(path: bytes, close: bool = True, extra: bytes = b"") -> bytes:
    conn = b"Connection: close\r\n" if close else b""
    return b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n" + conn + extra + b"\r\n"


H = b"HTTP/1.1 200 OK\r\n"
EMPTY = b"\r\nContent-Length: 0\r\n\r\n"  # the end of the head, for a bodiless answer

# (the answer up to MARK, the answer after MARK, id naming the advisory): every one carries MARK where a
# relayed answer would show it.
BAD_ANSWERS = [
    pytest.param(before + MARK + after, id=case)
    for before, after, case in [
        (
            H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\nX-M: ",
            b"\r\n\r\n0\r\n\r\nHTTP/1.1",
            "CL-with-TE-RFC9112-6.1-CVE-2023-30589-response-side",
        ),
        (
            H + b"Content-Length: 2\r\nContent-Length: 40\r\nX-M: ",
            b"\r\n\r\nok" + b"x" * 38,
            "two-Content-Lengths-RFC9112-6.3-CVE-2022-24766-mitmproxy",
        ),
        (
            H + b"Transfer-Encoding: chunked\r\nX-M: ",
            b"\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            "bad-chunk-size-RFC9112-7.1-CVE-2023-47627",
        ),
        (
            H + b"Transfer-Encoding: chunked\r\nX-M: ",
            b"\r\n\r\n2\r\nok\r\n-1\r\nx\r\n0\r\n\r\n",
            "bad-second-chunk-size-CVE-2023-47627",
        ),
        (H + b"X-M: a\r\n ", EMPTY, "obs-fold-RFC9112-5.2-GHSA-gfw2-4jvh-wgfg"),
        (b"HTTP/1.1 200 OK\nX-M: ", b"\nContent-Length: 0\n\n", "bare-LF-RFC9112-2.2-CVE-2023-30589"),
        (b"HTTP/2.0 200 OK\r\nX-M: ", EMPTY, "status-line-HTTP-2.0-RFC9112-4-HAProxy-h1-version-check"),
        (b"HTTP/0.9 200 OK\r\nX-M: ", EMPTY, "status-line-HTTP-0.9-RFC9112-4"),
        (b"RTSP/1.0 200 OK\r\nX-M: ", EMPTY, "status-line-RTSP-llhttp-lenient-protocol"),
        (b"HTTP/1.1 099 OK\r\nX-M: ", EMPTY, "status-code-below-100-RFC9110-15-Go-malformed-status"),
        (H + b"X-M: a\rb", EMPTY, "CR-in-value-RFC9110-5.5-CVE-2023-37276-response-splitting"),
        (H + b"X-M: a\nSet-Cookie: ", EMPTY, "LF-in-value-response-splitting-CWE-113"),
        (H + b"X-M: a\x00", EMPTY, "NUL-in-value-RFC9110-5.5-CVE-2023-47627"),
        (H + b"X M: ", EMPTY, "space-in-name-RFC9112-5.1-Go-invalid-header-name"),
        (H + b"X-M : ", EMPTY, "space-before-colon-RFC9112-5.1-CVE-2019-16276-Go"),
        (H + b"X-M", EMPTY, "line-without-colon-RFC9112-5.1-Go-malformed-MIME-header"),
    ]
]


@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "with-middleware"])
@pytest.mark.parametrize("bad", BAD_ANSWERS)
async def test_bad_answer_is_502_and_its_connection_discarded(proxy, scripted, bad, middleware):  # noqa: F811
    """Each shape names its source in its id (llhttp / Node CVE-2023-30589 on the response side,
    aiohttp GHSA-gfw2-4jvh-wgfg / CVE-2023-47627 and GHSA-45c4-8wx5-qw6w / CVE-2023-37276, mitmproxy
    CVE-2022-24766, Go CVE-2019-16276, RFC 9110/9112 sections, CWE-113 response splitting): the client
    gets dockroute's own 502 with nothing of the backend's answer, the proxy closes that backend
    connection, the process logs no traceback, and the next client's request goes out on a fresh
    connection and gets its own answer."""
    b = await scripted(bad)
    dr = await proxy(_config(b.url, middleware))
    first = await exchange(dr.port, get(b"/first", close=False), timeout=5)
    assert first.status == 502, first.data[:400]
    assert first.answers == 1, first.data[:400]
    assert MARK not in first.data
    await wait_for(lambda: b.conns and b.conns[0].closed, timeout=5)
    second = await exchange(dr.port, get(b"/second"), timeout=5)
    assert second.status == 200 and second.body == b"/second", second.data[:400]
    assert (b"X-Seen: 1\r\n" in second.data) == middleware  # the route took the path it names
    assert [len(c.heads) for c in b.conns] == [1, 1]
    assert "Traceback" not in dr.log()


# (answer to the first request, id): each holds a complete second answer, "poison", after what its
# framing announces. A pool that kept the connection would hand "poison" to the next client.
POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison"
OVERLONG = [
    pytest.param(b"GET", H + b"Content-Length: 2\r\n\r\nok" + POISON, id="more-bytes-than-Content-Length"),
    pytest.param(
        b"GET",
        H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + POISON,
        id="bytes-after-last-chunk",
    ),
    pytest.param(
        b"GET",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 47\r\n\r\n" + POISON,
        id="body-on-204-RFC9110-15.3.5",
    ),
    pytest.param(
        b"GET",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 47\r\n\r\n" + POISON,
        id="body-on-304-RFC9110-15.4.5",
    ),
    pytest.param(b"HEAD", H + b"Content-Length: 47\r\n\r\n" + POISON, id="body-on-HEAD-RFC9110-9.3.2"),
]


@pytest.mark.parametrize(("method", "answer"), OVERLONG)
async def test_extra_bytes_never_answer_the_next_client(proxy, scripted, method, answer):  # noqa: F811
    """Response-queue poisoning (James Kettle, "Browser-Powered Desync Attacks", 2022; HAProxy
    CVE-2021-40346's response side; Apache CVE-2023-25690's pooled-connection class): the backend sends
    more than its framing says. The first client gets what the framing announces, never the extra; the
    proxy does not pool that connection; a second client gets its own answer, never "poison"."""
    b = await scripted(answer)
    dr = await proxy(_config(b.url))
    first = await exchange(dr.port, method + b" /first HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    assert first.status in (200, 204, 304), first.data[:400]
    assert b"poison" not in first.data
    for n in range(3):  # whatever connection the pool holds, none answers with the extra bytes
        path = b"/next%d" % n
        second = await exchange(dr.port, get(path))
        assert second.status == 200 and second.body == path, second.data[:400]
    await wait_for(lambda: b.conns[0].closed, timeout=5)
    assert len(b.conns[0].heads) == 1, "the out-of-step connection carried another request"


async def test_extra_bytes_arriving_later_close_the_idle_connection(proxy, scripted):  # noqa: F811
    """The same poisoning with the extra answer in a later packet, after the first answer was relayed
    and its connection pooled: bytes on an idle connection close it (Go's transport: "Unsolicited
    response received on idle HTTP channel"); the next client gets its own answer."""
    sent = asyncio.Event()

    async def late(writer: asyncio.StreamWriter) -> None:
        writer.write(H + b"Content-Length: 2\r\n\r\nok")
        await writer.drain()
        await sent.wait()
        writer.write(POISON)
        await writer.drain()

    b = await scripted(late)
    dr = await proxy(_config(b.url))
    first = await exchange(dr.port, get(b"/first"), timeout=5)
    assert first.status == 200 and first.body == b"ok", first.data[:400]
    sent.set()
    await wait_for(lambda: b.conns[0].closed, timeout=5)
    second = await exchange(dr.port, get(b"/second"), timeout=5)
    assert second.status == 200 and second.body == b"/second", second.data[:400]
    assert len(b.conns[0].heads) == 1, "the out-of-step connection carried another request"


def _filler(kind: str) -> Script:
    async def endless(writer: asyncio.StreamWriter) -> None:
        """Header bytes until the proxy stops reading (or 256 MiB, far past any bound), then hold on."""
        writer.write(H)
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n" if kind == "lines" else b"a" * 65536
        if kind == "value":
            writer.write(b"X-Big: ")
        block = line * (65536 // len(line) or 1)
        for _ in range((256 << 20) // len(block)):
            writer.write(block)
            await writer.drain()
        await asyncio.sleep(30)

    return endless


@pytest.mark.parametrize("kind", ["lines", "value"])
async def test_endless_header_block_is_502_within_bounds(proxy, scripted, kind):  # noqa: F811
    """A backend that never ends its header block (many lines, or one value that never ends) must not
    grow the proxy without limit: Go's transport stops at MaxResponseHeaderBytes, nginx at
    proxy_buffer_size ("upstream sent too big header"), HAProxy at tune.bufsize; CVE-2024-27316 (Apache
    httpd's unbounded header buffering) is the request-side twin. The client gets a 502 within seconds,
    the proxy closes the connection, and its memory stays bounded."""
    b = await scripted(_filler(kind))
    dr = await proxy(_config(b.url))
    rss0 = dr.rss_kib()
    answer = await exchange(dr.port, get(b"/first", close=False), timeout=10)
    assert answer.status == 502, answer.data[:300]
    await wait_for(lambda: b.conns and b.conns[0].closed, timeout=5)
    growth = (dr.rss_kib("VmHWM") - rss0) / 1024
    assert growth < 48, f"the proxy grew by {growth:.0f} MiB reading one response head"


def _endless_after_body(tail: bytes) -> Script:
    async def endless(writer: asyncio.StreamWriter) -> None:
        """A chunked answer whose body starts, then ``tail`` and filler without end (256 MiB at most)."""
        writer.write(H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n" + tail)
        block = b"a" * 65536
        for _ in range((256 << 20) // len(block)):
            writer.write(block)
            await writer.drain()
        await asyncio.sleep(30)

    return endless


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"0\r\nX-Trailer: ", id="endless-trailer-RFC9112-7.1.2"),
        pytest.param(b"5;ext=", id="endless-chunk-extension-CVE-2023-39326-Go"),
    ],
)
async def test_endless_trailer_or_chunk_extension_is_cut_within_bounds(proxy, scripted, tail):  # noqa: F811
    """What comes between body bytes is a header block too: an endless trailer (llhttp hands trailers over
    as headers, which the parser binding accumulates) or an endless chunk extension (Go's CVE-2023-39326:
    a chunked body made mostly of extension bytes) must not grow the proxy or hold it forever. The head is
    relayed already, so the client's answer is cut (no final chunk) and the backend connection closed."""
    b = await scripted(_endless_after_body(tail))
    dr = await proxy(_config(b.url))
    rss0 = dr.rss_kib()
    answer = await exchange(dr.port, get(b"/first", close=False), timeout=10)
    assert answer.status == 200 and answer.closed, answer.data[:300]
    assert not answer.data.endswith(b"0\r\n\r\n"), "a cut body was framed as complete"
    await wait_for(lambda: b.conns and b.conns[0].closed, timeout=5)
    growth = (dr.rss_kib("VmHWM") - rss0) / 1024
    assert growth < 48, f"the proxy grew by {growth:.0f} MiB reading one answer's framing"


async def test_too_many_header_lines_is_502(proxy, scripted):  # noqa: F811
    """Thousands of tiny header lines cost the proxy far more memory than their bytes (a Python object
    pair each): HAProxy answers 502 past tune.http.maxhdr (101 lines), Node stops at 2,000. A head of
    5,000 short lines, well under the byte bound, is a 502 and a closed connection."""
    b = await scripted(H + b"".join(b"X-%d: a\r\n" % n for n in range(5000)) + b"Content-Length: 0\r\n\r\n")
    dr = await proxy(_config(b.url))
    answer = await exchange(dr.port, get(b"/first", close=False), timeout=5)
    assert answer.status == 502, answer.data[:300]
    await wait_for(lambda: b.conns and b.conns[0].closed, timeout=5)


def _upgrade(extra: bytes = b"", key: bytes | None = WS_KEY) -> bytes:
    keyline = b"Sec-WebSocket-Key: " + key + b"\r\n" if key is not None else b""
    return (
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + keyline
        + b"Sec-WebSocket-Version: 13\r\n\r\n"
        + extra
    )


SMUGGLED = b"GET /internal HTTP/1.1\r\nHost: internal\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        pytest.param(
            SWITCH + b"\r\n", WS_KEY, id="101-without-Sec-WebSocket-Accept-0ang3el-websocket-smuggle"
        ),
        pytest.param(
            SWITCH + b"Sec-WebSocket-Accept: " + ws_accept(b"another key") + b"\r\n\r\n",
            WS_KEY,
            id="101-wrong-accept-RFC6455-4.2.2",
        ),
        pytest.param(
            SWITCH + b"Sec-WebSocket-Accept: " + ws_accept(WS_KEY) + b"\r\nX-M: " + MARK + b"\r\n\r\n",
            None,
            id="101-to-a-request-without-key-RFC6455-4.1",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            + b"Sec-WebSocket-Accept: "
            + ws_accept(WS_KEY)
            + b"\r\n\r\n",
            WS_KEY,
            id="101-to-another-protocol-Go-ReverseProxy-switch-protocol-check",
        ),
    ],
)
@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "with-middleware"])
async def test_101_without_a_valid_accept_is_502_and_never_a_tunnel(proxy, scripted, answer, key, middleware):  # noqa: F811
    """WebSocket smuggling (0ang3el, "websocket-smuggle", 2019; Varnish VSV00006; Traefik and Envoy
    followed up by checking the handshake): a backend made to answer 101 without the handshake RFC 6455
    4.2.2 requires must not make the proxy open a raw tunnel, through which the client's next bytes (here a
    request to /internal, sent right behind the upgrade) would reach the backend unseen by the proxy. The
    client gets 502 and a closed connection; the backend never gets /internal."""
    b = await scripted(answer)
    dr = await proxy(_config(b.url, middleware))
    got = await exchange(dr.port, _upgrade(SMUGGLED, key), timeout=3)
    assert got.status == 502, got.data[:400]
    assert got.closed
    assert MARK not in got.data
    await wait_for(lambda: b.conns and b.conns[0].closed, timeout=5)
    assert b"/internal" not in bytes(b.conns[0].extra)
    assert b"/internal" not in b"".join(b.paths())


async def test_101_with_the_right_accept_is_a_tunnel(proxy, scripted):  # noqa: F811
    """The control for the case above: the same backend answering with the right Sec-WebSocket-Accept
    gets its tunnel, and the client's bytes after the handshake reach it raw."""
    b = await scripted(SWITCH + b"Sec-WebSocket-Accept: " + ws_accept(WS_KEY) + b"\r\n\r\n")
    dr = await proxy(_config(b.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    try:
        writer.write(_upgrade())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"Sec-WebSocket-Accept: " + ws_accept(WS_KEY) in head
        writer.write(b"raw frame bytes")
        await wait_for(lambda: b.conns and bytes(b.conns[0].extra) == b"raw frame bytes", timeout=5)
    finally:
        writer.close()


@pytest.mark.parametrize("status", [b"426 Upgrade Required", b"200 OK", b"404 Not Found"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["after-answer", "pipelined"])
async def test_declined_upgrade_keeps_the_connection_http(proxy, scripted, status, pipelined):  # noqa: F811
    """0ang3el's "websocket-smuggle" challenge 1: the backend declines the upgrade (426 for a bad
    Sec-WebSocket-Version, or any non-101) and a proxy that tunnels anyway lets the client's next bytes
    reach the backend raw. Here the next request, sent behind the upgrade or after its answer, is parsed
    by dockroute as HTTP: it gets its own answer, and reaches the backend as a proxied request (with the
    proxy's X-Forwarded-For), never as raw tunnelled bytes."""
    b = await scripted(b"HTTP/1.1 " + status + b"\r\nContent-Length: 8\r\n\r\ndeclined")
    dr = await proxy(_config(b.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    second = get(b"/second")
    try:
        writer.write(_upgrade(second if pipelined else b""))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 " + status[:3]), head
        assert await asyncio.wait_for(reader.readexactly(8), 5) == b"declined"
        if not pipelined:
            writer.write(second)
        rest = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert re.match(rb"HTTP/1.1 200 OK\r\n", rest), rest[:400]
    assert rest.endswith(b"\r\n\r\n/second"), rest[-200:]
    heads = [h for c in b.conns for h in c.heads if h.startswith(b"GET /second ")]
    assert len(heads) == 1 and b"X-Forwarded-For: 127.0.0.1" in heads[0], heads
    assert all(not c.extra for c in b.conns)


class _Transport:
    """Enough of an asyncio transport for a :class:`router.upstream.Connection` fed by hand."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass


@pytest.mark.parametrize(
    "packets",
    [
        pytest.param([b"HTTP/", b"2.0 200 OK\r\nContent-Length: 0\r\n\r\n"], id="protocol-cut-HTTP-2.0"),
        pytest.param([b"RTS", b"P/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"], id="protocol-cut-RTSP"),
        pytest.param(
            [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"],
            id="HTTP-2.0-after-100-Continue",
        ),
    ],
)
async def test_status_line_checked_when_not_at_the_start_of_a_packet(packets):
    """The HTTP/1.x check of the status line looks at the start of an answer's first packet; a status
    line cut before its version, or one that follows an interim answer, is checked through llhttp's
    version instead (RFC 9112 section 4, as the real-process cases above)."""
    conn = Connection(("http", "127.0.0.1", 1, ""))
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.begin(b"GET / HTTP/1.1\r\n\r\n", False, asyncio.get_running_loop())
    for data in packets:
        conn.data_received(data)
    with pytest.raises(UpstreamBroken, match="status line"):
        await asyncio.wait_for(conn.headers_done, 1)  # type: ignore[arg-type]
    assert transport.closed
