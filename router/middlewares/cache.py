"""``cache``: a shared HTTP cache (RFC 9111) in memory, one per (router, middleware), dockroute's own type.

What is stored: the answer to a GET, status 200, 301 or 404, whose ``Cache-Control``/``Expires`` give it a
lifetime (``s-maxage`` first, as a shared cache; then ``max-age``; then ``Expires`` minus ``Date``; then the
``defaultTtl`` option, off by default), without ``no-store``, ``private`` or ``no-cache`` (which would need
revalidation, which this cache does not do: such answers are simply not stored), without ``Set-Cookie``
and without ``Vary: *``; its body no longer than ``maxEntryBytes``. A request carrying ``Authorization``
or ``Cookie`` stores and is served only answers marked ``public``, so one user's page never reaches
another.

The key is scheme, host, path and query, whatever the method: a HEAD is answered from the GET's entry.
With ``Vary`` the request's values of the named headers join the key. Entries live in a
``cachetools.LRUCache`` measured in bytes (``maxSizeBytes``): the least recently used go first. An entry is
never served once its age reaches its lifetime (it is dropped when found stale); ``Age`` says how old
the answer is and ``X-Cache`` says ``HIT`` or ``MISS``.

A client's own ``Cache-Control: no-cache`` (or ``Pragma: no-cache``, or ``max-age=0``) skips the lookup
(a MISS whose answer refreshes the entry), as Caddy's cache and Souin do; ``no-store`` keeps its answer
out; ``max-age``/``min-fresh`` limit which entry it accepts; ``only-if-cached`` gets 504 on a MISS.

A HIT never reaches the service. Its head is built once, when the entry is stored; a HIT written straight
to the client (no earlier middleware watching the answer, HTTP/1.1 keep-alive) costs a dictionary lookup,
a clock read and one write. The answer to a MISS streams to the client while a copy is kept, given up as
soon as the body passes ``maxEntryBytes``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time
from http import HTTPStatus
from typing import Any

from cachetools import LRUCache

from discover.middlewares.cache import Cache
from router.exchange import WRITE_HIGH, Exchange, Handler, Headers, PassSink, Sink, answer
from router.middlewares import BuildContext

__all__ = ["CacheStore", "Entry", "build", "directives", "freshness", "vary_names"]

CACHEABLE_STATUS = frozenset({200, 301, 404})
_OWN = frozenset({"age", "x-cache", "content-length", "transfer-encoding", "connection", "keep-alive"})
_OVERHEAD = 256  # bytes counted per entry besides its body and head (objects, key)
_JOIN_BELOW = 1 << 16  # a HIT body smaller than this goes out in the same write as its head


# -- freshness rules (pure functions) ---------------------------------------------------------------------


def directives(value: str | None) -> dict[str, str | None]:
    """``Cache-Control`` → {directive (lower case): argument or None}; the first of duplicates wins."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in value.split(","):
        name, eq, arg = part.partition("=")
        name = name.strip().lower()
        if name and name not in out:
            out[name] = arg.strip().strip('"') if eq else None
    return out


DELTA_MAX = 1 << 31  # RFC 9111 section 1.2.2: a larger delta-seconds counts as 2^31
_HUGE = 1 << 63  # any number of more than 18 digits


def _digits(arg: str | None) -> int | None:
    """ASCII digits as a number, or None when missing or not a number. More than 18 significant digits
    gives :data:`_HUGE` without calling ``int()``, which refuses over 4300 digits (a 500 and a traceback
    per request from one client header) and takes quadratic time below that."""
    if arg is None:
        return None
    arg = arg.strip()
    if not (arg.isascii() and arg.isdigit()):  # "²".isdigit() is true
        return None
    arg = arg.lstrip("0")
    return _HUGE if len(arg) > 18 else int(arg or "0")


def delta_seconds(arg: str | None) -> int | None:
    """A ``max-age``-style argument: whole seconds (at most 2^31, as RFC 9111 says to read a larger
    one), or None when missing or not a number."""
    n = _digits(arg)
    return None if n is None else min(n, DELTA_MAX)


