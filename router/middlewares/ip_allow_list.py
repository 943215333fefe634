"""``ipAllowList`` (and Traefik v2's ``ipWhiteList``): only clients whose address, as ``ipStrategy``
picks it, is within ``sourceRange`` reach the service; the others get ``rejectStatusCode`` (403 unless
set; always 403 for ``ipWhiteList``) with the status text as body, as Traefik answers. An address that
cannot be picked (``depth`` deeper than the X-Forwarded-For list, an untrusted peer's header dropped) or
parsed is refused, never let through.
"""

from __future__ import annotations

from collections.abc import Awaitable
from http import HTTPStatus

from discover.middlewares.access import IPAllowList, IPWhiteList
from router.exchange import Exchange, answer
from router.middlewares import Before, BuildContext, MiddlewareError
from router.middlewares.source import Checker, ip_strategy


def build(options: IPAllowList | IPWhiteList, ctx: BuildContext) -> object:
    if not options.source_range:
        raise MiddlewareError("sourceRange", "is empty: no client would be allowed")
    try:
        checker = Checker(options.source_range)
    except ValueError as exc:
        raise MiddlewareError("sourceRange", str(exc)) from None
    status = getattr(options, "reject_status_code", 0) or 403
    try:
        text = HTTPStatus(status).phrase
    except ValueError:
        raise MiddlewareError("rejectStatusCode", f"invalid HTTP status code {status}") from None
    pick = ip_strategy(options.ip_strategy, f"middleware {ctx.name}: ipStrategy")
    body = text.encode()

    name = ctx.name

    def ip_allow_list(ex: Exchange) -> Awaitable[None] | None:
        client = pick(ex)
        if checker.authorized(client):
            return None
        return answer(ex, status, body, reason=f"{name}: client address {client!r} not allowed")

    return Before(ip_allow_list)
