"""router.clienthello against real ClientHellos written by OpenSSL (ssl.MemoryBIO, no network)."""

from __future__ import annotations

import ssl

import pytest

from router.clienthello import ClientHello, Incomplete, bytes_needed, parse_client_hello


def _client_hello(server_name: str | None, alpn: list[str] | None, tls12_only: bool = False) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if tls12_only:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("tls12_only", [False, True])
def test_reads_sni_and_alpn(tls12_only):
    data = _client_hello("App.Example.COM", ["acme-tls/1"], tls12_only)
    assert parse_client_hello(data) == ClientHello("app.example.com", ("acme-tls/1",))


def test_reads_every_offered_protocol_in_order():
    data = _client_hello("a.example.com", ["h2", "http/1.1"])
    assert parse_client_hello(data) == ClientHello("a.example.com", ("h2", "http/1.1"))


def test_no_sni_no_alpn():
    assert parse_client_hello(_client_hello(None, None)) == ClientHello(None, ())


def test_trailing_bytes_after_the_record_are_ignored():
    data = _client_hello("a.example.com", ["acme-tls/1"])
    assert parse_client_hello(data + b"\x14\x03\x03junk") == ClientHello("a.example.com", ("acme-tls/1",))


def test_every_truncation_asks_for_more():
    data = _client_hello("a.example.com", ["acme-tls/1"])
    for cut in range(len(data)):
        with pytest.raises(Incomplete):
            parse_client_hello(data[:cut])


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # not TLS
        b"\x16\x02\x00\x00\x01\x01",  # not TLS 1.x
        b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",  # a ServerHello
        b"\x16\x03\x01\x00\x08\x01\x00\x01\x00\x03\x03\x00\x00",  # hello longer than its record
        b"\x16\x03\x01\x00\x04\x01\x00\x00\x00",  # hello cut before the random
    ],
)
def test_anything_else_is_not_a_client_hello(data):
    assert parse_client_hello(data) is None


def test_corrupt_lengths_are_refused_not_overread():
    data = _client_hello("a.example.com", ["acme-tls/1"])
    # Flip every byte after the record header in turn: the parser answers None or a hello, never raises.
    for i in range(5, len(data)):
        mutated = bytearray(data)
        mutated[i] ^= 0xFF
        parse_client_hello(bytes(mutated))


@pytest.mark.parametrize("length", [16385, 0xFFFF])
def test_a_record_longer_than_tls_allows_is_not_waited_for(length):
    header = bytes([0x16, 3, 1, length >> 8, length & 0xFF])
    assert parse_client_hello(header + b"\x01\x00") is None  # never Incomplete: no point in waiting
    assert bytes_needed(header) == 16389


def test_bytes_needed_follows_the_record_header():
    data = _client_hello("a.example.com", ["acme-tls/1"])
    assert bytes_needed(data[:3]) == 5
    assert bytes_needed(data[:7]) == len(data)
