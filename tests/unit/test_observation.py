"""The observation point (EntryPointHandler.log, feeding the access log and the metrics) is reached once by
every request, however it ends: a client that leaves before the answer (Traefik's 499) or during it (the
status it got, the bytes sent), an answer cut short behind middlewares, a 503 with no server, a 421, a
static file that could not be sent whole. Service metrics and ServiceName count only answers a server
gave; request sizes are the bytes read, not the declared Content-Length."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families

from discover.model import LoadBalancer
from router.accesslog import AccessLog, AccessLogFilters, AccessLogOptions
from router.balancer import ServiceBalancer
from router.exchange import Headers
from router.forward import forward
from router.framing import respond
from router.metrics import Metrics
from router.metrics_handler import render
from router.proxy import _T0, EntryPointHandler
from router.replies import SENT_KEEP
from router.rules import RequestInfo
from router.settings import EntryPoint, PrometheusSettings
from router.static.target import StaticTarget
from router.table import Route, RoutingTable
from router.targets import MiddlewareTarget, ServiceTarget
from router.upstream import UpstreamError

UP = SimpleNamespace(url="http://10.0.0.2:80")


class Transport:
    def __init__(self) -> None:
        self.data = b""
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def abort(self) -> None:
        self.closing = True

    close = abort


async def _drain() -> None:
    return None


class Request(dict):
    def __init__(self, method: str = "GET", path: str = "/x", headers: dict | None = None, read: int = 0):
        super().__init__()
        h = CIMultiDictProxy(CIMultiDict(headers or {"Host": "app.test"}))
        raw = tuple((k.encode(), v.encode()) for k, v in h.items())
        self._message = SimpleNamespace(
            method=method, path=path, version=(1, 1), should_close=False, headers=h, raw_headers=raw,
            chunked=False, upgrade=False,
        )  # fmt: skip
        self.transport = Transport()
        self.protocol = SimpleNamespace(client_ip="127.0.0.1", client_port=5555)  # router.connection's
        self.content = SimpleNamespace(total_bytes=read, is_eof=lambda: True)
        self.writer = SimpleNamespace(drain=_drain)
        self[_T0] = time.monotonic()  # as the entry point's handler starts an observed request


def _info(req: Request) -> RequestInfo:
    m = req._message
    return RequestInfo(m.method, "app.test", m.path, "", m.headers, "127.0.0.1")


class Observed:
    """An entry point's handler with metrics and a JSON access log, and what they recorded."""

    def __init__(self, *targets: Any, filters: AccessLogFilters | None = None) -> None:
        self.metrics = Metrics(PrometheusSettings(add_routers_labels=True))
        self.out = io.StringIO()
        self.access = AccessLog(fmt="json", stream=self.out, options=AccessLogOptions(filters=filters))
        pool = SimpleNamespace(release=lambda conn: None)
        self.ep = EntryPointHandler(EntryPoint("web", ":0"), pool, self.access, metrics=self.metrics)  # type: ignore[arg-type]
        rule = SimpleNamespace(hosts=None, match=lambda _r: True)
        self.ep.table = RoutingTable(Route(t.router, 1, rule, t) for t in targets)  # type: ignore[arg-type]
        self.ep._services = {
            t.router: (getattr(t, "service", "svc@file"), False, True, True) for t in targets
        }
        self.ep._services_of = self.ep.table

    def lines(self) -> list[dict[str, Any]]:
        self.access.flush(wait=True)
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def count(self, family: str, **labels: str) -> float:
        fams = {f.name: f for f in text_string_to_metric_families(render(self.metrics.snapshot()).decode())}
        return sum(
            s.value
            for s in fams[family].samples
            if s.name == family + "_total" and all(s.labels.get(k) == v for k, v in labels.items())
        )


class Waits:
    """A target that never answers (a slow backend) until cancelled; ``log_first``: it logs a 200 first."""

    router = "r@file"
    service = "svc@file"

    def __init__(self, log_first: bool = False) -> None:
        self.log_first = log_first

    async def handle(self, ep, request, transport, msg, info, host_header, close):
        if self.log_first:
            ep.log(request, info, 200, 5, self.router, UP, None)
        await asyncio.get_running_loop().create_future()


