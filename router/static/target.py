"""The target of a static service: answers on the fast path (``handle``, bytes straight to the transport)
and at the end of a middleware chain (``serve``, through ``ex.sink``).

What a path leads to is resolved in an executor (:meth:`Files.resolve`: realpath, stat, open, and the
whole content of files up to 64 KiB) and kept in a TTL cache on the loop for ``TTL`` seconds, bounded in
bytes: a hot small file is then answered with one ``transport.write`` and no executor hop, and a file
changed on disk is seen within ``TTL`` seconds. Bigger files are opened again (in an executor) for each
request, checked to be the same file, and sent with sendfile (:mod:`router.static.send`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from router.exchange import Exchange, Headers
from router.replies import SENT_CLOSE, SENT_KEEP, Sent
from router.rules import RequestInfo
from router.static.http import NOT_ALLOWED, Reply, date_line, plan
from router.static.resolve import Files, Found, Missing, Variant, open_checked
from router.static.send import FileChanged, can_sendfile, read_chunks, send_file, transport_writer
from router.targets import SERVED_HERE

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

__all__ = ["CACHE_BYTES", "TTL", "FileCache", "StaticTarget"]

log = logging.getLogger("dockroute.proxy")

TTL = 1.0  # seconds a resolved path (metadata, small contents) is reused
CACHE_BYTES = 32 * 1024 * 1024  # budget of one service's cache (contents + 1 KiB per entry)
MAX_KEY = 512  # longer paths are resolved every time rather than cached


class FileCache:
    """One static service's files and the resolved paths, shared by every router using the service."""

    def __init__(self, files: Files, ttl: float = TTL, budget: int = CACHE_BYTES) -> None:
        self.files = files
        self.entries: TTLCache[str, Found] = TTLCache(budget, ttl, getsizeof=lambda f: f.weight)

    async def lookup(self, path: str) -> Found:
        found = self.entries.get(path)
        if found is not None:
            return found
        found = await asyncio.get_running_loop().run_in_executor(None, self.files.resolve, path)
        if len(path) <= MAX_KEY:
            try:
                self.entries[path] = found
            except ValueError:  # bigger than the whole budget
                pass
        return found

    def forget(self, path: str) -> None:
        self.entries.pop(path, None)


def _open_same(v: Variant) -> int | None:
    """Open the variant's file again; None when it is not the file resolved any more (executor)."""
    try:
        fd, st = open_checked(v.path, v.dev_ino)
    except OSError:
        return None
    if st.st_size != v.size or st.st_mtime_ns != v.mtime_ns:
        os.close(fd)
        return None
    return fd


def _close_result(fut: asyncio.Future[int | None]) -> None:
    if not fut.cancelled() and fut.exception() is None and (fd := fut.result()) is not None:
        os.close(fd)


class StaticTarget:
    """A router's static service."""

    __slots__ = ("router", "service", "cache")

    def __init__(self, router: str, service: str, cache: FileCache) -> None:
        self.router = router
        self.service = service
        self.cache = cache

    async def _reply(self, method: str, path: str, get: Any, raw_query: str) -> tuple[Reply, int | None]:
        """The reply and, when its bytes are in a file, the file opened (or a 404 if it changed twice)."""
        if method != "GET" and method != "HEAD":
            return NOT_ALLOWED, None
        loop = asyncio.get_running_loop()
        for _ in range(2):
            reply = plan(await self.cache.lookup(path), method, get, raw_query)
            if (
                reply.variant is None
                or method == "HEAD"
                or reply.status == 304
                or reply.in_memory() is not None
            ):
                return reply, None
            opening = loop.run_in_executor(None, _open_same, reply.variant)
            try:
                fd = await asyncio.shield(opening)
            except asyncio.CancelledError:  # the client went away: close what the thread opens
                opening.add_done_callback(_close_result)
                raise
            if fd is not None:
                return reply, fd
            self.cache.forget(path)  # changed on disk since it was resolved: resolve again
        return plan(Missing("the file keeps changing"), method, get, raw_query), None

    async def handle(
        self,
        ep: EntryPointHandler,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        host_header: str,
        close: bool,
    ) -> Sent:
        """The fast path: the answer written to the transport, the file sent with sendfile."""
        reply, fd = await self._reply(info.method, info.path, msg.headers.get, info.raw_query)
        head = reply.head(close, msg.version[1] == 0)
        if fd is None:
            body = b"" if info.method == "HEAD" or reply.status == 304 else reply.in_memory() or b""
            if not transport.is_closing():
                transport.write(head + body if body else head)
            if ep.observe:
                ep.log(request, info, reply.status, len(body), self.router, SERVED_HERE, reply.reason)
            return SENT_CLOSE if close else SENT_KEEP
        try:
            if transport.is_closing():
                if ep.observe:
                    ep.log(request, info, 499, 0, self.router, None, "client went away before the file")
                return SENT_CLOSE
            transport.write(head)
            if can_sendfile(transport):
                await send_file(transport, fd, reply.start, reply.length, ep.write_timeout)
            else:
                write = transport_writer(transport, request, ep.write_timeout)
                await read_chunks(fd, reply.start, reply.length, write)
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, FileChanged):
                log.warning("router %s: %s changed while it was sent", self.router, info.path)
            if ep.observe:  # cut short: the status the client got; how much of the body is not known here
                why = f"file not sent whole: {type(exc).__name__} {exc}".rstrip()
                ep.log(request, info, reply.status, 0, self.router, SERVED_HERE, why)
            if isinstance(exc, asyncio.CancelledError):
                raise
            transport.abort()
            return SENT_CLOSE
        finally:
            os.close(fd)
        if ep.observe:
            ep.log(request, info, reply.status, reply.length, self.router, SERVED_HERE, reply.reason)
        return SENT_CLOSE if close else SENT_KEEP

    async def serve(self, ex: Exchange) -> None:
        """The end of a middleware chain: the same answer through ``ex.sink``, the file read in chunks in
        an executor (the middlewares may change the body, so no sendfile here)."""
        reply, fd = await self._reply(ex.method, ex.path, ex.header, ex.raw_query)
        ex.upstream = SERVED_HERE  # the service answers: it counts at the service level
        if reply.reason is not None:
            ex.reason = reply.reason
        headers = Headers(reply.pairs())
        headers["Date"] = date_line()[6:-2].decode()
        bodyless = ex.method == "HEAD" or reply.status == 304
        try:
            await ex.sink.start(reply.status, headers)
            if fd is not None:
                await read_chunks(fd, reply.start, reply.length, ex.sink.write)
            elif not bodyless:
                await ex.sink.write(reply.in_memory() or b"")
            await ex.sink.end()
        except FileChanged:
            log.warning("router %s: %s changed while it was sent", self.router, ex.path)
            ex.reason = "the file changed while it was sent"
            ex.close = True
            ex.transport.abort()
        finally:
            if fd is not None:
                os.close(fd)
