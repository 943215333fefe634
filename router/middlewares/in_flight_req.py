"""``inFlightReq``: at most ``amount`` requests of one source in progress at once; one more gets 429
``max connections reached: <amount>`` (Traefik's answer). The source is the request's Host unless
``sourceCriterion`` says otherwise, as in Traefik (``amount`` 0, Traefik's default, refuses everything).

A request counts from the moment it passes until the chain below returns, whatever way it returns: an
answer, an exception, or the task cancelled because the client went away (``finally``). A source's entry
is deleted when its count falls to 0, so the table holds only sources with requests in progress.
"""

from __future__ import annotations

from discover.middlewares.access import InFlightReq
from router.exchange import Exchange, Handler, answer
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares.source import source_extractor


class InFlight:
    """The counters of one built middleware (kept across reloads while its options do not change)."""

    __slots__ = ("amount", "counts", "source")

    def __init__(self, options: InFlightReq, where: str) -> None:
        if options.amount < 0:
            raise MiddlewareError("amount", f"must be at least 0, got {options.amount}")
        self.amount = options.amount
        self.source = source_extractor(options.source_criterion, True, where)
        self.counts: dict[str, int] = {}

    def __call__(self, next_handler: Handler) -> Handler:
        counts, amount, source = self.counts, self.amount, self.source
        body = f"max connections reached: {amount}".encode()

        async def in_flight_req(ex: Exchange) -> None:
            key = source(ex)
            n = counts.get(key, 0)
            if n >= amount:
                await answer(ex, 429, body, reason=f"in-flight limit {amount} reached for {key!r}")
                return
            counts[key] = n + 1
            try:
                await next_handler(ex)
            finally:
                left = counts[key] - 1
                if left:
                    counts[key] = left
                else:
                    del counts[key]

        return in_flight_req


def build(options: InFlightReq, ctx: BuildContext) -> object:
    return InFlight(options, f"middleware {ctx.name}")
