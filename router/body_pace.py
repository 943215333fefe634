"""How long a client may take to send a request body: Traefik's ``readTimeout`` and a minimum pace.

Traefik's ``respondingTimeouts.readTimeout`` (60 s by default since v2.11.2, its fix for GHSA-4vwx-54mw-vqfw
/ CVE-2024-28869) bounds the whole request, so an upload that takes longer than that is cut however fast it
goes; the common answer, ``readTimeout: 0`` (traefik#10654, #10611 and many charts), removes every bound,
and a client that stops sending mid-body then holds its connection, and the backend's, forever.

dockroute keeps ``readTimeout`` as Traefik has it and adds, whatever its value, the body rule of Apache's
mod_reqtimeout with its defaults (``body=20,MinRate=500``, the rule traefik#10611 asks for): a body has
20 seconds, plus one second for every 500 bytes it has sent. A client that stalls or trickles is cut
within seconds of falling under 500 bytes a second on average; an upload that keeps going, at any size, is
never cut by it. Its cost: one timer per request body still on its way (the one ``readTimeout`` needed
anyway; none for a body that came whole with its head) and one addition per chunk read.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

# mod_reqtimeout's default body rule: 20 s to begin with, one more second for every 500 bytes received.
ALLOWANCE = 20.0
MIN_RATE = 500.0


class BodyPace:
    """``with BodyPace(ep.read_timeout, content) as pace:`` around the reading of one body by the current
    task (``pace.received += n`` per chunk): the task is cancelled when the body falls under the pace, or
    when ``read_timeout`` (seconds, 0 or None for none) has passed since it began, and that cut leaves the
    block as TimeoutError (the task's own cancellation is taken back, so later timeouts in the task work).
    Any other cancellation passes, even one arriving in the same loop turn as the cut (aiohttp cancelling
    the handler of a client that left): as asyncio.timeout does, the cut becomes TimeoutError only when no
    cancellation but ours is pending. ``why`` says what cut it (None while not cut).

    A body already whole when reading begins (``content.is_eof()``: it came with the head, the common small
    POST) cannot stall: no timer is set for it. A class rather than a generator-based context manager: one
    object per body, no generator frame."""

    __slots__ = ("received", "why", "_loop", "_task", "_cancelling", "_start", "_limit_at", "_handle")

    def __init__(self, read_timeout: float | None, content: Any = None) -> None:
        self.received = 0
        self.why: str | None = None
        self._handle: asyncio.TimerHandle | None = None
        if content is not None and content.is_eof():
            return  # nothing left to wait for
        self._loop = loop = asyncio.get_running_loop()
        self._task = task = asyncio.current_task()
        self._cancelling = task.cancelling() if task is not None else 0
        self._start = now = loop.time()
        self._limit_at = now + read_timeout if read_timeout else math.inf
        self._handle = loop.call_at(min(now + ALLOWANCE, self._limit_at), self._check)

    def __enter__(self) -> BodyPace:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._handle is None:
            return
        self._handle.cancel()
        if kind is None or self.why is None or not issubclass(kind, asyncio.CancelledError):
            return
        task = self._task
        if task is None or task.uncancel() > self._cancelling:
            return  # someone else cancelled the task too: theirs goes on, ours is taken back
        raise TimeoutError(self.why) from None

    def _check(self) -> None:
        now = self._loop.time()
        paced_at = self._start + ALLOWANCE + self.received / MIN_RATE
        if now >= self._limit_at:
            self.why = "request body not read within readTimeout"
        elif now >= paced_at:
            self.why = f"request body slower than {MIN_RATE:.0f} bytes/s after {ALLOWANCE:.0f} s"
        else:
            self._handle = self._loop.call_at(min(paced_at, self._limit_at), self._check)
            return
        if self._task is not None:
            self._task.cancel()


paced = BodyPace  # ``with paced(ep.read_timeout, content) as pace:``
