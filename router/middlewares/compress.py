"""``compress``: the answer encoded with zstd, brotli or gzip, chosen by the client's ``Accept-Encoding``
(Traefik's ``compress``), streaming.

Negotiation is Traefik's: q-values rank the codings (``q=0`` refuses one), among equal q-values the order
of ``encodings`` decides (``*`` before any named coding, ``identity`` after all); ``*`` means
``defaultEncoding`` (or the first of ``encodings``); no header means ``defaultEncoding`` or nothing; an
empty header means nothing. Requests whose own ``Content-Type`` is excluded (``application/grpc`` always)
and HEAD requests pass untouched.

A response is compressed unless it is bodyless (1xx, 204, 304), already encoded (``Content-Encoding``),
a range (206, ``Content-Range``), marked ``Cache-Control: no-transform``, of an excluded (or not
included) type, or shorter than ``minResponseBodyBytes``: when the head carries ``Content-Length`` that
is known at once; otherwise the body is held until that many bytes arrived (or it ended: then it goes
out plain, with its length). ``Vary: Accept-Encoding`` is added to every response that could have been
compressed for a client accepting a coding, so that caches keep the variants apart; a client accepting
none gets the answer untouched, as in Traefik.

Levels are moderate (gzip 5, brotli 4, zstd 3). The compressors release the GIL, so a large piece is
compressed in a small thread pool (:func:`pool`) while the loop serves other connections, and the
process uses a second core; a small piece is compressed on the loop, where it costs less than the thread
hop (see :data:`OFFLOAD_MIN`). One response's compressor is used by one thread at a time: its pieces are
awaited in order under the sink's lock. Output is flushed for ``text/event-stream`` after each piece, and
otherwise :data:`FLUSH_EVERY` after data came in (Traefik's default ``flushInterval``), so a trickling
stream is not held back for long.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import brotli
import zstandard

from discover.middlewares.compress import SUPPORTED, Compress, media_type
from router.exchange import Exchange, Headers, PassSink, Sink
from router.middlewares import Before, BuildContext

GZIP_LEVEL = 5
BROTLI_QUALITY = 4
ZSTD_LEVEL = 3
FLUSH_EVERY = 0.1

# Work worth a thread hop (~20 us of the loop's CPU, ~30 us of wall time here): from ~300 us of
# compression, i.e. this many bytes (gzip 5 and brotli 4 cost ~19 ns a byte on JSON, zstd 3 ~5 ns).
# Below it a piece is compressed on the loop; docs/middlewares/compress.md has the measurements.
OFFLOAD_MIN = {"gzip": 16 * 1024, "br": 16 * 1024, "zstd": 64 * 1024}
OFFLOAD_STEP = 256 * 1024  # bytes compressed per hop: bounds the output held at once (flat memory)
# The process runs with a GIL switch interval of 0.5 ms (dockroute.app): at Python's 5 ms a busy loop held
# each compression thread up to 5 ms per hop (measured: ~100-140% CPU of the process, ~160% at 0.5 ms).

_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """The compression threads, one per CPU, created on first use (``build`` runs in a worker thread
    without a loop; the first large piece comes on the loop). Its own pool, not the loop's default
    executor, so that compression never queues behind file reads or DNS, nor they behind it."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="dr-compress")
    return _pool


ALWAYS_EXCLUDED = "application/grpc"


# -- negotiation ------------------------------------------------------------------------------------------


def negotiate(values: Sequence[str] | None, encodings: Sequence[str], default: str) -> str | None:
    """The coding to answer with, or None for none. ``values`` are the ``Accept-Encoding`` header lines
    (None when the request has none)."""
    if values is None:
        return default or None
    if len(values) == 1 and not values[0].strip():
        return None  # an empty header: the client wants no coding
    rank = {"*": -1, "identity": len(encodings)}
    for i, e in enumerate(encodings):
        rank[e] = i
    best: tuple[float, int, str] | None = None
    for line in values:
        for item in line.replace(" ", "").replace("\t", "").split(","):
            name, _, param = item.partition(";")
            name = name.lower()
            if name not in rank:
                continue
            weight = 1.0
            if param[:2].lower() == "q=":
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0  # as Go's ParseFloat: unreadable counts as 0, i.e. refused
                if not weight > 0:
                    continue
            key = (-weight, rank[name], name)
            if best is None or key < best:
                best = key
    if best is None or best[2] == "identity":
        return None
    if best[2] == "*":
        return default or encodings[0]
    return best[2]


# -- encoders ---------------------------------------------------------------------------------------------