def http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Expires``) as a POSIX timestamp, or None when it does not parse."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # the asctime form has no zone: HTTP dates are always GMT
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def vary_names(headers: Any) -> tuple[str, ...] | None:
    """The request headers an answer varies on (lower case, in order), or None for ``Vary: *``."""
    names: list[str] = []
    for value in headers.getall("Vary", ()):
        for item in value.split(","):
            name = item.strip().lower()
            if name == "*":
                return None
            if name and name not in names:
                names.append(name)
    return tuple(names)


def freshness(status: int, headers: Any, now: float, default_ttl: float) -> tuple[float, float, bool] | None:
    """(lifetime, age when received, ``public``) of an answer a shared cache may store, in seconds; None
    when it must not store it (status, ``no-store``/``private``/``no-cache``, ``Set-Cookie``, ``Vary: *``,
    no lifetime left). ``now`` is the wall-clock time it arrived."""
    if status not in CACHEABLE_STATUS or "Set-Cookie" in headers:
        return None
    cc = directives(", ".join(headers.getall("Cache-Control", ())))
    if "no-store" in cc or "private" in cc or "no-cache" in cc:
        return None
    if vary_names(headers) is None:
        return None
    date = http_date(headers.get("Date"))
    if "s-maxage" in cc:
        lifetime = float(delta_seconds(cc["s-maxage"]) or 0)
    elif "max-age" in cc:
        lifetime = float(delta_seconds(cc["max-age"]) or 0)
    elif "Expires" in headers:
        expires = http_date(headers.get("Expires"))
        lifetime = 0.0 if expires is None else expires - (date if date is not None else now)
    else:
        lifetime = default_ttl
    apparent = max(0.0, now - date) if date is not None else 0.0
    age = max(apparent, float(delta_seconds(headers.get("Age")) or 0))
    if lifetime <= 0 or age >= lifetime:
        return None
    return lifetime, age, "public" in cc


class Ask:
    """What a request's own ``Cache-Control`` (or ``Pragma``) asks of the cache."""

    __slots__ = ("lookup", "store", "max_age", "min_fresh", "only_if_cached")

    def __init__(self, cache_control: str | None, pragma: str | None) -> None:
        cc = directives(cache_control)
        max_age = delta_seconds(cc["max-age"]) if "max-age" in cc else None
        no_cache = "no-cache" in cc or max_age == 0
        if cache_control is None and pragma is not None:
            no_cache = "no-cache" in pragma.lower()
        self.lookup = not no_cache
        self.store = "no-store" not in cc
        self.max_age = max_age
        self.min_fresh = delta_seconds(cc.get("min-fresh")) or 0
        self.only_if_cached = "only-if-cached" in cc

    def accepts(self, age: float, remaining: float) -> bool:
        """Whether an entry this old, fresh for ``remaining`` more seconds, will do."""
        if self.max_age is not None and age > self.max_age:
            return False
        return remaining >= self.min_fresh


_PLAIN = Ask(None, None)


# -- the store --------------------------------------------------------------------------------------------


class Entry:
    """One stored answer; ``head`` is its HTTP/1.1 head up to the value of ``Age``, built once."""

    __slots__ = ("status", "reason", "headers", "body", "expires", "born", "public", "head", "size")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        lifetime: float,
        age: float,
        public: bool,
    ) -> None:
        now = time.monotonic()
        self.status = status
        self.reason = reason
        self.headers = [(n, v) for n, v in headers if n.lower() not in _OWN]
        self.headers.append(("Content-Length", str(len(body))))
        self.body = body
        self.born = now - age  # monotonic time at which the answer's age was 0
        self.expires = self.born + lifetime  # never served from then on
        self.public = public
        phrase = reason or _phrase(status)
        lines = [f"HTTP/1.1 {status} {phrase}\r\n"]
        lines.extend(f"{n}: {v}\r\n" for n, v in self.headers)
        lines.append("X-Cache: HIT\r\nAge: ")
        self.head = "".join(lines).encode("latin-1", "replace")
        self.size = len(body) + len(self.head) + _OVERHEAD


