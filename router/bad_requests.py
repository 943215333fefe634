"""Bad requests in the log: what an internet-facing proxy meets all day from scanners, kept readable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("dockroute.server")


class BadRequestLog:
    """Bad requests in the log: one line at most per ``every`` seconds, naming the peer and the parser's
    reason, never the request's bytes (aiohttp's message quotes them over three lines: log injection), and
    how many were left out since the last line. Internet scanners send malformed requests all day; a flood
    of them must not become a flood of lines (CWE-117, CWE-779)."""

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.next_at = 0.0
        self.left_out = 0

    def note(self, peer: str | None, message: str) -> None:
        now = self.clock()
        if now < self.next_at:
            self.left_out += 1
            return
        self.next_at = now + self.every
        more = f" ({self.left_out} more since the last line)" if self.left_out else ""
        self.left_out = 0
        log.info("bad request from %s: %s%s", peer or "?", reason_of(message), more)


def reason_of(message: str) -> str:
    """The parser's reason without the bytes it quotes: the text before its first ``:`` line break or
    quote, printable characters only, 100 at most."""
    # aiohttp's shape: "<code>, message:\n  <reason>:\n\n  b'<the bytes>'\n  ^"
    text = message.split("message:\n", 1)[-1].strip()
    head = text.split(":\n", 1)[0].split("'", 1)[0].split('"', 1)[0] if text else ""
    head = head.splitlines()[0].strip(" ,:") if head.strip() else ""
    head = head or "malformed request"
    return "".join(ch if ch.isprintable() else "?" for ch in head)[:100]
