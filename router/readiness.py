"""Waiting for an accepted socket to turn readable, before a transport owns it (the entry point's peeks, the
PROXY protocol header read)."""

from __future__ import annotations

import asyncio


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
