"""How long a client may take to send a request body: Traefik's ``readTimeout`` and a minimum pace.

Traefik's ``respondingTimeouts.readTimeout`` (60 s by default since v2.11.2, its fix for GHSA-4vwx-54mw-vqfw
/ CVE-2024-28869) bounds the whole request, so an upload that takes longer than that is cut however fast it
goes; the common answer, ``readTimeout: 0`` (traefik#10654, #10611 and many charts), removes every bound,
and a client that stops sending mid-body then holds its connection, and the backend's, forever.

dockroute keeps ``readTimeout`` as Traefik has it and adds, whatever its value, the body rule of Apache's
mod_reqtimeout with its defaults (``body=20,MinRate=500``, the rule traefik#10611 asks for): a body has
20 seconds, plus one second for every 500 bytes it has sent. A client that stalls or trickles is cut
within seconds of falling under 500 bytes a second on average; an upload that keeps going, at any size, is
never cut by it. Its cost: one timer per request body (the one ``readTimeout`` needed anyway) and one
addition per chunk read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator

# mod_reqtimeout's default body rule: 20 s to begin with, one more second for every 500 bytes received.
ALLOWANCE = 20.0
MIN_RATE = 500.0


class BodyPace:
    """The deadline of one body being read by the current task: cancels that task when the body falls
    under the pace, or when ``read_timeout`` (seconds, 0 or None for none) has passed since it began.
    ``received`` is added to by the reader; ``why`` says what cut it (None while not cut)."""

    __slots__ = ("received", "why", "_loop", "_task", "_start", "_limit_at", "_handle")

    def __init__(self, read_timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self.received = 0
        self.why: str | None = None
        self._loop = loop
        self._task = asyncio.current_task()
        self._start = now = loop.time()
        self._limit_at = now + read_timeout if read_timeout else math.inf
        self._handle = loop.call_at(min(now + ALLOWANCE, self._limit_at), self._check)

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

    def stop(self) -> None:
        """The body is read (or abandoned): no more checks."""
        self._handle.cancel()


@contextlib.contextmanager
def paced(read_timeout: float | None) -> Iterator[BodyPace]:
    """``with paced(ep.read_timeout) as pace:`` around the reading of a body (``pace.received += n`` per
    chunk): a body cut by the pace or by readTimeout raises TimeoutError there (the task's own cancellation
    is taken back, so later timeouts in the task work), any other cancellation passes, even one arriving in
    the same loop turn as the cut (aiohttp cancelling the handler of a client that left): as asyncio.timeout
    does, the cut becomes TimeoutError only when no cancellation but ours is pending."""
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    pace = BodyPace(read_timeout)
    try:
        yield pace
    except asyncio.CancelledError:
        if pace.why is None or task is None:
            raise
        if task.uncancel() > cancelling:
            raise  # someone else cancelled the task too: theirs goes on, ours is taken back
        raise TimeoutError(pace.why) from None
    finally:
        pace.stop()
