"""The PROXY protocol (HAProxy's v1 text and v2 binary headers): the client address of a connection.

A load balancer or tunnel in front of an entry point opens its own connection and sends, before anything
else, a header naming the client it is relaying; ``entryPoints.<ep>.proxyProtocol`` reads it. As in Traefik
(its listener wraps go-proxyproto with a policy per peer):

- ``insecure: true``: the header is used from every peer;
- ``trustedIPs``: it is used from those peers; a connection from any other peer that sends one is refused
  (closed, one rate-limited line naming the peer): a deliberate difference from Traefik, which reads such a
  header and drops it (go-proxyproto's IGNORE), so that a spoofing attempt or a ``trustedIPs`` missing the
  balancer shows instead of every client silently becoming the balancer;
- the header is optional: a connection without one is served as the peer's own (Traefik's ``USE`` policy,
  never ``REQUIRE``); a malformed or oversized one closes the connection;
- the header must arrive within the entry point's header deadline.

:class:`ClientAddress` is the one answer to "who is this connection from" that rules (``ClientIP``),
``X-Forwarded-For``, ``X-Real-Ip``, ``forwardedHeaders.trustedIPs``, access logs, ``ipAllowList``,
``rateLimit``/``inFlightReq`` sources and the bad-request log all read: the header's source when a trusted
peer sent one, else the socket's peer. :func:`encode` writes a header for a backend (TCP services'
``proxyProtocol.version``).

The decoder is strict and bounded (go-proxyproto's limits): v1 is one line of at most 107 bytes ending in
CRLF, ``TCP4``/``TCP6`` with exactly two addresses and two ports, or ``UNKNOWN``; v2 is the 12-byte
signature, version 2 with ``LOCAL`` or ``PROXY``, ``AF_UNSPEC``/``AF_INET``/``AF_INET6``/``AF_UNIX``, and
at most 4096 bytes of addresses and TLVs (TLVs are skipped). Bytes are peeked (``MSG_PEEK``) and only the
header's own are taken from the socket, so the TLS or HTTP side sees the stream exactly as the client sent
it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple

from router.headers import TrustedNetworks
from router.readiness import peer_done_sending, readable, set_rcvlowat

__all__ = [
    "V1_MAX",
    "V2_MAX_PAYLOAD",
    "ClientAddress",
    "Header",
    "ProxyHeaderError",
    "ProxyHeaderRefused",
    "ProxyHeaderSilence",
    "ProxyHeaderTimeout",
    "accept_header",
    "decode",
    "encode",
    "go_ip",
    "peer_address",
    "peer_ip",
    "read_header",
]

V1_SIGNATURE = b"PROXY"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # "PROXY UNKNOWN <39> <39> 65535 65535\r\n": the spec's worst case, go-proxyproto's limit
V2_MAX_PAYLOAD = 4096  # go-proxyproto's maxV2HeaderSize: addresses and TLVs (a client certificate fits)
_V2_FIXED = 16  # signature, version/command, family/transport, length
_LOCAL, _PROXY = 0x20, 0x21  # v2 version 2 with each command
# v2 address family (high nibble) -> the least length its addresses take (go-proxyproto's validateLength)
_V2_MIN_LENGTH = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}
_STARTS = (V1_SIGNATURE[:1], V2_SIGNATURE[:1])  # a first byte that may begin a header


class ProxyHeaderError(ValueError):
    """A PROXY header that is malformed, too long, cut short or too slow: the connection is refused."""


class ProxyHeaderRefused(ProxyHeaderError):
    """A well-formed header from a peer ``trustedIPs`` does not name."""


class ProxyHeaderTimeout(ProxyHeaderError):
    """No header (nor a first byte that rules one out) within the deadline, or a close before its end."""


class ProxyHeaderSilence(ProxyHeaderTimeout):
    """Not one byte within the deadline: go-proxyproto then goes on as if no header had been sent (a
    server-first protocol's client waits for the server to speak)."""


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded PROXY header. ``source`` and ``destination`` are None when it names no address (v2
    ``LOCAL``, v1 ``UNKNOWN``, ``AF_UNSPEC``, ``AF_UNIX``): the connection's own endpoints stand."""

    version: int
    length: int  # bytes the header takes on the wire
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None


class ClientAddress(NamedTuple):
    """Who a connection is from, as every part of the proxy sees it: ``ip`` as Go prints it (an IPv4 client
    of a dual-stack listener is ``a.b.c.d``, not ``::ffff:a.b.c.d``) and ``port``. ``local`` is the
    destination a trusted PROXY header named (what the client connected to); None means the socket's own
    address (``getsockname()``). A named tuple: built per connection where PROXY headers or TCP routers
    are, it costs a fraction of a frozen dataclass (whose ``__init__`` calls ``object.__setattr__``)."""

    ip: str
    port: int | None
    local: tuple[str, int] | None = None


def peer_ip(peer: Any) -> str:
    """The client's address as Go reports it (:func:`go_ip`): a dual-stack listener (``:80`` binds ``::``)
    sees IPv4 clients as ``::ffff:a.b.c.d``, which Go (so Traefik) unmaps; backends, rules, allow lists
    and the access log see ``a.b.c.d``, as with Traefik."""
    return go_ip(peer[0]) if peer else ""


def go_ip(text: str) -> str:
    """An address as Go's ``net.IP.String`` prints it: an IPv4-mapped IPv6 address as plain IPv4 (the one
    place this is decided). A socket writes one ``::ffff:a.b.c.d``, unmapped by slicing: that is every
    IPv4 client of a dual-stack listener, so it must cost next to nothing; :mod:`ipaddress` may write one
    ``::ffff:c000:201`` (before Python 3.13), parsed only then."""
    if not text.startswith("::ffff:"):
        return text
    if "." in text:
        return text[7:]
    try:
        mapped = ipaddress.IPv6Address(text).ipv4_mapped
    except ValueError:
        return text
    return text if mapped is None else str(mapped)


def peer_address(peer: Any) -> ClientAddress:
    """A socket's peer (``accept()``'s or ``getpeername()``'s address) as a :class:`ClientAddress`."""
    return ClientAddress(peer_ip(peer), peer[1] if peer else None)


# -- decoding ---------------------------------------------------------------------------------------------


def decode(data: bytes) -> Header | int | None:
    """The PROXY header at the start of ``data``: a :class:`Header`; None when ``data`` does not begin with
    one (the stream is the client's own); or, while it may still be one, how many bytes in all to look at
    next (never fewer than ``len(data) + 1``). Raises :class:`ProxyHeaderError` for a malformed header."""
    if not data:
        return 1
    if data[:1] == V1_SIGNATURE[:1]:
        if not V1_SIGNATURE.startswith(data[:5]):
            return None
        return _decode_v1(data) if len(data) >= len(V1_SIGNATURE) else len(V1_SIGNATURE)
    if data[:1] == V2_SIGNATURE[:1]:
        if not V2_SIGNATURE.startswith(data[:12]):
            return None
        return _decode_v2(data) if len(data) >= _V2_FIXED else _V2_FIXED
    return None


def _signature_seen(data: bytes) -> bool:
    """Whether ``data`` holds a whole signature (so every byte up to the header's end is the header's)."""
    return data.startswith(V1_SIGNATURE) or data.startswith(V2_SIGNATURE)


def _decode_v1(data: bytes) -> Header | int:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if b"\n" in data[:V1_MAX] or b"\r" in data[: min(len(data), V1_MAX) - 1]:
            raise ProxyHeaderError("PROXY v1 header: CR or LF inside the line")
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1 header longer than {V1_MAX} bytes")
        return V1_MAX
    line = data[:end]
    if b"\r" in line or b"\n" in line:
        raise ProxyHeaderError("PROXY v1 header: CR or LF inside the line")
    try:
        tokens = line.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 header: not ASCII") from None
    if tokens[0] != "PROXY" or len(tokens) < 2:
        raise ProxyHeaderError("PROXY v1 header: no protocol")
    proto = tokens[1]
    if proto == "UNKNOWN":  # whatever follows is ignored (the spec): the connection's own peer stands
        return Header(1, end + 2)
    if proto not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"PROXY v1 header: unknown protocol {proto[:8]}")
    if len(tokens) != 6:
        raise ProxyHeaderError("PROXY v1 header: expected two addresses and two ports")
    src, dst = _v1_ip(tokens[2], proto), _v1_ip(tokens[3], proto)
    return Header(1, end + 2, (src, _v1_port(tokens[4])), (dst, _v1_port(tokens[5])))


