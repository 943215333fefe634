"""The entry point's TLS-ALPN-01 dispatch, in process, with real sockets and real TLS handshakes.

The end-to-end test against Pebble is in test_acme.py; these pin the edges a CA rarely shows: a
ClientHello split across TCP segments, a client that offers acme-tls/1 for a name with nothing pending,
no ClientHello parsing at all when no challenge is pending, and what stalled, oversized or abandoned
hellos cost while one is (a wait in the kernel, not a poll loop).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography import x509

from acme_client.tls_alpn import ID_PE_ACME_IDENTIFIER, challenge_certificate
from router import server as server_module
from router.clienthello import ClientHello, Incomplete
from router.proxy import EntryPointHandler
from router.server import EntryPointServer
from router.settings import EntryPoint, Transport
from router.tls import CertificateStore, CertKeyPair, self_signed
from router.upstream import Pool

pytestmark = pytest.mark.integration


class Pending:
    """The router's ChallengeCertificates, as dockroute/app.py adapts the resolvers to it."""

    def __init__(self, certs: dict[str, CertKeyPair]) -> None:
        self.certs = certs

    def pending(self) -> bool:
        return bool(self.certs)

    def alpn_challenge(self, server_name: str) -> CertKeyPair | None:
        return self.certs.get(server_name)


@pytest.fixture
async def entry_point():
    ep = EntryPoint(name="websecure", address="127.0.0.1:0")
    pool = Pool(Transport())
    srv = EntryPointServer(EntryPointHandler(ep, pool), EntryPointHandler(ep, pool, scheme="https"))
    site = self_signed("app.example.com", ("app.example.com",))
    srv.tls_store = CertificateStore([site])
    srv.alpn_challenges = Pending(
        {"app.example.com": CertKeyPair(*challenge_certificate("app.example.com", "t.k"))}
    )
    await srv.start()
    yield srv
    await srv.shutdown(1.0)
    pool.close()


def _client_hello(name: str, alpn: list[str]) -> tuple[bytes, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read(), obj, incoming, outgoing


async def _handshake_in_pieces(
    port: int,
    name: str,
    alpn: list[str],
    split: int,
    gap: Callable[[], Awaitable[object]] | None = None,
) -> x509.Certificate:
    """A real TLS client whose ClientHello reaches the server in two TCP segments, ``split`` bytes first,
    and the second after ``gap()`` (50 ms by default)."""
    hello, obj, incoming, outgoing = _client_hello(name, alpn)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(hello[:split])
    await writer.drain()
    if gap is None:
        await asyncio.sleep(0.05)  # the gap between segments is what is under test, not a synchronisation
    else:
        await gap()
    writer.write(hello[split:])
    while True:
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, "server closed during the handshake"
        incoming.write(data)
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                writer.write(pending)
    writer.write(outgoing.read())
    writer.close()
    return x509.load_der_x509_certificate(obj.getpeercert(binary_form=True))


def _is_challenge(cert: x509.Certificate) -> bool:
    return any(e.oid == ID_PE_ACME_IDENTIFIER for e in cert.extensions)


class Peeks:
    """What the entry point's ClientHello peeking did, recorded through monkeypatched functions: every
    parse (bytes given, outcome: "incomplete", None or a ClientHello) and every peek that ended (its
    result, and the socket's SO_RCVLOWAT by then, which must be back to 1)."""

    def __init__(self) -> None:
        self.parsed: list[tuple[int, object]] = []
        self.ended: list[tuple[object, int]] = []
        self._changed = asyncio.Event()

    @property
    def outcomes(self) -> list[object]:
        return [outcome for _, outcome in self.parsed]

    def parses_of(self, size: int) -> int:
        return sum(1 for n, _ in self.parsed if n == size)

    def changed(self) -> None:
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait for ``condition``, re-checked on each parse and each ended peek (the timeout is only a
        bound on a failing test, never what the test waits for)."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def partial_hello_seen(self) -> None:
        await self.until(lambda: "incomplete" in self.outcomes)


@pytest.fixture
def peeks(monkeypatch):
    seen = Peeks()
    parse = server_module.parse_client_hello
    peek = EntryPointServer._peek_hello

    def counting_parse(data: bytes):
        try:
            result = parse(data)
        except Incomplete:
            seen.parsed.append((len(data), "incomplete"))
            raise
        finally:
            seen.changed()
        seen.parsed.append((len(data), result))
        return result

    async def recorded_peek(self, conn, loop):
        try:
            result = await peek(self, conn, loop)
        finally:
            seen.changed()
        seen.ended.append((result, conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)))
        return result

    monkeypatch.setattr(server_module, "parse_client_hello", counting_parse)
    monkeypatch.setattr(EntryPointServer, "_peek_hello", recorded_peek)
    return seen