async def _cancelled(ep: EntryPointHandler, req: Request) -> None:
    task = asyncio.create_task(ep(req))
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_client_that_leaves_before_the_answer_is_counted_499():
    o = Observed(Waits())
    await _cancelled(o.ep, Request())
    assert o.count("dockroute_router_requests", router="r@file", code="499") == 1
    assert o.count("dockroute_entrypoint_requests", code="499") == 1
    (line,) = o.lines()
    assert line["DownstreamStatus"] == 499 and line["RouterName"] == "r@file"


async def test_a_request_already_logged_is_not_counted_again_when_cancelled():
    o = Observed(Waits(log_first=True))
    await _cancelled(o.ep, Request())
    assert o.count("dockroute_entrypoint_requests") == 1
    assert [x["DownstreamStatus"] for x in o.lines()] == [200]


async def _cut_short(ex):
    """What relay() does when the backend resets mid-body: the head and part of the body went out."""
    ex.upstream = UP
    await ex.sink.start(200, Headers({"Content-Length": "100"}))
    await ex.sink.write(b"x" * 10)
    ex.reason, ex.close = f"{UP.url}: connection reset (response truncated)", True
    ex.transport.abort()


async def _fails(ex):
    raise RuntimeError("a middleware bug")


async def test_an_answer_cut_short_behind_middlewares_is_logged_with_what_was_sent():
    target = MiddlewareTarget("r@file", _cut_short, SimpleNamespace(service="svc@file"))
    o = Observed(target)
    req = Request()
    await target.handle(o.ep, req, req.transport, req._message, _info(req), "app.test", False)
    (line,) = o.lines()
    assert line["DownstreamStatus"] == 200 and line["DownstreamContentSize"] == 10
    assert "truncated" in line["error"] and line["ServiceName"] == "svc@file"
    assert o.count("dockroute_service_requests", service="svc@file", code="200") == 1


async def test_a_middleware_failure_answered_500_is_logged():
    target = MiddlewareTarget("r@file", _fails, SimpleNamespace(service="svc@file"))
    o = Observed(target)
    req = Request()
    await target.handle(o.ep, req, req.transport, req._message, _info(req), "app.test", False)
    assert req.transport.data.startswith(b"HTTP/1.1 500")
    assert [x["DownstreamStatus"] for x in o.lines()] == [500]
    assert o.count("dockroute_service_requests") == 0  # no server answered


