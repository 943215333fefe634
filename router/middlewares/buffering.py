"""``buffering``: read the whole request before calling the service and hold the whole response before
answering (Traefik's ``buffering``, which is oxy's ``buffer``).

- ``maxRequestBodyBytes`` (> 0): a body longer than that is refused with 413, before the service is
  called (at once when ``Content-Length`` says so); the body the service gets is whole, with its length.
- ``maxResponseBodyBytes`` (> 0): a response body longer than that is not forwarded; the client gets 500.
  So the response is held until it is complete, and then sent with its ``Content-Length``.

Traefik keeps up to ``memRequestBodyBytes``/``memResponseBodyBytes`` (1 MiB) in memory and spills the
rest to disk. dockroute keeps bodies in memory only: with a maximum set, up to that maximum; without one
(0 or -1, no maximum), up to the ``mem*`` threshold, and a longer body is streamed on instead of spilled
(the service gets it as it arrives, the client gets the response as it comes). Memory per request stays
bounded by the options either way. ``retryExpression`` is refused (use ``retry``).
"""

from __future__ import annotations

from discover.middlewares.resilience import MEM_BODY_DEFAULT, Buffering
from router.exchange import Exchange, Handler, Headers, PassSink, Sink, answer
from router.middlewares import BuildContext, MiddlewareError

__all__ = ["build"]

_BODYLESS = frozenset({204, 304})


async def _read_request(ex: Exchange, limit: int, mem: int) -> bool:
    """Buffer the request body; False when it was refused with 413 (``limit`` > 0 exceeded)."""
    if ex.body is not None:
        if limit > 0 and len(ex.body) > limit:
            await _too_large(ex)
            return False
        return True
    length = ex.headers.get("Content-Length")
    if not ex.msg.chunked and (length is None or length.strip() in ("", "0")):
        return True
    declared = int(length) if length is not None and length.strip().isdigit() else None
    if limit > 0:
        if (declared is not None and declared > limit) or await ex.read_body(limit) is None:
            await _too_large(ex)
            return False
        return True
    if declared is not None:
        if declared <= mem:
            await ex.read_body()
        return True  # longer than the memory threshold: streamed on
    await ex.read_body_upto(mem)  # buffered if it ends within mem bytes, else streamed on
    return True


async def _too_large(ex: Exchange) -> None:
    ex.close = True  # the rest of the body was not read: the connection cannot carry another request
    await answer(ex, 413, "Request Entity Too Large", reason="request body larger than maxRequestBodyBytes")


class _Hold(PassSink):
    """Holds the response until it is complete (up to ``limit`` bytes, else a 500 replaces it); without a
    limit, up to ``mem`` bytes, then it streams on."""

    def __init__(self, downstream: Sink, ex: Exchange, limit: int, mem: int) -> None:
        super().__init__(downstream)
        self.ex = ex
        self.limit = limit
        self.mem = mem
        self.head: tuple[int, Headers, str] | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.over = False
        self.streaming = False

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.started = True
        self.head = (status, headers, reason)

    async def write(self, data: bytes) -> None:
        if self.streaming:
            await self.downstream.write(data)
            return
        if self.over or not data:
            return
        self.size += len(data)
        if self.limit > 0 and self.size > self.limit:
            self.over = True
            self.parts = []  # the body is dropped as it comes: memory stays bounded
            return
        self.parts.append(data)
        if self.limit <= 0 and self.size > self.mem:
            await self._flush(None)
            self.streaming = True

    async def end(self) -> None:
        if self.streaming:
            await self.downstream.end()
            return
        if self.over:
            self.ex.reason = f"response body larger than maxResponseBodyBytes ({self.limit})"
            await _answer_to(self.downstream, 500, b"Internal Server Error")
            return
        await self._flush(self.size)
        await self.downstream.end()

    async def _flush(self, length: int | None) -> None:
        """The head (with the body's length when it is whole) and the body held so far."""
        assert self.head is not None
        status, headers, reason = self.head
        bodyless = self.ex.method == "HEAD" or status in _BODYLESS or status < 200
        if not bodyless and length is not None:
            headers["Content-Length"] = str(length)
        await self.downstream.start(status, headers, reason)
        for part in self.parts:
            await self.downstream.write(part)
        self.parts = []


async def _answer_to(sink: Sink, status: int, body: bytes) -> None:
    head = Headers({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))})
    await sink.start(status, head)
    await sink.write(body)
    await sink.end()


def build(options: Buffering, ctx: BuildContext) -> object:
    if options.retry_expression.strip():
        raise MiddlewareError("retryExpression", "not supported by dockroute; use a retry middleware instead")
    max_req, max_resp = options.max_request_body_bytes, options.max_response_body_bytes
    mem_req = options.mem_request_body_bytes or MEM_BODY_DEFAULT
    mem_resp = options.mem_response_body_bytes or MEM_BODY_DEFAULT

    def wrap(next_handler: Handler) -> Handler:
        async def buffering(ex: Exchange) -> None:
            if not await _read_request(ex, max_req, mem_req):
                return
            ex.sink = _Hold(ex.sink, ex, max_resp, mem_resp)
            await next_handler(ex)

        return buffering

    return wrap
