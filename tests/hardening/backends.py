"""Raw TCP backends for the hardening tests: asyncio servers on a free loopback port that read and answer
exact bytes, so a test sees what the proxy really sent and can answer what no HTTP library would.

:class:`RawBackend` owns the server and the bookkeeping every such backend needs (its URL, how many
connections it took and how many have ended, closing the stream after its script); a subclass writes only
:meth:`RawBackend.serve`, the script of one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Self

import pytest
from multidict import CIMultiDict

from tests.polling import wait_for


class RawBackend:
    """A server on 127.0.0.1, port 0; ``url`` once started. A connection ending in a reset or an
    incomplete read is an ordinary end here: the proxy closing on a bad answer is what tests provoke.
    ``ended`` counts the connections whose script is over and stream closed, so a test can wait for the
    proxy to have let go of its backend connection (a client cut must not leave it held)."""

    def __init__(self) -> None:
        self.connections = 0
        self.ended = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> Self:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.ended_early()
        finally:
            writer.close()
            self.ended += 1

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection's script."""
        raise NotImplementedError

    def ended_early(self) -> None:
        """Called when the peer reset or cut the connection mid-script (nothing to do by default)."""

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


class RecordingBackend(RawBackend):
    """Keeps every byte it is sent and answers each read with ``reply``, a small 200 by default (so a
    forwarded request is never left hanging); ``reply=None`` never answers (a body that stalls leaves it
    reading, so only the proxy closing the connection ends it)."""

    def __init__(self, reply: bytes | None = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") -> None:
        super().__init__()
        self.received = bytearray()
        self.reply = reply

    def heads(self) -> list[CIMultiDict[str]]:
        """The request heads received (bodiless requests), each as its header lines, in order."""
        out = []
        for head in bytes(self.received).split(b"\r\n\r\n")[:-1]:
            lines = head.split(b"\r\n")[1:]
            out.append(CIMultiDict(tuple(part.strip() for part in ln.decode().split(":", 1)) for ln in lines))
        return out

    async def one_head(self, timeout: float = 10) -> CIMultiDict[str]:
        """The one request head received, once it is whole (it must be the only one)."""
        await wait_for(lambda: b"\r\n\r\n" in self.received, timeout=timeout)
        (head,) = self.heads()
        return head

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            self.received += chunk
            if self.reply is not None:
                writer.write(self.reply)
                await writer.drain()


class AnsweringBackend(RawBackend):
    """Answers each request head it reads with ``answer(head)``, keeping the heads (requests here have no
    body)."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        super().__init__()
        self.answer = answer
        self.heads: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            writer.write(self.answer(head))
            await writer.drain()


@pytest.fixture
async def recording():
    backend = await RecordingBackend().start()
    yield backend
    await backend.stop()