def _v1_ip(text: str, proto: str) -> str:
    """One address of a v1 line, as Go prints it. ``TCP6`` also takes a plain IPv4 address, as
    go-proxyproto does (nginx's stream module sends those); a zone (``%eth0``) is refused."""
    try:
        if "%" in text:
            raise ValueError
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 header: bad {proto} address {text[:40]}") from None
    if proto == "TCP4" and ip.version != 4:
        raise ProxyHeaderError(f"PROXY v1 header: {text[:40]} is not an IPv4 address")
    return go_ip(str(ip))


def _v1_port(text: str) -> int:
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ProxyHeaderError(f"PROXY v1 header: bad port {text[:8]}")
    return int(text)


def _decode_v2(data: bytes) -> Header | int:
    command, family = data[12], data[13]
    length = int.from_bytes(data[14:16], "big")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"PROXY v2 header: unsupported version/command 0x{command:02x}")
    least = _V2_MIN_LENGTH.get(family >> 4)
    if least is None or (family & 0x0F) > 2:
        raise ProxyHeaderError(f"PROXY v2 header: unsupported address family/protocol 0x{family:02x}")
    if family == 0 and command == _PROXY:  # go-proxyproto: UNSPEC only with LOCAL
        raise ProxyHeaderError("PROXY v2 header: PROXY command with AF_UNSPEC")
    if length < least or length > V2_MAX_PAYLOAD:
        raise ProxyHeaderError(f"PROXY v2 header: bad length {length} for family 0x{family:02x}")
    total = _V2_FIXED + length
    if len(data) < total:
        return total
    if command == _LOCAL:  # a health check of the balancer itself: addresses (if any) are ignored
        return Header(2, total)
    body = data[_V2_FIXED:total]
    if family >> 4 == 0x1:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        ports = body[8:12]
    elif family >> 4 == 0x2:
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        ports = body[32:36]
    else:  # AF_UNIX or an unspecified family: no IP to use; TLVs (if any) are skipped
        return Header(2, total)
    sport, dport = int.from_bytes(ports[0:2], "big"), int.from_bytes(ports[2:4], "big")
    return Header(2, total, (go_ip(str(src)), sport), (go_ip(str(dst)), dport))


