"""``compress``: option checks (files and labels), Traefik's Accept-Encoding negotiation, and the response
sink (what is compressed, what is not, streaming, the loop never held long)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import random
import threading
import time
import zlib

import brotli
import pytest
import zstandard
from multidict import CIMultiDict

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.middlewares.compress import Compress
from discover.middlewares.fields import read_options
from discover.parse import parse_dynamic_with_warnings
from discover.readers import At, ConfigError
from router.exchange import Sink
from router.middlewares import BuildContext, compress
from router.middlewares.compress import OFFLOAD_MIN, CompressSink, Encoder, Policy, negotiate
from tests.exchange_fakes import fake_exchange

ALL = ("zstd", "br", "gzip")
BODY = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(2500)]).encode()


def decode(coding: str | None, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return brotli.decompress(data)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert coding is None
    return data


# -- options ----------------------------------------------------------------------------------------------


def test_defaults_are_traefiks_and_files_and_labels_read_alike():
    assert read_options(Compress, None, At()) == Compress()
    c = Compress()
    assert c.encodings == ("zstd", "br", "gzip") and c.min_bytes == 1024 and c.defaultEncoding == ""
    assert Compress(minResponseBodyBytes=-5).min_bytes == 1024  # Traefik: <= 0 means the default
    typed = read_options(
        Compress,
        {"excludedContentTypes": ["text/event-stream"], "minResponseBodyBytes": 10, "encodings": ["gzip"]},
        At(),
    )
    labels = read_options(
        Compress,
        {"excludedcontenttypes": "text/event-stream", "minresponsebodybytes": "10", "encodings": "gzip"},
        At(),
    )
    assert typed == labels and typed.min_bytes == 10


def test_docker_labels_give_the_typed_options():
    labels = {
        "traefik.http.routers.app.middlewares": "gz",
        "traefik.http.middlewares.gz.compress.encodings": "gzip,br",
        "traefik.http.middlewares.gz.compress.defaultencoding": "br",
        "traefik.http.middlewares.on.compress": "true",
    }
    box = ContainerInfo(
        id="x", name="app", labels=labels, ports=(PortBinding(80),), networks={"n": "10.0.0.2"}
    )
    cfg, _ = build_docker_config([box], DockerSettings(), frozenset())
    mws = {m.name.split("@")[0]: m for m in cfg.middlewares.values()}
    assert mws["gz"].options == Compress(encodings=("gzip", "br"), defaultEncoding="br")
    assert mws["on"].options == Compress()


@pytest.mark.parametrize(
    ("options", "where"),
    [
        (
            {"excludedContentTypes": ["text/html"], "includedContentTypes": ["text/css"]},
            "includedContentTypes",
        ),
        ({"encodings": ["gzip", "deflate"]}, "encodings[1]"),
        ({"encodings": []}, "encodings"),
        ({"encodings": ["gzip"], "defaultEncoding": "br"}, "defaultEncoding"),
        ({"excludedContentTypes": ["text/html; charset"]}, "excludedContentTypes[0]"),
        ({"includedContentTypes": ["a b/c"]}, "includedContentTypes[0]"),
        ({"level": 5}, "level"),
    ],
)
def test_bad_options_are_refused_by_name(options, where):
    with pytest.raises(ConfigError) as err:
        read_options(Compress, options, At("m"))
    assert f"m.{where}" in str(err.value)


def test_a_bad_compress_middleware_is_kept_with_its_error():
    cfg, warnings = parse_dynamic_with_warnings(
        {"http": {"middlewares": {"gz": {"compress": {"encodings": ["lzma"]}}}}}
    )
    assert "http.middlewares.gz.compress.encodings[0]" in cfg.middlewares["gz"].error


# -- negotiation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "encodings", "default", "expected"),
    [
        (None, ALL, "", None),  # no header: no coding unless a default is set
        (None, ALL, "gzip", "gzip"),
        ("", ALL, "gzip", None),  # an empty header: the client wants none
        ("gzip", ALL, "", "gzip"),
        ("br", ALL, "", "br"),
        ("zstd", ALL, "", "zstd"),
        ("gzip, deflate, br, zstd", ALL, "", "zstd"),  # equal q: the server's order
        ("gzip, deflate, br", ALL, "", "br"),
        ("gzip, br", ("gzip", "br"), "", "gzip"),
        ("gzip;q=1.0, br;q=0.5", ALL, "", "gzip"),  # q-values first
        ("br;q=0.2, gzip;q=0.8, zstd;q=0", ALL, "", "gzip"),
        ("gzip;q=0", ALL, "", None),  # q=0 refuses
        ("gzip;q=bad", ALL, "", None),
        ("*", ALL, "", "zstd"),  # the first of encodings
        ("*", ALL, "br", "br"),  # or the default
        ("gzip, *", ALL, "", "zstd"),  # '*' comes before named codings at equal q (Traefik)
        ("*;q=0.1, gzip", ALL, "", "gzip"),
        ("identity", ALL, "", None),
        ("identity, gzip", ALL, "", "gzip"),  # identity ranks last among equals
        ("identity;q=1, gzip;q=0.5", ALL, "", None),
        ("deflate, compress", ALL, "", None),
        ("GZIP", ALL, "", "gzip"),
        ("br", ("gzip",), "", None),  # not among the configured encodings
    ],
)
def test_negotiation_is_traefiks(header, encodings, default, expected):
    values = None if header is None else [header]
    assert negotiate(values, encodings, default) == expected


def test_several_header_lines_are_one_list():
    assert negotiate(["gzip;q=0.5", "br"], ALL, "") == "br"


# -- the sink ---------------------------------------------------------------------------------------------


class Recorder(Sink):
    def __init__(self):
        self.status = 0
        self.headers = CIMultiDict()
        self.parts: list[bytes] = []
        self.ended = False

    async def start(self, status, headers, reason=""):
        self.started = True
        self.status, self.headers = status, headers

    async def write(self, data):
        assert self.started and not self.ended
        self.parts.append(data)

    async def end(self):
        self.ended = True

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)


def policy(**kw) -> Policy:
    return Policy(Compress(**kw))


async def respond(sink, status=200, headers=None, parts=(BODY,), length=True):
    head = CIMultiDict(headers if headers is not None else {"Content-Type": "application/json"})
    if length and status not in (204, 304):
        head["Content-Length"] = str(sum(len(p) for p in parts))
    await sink.start(status, head)
    for p in parts:
        await sink.write(p)
    await sink.end()


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("length", [True, False])
def test_a_body_is_compressed_streaming_with_the_head_fixed(coding, length):
    rec = Recorder()
    parts = [BODY[i : i + 7000] for i in range(0, len(BODY), 7000)]
    asyncio.run(respond(CompressSink(rec, policy(), coding), parts=parts, length=length))
    assert rec.status == 200 and rec.ended
    assert rec.headers["Content-Encoding"] == coding
    assert "Content-Length" not in rec.headers
    assert rec.headers.getall("Vary") == ["Accept-Encoding"]
    assert len(rec.body) < len(BODY) // 3
    assert decode(coding, rec.body) == BODY


def test_vary_is_added_once_and_kept_with_the_backends_own():
    rec = Recorder()
    head = {"Content-Type": "text/plain", "Vary": "Origin"}
    asyncio.run(respond(CompressSink(rec, policy(), "gzip"), headers=head))
    assert rec.headers.getall("Vary") == ["Origin", "Accept-Encoding"]
    rec = Recorder()
    head = {"Content-Type": "text/plain", "Vary": "accept-encoding, Origin"}
    asyncio.run(respond(CompressSink(rec, policy(), "gzip"), headers=head))
    assert rec.headers.getall("Vary") == ["accept-encoding, Origin"]


def test_without_an_accepted_coding_the_body_is_plain_but_varies():
    rec = Recorder()
    asyncio.run(respond(CompressSink(rec, policy(), None)))
    assert rec.body == BODY and "Content-Encoding" not in rec.headers
    assert rec.headers["Content-Length"] == str(len(BODY)) and rec.headers["Vary"] == "Accept-Encoding"


@pytest.mark.parametrize(
    ("status", "headers", "why"),
    [
        (200, {"Content-Type": "text/plain", "Content-Encoding": "br"}, "already encoded"),
        (206, {"Content-Type": "text/plain", "Content-Range": "bytes 0-9/100"}, "partial"),
        (200, {"Content-Type": "text/plain", "Content-Range": "bytes 0-9/100"}, "a range"),
        (204, {}, "no content"),
        (304, {"Content-Type": "text/plain"}, "not modified"),
        (200, {"Content-Type": "application/grpc"}, "gRPC, always excluded"),
        (200, {"Content-Type": "text/plain", "Cache-Control": "public, no-transform"}, "no-transform"),
        (200, {"Content-Type": "not a type"}, "unparsable type"),
    ],
)
def test_responses_that_must_not_be_compressed_pass_untouched(status, headers, why):
    rec = Recorder()
    parts = () if status in (204, 304) else (BODY,)
    asyncio.run(respond(CompressSink(rec, policy(), "gzip"), status=status, headers=headers, parts=parts))
    assert rec.status == status, why
    assert rec.headers.get("Content-Encoding") == headers.get("Content-Encoding"), why
    assert rec.body == b"".join(parts), why
    assert "Vary" not in rec.headers, why


def test_excluded_and_included_types():
    ex = policy(excludedContentTypes=("text/event-stream", "text/html; charset=utf-8"))
    assert not ex.type_allowed("Text/Event-Stream")
    assert not ex.type_allowed('text/html; charset="utf-8"')
    # as Traefik: only the media type of a listed type counts, parameters are dropped on both sides
    assert not ex.type_allowed("text/html") and not ex.type_allowed("text/html; charset=iso-8859-1")
    assert ex.type_allowed("application/json") and ex.type_allowed(None)
    inc = policy(includedContentTypes=("application/json",))
    assert inc.type_allowed("application/json; charset=utf-8") and not inc.type_allowed("text/html")
    rec = Recorder()
    asyncio.run(respond(CompressSink(rec, inc, "gzip"), headers={"Content-Type": "text/html"}))
    assert rec.body == BODY and "Content-Encoding" not in rec.headers


def test_below_the_minimum_the_body_goes_plain_decided_at_start_or_at_the_end():
    small = b"x" * 1023
    rec = Recorder()
    asyncio.run(respond(CompressSink(rec, policy(), "gzip"), parts=(small,)))
    assert rec.body == small and "Content-Encoding" not in rec.headers
    # no length: held, then sent plain with its length once it ended short
    rec = Recorder()
    asyncio.run(respond(CompressSink(rec, policy(), "gzip"), parts=(small[:500], small[500:]), length=False))
    assert rec.body == small and rec.headers["Content-Length"] == "1023"
    assert "Content-Encoding" not in rec.headers
    # a lower minimum
    rec = Recorder()
    asyncio.run(respond(CompressSink(rec, policy(minResponseBodyBytes=100), "gzip"), parts=(small,)))
    assert rec.headers["Content-Encoding"] == "gzip" and gzip.decompress(rec.body) == small


def test_without_a_length_nothing_is_sent_until_the_minimum_arrived():
    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), "gzip")
        await sink.start(200, CIMultiDict({"Content-Type": "text/plain"}))
        await sink.write(b"a" * 600)
        assert not rec.started  # still deciding
        await sink.write(b"b" * 600)
        assert rec.started and rec.headers["Content-Encoding"] == "gzip"
        await sink.end()
        assert gzip.decompress(rec.body) == b"a" * 600 + b"b" * 600

    asyncio.run(run())


def test_an_event_stream_is_flushed_after_each_event():
    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), "gzip")
        await sink.start(200, CIMultiDict({"Content-Type": "text/event-stream"}))
        assert rec.started  # an event stream is never held for the minimum
        d = zlib.decompressobj(31)
        for i in range(3):
            event = f"data: {i}\n\n".encode()
            await sink.write(event)
            assert d.decompress(b"".join(rec.parts)) == event  # decodable now, not at the end
            rec.parts.clear()
        await sink.end()

    asyncio.run(run())


async def _until(cond, timeout=2.0):
    """Poll ``cond`` (no fixed sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


def test_a_trickling_stream_is_flushed_without_waiting_for_more():
    """As Traefik's proxy flushes every 100 ms: what came in is decodable soon, not at the end."""

    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), "gzip")
        await sink.start(200, CIMultiDict({"Content-Type": "application/x-ndjson"}))
        d = zlib.decompressobj(31)
        got = bytearray()

        def decoded(expected: bytes) -> bool:
            got.extend(d.decompress(b"".join(rec.parts)))
            rec.parts.clear()
            return bytes(got) == expected

        first = b'{"n": 1}\n' * 200  # 1800 bytes: over the minimum, compression starts
        await sink.write(first)
        await _until(lambda: decoded(first))
        await sink.write(b'{"n": 2}\n')
        await _until(lambda: decoded(first + b'{"n": 2}\n'))
        await sink.end()
        assert rec.ended

    asyncio.run(run())


