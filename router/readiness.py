"""Waiting for an accepted socket to turn readable, before a transport owns it (the entry point's peeks, the
PROXY protocol header read).

Peeked bytes (``MSG_PEEK``) stay queued and keep a socket readable, so a reader that peeks and then waits
for *more* cannot wait on plain readiness (it would spin) nor re-peek on a timer (it would poll, for every
stalled client). Both peek readers (router.server's ClientHello peek, router.proxy_protocol's header read)
raise the socket's low-water mark to the bytes they need instead (:func:`set_rcvlowat`), wait once
(:func:`readable`), and tell a peer that stopped sending from an early wake-up with
:func:`peer_done_sending`; the mark is put back to 1 before the socket is handed on."""

from __future__ import annotations

import asyncio
import select
import socket

__all__ = ["peer_done_sending", "readable", "set_rcvlowat"]


async def readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (False after ``timeout`` seconds); the reader is always removed."""
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        async with asyncio.timeout(timeout):
            await ready
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


def set_rcvlowat(conn: socket.socket, n: int) -> bool:
    """Make ``conn`` readable only once ``n`` bytes are queued; False where the system refuses.

    Linux (since 2.6.28) and the BSDs honour the mark in poll, epoll and kqueue, so uvloop's readiness
    follows it too. ``n`` is at most one TLS record (16389 bytes) or one PROXY header (4112), far below
    the default receive buffer, so the kernel has no reason to grow the buffer or clamp the window for
    it. A TCP socket only: Linux's AF_UNIX sockets accept the option and ignore it (readable at once)."""
    option = getattr(socket, "SO_RCVLOWAT", None)
    if option is None:
        return False
    try:
        conn.setsockopt(socket.SOL_SOCKET, option, n)
    except OSError:
        return False
    return True


def peer_done_sending(fd: int) -> bool:
    """Whether the peer has shut its side down (FIN) or reset the connection.

    Both make a socket readable whatever its low-water mark, and a peeker never sees the end of the
    stream (the queued bytes stay, so ``recv`` keeps returning them, never b""): waiting on readiness
    again would spin. Only Linux tells without consuming anything (POLLRDHUP); elsewhere this answers
    False and the caller re-peeks on a timer."""
    rdhup = getattr(select, "POLLRDHUP", 0)
    if not rdhup or not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | rdhup)
    return any(events & (rdhup | select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))