# -- reading from an accepted socket ---------------------------------------------------------------------


async def read_header(
    conn: socket.socket, loop: asyncio.AbstractEventLoop, timeout: float | None
) -> Header | None:
    """The PROXY header at the start of ``conn`` (non-blocking, just accepted, a TCP socket), taken out of
    the socket; None when the client's first bytes are not one (nothing is taken then). Raises
    :class:`ProxyHeaderError` for a malformed header, a close before its end, or no decision within
    ``timeout`` seconds (None: no deadline).

    Bytes are peeked, and the loop waits in the kernel, never on a timer (router.readiness): until the
    signature is complete (a client whose first segment is a lone ``P`` or ``\\r``) the peeked bytes stay
    queued, so the socket's low-water mark is raised to the signature's length and it turns readable
    once, when the signature can be told; readable with nothing new means the peer stopped sending (FIN
    or reset: refused at once). Once a whole signature is seen every byte up to the header's end is the
    header's, so what has come is taken (``recv``) and readiness means new bytes; a v2 header, whose
    length is announced, is waited for whole. The mark is put back to 1 before the socket is handed on.
    Where the system refuses the mark, or wakes early, bytes before the signature's end are re-peeked on
    a timer backing off from 2 to 50 ms: bounded by the deadline, never a busy loop."""
    deadline = None if not timeout else loop.time() + timeout
    fd = conn.fileno()
    taken = b""  # header bytes already taken from the socket
    want = _V2_FIXED  # enough to tell either version and read a v2 length
    seen = 0  # bytes peeked (not taken) and found too few to tell
    level = 1  # the socket's low-water mark
    in_kernel = True  # False once the system refuses the mark
    delay = 0.002
    try:
        while True:
            try:
                ahead: bytes | None = conn.recv(want - len(taken), socket.MSG_PEEK)
            except BlockingIOError:
                ahead = None
            mark = 1  # nothing peeked is left queued: any new byte is worth a look
            if ahead is not None:
                if not ahead:
                    raise ProxyHeaderTimeout("connection closed before its PROXY header ended")
                data = taken + ahead
                found = decode(data)
                if found is None:
                    return None
                if isinstance(found, Header):
                    _take(conn, found.length - len(taken))
                    return found
                if found > want:
                    full = len(ahead) == want - len(taken)
                    want = found
                    if full:  # more may be there already
                        continue
                if _signature_seen(data):
                    taken += _take(conn, len(ahead))
                    if data[:1] == V2_SIGNATURE[:1]:
                        mark = want - len(taken)  # the rest of the header (or of its fixed part)
                elif len(ahead) > seen:
                    seen = len(ahead)
                    mark = len(V1_SIGNATURE if data[:1] == V1_SIGNATURE[:1] else V2_SIGNATURE)
                elif peer_done_sending(fd):
                    raise ProxyHeaderTimeout("connection closed before its PROXY header ended")
                else:
                    mark = 0  # readable with nothing new (memory pressure): re-peek on a timer
            if mark and mark != level and in_kernel:
                in_kernel = set_rcvlowat(conn, mark)
                level = mark if in_kernel else level
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                in_time = False
            elif mark == level or not seen or taken:  # the kernel tells when there is something to see
                in_time = await readable(loop, fd, remaining)
            else:
                await asyncio.sleep(delay if remaining is None else min(delay, remaining))
                delay = min(delay * 2, 0.05)
                in_time = True
            if not in_time:
                late = ProxyHeaderTimeout if taken or seen else ProxyHeaderSilence
                raise late("PROXY header not received in time")
    finally:
        # Unguarded on purpose: should this fail, the OSError makes the entry point close the connection
        # rather than hand on a socket that would look idle until the mark is reached.
        if level != 1:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


