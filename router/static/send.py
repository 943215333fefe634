"""Sending a file's bytes without holding the event loop: ``sendfile`` on plain connections, chunked reads
in an executor over TLS and through middlewares.

uvloop implements neither ``loop.sendfile`` nor ``loop.sock_sendfile`` (both raise NotImplementedError),
and refuses ``add_writer`` on a socket that a transport owns. So the proxy does it itself, once the
response head has left the transport's buffer (``get_write_buffer_size() == 0``; otherwise it falls back
to reads, as bytes must not overtake the head):

- it duplicates the socket's descriptor (``os.dup``): the duplicate keeps the connection's socket alive
  for the thread even if the transport closes meanwhile, so a descriptor number reused by another
  connection can never receive this file;
- an executor thread calls ``os.sendfile`` until the socket's buffer is full (EAGAIN), the range is sent
  or a few MiB went (so a big file does not keep a thread for long); the kernel copies from the page cache,
  and any disk read happens in that thread;
- while the socket is full, the loop waits for it to be writable with ``add_writer`` on the duplicate
  (allowed: no transport owns that number), within the entry point's ``writeTimeout``.

Memory stays flat whatever the file size: nothing of the file passes through Python on that path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from router.exchange import WRITE_HIGH

__all__ = [
    "CHUNK",
    "SENDFILE_HOP",
    "FileChanged",
    "can_sendfile",
    "read_chunks",
    "send_file",
    "transport_writer",
]

T = TypeVar("T")
CHUNK = 256 * 1024  # bytes read per executor hop when the file cannot be sent with sendfile
SENDFILE_HOP = 8 * 1024 * 1024  # at most this much per thread hop


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the default executor, always awaited to its end: when the request is cancelled
    (the client went away) the thread may still be using descriptors, which the caller closes only once
    it has returned (a closed number could be reused by another connection meanwhile)."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved: the request is gone, its error with it
        raise


class FileChanged(OSError):
    """The file became shorter while it was sent: the response cannot be completed."""


def _sendfile_some(sock: int, fd: int, offset: int, count: int) -> tuple[int, bool]:
    """(bytes sent, whether the socket is full): runs in an executor thread."""
    sent = 0
    limit = min(count, SENDFILE_HOP)
    while sent < limit:
        try:
            n = os.sendfile(sock, fd, offset + sent, limit - sent)
        except BlockingIOError:
            return sent, True
        except InterruptedError:
            continue
        if n == 0:
            raise FileChanged("the file is shorter than when it was opened")
        sent += n
    return sent, False


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> None:
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        async with asyncio.timeout(timeout):
            await ready
    finally:
        loop.remove_writer(fd)


def can_sendfile(transport: Any) -> bool:
    """A plain TCP connection whose buffer is empty (the head already in the kernel)."""
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object"):
        return False
    sock = transport.get_extra_info("socket")
    return sock is not None and transport.get_write_buffer_size() == 0


async def send_file(transport: Any, fd: int, offset: int, count: int, write_timeout: float | None) -> None:
    """``count`` bytes of ``fd`` from ``offset`` to the client socket with sendfile (see the module
    docstring). Raises OSError (the client went away, the file shrank) or TimeoutError."""
    loop = asyncio.get_running_loop()
    sock = os.dup(transport.get_extra_info("socket").fileno())
    try:
        while count > 0:
            sent, full = await in_thread(_sendfile_some, sock, fd, offset, count)
            offset += sent
            count -= sent
            if full:
                await _writable(loop, sock, write_timeout)
    finally:
        os.close(sock)


async def read_chunks(fd: int, offset: int, count: int, write: Any) -> None:
    """``count`` bytes of ``fd`` from ``offset``, read ``CHUNK`` at a time in an executor, each awaited
    through ``write`` (which applies back-pressure)."""
    while count > 0:
        data = await in_thread(os.pread, fd, min(CHUNK, count), offset)
        if not data:
            raise FileChanged("the file is shorter than when it was opened")
        offset += len(data)
        count -= len(data)
        await write(data)


def transport_writer(transport: Any, request: Any, write_timeout: float | None) -> Any:
    """A ``write(data)`` for :func:`read_chunks` straight to the transport, waiting while the client's
    buffer is above ``WRITE_HIGH``."""

    async def write(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("client went away")
        transport.write(data)
        if transport.get_write_buffer_size() > WRITE_HIGH:
            async with asyncio.timeout(write_timeout):
                await request.writer.drain()

    return write
