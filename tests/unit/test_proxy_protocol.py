"""The PROXY protocol codec (router.proxy_protocol): strict, bounded decoding of v1 and v2 headers, the
encoder backends are sent, and the header read from a real socket that leaves the client's bytes in it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from router.headers import TrustedNetworks
from router.proxy_protocol import (
    V1_MAX,
    V2_SIGNATURE,
    ClientAddress,
    Header,
    ProxyHeaderError,
    ProxyHeaderRefused,
    ProxyHeaderSilence,
    ProxyHeaderTimeout,
    accept_header,
    decode,
    encode,
    peer_address,
    read_header,
)

REST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def v2(command: int, family: int, body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return V2_SIGNATURE + bytes((command, family)) + n.to_bytes(2, "big") + body


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.ip_address(src).packed
        + ipaddress.ip_address(dst).packed
        + sport.to_bytes(2, "big")
        + dport.to_bytes(2, "big")
    )


# -- v1 -----------------------------------------------------------------------------------------------


def test_v1_tcp4_and_tcp6_name_the_client_and_leave_what_follows():
    line = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"
    assert decode(line + REST) == Header(1, len(line), ("203.0.113.7", 56324), ("192.0.2.1", 443))
    line = b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n"
    assert decode(line) == Header(1, len(line), ("2001:db8::7", 1), ("2001:db8::1", 65535))


def test_v1_tcp6_takes_a_plain_or_mapped_ipv4_address_as_go_proxyproto_does():
    line = b"PROXY TCP6 198.51.100.9 ::ffff:192.0.2.1 1000 80\r\n"
    assert decode(line) == Header(1, len(line), ("198.51.100.9", 1000), ("192.0.2.1", 80))


def test_v1_unknown_names_no_address_whatever_follows():
    assert decode(b"PROXY UNKNOWN\r\n" + REST) == Header(1, 15)
    line = b"PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n"
    assert decode(line) == Header(1, len(line))


def test_v1_longest_header_is_accepted_and_one_byte_more_is_refused():
    longest = b"PROXY UNKNOWN " + b"f" * (V1_MAX - 16) + b"\r\n"
    assert len(longest) == V1_MAX and decode(longest) == Header(1, V1_MAX)
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        decode(b"PROXY UNKNOWN " + b"f" * (V1_MAX - 15) + b"\r\n")
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        decode(b"PROXY TCP4 " + b"1" * 200)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",  # extra token
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  # missing port
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",  # double space
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY\r\n",
        b"PROXYX TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",  # IPv6 in TCP4
        b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",  # leading zero
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  # zone
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # LF without CR
        b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",  # a lone CR
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 ２\r\n".encode(),  # not ASCII
    ],
)
def test_v1_malformed_lines_are_refused(line):
    with pytest.raises(ProxyHeaderError):
        decode(line)


def test_v1_cut_short_asks_for_more_and_other_streams_are_not_headers():
    assert decode(b"") == 1
    assert decode(b"P") == 5 and decode(b"PROX") == 5
    assert decode(b"PROXY TCP4 1.2.3.4 5.6") == V1_MAX
    assert decode(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r") == V1_MAX  # the LF may follow
    for stream in (
        b"POST / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"PUT",
        b"GET /",
        b"\x16\x03\x01",
        b"PROXz",
    ):
        assert decode(stream) is None


# -- v2 -----------------------------------------------------------------------------------------------


def test_v2_af_inet_tcp_and_udp():
    body = inet("203.0.113.7", "192.0.2.1", 56324, 443)
    for family in (0x11, 0x12):
        header = v2(0x21, family, body)
        assert decode(header + REST) == Header(2, 28, ("203.0.113.7", 56324), ("192.0.2.1", 443))


def test_v2_af_inet6_and_a_mapped_ipv4_source():
    body = inet("2001:db8::7", "2001:db8::1", 1, 2)
    assert decode(v2(0x21, 0x21, body)) == Header(2, 52, ("2001:db8::7", 1), ("2001:db8::1", 2))
    body = inet("::ffff:198.51.100.9", "2001:db8::1", 1, 2)
    assert decode(v2(0x21, 0x21, body)).source == ("198.51.100.9", 1)


def test_v2_tlvs_are_skipped_within_the_length():
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00" + b"\xee\x00\x05abcde"  # ALPN, NOOP, a custom one
    header = v2(0x21, 0x11, inet("10.0.0.1", "10.0.0.2", 3, 4) + tlvs)
    found = decode(header + REST)
    assert found == Header(2, len(header), ("10.0.0.1", 3), ("10.0.0.2", 4))


def test_v2_local_unspec_and_unix_name_no_address():
    assert decode(v2(0x20, 0x00, b"")) == Header(2, 16)
    assert decode(v2(0x20, 0x00, b"\x04\x00\x00")) == Header(2, 19)  # UNSPEC with a TLV
    # LOCAL: a balancer's own health check; addresses it sends anyway are not the client's
    assert decode(v2(0x20, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2))) == Header(2, 28)
    assert decode(v2(0x21, 0x31, b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0"))) == Header(2, 232)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (v2(0x11, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), "version/command"),  # version 1 in a v2 header
        (v2(0x22, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)), "version/command"),
        (v2(0x21, 0x41, b"x" * 12), "family"),
        (v2(0x21, 0x13, inet("1.2.3.4", "5.6.7.8", 1, 2)), "family"),
        (v2(0x21, 0x00, b""), "AF_UNSPEC"),  # PROXY must name addresses (go-proxyproto)
        (v2(0x21, 0x11, b"x" * 8), "length"),  # shorter than two IPv4 addresses and ports
        (v2(0x21, 0x21, b"x" * 12), "length"),
        (v2(0x21, 0x31, b"x" * 12), "length"),
        (v2(0x21, 0x11, b"", length=4097), "length"),  # over go-proxyproto's 4096
    ],
)
def test_v2_malformed_headers_are_refused(header, why):
    with pytest.raises(ProxyHeaderError, match=why):
        decode(header)


def test_v2_truncated_at_every_length_asks_for_more():
    header = v2(0x21, 0x21, inet("2001:db8::7", "2001:db8::1", 1, 2) + b"\x04\x00\x00")
    for n in range(1, len(header)):
        wanted = decode(header[:n])
        assert isinstance(wanted, int) and wanted > n, n
    assert decode(header[:11]) == 16 and decode(header[:16]) == len(header)
    assert decode(v2(0x21, 0x11, b"", length=4096)) == 16 + 4096  # the most it may wait for


def test_v2_signature_lookalikes_are_the_client_s_own_bytes():
    assert decode(b"\r\nGET / HTTP/1.1") is None
    assert decode(V2_SIGNATURE[:11] + b"X" + bytes(8)) is None


# -- encoding -----------------------------------------------------------------------------------------


def test_encode_v1_and_v2_round_trip():
    client = ClientAddress("203.0.113.7", 5000)
    for version in (1, 2):
        header = encode(version, client, ("192.0.2.1", 443))
        assert decode(header) == Header(version, len(header), ("203.0.113.7", 5000), ("192.0.2.1", 443))
        six = encode(version, ClientAddress("2001:db8::7", 6), ("::1", 7, 0, 0))
        assert decode(six).source == ("2001:db8::7", 6) and decode(six).destination == ("::1", 7)
    assert encode(1, client, ("192.0.2.1", 443)) == b"PROXY TCP4 203.0.113.7 192.0.2.1 5000 443\r\n"


def test_encode_uses_the_destination_a_proxy_header_named_and_unmaps_the_socket_s():
    client = ClientAddress("203.0.113.7", 5000, ("198.51.100.1", 8443))
    assert encode(1, client, ("10.0.0.1", 80)) == b"PROXY TCP4 203.0.113.7 198.51.100.1 5000 8443\r\n"
    plain = ClientAddress("203.0.113.7", 5000)
    assert encode(1, plain, ("::ffff:10.0.0.1", 80, 0, 0)) == b"PROXY TCP4 203.0.113.7 10.0.0.1 5000 80\r\n"


def test_encode_mixed_families_as_ipv6_and_no_address_as_unknown_or_local():
    mixed = encode(1, ClientAddress("203.0.113.7", 5), ("2001:db8::1", 80, 0, 0))
    assert mixed == b"PROXY TCP6 ::ffff:cb00:7107 2001:db8::1 5 80\r\n"
    assert decode(mixed).source == ("203.0.113.7", 5)
    assert encode(1, ClientAddress("", None), ("1.2.3.4", 80)) == b"PROXY UNKNOWN\r\n"
    assert encode(2, ClientAddress("", None), ("1.2.3.4", 80)) == v2(0x20, 0x00, b"")
    with pytest.raises(ValueError, match="1 or 2"):
        encode(3, ClientAddress("1.2.3.4", 1), ("1.2.3.4", 80))


def test_peer_address_unmaps_a_dual_stack_listener_s_ipv4_clients():
    assert peer_address(("::ffff:172.21.0.1", 40000, 0, 0)) == ClientAddress("172.21.0.1", 40000)
    assert peer_address(("2001:db8::1", 1, 0, 0)) == ClientAddress("2001:db8::1", 1)


# -- reading from a socket ---------------------------------------------------------------------------


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


async def test_read_takes_the_header_only(pair):
    server, client = pair
    line = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"
    client.sendall(line + REST)
    found = await read_header(server, asyncio.get_running_loop(), 1.0)
    assert found is not None and found.source == ("203.0.113.7", 56324)
    assert server.recv(100) == REST


async def test_read_leaves_a_stream_without_header_untouched(pair):
    server, client = pair
    client.sendall(b"POST / HTTP/1.1\r\n\r\n")
    assert await read_header(server, asyncio.get_running_loop(), 1.0) is None
    assert server.recv(100) == b"POST / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n",
        v2(0x21, 0x11, inet("10.0.0.1", "10.0.0.2", 3, 4) + b"\xee\x00\x40" + b"t" * 64),
    ],
)
async def test_read_a_header_split_over_segments(pair, header):
    server, client = pair
    loop = asyncio.get_running_loop()
    reading = loop.create_task(read_header(server, loop, 5.0))
    # cuts before and after the signature, the v2 length, the addresses and the line's end
    pieces = [header[:1], header[1:3], header[3:7], header[7:13], header[13:20], header[20:]]
    for piece in pieces[:-1]:
        client.sendall(piece)
        # A gap, so the reader meets each part alone (its result does not depend on it): it must wait on.
        await asyncio.sleep(0.02)
        assert not reading.done()
    client.sendall(pieces[-1] + REST)
    found = await asyncio.wait_for(reading, 5)
    assert found is not None and found.length == len(header)
    assert server.recv(100) == REST


async def test_read_refuses_garbage_and_a_too_long_line(pair):
    server, client = pair
    client.sendall(b"PROXY " + b"A" * 200)
    with pytest.raises(ProxyHeaderError, match="longer than"):
        await read_header(server, asyncio.get_running_loop(), 1.0)


async def test_read_deadline_silence_and_a_partial_header(pair):
    server, client = pair
    loop = asyncio.get_running_loop()
    with pytest.raises(ProxyHeaderSilence):
        await read_header(server, loop, 0.1)
    client.sendall(b"PROXY TCP4 1.2.3.4")
    with pytest.raises(ProxyHeaderTimeout) as caught:
        await read_header(server, loop, 0.1)
    assert not isinstance(caught.value, ProxyHeaderSilence)


async def test_read_deadline_before_the_signature_is_complete(pair):
    server, client = pair
    client.sendall(b"PRO")  # peeked, never taken: the reader re-peeks on a timer until the deadline
    with pytest.raises(ProxyHeaderTimeout):
        await read_header(server, asyncio.get_running_loop(), 0.2)
    assert server.recv(10) == b"PRO"


async def test_read_a_close_mid_header(pair):
    server, client = pair
    client.sendall(v2(0x21, 0x11, b"")[:14])
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ProxyHeaderTimeout, match="closed"):
        await read_header(server, asyncio.get_running_loop(), 1.0)


async def test_accept_header_uses_a_trusted_peer_s_header_and_refuses_another_s(pair):
    server, client = pair
    loop = asyncio.get_running_loop()
    peer = ClientAddress("10.0.0.9", 1234)
    line = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"
    client.sendall(line + REST)
    found, taken = await accept_header(server, b"P", peer, TrustedNetworks(["10.0.0.0/8"]), loop, 1.0)
    assert taken and found == ClientAddress("203.0.113.7", 56324, ("192.0.2.1", 443))
    assert server.recv(100) == REST
    # an untrusted peer's header is refused (deliberately unlike Traefik, which reads and drops it)
    untrusted = TrustedNetworks(["10.1.0.0/16"])
    for header in (line, b"PROXY UNKNOWN\r\n", v2(0x20, 0x00, b"")):
        client.sendall(header + REST)
        with pytest.raises(ProxyHeaderRefused, match="not in proxyProtocol.trustedIPs"):
            await accept_header(server, b"P" if header[:1] == b"P" else b"\r", peer, untrusted, loop, 1.0)
        assert server.recv(100) == REST
    client.sendall(REST)  # ...and served as its own without one
    assert await accept_header(server, b"G", peer, untrusted, loop, 1.0) == (peer, False)
    assert server.recv(100) == REST
    client.sendall(line)  # a first byte that cannot begin a header: nothing is read
    found, taken = await accept_header(server, b"G", peer, TrustedNetworks([], insecure=True), loop, 1.0)
    assert (found, taken) == (peer, False)
    assert server.recv(100) == line


async def test_accept_header_lets_a_silent_client_of_a_server_first_protocol_on(pair):
    server, _ = pair
    loop = asyncio.get_running_loop()
    peer = ClientAddress("10.0.0.9", 1234)
    trusted = TrustedNetworks([], insecure=True)
    assert await accept_header(server, None, peer, trusted, loop, 0.05, server_first=True) == (peer, False)
    with pytest.raises(ProxyHeaderSilence):
        await accept_header(server, None, peer, trusted, loop, 0.05)
