"""``contentType``: Content-Type detection for answers that have none (Traefik v3's ``contentType``).

Traefik v3, like dockroute, never adds a sniffed ``Content-Type`` by default: a proxy leaves the header
as the backend sent it. This middleware turns Go's server-side detection back on for its routers: an
answer without ``Content-Type`` and without ``Content-Encoding`` that has a body gets the type
:func:`~router.middlewares.headers_sniff.detect_content_type` finds in its first bytes (the first piece
written, at most 512 bytes, as Go sniffs its first write). Bodyless answers (HEAD, 1xx, 204, 304, an
empty body) get none.

``autoDetect`` is deprecated in Traefik v3 and warned about: ``false`` makes the middleware do nothing,
``true`` is the same as leaving it out.
"""

from __future__ import annotations

import logging
from typing import Any

from discover.middlewares.headers import ContentType
from router.exchange import Exchange, Handler, PassSink, Sink
from router.exchange import Headers as ResponseHeaders
from router.middlewares import Before, BuildContext
from router.middlewares.headers_sniff import detect_content_type

__all__ = ["build"]

log = logging.getLogger("dockroute.router")


class _SniffSink(PassSink):
    """Holds the head of an answer without a type until its first body bytes, then types it."""

    def __init__(self, downstream: Sink, head_request: bool) -> None:
        super().__init__(downstream)
        self.head_request = head_request
        self.held: tuple[int, ResponseHeaders, str] | None = None

    async def start(self, status: int, headers: ResponseHeaders, reason: str = "") -> None:
        if (
            self.head_request
            or status < 200
            or status in (204, 304)
            or "Content-Type" in headers
            or headers.get("Content-Encoding")
            or headers.get("Content-Length") == "0"
        ):
            await super().start(status, headers, reason)
            return
        self.started = True
        self.held = (status, headers, reason)

    async def _release(self, data: bytes) -> None:
        assert self.held is not None
        status, headers, reason = self.held
        self.held = None
        if data:
            headers["Content-Type"] = detect_content_type(data)
        await self.downstream.start(status, headers, reason)

    async def write(self, data: bytes) -> None:
        if self.held is not None:
            if not data:
                return
            await self._release(data)
        await self.downstream.write(data)

    async def end(self) -> None:
        if self.held is not None:
            await self._release(b"")
        await self.downstream.end()


def build(options: ContentType, ctx: BuildContext) -> Any:
    if options.auto_detect is not None:
        log.warning(
            "middleware %s (contentType): option autoDetect is deprecated (as in Traefik v3); "
            "the middleware alone turns detection on%s",
            ctx.name,
            ", and autoDetect=false turns this one off" if not options.auto_detect else "",
        )
    enabled = options.auto_detect is not False

    if not enabled:
        return _unchanged

    def content_type(ex: Exchange) -> None:
        ex.sink = _SniffSink(ex.sink, ex.info.method == "HEAD")

    return Before(content_type)


def _unchanged(next_handler: Handler) -> Handler:
    return next_handler
