"""``errors``: replace a response whose status is in ``status`` by a page from another service (Traefik's
``errors``, its ``customerrors``).

The answer is watched as it goes out: one whose status is in the ranges is not forwarded (its body is
read and dropped); the page is then asked of ``service`` with a GET of ``query`` (``{status}`` the status
the client will get, ``{originalStatus}`` the service's, ``{url}`` the request's URL, query-escaped) and
streamed to the client with the original status, or its ``statusRewrites`` value, and the page's own
headers (``Content-Type``, length). The page request carries the client's headers (as earlier middlewares
left them), or only those named in ``errorRequestHeaders`` when it is set (none when it is empty).
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from discover.middlewares.resilience import ALL_HEADERS, ErrorPage, StatusRanges, status_ranges
from router.exchange import Exchange, Handler, Headers, PassSink, Sink
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares.status_sink import CatchingSink, in_ranges

__all__ = ["build"]

_URL_SAFE = "/?&=%:@!$'()*+,;~#[]"


class _Catcher(CatchingSink):
    """Passes an answer on unless its status is one to replace; then keeps only the status."""

    def __init__(self, downstream: Sink, ranges: StatusRanges) -> None:
        super().__init__(downstream)
        self.ranges = ranges

    def catches(self, status: int) -> bool:
        return in_ranges(self.ranges, status)


class _Status(PassSink):
    """The page's answer, with the status the client is to get."""

    def __init__(self, downstream: Sink, status: int) -> None:
        super().__init__(downstream)
        self.status = status

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.started = True
        await self.downstream.start(self.status, headers)


def _page_exchange(ex: Exchange, target: str, keep: tuple[str, ...], sink: Sink) -> Exchange:
    """The request for the error page: a GET of ``target`` on the same connection's identity."""
    page = Exchange(ex.ep, ex.request, ex.transport, ex.msg, ex.info, ex.host_header, ex.close, ex.router)
    page.method = "GET"
    path, _, query = target.partition("?")
    page.path, page.raw_query = path, query
    page.body = b""  # never the client's body: the page is asked with an empty GET
    if keep == ALL_HEADERS:
        page.header_edits = dict(ex.header_edits)
    else:
        wanted = {name.lower() for name in keep}
        for name in ex.headers:
            if name.lower() not in wanted:
                page.remove_header(name)
        for name in keep:
            value = ex.header(name)
            if value is not None:
                page.set_header(name, value)
            else:
                page.remove_header(name)
    page.sink = sink
    page.values = ex.values
    return page


# The page service's handler is taken when the chain is built: a reload must build it again (the service's
# servers may have changed, or the service may be gone), so the built object is never reused.
REUSE = False


def build(options: ErrorPage, ctx: BuildContext) -> object:
    try:
        ranges = status_ranges(options.status)
    except ValueError as exc:
        raise MiddlewareError("status", str(exc)) from None
    rewrites: list[tuple[StatusRanges, int]] = []
    for key, value in options.status_rewrites.items():
        try:
            rewrites.append((status_ranges((key,)), int(value)))
        except ValueError as exc:
            raise MiddlewareError(f"statusRewrites.{key}", str(exc)) from None
    page_handler = ctx.service_handler(options.service)
    if page_handler is None:
        raise MiddlewareError("service", f"service {options.service} does not exist or cannot be served")
    query = "/" + options.query.lstrip("/") if options.query else "/"
    keep = options.error_request_headers

    def wrap(next_handler: Handler) -> Handler:
        async def errors(ex: Exchange) -> None:
            outer = ex.sink
            catcher = ex.sink = _Catcher(outer, ranges)
            await next_handler(ex)
            ex.sink = outer
            original = catcher.caught
            if not original:
                return
            status = next((to for frm, to in rewrites if in_ranges(frm, original)), original)
            url = f"{ex.scheme}://{ex.host_header}{ex.info.path}"
            if ex.info.raw_query:
                url += "?" + ex.info.raw_query
            target = quote(  # what url.Parse would send for a space or a non-ASCII character
                query.replace("{status}", str(status))
                .replace("{originalStatus}", str(original))
                .replace("{url}", quote_plus(url)),
                safe=_URL_SAFE,
            )
            ex.reason = f"status {original}: error page {target} from {options.service}"
            page = _page_exchange(ex, target, keep, _Status(outer, status))
            try:
                await page_handler(page)
            finally:
                ex.close = ex.close or page.close
                ex.upstream = page.upstream
                page.release()

        return errors

    return wrap
