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
    # Flip every byte after the record header in turn: the record is all there, so the parser answers
    # None or a hello, never Incomplete, never an exception (the record length is the next test's).
    for i in range(5, len(data)):
        mutated = bytearray(data)
        mutated[i] ^= 0xFF
        result = parse_client_hello(bytes(mutated))
        assert result is None or isinstance(result, ClientHello)


def _with_record_length(data: bytes, length: int) -> bytes:
    return data[:3] + length.to_bytes(2, "big") + data[5:]


def test_the_record_length_decides_between_waiting_and_refusing():
    data = _client_hello("a.example.com", ["acme-tls/1"])
    actual = len(data) - 5
    hello = ClientHello("a.example.com", ("acme-tls/1",))
    assert parse_client_hello(_with_record_length(data, actual)) == hello
    for length in (actual + 1, 0x3FFF, 16384):  # longer than what came, within TLS: wait for the rest
        with pytest.raises(Incomplete):
            parse_client_hello(_with_record_length(data, length))
    for length in (0, 1, 4, actual - 1):  # shorter than the hello it claims to carry
        assert parse_client_hello(_with_record_length(data, length)) is None
    for length in (16385, 16384 + 2048, 0xFFFF):  # longer than any TLS plaintext record: never waited for
        assert parse_client_hello(_with_record_length(data, length)) is None


@pytest.mark.parametrize("i", [3, 4])
def test_flipped_record_length_bytes_wait_only_within_tls_limits(i):
    data = _client_hello("a.example.com", ["acme-tls/1"])
    mutated = bytearray(data)
    mutated[i] ^= 0xFF
    length = (mutated[3] << 8) | mutated[4]
    if length > 16384:
        assert parse_client_hello(bytes(mutated)) is None
    elif length > len(data) - 5:
        with pytest.raises(Incomplete):
            parse_client_hello(bytes(mutated))
        assert bytes_needed(bytes(mutated)) == 5 + length
    else:
        assert parse_client_hello(bytes(mutated)) is None


@pytest.mark.parametrize("length", [16385, 0xFFFF])
def test_a_record_longer_than_tls_allows_is_not_waited_for(length):
    header = bytes([0x16, 3, 1, length >> 8, length & 0xFF])
    assert parse_client_hello(header) is None  # the header alone says so: no point in waiting
    assert parse_client_hello(header + b"\x01\x00") is None
    assert bytes_needed(header) == 16389  # a waiter is never told to wait for more than one record


def test_bytes_needed_follows_the_record_header():
    data = _client_hello("a.example.com", ["acme-tls/1"])
    for cut in range(5):
        assert bytes_needed(data[:cut]) == 5  # the header first
    for cut in range(5, len(data) + 1):
        assert bytes_needed(data[:cut]) == len(data)  # then the whole record
    assert bytes_needed(_with_record_length(data, 16384)[:5]) == 16389