def test_a_short_trickle_is_compressed_once_a_flush_is_due_as_traefik():
    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), "gzip")
        await sink.start(200, CIMultiDict({"Content-Type": "text/plain"}))
        await sink.write(b"tick\n")  # below the minimum: held until a flush is due
        assert not rec.started
        await _until(lambda: rec.started)
        assert rec.headers["Content-Encoding"] == "gzip"
        await _until(lambda: zlib.decompressobj(31).decompress(b"".join(rec.parts)) == b"tick\n")
        await sink.end()
        assert gzip.decompress(rec.body) == b"tick\n"

    asyncio.run(run())


def test_a_short_body_that_ends_at_once_stays_plain_and_no_flush_fires_later():
    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), "gzip")
        await sink.start(200, CIMultiDict({"Content-Type": "text/plain"}))
        await sink.write(b"short")
        await sink.end()
        assert rec.body == b"short" and "Content-Encoding" not in rec.headers
        assert sink.timer is None

    asyncio.run(run())


# -- the middleware on an exchange ------------------------------------------------------------------------


def _exchange(method="GET", **headers):
    return fake_exchange(method, headers=CIMultiDict(headers))


def _run(ex, options=None):
    rec = Recorder()
    ex.sink = rec

    async def final(ex):
        await respond(ex.sink)

    handler = compress.build(options or Compress(), BuildContext("gz@file", "r", None))(final)
    asyncio.run(handler(ex))
    return rec