async def test_hello_split_across_segments_still_reaches_the_challenge(entry_point, peeks):
    cert = await _handshake_in_pieces(
        entry_point.port, "app.example.com", ["acme-tls/1"], split=40, gap=peeks.partial_hello_seen
    )
    assert _is_challenge(cert)
    # The first segment alone was parsed and found incomplete, then one wake-up when the record was
    # all there: no polling in between, and the socket handed on with its low-water mark back at 1.
    assert peeks.parsed[0] == (40, "incomplete")
    assert peeks.outcomes == ["incomplete", ClientHello("app.example.com", ("acme-tls/1",))]
    assert [lowat for _, lowat in peeks.ended] == [1]


async def test_stalled_hellos_wait_in_the_kernel_and_do_not_hold_up_others(entry_point, peeks):
    """200 clients send the first 10 bytes of a hello and nothing more. Each costs one parse over the
    whole 2 s wait (the old 2-50 ms re-peeking parsed about 45 times each), and a client arriving
    meanwhile gets through its handshake at once."""
    n = 200
    hello, *_ = _client_hello("app.example.com", ["acme-tls/1"])
    stalled = []
    for _ in range(n):
        _, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
        writer.write(hello[:10])
        stalled.append(writer)
    await peeks.until(lambda: peeks.parses_of(10) >= n)  # every one of them seen and found incomplete

    started = time.monotonic()
    cert = await _handshake_in_pieces(
        entry_point.port,
        "app.example.com",
        ["h2", "http/1.1"],
        split=40,
        gap=lambda: peeks.until(lambda: peeks.outcomes.count("incomplete") > n),
    )
    took = time.monotonic() - started
    assert not _is_challenge(cert)
    assert len(peeks.ended) == 1  # the stalled ones were all still waiting: this was "meanwhile"
    assert took < 1.0  # generous: well inside the stalled clients' 2 s, which it did not wait out

    await peeks.until(lambda: len(peeks.ended) == n + 1, timeout=10)  # each stalled peek gives up
    assert peeks.parses_of(10) == n  # one parse per stalled connection over its whole wait
    assert [result for result, _ in peeks.ended].count(None) == n
    assert {lowat for _, lowat in peeks.ended} == {1}
    for writer in stalled:
        writer.close()


@pytest.mark.parametrize("length", [16385, 0xFFFF])
async def test_a_record_longer_than_tls_allows_is_not_waited_for(entry_point, peeks, length):
    reader, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
    started = time.monotonic()
    writer.write(bytes([0x16, 3, 1, length >> 8, length & 0xFF]) + b"\x01\x00\x00")
    await peeks.until(lambda: bool(peeks.ended))
    took = time.monotonic() - started
    assert peeks.outcomes == [None]  # looked at once and let through to the normal handshake
    assert peeks.ended == [(None, 1)]
    assert took < 1.0  # generous, and still half the 2 s a wait for the rest of the record would take
    if length > 16384 + 2048:  # beyond even what OpenSSL tolerates: the normal handshake refuses it
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer[:1] in (b"", b"\x15"), answer  # a TLS alert (or nothing), then the close
    writer.close()