def _take(conn: socket.socket, n: int) -> bytes:
    """Take ``n`` bytes already peeked: they are queued, so one ``recv`` returns them all."""
    got = conn.recv(n) if n > 0 else b""
    if len(got) != n:
        raise ProxyHeaderTimeout("connection lost while its PROXY header was read")
    return got


async def accept_header(
    conn: socket.socket,
    first: bytes | None,
    peer: ClientAddress,
    trusted: TrustedNetworks,
    loop: asyncio.AbstractEventLoop,
    timeout: float | None,
    server_first: bool = False,
) -> tuple[ClientAddress, bool]:
    """The client of ``conn`` on an entry point with ``proxyProtocol``, and whether a header was taken
    (the first byte must then be peeked again). ``first`` is the byte already peeked (None: none yet);
    any other first byte than a header's skips the read at once. The header's source is used from a
    ``trusted`` peer; from any other the header is refused (:class:`ProxyHeaderRefused`).

    A client silent until the deadline is refused (:class:`ProxyHeaderSilence`), unless the entry point
    routes before the client speaks (``server_first``: plain TCP routers, no TLS ones, no HTTPS routers;
    router.tcp.table): such clients wait for the server, and go on without a header then, as go-proxyproto
    lets them (after its deadline too)."""
    if first is not None and first not in _STARTS:
        return peer, False
    try:
        header = await read_header(conn, loop, timeout)
    except ProxyHeaderSilence:
        if not server_first:
            raise
        return peer, False
    if header is None:
        return peer, False
    if not trusted.trusts(peer.ip):
        why = f"PROXY v{header.version} header from a peer not in proxyProtocol.trustedIPs: refused"
        raise ProxyHeaderRefused(why)
    if header.source is None:
        return peer, True
    return ClientAddress(header.source[0], header.source[1], header.destination), True


# -- encoding (PROXY headers sent to backends) -----------------------------------------------------------


def encode(version: int, client: ClientAddress, sock_local: Any) -> bytes:
    """The PROXY header (``version`` 1 or 2) a backend is sent for ``client``, as Traefik's
    ``HeaderProxyFromAddrs``: source the client, destination the address it connected to (``client.local``
    from its own PROXY header, else ``sock_local``, the accepted socket's ``getsockname()``). Two IPv4
    addresses make ``TCP4``; an IPv6 one makes ``TCP6`` with the other IPv4-mapped; anything else (no
    address) is v1 ``UNKNOWN`` / v2 ``LOCAL``."""
    if version not in (1, 2):
        raise ValueError(f"PROXY protocol version {version!r}: 1 or 2")
    local = client.local
    if local is None and sock_local:
        local = (peer_ip(sock_local), sock_local[1])
    src = _parsed(client.ip)
    dst = _parsed(local[0]) if local is not None else None
    if src is None or dst is None or client.port is None or local is None:
        return b"PROXY UNKNOWN\r\n" if version == 1 else V2_SIGNATURE + bytes((_LOCAL, 0, 0, 0))
    if src.version != dst.version:  # one IPv6: both as IPv6
        src, dst = _as_v6(src), _as_v6(dst)
    sport, dport = client.port, local[1]
    if version == 1:
        proto = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode("ascii")
    family, length = (0x11, 12) if src.version == 4 else (0x21, 36)
    return (
        V2_SIGNATURE
        + bytes((_PROXY, family))
        + length.to_bytes(2, "big")
        + src.packed
        + dst.packed
        + sport.to_bytes(2, "big")
        + dport.to_bytes(2, "big")
    )


def _parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` (zone dropped) as an address, an IPv4-mapped one as the IPv4 address (:func:`go_ip`)."""
    try:
        return ipaddress.ip_address(go_ip(text.partition("%")[0]))
    except ValueError:
        return None


def _as_v6(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ip if isinstance(ip, ipaddress.IPv6Address) else ipaddress.IPv6Address(f"::ffff:{ip}")