@pytest.mark.parametrize(
    ("accept", "coding"), [("gzip", "gzip"), ("br", "br"), ("zstd", "zstd"), (None, None), ("", None)]
)
def test_the_middleware_answers_by_accept_encoding(accept, coding):
    ex = _exchange() if accept is None else _exchange(**{"Accept-Encoding": accept})
    rec = _run(ex)
    assert rec.headers.get("Content-Encoding") == coding
    assert decode(coding, rec.body) == BODY


def test_an_earlier_middlewares_header_edit_counts():
    ex = _exchange(**{"Accept-Encoding": "gzip"})
    ex.set_header("Accept-Encoding", "br")
    assert _run(ex).headers["Content-Encoding"] == "br"


def test_head_and_excluded_request_types_pass_untouched():
    rec = _run(_exchange("HEAD", **{"Accept-Encoding": "gzip"}))
    assert "Content-Encoding" not in rec.headers and "Vary" not in rec.headers
    rec = _run(_exchange(**{"Accept-Encoding": "gzip", "Content-Type": "application/grpc"}))
    assert "Content-Encoding" not in rec.headers and "Vary" not in rec.headers
    opts = Compress(excludedContentTypes=("text/event-stream",))
    rec = _run(_exchange(**{"Accept-Encoding": "gzip", "Content-Type": "text/event-stream"}), opts)
    assert "Content-Encoding" not in rec.headers


