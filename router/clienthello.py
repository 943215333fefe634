"""Just enough of a TLS ClientHello parser to read the SNI name and the ALPN protocol list.

Python's ``sni_callback`` runs before ALPN is negotiated and never sees the client's protocol list, so
TLS-ALPN-01 (RFC 8737), which must answer only a client offering ``acme-tls/1``, needs the ClientHello
before the handshake starts: the entry point peeks at it (``MSG_PEEK``, nothing consumed) and parses it
here. The parser is strict about bounds and lenient about everything else: anything it cannot read is
"not a challenge", and the normal handshake decides.
"""

from __future__ import annotations

from dataclasses import dataclass

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SERVER_NAME = 0x0000
_EXT_ALPN = 0x0010
MAX_HELLO = 5 + 16384  # one full TLS record; a ClientHello spread over more records is not parsed


class Incomplete(Exception):
    """More bytes are needed before the ClientHello can be read."""


def bytes_needed(data: bytes) -> int:
    """How many bytes the first record needs in all: 5 for its header, then 5 + its length, never more
    than :data:`MAX_HELLO` (a longer record is refused by :func:`parse_client_hello`, not waited for).

    A waiter sets this as the socket's receive low-water mark, to be woken once, when it is all there."""
    if len(data) < 5:
        return 5
    return min(5 + ((data[3] << 8) | data[4]), MAX_HELLO)


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None
    alpn: tuple[str, ...]


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes | memoryview:
        if self.pos + n > self.end:
            raise ValueError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        b = self.take(2)
        return (b[0] << 8) | b[1]

    def u24(self) -> int:
        b = self.take(3)
        return (b[0] << 16) | (b[1] << 8) | b[2]

    def sub(self, n: int) -> _Reader:
        start = self.pos
        self.take(n)
        return _Reader(self.data, start, start + n)


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The SNI name and ALPN list of the ClientHello at the start of ``data``.

    Raises :class:`Incomplete` when ``data`` ends before the first record does; returns None when the
    bytes are not a ClientHello that fits in one record (not TLS, SSLv2, fragmented, malformed), which
    includes a record header announcing more than TLS's 2^14 plaintext bytes: no wait would help.
    """
    if len(data) < 5:
        raise Incomplete
    if data[0] != _HANDSHAKE or data[1] != 3:
        return None
    record_len = (data[3] << 8) | data[4]
    if record_len > MAX_HELLO - 5:
        return None  # longer than any TLS plaintext record: not worth waiting for
    if len(data) < 5 + record_len:
        raise Incomplete
    try:
        record = _Reader(memoryview(data), 5, 5 + record_len)
        if record.u8() != _CLIENT_HELLO:
            return None
        hello = record.sub(record.u24())  # raises when the hello continues in a next record
        hello.take(2 + 32)  # legacy_version, random
        hello.take(hello.u8())  # legacy_session_id
        hello.take(hello.u16())  # cipher_suites
        hello.take(hello.u8())  # legacy_compression_methods
        if hello.pos == hello.end:
            return ClientHello(None, ())  # no extensions at all
        extensions = hello.sub(hello.u16())
        server_name: str | None = None
        alpn: tuple[str, ...] = ()
        while extensions.pos < extensions.end:
            ext_type = extensions.u16()
            body = extensions.sub(extensions.u16())
            if ext_type == _EXT_SERVER_NAME:
                names = body.sub(body.u16())
                while names.pos < names.end:
                    kind = names.u8()
                    value = bytes(names.take(names.u16()))
                    if kind == 0 and server_name is None:  # host_name
                        server_name = value.decode("ascii").rstrip(".").lower()
            elif ext_type == _EXT_ALPN:
                protocols = body.sub(body.u16())
                found = []
                while protocols.pos < protocols.end:
                    found.append(bytes(protocols.take(protocols.u8())).decode("ascii"))
                alpn = tuple(found)
        return ClientHello(server_name, alpn)
    except (ValueError, UnicodeDecodeError):
        return None
