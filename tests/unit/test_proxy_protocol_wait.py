"""How the PROXY header read waits on a real TCP socket (router.proxy_protocol.read_header): a client that
stops part-way through the signature is waited for in the kernel (its socket's low-water mark), not
re-peeked on a timer, and one that then closes its side is dropped at once, not at the deadline."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from router.proxy_protocol import V2_SIGNATURE, ProxyHeaderSilence, ProxyHeaderTimeout, read_header

REST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


class Counting(socket.socket):
    """The accepted socket, counting its peeks (each one a recvfrom(MSG_PEEK) system call)."""

    peeks = 0

    def recv(self, n: int, flags: int = 0) -> bytes:
        if flags & socket.MSG_PEEK:
            self.peeks += 1
        return super().recv(n, flags)


@pytest.fixture
def tcp_pair():
    """(the accepted side, counting its peeks; the client side) of a loopback TCP connection: the
    low-water mark is a TCP socket's (Linux's AF_UNIX sockets ignore it)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    server = Counting(fileno=accepted.detach())
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def lowat(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)


@pytest.mark.parametrize("start", [b"P", b"PRO", b"\r", V2_SIGNATURE[:11]])
async def test_a_client_stalled_inside_the_signature_is_not_polled(tcp_pair, start):
    server, client = tcp_pair
    client.sendall(start)
    with pytest.raises(ProxyHeaderTimeout) as caught:
        await read_header(server, asyncio.get_running_loop(), 0.5)
    assert not isinstance(caught.value, ProxyHeaderSilence)
    # A timer re-peeking from 2 to 50 ms made some 15 peeks in 0.5 s (205 in 10 s); waiting in the kernel
    # takes one look, plus one at the deadline at most.
    assert server.peeks <= 2
    assert lowat(server) == 1  # put back for the transport that takes the socket over
    assert server.recv(20, socket.MSG_PEEK) == start  # nothing of the client's stream was taken


@pytest.mark.parametrize("start", [b"PRO", V2_SIGNATURE[:3]])
async def test_a_client_closing_inside_the_signature_is_dropped_at_once(tcp_pair, start):
    server, client = tcp_pair
    client.sendall(start)
    client.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    with pytest.raises(ProxyHeaderTimeout, match="closed"):
        await asyncio.wait_for(read_header(server, asyncio.get_running_loop(), 10.0), 5)
    assert time.monotonic() - started < 5  # not held until the 10 s deadline
    assert lowat(server) == 1


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n",
        V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes(range(12)),
    ],
)
async def test_a_header_split_inside_its_signature_is_read_with_one_look_per_segment(tcp_pair, header):
    server, client = tcp_pair
    loop = asyncio.get_running_loop()
    reading = loop.create_task(read_header(server, loop, 5.0))
    pieces = [header[:1], header[1:3], header[3:14], header[14:20], header[20:]]
    for piece in pieces[:-1]:
        client.sendall(piece)
        await asyncio.sleep(0.2)  # a gap, so the reader meets each part alone: it must wait on
        assert not reading.done()
    client.sendall(pieces[-1] + REST)
    found = await asyncio.wait_for(reading, 5)
    assert found is not None and found.length == len(header)
    assert server.recv(100) == REST and lowat(server) == 1
    # P / RO (the mark of 5 or 12 holds the wake-up until the signature can be told) / the rest: a few
    # looks per segment, not one per timer tick
    assert server.peeks <= 2 * len(pieces)