# -- the loop ---------------------------------------------------------------------------------------------


def _varied_json(size: int) -> bytes:
    """JSON that compresses like real data (about 4:1), not like a repeated block."""
    rnd = random.Random(7)
    items = [
        {"id": rnd.randrange(10**9), "name": f"item {rnd.getrandbits(40):x}", "score": rnd.random()}
        for _ in range(size // 50)
    ]
    return json.dumps(items).encode()[:size]


async def _compress_watching_the_loop(coding: str, body: bytes) -> tuple[float, float, int]:
    """Compress ``body`` written whole (as the proxy does with a body it already has) while a ticker task
    runs: the ticker's worst wait in wall-clock time and in this thread's CPU time (which a busy machine
    preempting the process does not inflate), and how often it ran."""
    gaps: list[tuple[float, float]] = []
    done = False

    async def ticker():
        last = (time.perf_counter(), time.thread_time())
        while not done:
            await asyncio.sleep(0)
            now = (time.perf_counter(), time.thread_time())
            gaps.append((now[0] - last[0], now[1] - last[1]))
            last = now

    gc.collect()
    gc.freeze()  # as the proxy does after start-up: the ticker's garbage must not cost a 15 ms full pass
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    rec = Recorder()
    try:
        await respond(CompressSink(rec, policy(), coding), parts=(body,))
    finally:
        done = True
        await task
        gc.unfreeze()
    assert decode(coding, rec.body) == body
    return max(g[0] for g in gaps), max(g[1] for g in gaps), len(gaps)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_large_body_is_compressed_with_the_loop_running_meanwhile(coding):
    """1 MiB at one go costs ~20 ms of CPU with gzip or brotli here (brotli's finish alone ~7 ms); in the
    pool, the loop thread spends well under a millisecond at a time on it."""
    _, worst_cpu, ticks = asyncio.run(_compress_watching_the_loop(coding, _varied_json(1 << 20)))
    assert ticks >= 3, "the loop never ran while 1 MiB was compressed"
    assert worst_cpu < 0.003, f"{coding}: {worst_cpu * 1000:.1f} ms of CPU without the loop running"


def _record_threads(monkeypatch) -> list[tuple[str, int, int]]:
    """Make every Encoder call note (what, bytes fed or pending, thread)."""
    calls: list[tuple[str, int, int]] = []
    for name in ("feed", "flush", "finish"):
        real = getattr(Encoder, name)

        def spy(self, *args, _real=real, _name=name):
            size = len(args[0]) if args else self.pending
            calls.append((_name, size, threading.get_ident()))
            return _real(self, *args)

        monkeypatch.setattr(Encoder, name, spy)
    return calls


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_large_pieces_are_compressed_off_the_loop_thread_small_ones_on_it(coding, monkeypatch):
    """The compressors release the GIL: a large piece goes to the pool (and the process uses another
    core); a small one costs less than the thread hop and stays on the loop."""
    calls = _record_threads(monkeypatch)
    small = BODY[: OFFLOAD_MIN[coding] // 4]

    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), coding)
        await sink.start(200, CIMultiDict({"Content-Type": "application/json"}))
        await sink.write(small)
        await sink.write(BODY)
        await sink.end()
        assert decode(coding, rec.body) == small + BODY
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    feeds = [(size, t) for what, size, t in calls if what == "feed"]
    assert feeds[0] == (len(small), loop_thread)
    assert sum(size for size, _ in feeds[1:]) == len(BODY)
    assert all(t != loop_thread for _, t in feeds[1:]), "a large piece was compressed on the loop thread"
    ((_, pending, finisher),) = [c for c in calls if c[0] == "finish"]
    if coding == "gzip":  # gzip compresses as fed: its finish is cheap
        assert finisher == loop_thread
    else:  # brotli and zstd hold up to a block: finishing it is work for the pool
        assert pending > OFFLOAD_MIN[coding] and finisher != loop_thread


