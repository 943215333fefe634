"""The entry point's TLS-ALPN-01 dispatch, in process, with real sockets and real TLS handshakes.

The end-to-end test against Pebble is in test_acme.py; these pin the edges a CA rarely shows: a
ClientHello split across TCP segments, a client that offers acme-tls/1 for a name with nothing pending,
and no ClientHello parsing at all when no challenge is pending.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from cryptography import x509

from acme_client.tls_alpn import ID_PE_ACME_IDENTIFIER, challenge_certificate
from router import server as server_module
from router.clienthello import Incomplete
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


async def _handshake_in_pieces(port: int, name: str, alpn: list[str], split: int) -> x509.Certificate:
    """A real TLS client whose ClientHello reaches the server in two TCP segments, ``split`` bytes first."""
    hello, obj, incoming, outgoing = _client_hello(name, alpn)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(hello[:split])
    await writer.drain()
    await asyncio.sleep(0.05)  # the gap between segments is what is under test, not a synchronisation
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


@pytest.fixture
def parses(monkeypatch):
    """Every ClientHello parse the entry point makes, with its outcome ("incomplete", None or a hello)."""
    seen: list[object] = []
    real = server_module.parse_client_hello

    def counting(data: bytes):
        try:
            result = real(data)
        except Incomplete:
            seen.append("incomplete")
            raise
        seen.append(result)
        return result

    monkeypatch.setattr(server_module, "parse_client_hello", counting)
    return seen


async def test_hello_split_across_segments_still_reaches_the_challenge(entry_point, parses):
    cert = await _handshake_in_pieces(entry_point.port, "app.example.com", ["acme-tls/1"], split=40)
    assert _is_challenge(cert)
    assert parses[0] == "incomplete"  # the first segment alone was seen, and waited on
    assert len(parses) == 2  # woken once, when the whole record was there: no polling


async def test_stalled_hellos_are_not_polled_and_do_not_slow_others(entry_point, parses):
    hello, *_ = _client_hello("app.example.com", ["acme-tls/1"])
    stalled = []
    for _ in range(200):
        _, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
        writer.write(hello[:10])
        stalled.append(writer)
    cert = await _handshake_in_pieces(entry_point.port, "app.example.com", ["h2", "http/1.1"], split=40)
    assert not _is_challenge(cert)
    # the stalled ones wait in the kernel: one look each (plus at most one wake-up), not a poll loop
    assert len(parses) <= 200 + 2 + 200
    for writer in stalled:
        writer.close()


async def test_an_oversized_record_is_not_waited_for(entry_point, parses):
    reader, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
    writer.write(bytes([0x16, 3, 1, 0xFF, 0xFF]) + b"\x01\x00\x00")
    assert await asyncio.wait_for(reader.read(), 5) is not None  # normal path: OpenSSL rejects it
    assert parses == [None]  # looked at once and let through, never waited on
    writer.close()


async def test_split_hello_from_a_browser_gets_the_site(entry_point):
    cert = await _handshake_in_pieces(entry_point.port, "app.example.com", ["h2", "http/1.1"], split=40)
    assert not _is_challenge(cert)
    assert cert.subject.rfc4514_string() == "CN=app.example.com"


async def test_acme_tls_for_a_name_with_nothing_pending_gets_the_normal_certificate(entry_point):
    cert = await _handshake_in_pieces(entry_point.port, "other.example.com", ["acme-tls/1"], split=5)
    assert not _is_challenge(cert)


async def test_no_pending_challenge_means_no_client_hello_parsing(entry_point, monkeypatch):
    calls = []
    real = server_module.parse_client_hello
    monkeypatch.setattr(server_module, "parse_client_hello", lambda data: calls.append(1) or real(data))
    entry_point.alpn_challenges.certs.clear()
    cert = await _handshake_in_pieces(entry_point.port, "app.example.com", ["acme-tls/1"], split=40)
    assert not _is_challenge(cert) and not calls
    entry_point.alpn_challenges.certs["app.example.com"] = CertKeyPair(
        *challenge_certificate("app.example.com", "x")
    )
    assert _is_challenge(await _handshake_in_pieces(entry_point.port, "app.example.com", ["acme-tls/1"], 40))
    assert calls


async def test_a_hello_cut_short_by_the_client_closing_its_side_is_not_spun_on(entry_point, parses):
    # The peer sends part of a hello and shuts down its sending side: the socket stays readable (EOF)
    # without the rest ever coming, which must end the wait, not turn it into a busy loop.
    hello, *_ = _client_hello("app.example.com", ["acme-tls/1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", entry_point.port)
    writer.write(hello[:10])
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 5)  # the server gives up on it and closes
    assert parses == ["incomplete"]
    writer.close()