class Variants:
    """Stored under the plain key of an answer with ``Vary``: the request headers its entries vary on."""

    __slots__ = ("names", "size")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.size = _OVERHEAD + sum(len(n) for n in names)


def _size(value: Entry | Variants) -> int:
    return value.size


class CacheStore:
    """The entries of one cache middleware: an LRU bounded in bytes."""

    def __init__(self, max_size: int) -> None:
        self.lru: LRUCache[Any, Entry | Variants] = LRUCache(max_size, getsizeof=_size)

    def find(self, key: tuple[str, ...], ex: Exchange) -> Entry | None:
        """The entry for ``key`` and the request's values of the headers it varies on (may be stale)."""
        try:
            found = self.lru[key]
            if type(found) is Variants:
                found = self.lru[(key, tuple(ex.header(n) for n in found.names))]
        except KeyError:
            return None
        return found  # type: ignore[return-value]

    def put(
        self, key: tuple[str, ...], names: tuple[str, ...], values: tuple[Any, ...], entry: Entry
    ) -> None:
        try:
            if not names:
                self.lru[key] = entry
                return
            old = self.lru.get(key)
            if type(old) is not Variants or old.names != names:
                self.lru[key] = Variants(names)
            self.lru[(key, values)] = entry
        except ValueError:  # larger than the whole cache
            pass

    def drop(self, key: tuple[str, ...], ex: Exchange) -> None:
        found = self.lru.get(key)
        if type(found) is Variants:
            key = (key, tuple(ex.header(n) for n in found.names))  # type: ignore[assignment]
        self.lru.pop(key, None)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


# -- the middleware ---------------------------------------------------------------------------------------


def build(options: Cache, ctx: BuildContext) -> object:
    return CacheMiddleware(options)


class CacheMiddleware:
    """The built ``cache``: its store survives reloads while its options do not change."""

    def __init__(self, options: Cache) -> None:
        self.options = options
        self.store = CacheStore(options.max_size_bytes)

    def __call__(self, next_handler: Handler) -> Handler:
        options = self.options
        store, default_ttl = self.store, options.default_ttl
        max_entry = min(options.max_entry_bytes, options.max_size_bytes)

        async def cache(ex: Exchange) -> None:
            method = ex.method
            if method != "GET" and method != "HEAD":
                await next_handler(ex)
                return
            if ex.header_edits:  # as the service will get them
                cache_control = ex.header("Cache-Control")
                pragma = ex.header("Pragma") if cache_control is None else None
                private = ex.header("Authorization") is not None or ex.header("Cookie") is not None
            else:
                headers = ex.msg.headers
                cache_control = headers.get("Cache-Control")
                pragma = headers.get("Pragma") if cache_control is None else None
                private = "Authorization" in headers or "Cookie" in headers
            ask = _PLAIN if cache_control is None and pragma is None else Ask(cache_control, pragma)
            key = (ex.scheme, ex.host, ex.path, ex.raw_query)
            if ask.lookup:
                entry = store.find(key, ex)
                if entry is not None:
                    now = time.monotonic()
                    if now >= entry.expires:
                        store.drop(key, ex)  # stale: never served, and no use keeping
                    elif (entry.public or not private) and (
                        ask is _PLAIN or ask.accepts(now - entry.born, entry.expires - now)
                    ):
                        sink = ex.client_sink
                        if ex.sink is sink and not ex.close and ex.msg.version[1] == 1 and not sink.started:
                            if _write_hit(ex, entry, int(now - entry.born)):
                                async with asyncio.timeout(ex.ep.write_timeout):
                                    await ex.request.writer.drain()
                            await sink.end()  # the access log
                        else:
                            await _serve(ex, entry, int(now - entry.born))
                        return
            if ask.only_if_cached:
                await answer(ex, 504, "504 Gateway Timeout\n", reason="only-if-cached and not in the cache")
                return
            keep = method == "GET" and ask.store
            ex.sink = Capture(ex.sink, ex, store, key, max_entry if keep else -1, default_ttl, private)
            await next_handler(ex)

        return cache