def test_concurrent_responses_stay_in_order_with_pieces_in_several_threads(monkeypatch):
    """Many responses at once, pieces large and small: each compressor is fed from several pool threads
    in turn (and from the loop), and every body still decodes to its pieces in order."""
    calls = _record_threads(monkeypatch)
    source = _varied_json(1 << 20)

    async def one(k: int, coding: str) -> None:
        rnd = random.Random(k)
        pieces = [
            source[o : o + rnd.choice((500, 3000, 40_000, 90_000))]
            for o in rnd.sample(range(0, 900_000, 1000), 8)
        ]
        rec = Recorder()
        sink = CompressSink(rec, policy(), coding)
        await sink.start(200, CIMultiDict({"Content-Type": "application/json"}))
        for piece in pieces:
            await sink.write(piece)
        await sink.end()
        assert decode(coding, rec.body) == b"".join(pieces), (k, coding)

    async def run():
        await asyncio.gather(*(one(k, c) for k in range(6) for c in ("gzip", "br", "zstd")))
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    off_loop = {t for what, _, t in calls if what == "feed"} - {loop_thread}
    assert off_loop, "no piece was compressed in the pool"


def test_a_response_cancelled_mid_compression_never_touches_its_encoder_again(monkeypatch):
    """The pool thread may still be compressing when the response is cancelled: neither the flush timer
    nor ``end`` may use the compressor meanwhile (zstandard's and brotli's objects are not thread-safe)."""
    entered, release = threading.Event(), threading.Event()
    calls = _record_threads(monkeypatch)
    real_feed = Encoder.feed

    def slow_feed(self, data):
        if len(data) >= OFFLOAD_MIN[self.coding]:
            entered.set()
            release.wait(5)
        return real_feed(self, data)

    monkeypatch.setattr(Encoder, "feed", slow_feed)

    async def run():
        rec = Recorder()
        sink = CompressSink(rec, policy(), "zstd")
        await sink.start(200, CIMultiDict({"Content-Type": "application/json"}))
        writing = asyncio.create_task(sink.write(BODY))
        await _until(entered.is_set)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        await sink._flush()  # what the timer would do
        await sink.end()
        release.set()
        assert rec.ended and sink.encoder is None
        assert not [c for c in calls if c[0] in ("flush", "finish")]

    try:
        asyncio.run(run())
    finally:
        release.set()


@pytest.mark.timing  # a wall-clock bound: run alone
@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_large_body_never_holds_the_loop_long(coding):
    """The same, in wall-clock time: ~0.2-6 ms at a time here, with the machine busy (inline: ~15-30 ms)."""
    worst, _, _ = asyncio.run(_compress_watching_the_loop(coding, _varied_json(1 << 20)))
    assert worst < 0.008, f"{coding}: the loop was held {worst * 1000:.1f} ms"