async def test_a_hello_cut_short_by_the_client_closing_its_side_is_not_spun_on(entry_point, peeks):
    # The peer sends part of a hello and shuts down its sending side: EOF makes the socket readable
    # whatever its low-water mark, without the rest ever coming, which must end the wait at once, not
    # turn the 2 s into a busy loop of re-peeks.
    hello, *_ = _client_hello("app.example.com", ["acme-tls/1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
    started = time.monotonic()
    writer.write(hello[:10])
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 5)  # the server gives up on it and closes
    assert time.monotonic() - started < 1.0
    assert peeks.outcomes == ["incomplete"]
    assert peeks.ended == [(None, 1)]
    writer.close()


async def test_without_a_low_water_mark_split_hellos_are_re_peeked_on_a_timer(
    entry_point, peeks, monkeypatch
):
    # Where SO_RCVLOWAT cannot be set (not Linux), the wait falls back to re-peeking every 2-50 ms;
    # bytes already found incomplete are not parsed again.
    monkeypatch.setattr(server_module, "_set_rcvlowat", lambda conn, n: False)
    cert = await _handshake_in_pieces(
        entry_point.port, "app.example.com", ["acme-tls/1"], split=40, gap=peeks.partial_hello_seen
    )
    assert _is_challenge(cert)
    assert peeks.outcomes[0] == "incomplete" and len(peeks.outcomes) == 2
    assert peeks.ended[0][1] == 1


async def test_split_hello_from_a_browser_gets_the_site(entry_point, peeks):
    cert = await _handshake_in_pieces(
        entry_point.port, "app.example.com", ["h2", "http/1.1"], split=40, gap=peeks.partial_hello_seen
    )
    assert not _is_challenge(cert)
    assert cert.subject.rfc4514_string() == "CN=app.example.com"
    assert peeks.outcomes == ["incomplete", ClientHello("app.example.com", ("h2", "http/1.1"))]


async def test_acme_tls_for_a_name_with_nothing_pending_gets_the_normal_certificate(entry_point, peeks):
    cert = await _handshake_in_pieces(
        entry_point.port, "other.example.com", ["acme-tls/1"], split=5, gap=peeks.partial_hello_seen
    )
    assert not _is_challenge(cert)
    assert peeks.parsed[0] == (5, "incomplete")  # the record header alone, then the whole hello
    assert peeks.outcomes[1:] == [ClientHello("other.example.com", ("acme-tls/1",))]


async def test_no_pending_challenge_means_no_client_hello_parsing(entry_point, peeks):
    entry_point.alpn_challenges.certs.clear()
    cert = await _handshake_in_pieces(entry_point.port, "app.example.com", ["acme-tls/1"], split=40)
    assert not _is_challenge(cert) and not peeks.parsed and not peeks.ended
    entry_point.alpn_challenges.certs["app.example.com"] = CertKeyPair(
        *challenge_certificate("app.example.com", "x")
    )
    cert = await _handshake_in_pieces(
        entry_point.port, "app.example.com", ["acme-tls/1"], split=40, gap=peeks.partial_hello_seen
    )
    assert _is_challenge(cert)
    assert len(peeks.parsed) == 2


async def test_shutdown_closes_connections_still_being_peeked_at(entry_point, peeks):
    # A partial hello is waiting in the kernel when shutdown begins: it must be closed, not handed to a
    # server that has already stopped.
    hello, *_ = _client_hello("app.example.com", ["acme-tls/1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
    writer.write(hello[:10])
    await peeks.partial_hello_seen()  # now waiting in the kernel for the rest
    await entry_point.shutdown(1.0)
    try:  # closed with the hello unread, so the kernel resets: either way, no ServerHello
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        answer = b""
    assert answer == b""
    assert not entry_point._dispatching  # noqa: SLF001
    writer.close()
