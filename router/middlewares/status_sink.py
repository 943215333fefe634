"""A response sink that lets an answer through unless its status is one to catch: ``errors`` catches the
statuses it replaces by a page, ``retry`` those it retries on. A caught answer's head is not sent and its
body is read and dropped, so the middleware can still answer in its place.
"""

from __future__ import annotations

from discover.middlewares.resilience import StatusRanges
from router.exchange import Headers, PassSink

__all__ = ["CatchingSink", "in_ranges"]


def in_ranges(ranges: StatusRanges, status: int) -> bool:
    return any(lo <= status <= hi for lo, hi in ranges)


class CatchingSink(PassSink):
    """Passes an answer on unless :meth:`catches` says otherwise; ``caught`` is then its status (0: none)."""

    caught = 0

    def catches(self, status: int) -> bool:
        raise NotImplementedError

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.started = True
        if self.catches(status):
            self.caught = status
            return
        await self.downstream.start(status, headers, reason)

    async def write(self, data: bytes) -> None:
        if not self.caught:
            await self.downstream.write(data)

    async def end(self) -> None:
        if not self.caught:
            await self.downstream.end()
