"""A raw-socket HTTP client for hardening tests: the exact bytes go out, the whole answer comes back.

Smuggling and parser tests need what an HTTP library will not send (a Content-Length next to a
Transfer-Encoding, a bare LF, a NUL in a header) and must tell a closed connection from one kept open
after an error, which is the difference between a refused request and a desynchronised one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class Answer:
    """What came back: every byte read, and whether the server closed the connection (EOF or reset)
    before ``timeout`` ran out (False: it was still open, waiting for more)."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int | None:
        """The status code of the first answer, None if nothing parseable came back."""
        line = self.data.split(b"\r\n", 1)[0].split(b" ")
        if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
            return None
        return int(line[1])

    @property
    def body(self) -> bytes:
        """Everything after the first answer's head (b"" without a head)."""
        _, sep, rest = self.data.partition(b"\r\n\r\n")
        return rest if sep else b""

    @property
    def answers(self) -> int:
        """How many status lines came back: more than one means the server read a second request out of
        what the client sent as one (a desync)."""
        return self.data.count(b"HTTP/1.")


async def exchange(
    port: int, data: bytes, timeout: float = 3.0, host: str = "127.0.0.1", half_close: bool = False
) -> Answer:
    """Send ``data`` to ``host:port``, then read until the server closes or ``timeout`` seconds pass.

    ``half_close`` shuts the client's sending side after ``data`` (some servers only answer a truncated
    message at EOF); by default the client keeps it open, so a server that is still waiting for the rest
    of a message shows up as ``closed=False`` instead of answering the EOF."""
    reader, writer = await asyncio.open_connection(host, port)
    out = bytearray()
    closed = False
    try:
        writer.write(data)
        await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        closed = True
                        break
                    out += chunk
        except TimeoutError:
            pass
        except ConnectionError:
            closed = True
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    return Answer(bytes(out), closed)