class StreamedConn:
    """A backend answer whose body streams: ``chunks`` then ``end`` (an exception, or None: wait forever)."""

    def __init__(self, chunks: list[bytes], end: BaseException | None) -> None:
        self.status, self.reason, self.complete = 200, b"OK", False
        self.headers = [(b"Content-Type", b"text/plain")]
        self.chunks, self.end, self.closed = list(chunks), end, False

    async def read(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.end is None:
            await asyncio.get_running_loop().create_future()
        raise self.end  # type: ignore[misc]

    def close(self) -> None:
        self.closed = True


async def test_a_stream_cut_by_the_backend_logs_the_bytes_sent():
    target = SimpleNamespace(router="r@file", service="svc@file")
    o = Observed(target)
    req = Request()
    conn = StreamedConn([b"x" * 10, b"y" * 5], UpstreamError("connection reset"))
    await respond(o.ep, req, req.transport, req._message, conn, _info(req), target, UP, False, None, None)  # type: ignore[arg-type]
    (line,) = o.lines()
    assert line["DownstreamStatus"] == 200 and line["DownstreamContentSize"] == 15


async def test_a_client_leaving_mid_stream_is_logged_with_the_status_and_bytes_it_got():
    target = SimpleNamespace(router="r@file", service="svc@file")
    o = Observed(target)
    req = Request()
    conn = StreamedConn([b"x" * 10], None)
    task = asyncio.create_task(
        respond(o.ep, req, req.transport, req._message, conn, _info(req), target, UP, False, None, None)  # type: ignore[arg-type]
    )
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (line,) = o.lines()
    assert line["DownstreamStatus"] == 200 and line["DownstreamContentSize"] == 10


async def test_no_available_server_503_counts_for_its_router_not_its_service():
    target = ServiceTarget("r@file", "svc@file", ServiceBalancer("svc@file", LoadBalancer(servers=())))
    o = Observed(target)
    req = Request()
    await forward(o.ep, req, req.transport, req._message, _info(req), target, "app.test", False)
    assert req.transport.data.startswith(b"HTTP/1.1 503")
    assert o.count("dockroute_router_requests", router="r@file", service="svc@file", code="503") == 1
    assert o.count("dockroute_service_requests") == 0  # Traefik counts a service where its servers are
    (line,) = o.lines()
    assert line["RouterName"] == "r@file" and line["ServiceName"] == ""


async def test_a_misdirected_request_421_counts_for_its_router():
    target = SimpleNamespace(router="r@file", service="svc@file", handle=None)
    o = Observed(target)
    o.ep.table.options_in_use = True  # a router has TLS options: a connection made under none is misdirected
    req = Request()
    assert (await o.ep(req)) is not None
    assert req.transport.data.startswith(b"HTTP/1.1 421")
    assert o.count("dockroute_router_requests", router="r@file", code="421") == 1


async def test_a_head_request_gets_the_canned_head_without_its_body():
    o = Observed()
    req = Request("HEAD", "/nope")
    assert (await o.ep(req)) is SENT_KEEP
    head, _, body = req.transport.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404") and b"Content-Length: 19" in head and body == b""
    assert [x["DownstreamContentSize"] for x in o.lines()] == [0]


def test_request_bytes_are_the_bytes_read_not_the_declared_length():
    o = Observed(SimpleNamespace(router="r@file", service="svc@file"))
    req = Request("POST", headers={"Host": "app.test", "Content-Length": "1000000"}, read=7)
    o.ep.log(req, None, 200, 3, "r@file", UP, None)
    assert o.count("dockroute_service_requests_bytes", service="svc@file") == 7
    assert o.lines()[0]["RequestContentSize"] == 7


def test_service_metrics_and_service_name_only_for_answers_a_server_gave():
    """Traefik's service metrics and ServiceName are set in front of each server: a basicAuth 401 (no
    server asked) counts for the router and the entry point, not for the service."""
    o = Observed(SimpleNamespace(router="r@file", service="svc@file"))
    o.ep.log(Request(), None, 401, 17, "r@file", None, "basicAuth")
    o.ep.log(Request(), None, 200, 5, "r@file", UP, None)
    assert o.count("dockroute_router_requests", router="r@file", service="svc@file") == 2
    assert o.count("dockroute_service_requests", service="svc@file", code="401") == 0
    assert o.count("dockroute_service_requests", service="svc@file", code="200") == 1
    assert [x["ServiceName"] for x in o.lines()] == ["", "svc@file"]


def test_a_line_filtered_out_builds_no_record_but_is_counted():
    o = Observed(SimpleNamespace(router="r@file"), filters=AccessLogFilters(status_codes=("500-599",)))

    def no_record(*args: Any) -> Any:
        raise AssertionError("a record was made for a line the filters leave out")

    o.ep._record = no_record  # type: ignore[method-assign]
    o.ep.log(Request(), None, 200, 5, "r@file", UP, None)
    del o.ep._record
    o.ep.log(Request(), None, 502, 5, "r@file", UP, None)
    assert [x["RequestCount"] for x in o.lines()] == [2]  # Traefik counts every request


async def test_a_static_file_not_sent_whole_is_logged(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 100)
    target = StaticTarget("files@file", "files@file", cache=None)  # type: ignore[arg-type]
    reply = SimpleNamespace(
        status=200, start=0, length=100, reason=None, head=lambda close, http10: b"HTTP/1.1 200 OK\r\n\r\n"
    )

    async def opened(*args: Any) -> Any:
        return reply, os.open(path, os.O_RDONLY)

    monkeypatch.setattr(StaticTarget, "_reply", opened)
    o = Observed(target)
    req = Request()

    def gone(data: bytes) -> None:  # the head goes out, then the client is gone
        req.transport.data += data
        req.transport.closing = True

    req.transport.write = gone  # type: ignore[method-assign]
    await target.handle(o.ep, req, req.transport, req._message, _info(req), "app.test", False)
    (line,) = o.lines()
    assert line["DownstreamStatus"] == 200 and "not sent whole" in line["error"]
    assert o.count("dockroute_service_requests", service="files@file", code="200") == 1