class Encoder:
    """One response's compressor: ``feed`` bytes in, get compressed bytes out; ``flush`` makes what was
    fed so far decodable; ``finish`` ends the stream.

    Not for concurrent use (zstandard's objects are not thread-safe, brotli's have no lock); used from
    one thread at a time, whichever, as the sink does, all three are fine (none keeps per-thread state).
    ``pending`` counts the bytes fed since the last flush that brotli and zstd may still hold unprocessed
    (they compress a block at a time): what a ``flush``, a ``finish`` or the ``feed`` that completes a
    block may cost (an overestimate past the first block). gzip compresses as fed."""

    __slots__ = ("coding", "_z", "pending")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.pending = 0
        if coding == "gzip":
            self._z: Any = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        elif coding == "br":
            self._z = brotli.Compressor(quality=BROTLI_QUALITY)
        else:  # a context per stream: one ZstdCompressor must not serve two streams at once
            self._z = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def feed(self, data: bytes) -> bytes:
        if self.coding == "br":
            self.pending += len(data)
            return self._z.process(data)
        if self.coding == "zstd":
            self.pending += len(data)
        return self._z.compress(data)

    def flush(self) -> bytes:
        self.pending = 0
        if self.coding == "gzip":
            return self._z.flush(zlib.Z_SYNC_FLUSH)
        if self.coding == "br":
            return self._z.flush()
        return self._z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        self.pending = 0
        if self.coding == "br":
            return self._z.finish()
        return self._z.flush()


# -- the response side ------------------------------------------------------------------------------------


class Policy:
    """What a built middleware decides with: content types, minimum size, the codings."""

    __slots__ = ("excluded", "included", "min_bytes", "encodings", "default")

    def __init__(self, options: Compress) -> None:
        self.excluded = [_parsed(ALWAYS_EXCLUDED)] + [_parsed(t) for t in options.excludedContentTypes]
        self.included = [_parsed(t) for t in options.includedContentTypes]
        self.min_bytes = options.min_bytes
        self.encodings = tuple(options.encodings)
        self.default = options.defaultEncoding

    def type_allowed(self, content_type: str | None) -> bool:
        """Whether a response of this ``Content-Type`` may be compressed (none: yes, as Traefik)."""
        if not content_type:
            return True
        parsed = media_type(content_type)
        if parsed is None:
            return False  # as Traefik: a type that does not parse is not compressed
        if self.included and not any(_matches(p, parsed) for p in self.included):
            return False
        return not any(_matches(p, parsed) for p in self.excluded)


def _parsed(t: str) -> tuple[str, Mapping[str, str]]:
    p = media_type(t)
    assert p is not None  # the options' problems() refused it
    return p


def _matches(pattern: tuple[str, Mapping[str, str]], actual: tuple[str, Mapping[str, str]]) -> bool:
    """The same media type; parameters are not compared, on either side, as Traefik keeps only the media
    type of each listed type (``text/html; charset=utf-8`` in the list means every ``text/html``)."""
    return pattern[0] == actual[0]


def eligible(policy: Policy, status: int, headers: Headers) -> bool:
    """Whether this response could be compressed, whatever its size and the client's wishes."""
    if status < 200 or status in (204, 206, 304):
        return False
    if headers.get("Content-Encoding", "").strip() or "Content-Range" in headers:
        return False
    if any("no-transform" in v.lower() for v in headers.getall("Cache-Control", ())):
        return False
    return policy.type_allowed(headers.get("Content-Type"))


def _add_vary(headers: Headers) -> None:
    for value in headers.getall("Vary", ()):
        tokens = {t.strip().lower() for t in value.split(",")}
        if "accept-encoding" in tokens or "*" in tokens:
            return
    headers.add("Vary", "Accept-Encoding")