def _write_hit(ex: Exchange, entry: Entry, age: int) -> bool:
    """Write a HIT straight to the client (HTTP/1.1 keep-alive, no earlier middleware watching the answer):
    the stored head, ``Age`` and the body in one write. True when the client's buffer needs draining."""
    transport = ex.transport
    if transport.is_closing():
        raise ConnectionResetError("client went away")
    head = entry.head + b"%d\r\n\r\n" % age
    body = entry.body
    if ex.info.method == "HEAD" or not body:
        transport.write(head)
        sent = 0
    elif len(body) < _JOIN_BELOW:
        transport.write(head + body)
        sent = len(body)
    else:
        transport.writelines((head, body))
        sent = len(body)
    sink = ex.client_sink
    sink.started = True
    sink.status = entry.status  # for the access log and metrics
    sink.sent = sent  # body bytes, as every answer counts them (Traefik's DownstreamContentSize)
    return transport.get_write_buffer_size() > WRITE_HIGH


async def _serve(ex: Exchange, entry: Entry, age: int) -> None:
    """Answer from ``entry`` through ``ex.sink`` (an earlier middleware watches the answer, or the client
    needs other framing: HTTP/1.0, a closing connection)."""
    headers = Headers(entry.headers)
    headers["X-Cache"] = "HIT"
    headers["Age"] = str(age)
    sink = ex.sink
    await sink.start(entry.status, headers, entry.reason)
    if ex.info.method != "HEAD":
        await sink.write(entry.body)
    await sink.end()


class Capture(PassSink):
    """A MISS: marks the answer ``X-Cache: MISS`` and keeps a copy of it, stored at its end if the
    freshness rules allow; the copy is given up once the body passes ``limit`` (-1: no copy)."""

    def __init__(
        self,
        downstream: Sink,
        ex: Exchange,
        store: CacheStore,
        key: tuple[str, ...],
        limit: int,
        default_ttl: float,
        private: bool,
    ) -> None:
        super().__init__(downstream)
        self.ex = ex
        self.store = store
        self.key = key
        self.limit = limit
        self.default_ttl = default_ttl
        self.private = private
        self.parts: list[bytes] | None = None
        self.size = 0
        self.kept: tuple[int, str, list[tuple[str, str]], float, float, bool] | None = None
        self.vary: tuple[tuple[str, ...], tuple[Any, ...]] = ((), ())

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        if self.limit >= 0:
            self._decide(status, headers, reason)
        headers.popall("X-Cache", None)
        headers["X-Cache"] = "MISS"
        await super().start(status, headers, reason)

    def _decide(self, status: int, headers: Headers, reason: str) -> None:
        fresh = freshness(status, headers, time.time(), self.default_ttl)
        if fresh is None or (self.private and not fresh[2]):
            return
        length = _digits(headers.get("Content-Length"))
        if length is not None and length > self.limit:
            return
        names = vary_names(headers) or ()
        self.vary = (names, tuple(self.ex.header(n) for n in names))
        self.kept = (status, reason, list(headers.items()), *fresh)
        self.parts = []

    async def write(self, data: bytes) -> None:
        parts = self.parts
        if parts is not None and data:
            self.size += len(data)
            if self.size > self.limit:
                self.parts = None  # too large: passed through, not stored
            else:
                parts.append(data if type(data) is bytes else bytes(data))
        await self.downstream.write(data)

    async def end(self) -> None:
        if self.parts is not None and self.kept is not None:
            status, reason, head, lifetime, age, public = self.kept
            body = b"".join(self.parts)
            length = _digits(dict((n.lower(), v) for n, v in head).get("content-length"))
            if length is None or length == len(body):  # a short body is never stored
                entry = Entry(status, reason, head, body, lifetime, age, public)
                self.store.put(self.key, *self.vary, entry)
            self.parts = None
        await self.downstream.end()
