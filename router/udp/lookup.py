"""Host-name servers of UDP services: one lookup per host at a time, its answer kept for a few seconds.

Traefik dials a host-name server for each session, so Go's resolver runs once per new client. Here a
lookup takes a thread of the loop's shared executor (``getaddrinfo`` blocks): one per session would let a
flood of new clients (spoofed source addresses cost nothing) fill that pool and delay every other
lookup of the process. So every session waiting for the same ``host:port`` shares one lookup, and its
answer (or its failure) is reused for :data:`TTL` (:data:`FAILURE_TTL`) seconds: at most one lookup per
host in flight, and a few per minute, whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["FAILURE_TTL", "TTL", "HostLookups", "Resolved"]

TTL = 5.0  # seconds an answer is reused: a DNS change reaches new sessions within this long
FAILURE_TTL = 1.0  # a failed lookup is not retried for each new client either
MAX_CACHED = 1024  # answers kept; the expired ones are dropped when there are more

# What a lookup gives: getaddrinfo's answers, or why it failed (OSError, or UnicodeError for a name that
# cannot be encoded).
Resolved = list[tuple[Any, ...]] | BaseException


class HostLookups:
    """The lookups of every UDP entry point of the process (shared: one per host, not per entry point)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, Resolved]] = {}
        self._waiting: dict[tuple[str, int], list[Callable[[Resolved], None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.lookups = 0  # started, for tests and the debug log

    def resolve(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int, done: Callable[[Resolved], None]
    ) -> None:
        """Call ``done`` with the answer for ``host:port``: at once when a recent one is known, else when
        the lookup (started now, or already running for another session) ends."""
        key = (host, port)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > loop.time():
            done(hit[1])
            return
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append(done)
            return
        self._waiting[key] = [done]
        self.lookups += 1
        task = loop.create_task(self._lookup(loop, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int]) -> None:
        result: Resolved
        try:
            result = await loop.getaddrinfo(key[0], key[1], type=socket.SOCK_DGRAM)
            ttl = TTL
        except (OSError, UnicodeError) as exc:
            result, ttl = exc, FAILURE_TTL
        except asyncio.CancelledError:
            self._waiting.pop(key, None)
            raise
        now = loop.time()
        if len(self._cache) >= MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + ttl, result)
        for done in self._waiting.pop(key, ()):
            done(result)

    def close(self) -> None:
        """Stop the lookups still running (shutdown): their sessions are closed anyway."""
        for task in list(self._tasks):
            task.cancel()