class CompressSink(PassSink):
    """Decides at ``start`` (or once ``min_bytes`` arrived) whether to compress, then streams.

    A flush is due :data:`FLUSH_EVERY` after data came in and was not flushed (Traefik's proxy flushes
    its writer on that interval): it makes what was compressed so far decodable by the client, and, as
    in Traefik, forces the decision for a body still short of ``min_bytes``, so a stream that trickles
    is never held back longer than that. The lock keeps the timer's flush and the producer's writes from
    interleaving their compressed output."""

    def __init__(self, downstream: Sink, policy: Policy, coding: str | None) -> None:
        super().__init__(downstream)
        self.policy = policy
        self.coding = coding
        self.encoder: Encoder | None = None
        self.passing = False
        self.closed = False
        self.held: list[bytes] = []
        self.held_size = 0
        self.head: tuple[int, Headers, str] | None = None
        self.stream = False
        self.lock = asyncio.Lock()
        self.timer: asyncio.TimerHandle | None = None
        self.flusher: asyncio.Task[None] | None = None

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.started = True
        if not eligible(self.policy, status, headers):
            self.passing = True
            await self.downstream.start(status, headers, reason)
            return
        _add_vary(headers)
        length = headers.get("Content-Length")
        if self.coding is None or (length is not None and _int(length) < self.policy.min_bytes):
            self.passing = True
            await self.downstream.start(status, headers, reason)
            return
        self.head = (status, headers, reason)
        self.stream = (media_type(headers.get("Content-Type", "")) or ("",))[0] == "text/event-stream"
        if length is not None or self.stream:
            await self._begin()

    async def _begin(self) -> None:
        """Compress from here on: the head goes out with the coding instead of a length."""
        assert self.head is not None and self.coding is not None
        status, headers, reason = self.head
        self.head = None
        headers.popall("Content-Length", None)
        headers.popall("Accept-Ranges", None)  # ranges of the encoded body are not served
        headers["Content-Encoding"] = self.coding
        self.encoder = Encoder(self.coding)
        await self.downstream.start(status, headers, reason)
        held, self.held, self.held_size = self.held, [], 0
        for data in held:
            await self._compress(data)

    async def write(self, data: bytes) -> None:
        if self.passing:
            await self.downstream.write(data)
            return
        if not data:
            return
        async with self.lock:
            if self.encoder is not None:
                await self._compress(data)
            else:
                self.held.append(data)
                self.held_size += len(data)
                if self.held_size >= self.policy.min_bytes:
                    await self._begin()
        if self.timer is None and not self.stream:
            self.timer = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._due)

    async def _compress(self, data: bytes) -> None:
        encoder = self.encoder
        assert encoder is not None
        if len(data) + encoder.pending < OFFLOAD_MIN[encoder.coding]:
            out = encoder.feed(data)  # cheaper here than a thread hop
            if out:
                await self.downstream.write(out)
        else:
            for i in range(0, len(data), OFFLOAD_STEP):
                out = await self._off_loop(
                    encoder.feed, data if len(data) <= OFFLOAD_STEP else data[i : i + OFFLOAD_STEP]
                )
                if out:
                    await self.downstream.write(out)
        if self.stream:
            await self._drain(encoder.flush)

    async def _drain(self, step: Callable[[], bytes]) -> None:
        """The encoder's ``flush`` or ``finish``, in the pool when it may have much buffered input to
        compress (brotli and zstd hold up to a block), and its output sent."""
        encoder = self.encoder
        assert encoder is not None
        if encoder.pending < OFFLOAD_MIN[encoder.coding]:
            out = step()
        else:
            out = await self._off_loop(step)
        if out:
            await self.downstream.write(out)

    async def _off_loop(self, fn: Callable[..., bytes], *args: bytes) -> bytes:
        """``fn(*args)`` in the compression pool. If this response is cancelled meanwhile, the call may
        still be running in its thread: the encoder is dropped and never touched again (no flush or
        finish by the timer or ``end`` racing the thread)."""
        fut = asyncio.get_running_loop().run_in_executor(pool(), fn, *args)
        try:
            return await fut
        except asyncio.CancelledError:
            self.encoder = None
            self.closed = True
            raise

    def _due(self) -> None:
        self.timer = None
        self.flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            async with self.lock:
                if self.closed:
                    return
                if self.head is not None:
                    await self._begin()
                if self.encoder is not None:
                    await self._drain(self.encoder.flush)
        except (ConnectionError, TimeoutError):
            pass  # the client is gone: the producer's next write or end meets the same failure

    async def end(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        async with self.lock:
            self.closed = True
            if self.head is not None:  # ended before min_bytes: the body goes out plain, with its length
                status, headers, reason = self.head
                self.head = None
                headers["Content-Length"] = str(self.held_size)
                await self.downstream.start(status, headers, reason)
                for data in self.held:
                    await self.downstream.write(data)
                self.held = []
            elif self.encoder is not None:
                await self._drain(self.encoder.finish)
        await self.downstream.end()


def _int(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        return 0


# -- the middleware ---------------------------------------------------------------------------------------


def _accept_encoding(ex: Exchange) -> list[str] | None:
    edit = ex.header_edits.get("accept-encoding")
    if edit is not None:
        return None if edit[1] is None else [edit[1]]
    values = ex.headers.getall("Accept-Encoding", None)
    return list(values) if values is not None else None


def build(options: Compress, ctx: BuildContext) -> object:
    assert all(e in SUPPORTED for e in options.encodings)  # the options' problems() refused others
    policy = Policy(options)

    def compress(ex: Exchange) -> None:
        coding = None
        if ex.info.method != "HEAD":
            coding = negotiate(_accept_encoding(ex), policy.encodings, policy.default)
        if coding is not None:
            request_type = ex.header("Content-Type")
            if request_type:
                parsed = media_type(request_type)
                if parsed is not None and any(_matches(p, parsed) for p in policy.excluded):
                    coding = None  # as Traefik: e.g. a gRPC call is never compressed
        if coding is not None:
            ex.sink = CompressSink(ex.sink, policy, coding)
        # else as Traefik: a client that accepts none of the codings gets the answer untouched (no
        # Vary either), and its request pays nothing more for the middleware

    return Before(compress)
