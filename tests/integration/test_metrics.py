"""Metrics and the access log on real traffic: 100 requests through a router to a real backend (60 answered
200, 40 answered 404 by the backend), then ``/metrics`` scraped through a router to ``prometheus@internal``
and parsed with prometheus_client's parser: the counts by code are exact. The access log of the same
traffic counts body bytes (Traefik's DownstreamContentSize) and carries Traefik's JSON fields. Requests
that end otherwise are counted too: a WebSocket session whose client leaves, a client that gives up on a
slow backend (499) or leaves in the middle of a streamed body.

Two ways: the real ``dockroute`` process, and the proxy's own parts assembled in the test (entry point
server, handler, compile with the internal handler), as the app wires them.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from discover.model import DynamicConfig, LoadBalancer, Router, Server, Service, frozen_map, merge
from router.accesslog import AccessLog
from router.compile import compile_config
from router.metrics import Metrics
from router.metrics_handler import prometheus_handler
from router.proxy import EntryPointHandler
from router.server import EntryPointServer
from router.settings import EntryPoint, PrometheusSettings, Transport
from router.upstream import Pool
from tests.integration.harness import Backend, pattern_block, wait_for

pytestmark = pytest.mark.integration

OK = "/download?size=23"  # the harness backend: 200 with 23 bytes of its pattern
OK_BODY = pattern_block()[:23]
MISSING = "/health"  # answered 404 "health" once the backend's health status is set so
MISSING_BODY = b"health"


@pytest.fixture
async def origin() -> AsyncIterator[Backend]:
    """The harness's real backend, its ``/health`` answering 404."""
    b = await Backend("b").start()
    b.health_status = 404
    yield b
    await b.stop()


@pytest.fixture
def backend(origin: Backend) -> str:
    return origin.url


async def _traffic(url: str, host: str = "app.test") -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(100):
            path = OK if i % 5 < 3 else MISSING
            async with s.get(url + path, headers={"Host": host}) as r:
                assert await r.read() == (OK_BODY if path == OK else MISSING_BODY)
                assert r.status == (200 if path == OK else 404)


async def _scrape(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Host": "metrics.test"}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        text = await r.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _count(fams: dict[str, Any], family: str, **labels: str) -> float:
    return sum(
        s.value
        for s in fams[family].samples
        if s.name == family + "_total" and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _assert_exact(fams: dict[str, Any], router: str, service: str, entry_point: str) -> None:
    by = {"method": "GET", "protocol": "http"}
    assert _count(fams, "dockroute_router_requests", router=router, service=service, code="200", **by) == 60
    assert _count(fams, "dockroute_router_requests", router=router, service=service, code="404", **by) == 40
    assert _count(fams, "dockroute_service_requests", service=service, code="200") == 60
    assert _count(fams, "dockroute_service_requests", service=service, code="404") == 40
    # the scrapes themselves go to an internal service: not counted (Traefik's addInternals is off)
    assert _count(fams, "dockroute_entrypoint_requests", entrypoint=entry_point) == 100
    hist = {s.labels["le"]: s.value for s in fams["dockroute_service_request_duration_seconds"].samples
            if s.name.endswith("_bucket") and s.labels["code"] == "404"}  # fmt: skip
    assert hist["+Inf"] == 40
    sizes = _count(fams, "dockroute_service_responses_bytes", service=service, code="200")
    assert sizes == 60 * len(OK_BODY)  # body bytes only


def _config(backend: str) -> DynamicConfig:
    file_cfg = DynamicConfig(
        routers=frozen_map(
            {
                "app": Router("app", "Host(`app.test`)", "svc"),
                "metrics": Router(
                    "metrics", "Host(`metrics.test`) && PathPrefix(`/metrics`)", "prometheus@internal"
                ),
            }
        ),
        services=frozen_map({"svc": Service("svc", load_balancer=LoadBalancer(servers=(Server(backend),)))}),
    )
    return merge({"file": file_cfg})


class InProcess:
    """The proxy's own parts, put together as the app does, with metrics and a JSON access log on."""

    def __init__(self, backend: str) -> None:
        ep = EntryPoint("web", "127.0.0.1:0")
        self.metrics = Metrics(PrometheusSettings(add_routers_labels=True))
        self.out = io.StringIO()
        self.access = AccessLog(fmt="json", stream=self.out)
        self.pool = Pool(Transport())
        self.server = EntryPointServer(
            EntryPointHandler(ep, self.pool, self.access, metrics=self.metrics),
            EntryPointHandler(ep, self.pool, self.access, scheme="https", metrics=self.metrics),
        )
        compiled = compile_config(
            _config(backend), (ep,), internal={"prometheus@internal": prometheus_handler(self.metrics)}
        )
        assert not compiled.errors, compiled.errors
        self.server.handler.table = compiled.tables["web"]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def count(self, **labels: str) -> float:
        return _count(await _scrape(self.base + "/metrics"), "dockroute_router_requests", **labels)

    def lines(self) -> list[dict[str, Any]]:
        self.access.flush(wait=True)
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


@pytest.fixture
async def in_process(backend: str) -> AsyncIterator[InProcess]:
    p = InProcess(backend)
    await p.server.start()
    yield p
    await p.server.shutdown(1.0)
    p.pool.close()


async def test_metrics_count_100_requests_exactly_in_process(backend, in_process):
    base = in_process.base
    await _traffic(base)
    fams = await _scrape(base + "/metrics")
    _assert_exact(fams, "app@file", "svc@file", "web")
    fams = await _scrape(base + "/metrics")  # a second scrape sees the same counts
    _assert_exact(fams, "app@file", "svc@file", "web")
    access, out = in_process.access, in_process.out
    access.flush(wait=True)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 100  # the scrapes (internal service) are not logged, as in Traefik
    ok = [x for x in lines if x["DownstreamStatus"] == 200]
    assert len(ok) == 60 and {x["DownstreamContentSize"] for x in ok} == {len(OK_BODY)}
    assert {x["DownstreamContentSize"] for x in lines if x["DownstreamStatus"] == 404} == {len(MISSING_BODY)}
    first = lines[0]
    assert first["RouterName"] == "app@file" and first["ServiceName"] == "svc@file"
    assert first["ServiceURL"] == backend and first["ServiceAddr"] == backend.removeprefix("http://")
    assert first["RequestHost"] == "app.test" and first["RequestMethod"] == "GET"
    assert first["entryPointName"] == "web" and first["OriginStatus"] == first["DownstreamStatus"]
    assert isinstance(first["Duration"], int) and first["level"] == "info"


async def test_metrics_count_100_requests_exactly_real_process(backend, proxy, tmp_path):
    """The real process: ``metrics.prometheus`` on its own entry point, scraped through the default
    ``prometheus@internal`` router there."""
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "metrics": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "metrics": {"prometheus": {"entryPoint": "metrics", "addRoutersLabels": True}},
        "log": {"level": "DEBUG"},
    }
    dynamic = {
        "http": {
            "routers": {"app": {"rule": "Host(`app.test`)", "service": "svc", "entryPoints": ["web"]}},
            "services": {"svc": {"loadBalancer": {"servers": [{"url": backend}]}}},
        }
    }
    dr = await proxy(dynamic, static=static)
    await _traffic(dr.url(""))
    fams = await _scrape(dr.url("/metrics", ep="metrics"))
    _assert_exact(fams, "app@file", "svc@file", "web")
    assert _count(fams, "dockroute_config_reloads") >= 1


async def test_access_log_json_fields_and_body_sizes_real_process(backend, proxy, tmp_path):
    log_path = tmp_path / "access.log"
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "accessLog": {"filePath": str(log_path), "format": "json"},
    }
    dynamic = {
        "http": {
            "routers": {"app": {"rule": "Host(`app.test`)", "service": "svc"}},
            "services": {"svc": {"loadBalancer": {"servers": [{"url": backend}]}}},
        }
    }
    dr = await proxy(dynamic, static=static)
    async with aiohttp.ClientSession() as s:
        async with s.get(dr.url(OK + "&x=1"), headers={"Host": "app.test", "User-Agent": "probe"}) as r:
            assert await r.read() == OK_BODY
        async with s.get(dr.url("/nope"), headers={"Host": "nobody.test"}) as r:
            not_found = await r.read()
    await wait_for(lambda: log_path.exists() and len(log_path.read_text().splitlines()) >= 2)
    first, second = (json.loads(line) for line in log_path.read_text().splitlines()[:2])
    assert first["DownstreamStatus"] == 200 and first["DownstreamContentSize"] == len(OK_BODY)
    assert first["RequestPath"] == OK + "&x=1" and first["RequestProtocol"] == "HTTP/1.1"
    assert first["RouterName"] == "app@file" and first["ServiceName"] == "svc@file"
    assert first["ClientHost"] == "127.0.0.1" and first["ClientPort"].isdigit()
    assert first["RequestAddr"].startswith("app.test") and first["RequestScheme"] == "http"
    assert "request_User-Agent" not in first  # Traefik drops request headers unless fields.headers says
    assert second["DownstreamStatus"] == 404 and second["DownstreamContentSize"] == len(not_found)
    assert second["RouterName"] == "" and "OriginStatus" not in second


async def test_access_log_fields_and_filters_from_the_static_config(backend, proxy, tmp_path):
    """accessLog.fields (headers kept, redacted, dropped; a field dropped) and filters (statusCodes), read
    from the static file by the real process."""
    log_path = tmp_path / "access.log"
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "accessLog": {
            "filePath": str(log_path),
            "format": "json",
            "bufferingSize": 1,
            "filters": {"statusCodes": ["400-499"]},
            "fields": {
                "names": {"ClientAddr": "drop"},
                "headers": {
                    "defaultMode": "drop",
                    "names": {"User-Agent": "keep", "Authorization": "redact"},
                },
            },
        },
    }
    dynamic = {
        "http": {
            "routers": {"app": {"rule": "Host(`app.test`)", "service": "svc"}},
            "services": {"svc": {"loadBalancer": {"servers": [{"url": backend}]}}},
        }
    }
    dr = await proxy(dynamic, static=static)
    headers = {"Host": "app.test", "User-Agent": "probe/1", "Authorization": "Bearer s3cret", "X-Other": "x"}
    async with aiohttp.ClientSession() as s:
        for path in (OK, MISSING, OK):
            async with s.get(dr.url(path), headers=headers) as r:
                await r.read()
    await wait_for(lambda: log_path.exists() and log_path.read_text().strip())
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [x["DownstreamStatus"] for x in lines] == [404]  # the two 200s are filtered out
    (line,) = lines
    assert line["request_User-Agent"] == "probe/1" and line["request_Authorization"] == "REDACTED"
    assert "request_X-Other" not in line and "ClientAddr" not in line and "ClientHost" in line
    assert "s3cret" not in text


async def test_series_of_a_removed_router_are_dropped_after_one_more_scrape(backend, proxy, tmp_path):
    """A router that leaves the configuration (a container gone) keeps its series for one more scrape,
    then they are dropped, so that a host whose containers come and go has bounded metrics; the entry
    point's counters keep what it counted."""
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "metrics": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "metrics": {"prometheus": {"entryPoint": "metrics", "addRoutersLabels": True}},
        "log": {"level": "DEBUG"},
    }
    service = {"svc": {"loadBalancer": {"servers": [{"url": backend}]}}}
    old = {"http": {"routers": {"old": {"rule": "Host(`app.test`)", "service": "svc"}}, "services": service}}
    dr = await proxy(old, static=static)
    await _traffic(dr.url(""))
    dr.write_dynamic(
        {"http": {"routers": {"new": {"rule": "Host(`new.test`)", "service": "svc"}}, "services": service}}
    )
    await wait_for(lambda: dr.log().count("configuration applied") >= 2)
    last = await _scrape(dr.url("/metrics", ep="metrics"))
    assert _count(last, "dockroute_router_requests", router="old@file") == 100  # one more scrape
    gone = await _scrape(dr.url("/metrics", ep="metrics"))
    assert _count(gone, "dockroute_router_requests", router="old@file") == 0
    assert _count(gone, "dockroute_entrypoint_requests", entrypoint="web") == 100


async def _open(port: int, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    return reader, writer


async def test_a_websocket_session_is_counted_when_its_client_leaves(in_process):
    """The client drops the connection without a close handshake while the backend keeps the session:
    aiohttp cancels the proxy's handler, and the session is still counted and logged (101)."""
    reader, writer = await _open(
        in_process.server.port,
        b"GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    writer.transport.abort()
    assert await wait_for(lambda: in_process.count(router="app@file", code="101", protocol="websocket"))
    (line,) = in_process.lines()
    assert line["DownstreamStatus"] == 101 and line["ServiceName"] == "svc@file"


async def test_a_client_giving_up_on_a_slow_backend_is_counted_499(in_process, origin):
    reader, writer = await _open(
        in_process.server.port, b"GET /slow?delay=3 HTTP/1.1\r\nHost: app.test\r\n\r\n"
    )
    await wait_for(lambda: origin.hits)  # the request is with the backend, which answers in 3 s
    writer.transport.abort()
    assert await wait_for(lambda: in_process.count(router="app@file", code="499"))
    (line,) = in_process.lines()
    assert line["DownstreamStatus"] == 499 and line["DownstreamContentSize"] == 0


async def test_a_client_leaving_mid_stream_is_counted_with_the_status_and_bytes_it_got(in_process):
    size = 256 << 20  # far more than the socket buffers hold: the proxy is mid-body when the client goes
    reader, writer = await _open(
        in_process.server.port,
        f"GET /download?size={size}&chunked=1 HTTP/1.1\r\nHost: app.test\r\n\r\n".encode(),
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await reader.readexactly(1 << 20)
    writer.transport.abort()
    assert await wait_for(lambda: in_process.count(router="app@file", code="200"))
    (line,) = in_process.lines()
    assert line["DownstreamStatus"] == 200 and (1 << 20) <= line["DownstreamContentSize"] < size


async def test_cache_hits_count_for_the_router_not_the_service(backend, origin, proxy, tmp_path):
    """A HIT of the ``cache`` middleware is answered without the service: it counts for the router (and
    the entry point), and only the MISS that reached the backend counts for the service, as Traefik's
    service metrics (in front of each server) would."""
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "metrics": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "metrics": {"prometheus": {"entryPoint": "metrics", "addRoutersLabels": True}},
    }
    dynamic = {
        "http": {
            "routers": {
                "app": {"rule": "Host(`app.test`)", "service": "svc", "middlewares": ["cache"]},
            },
            "middlewares": {"cache": {"cache": {"defaultTtl": "60s"}}},
            "services": {"svc": {"loadBalancer": {"servers": [{"url": backend}]}}},
        }
    }
    dr = await proxy(dynamic, static=static)
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(dr.url(OK), headers={"Host": "app.test"}) as r:
                assert r.status == 200 and await r.read() == OK_BODY
    assert origin.hits == 1  # two HITs
    fams = await _scrape(dr.url("/metrics", ep="metrics"))
    assert _count(fams, "dockroute_router_requests", router="app@file", service="svc@file", code="200") == 3
    assert _count(fams, "dockroute_service_requests", service="svc@file", code="200") == 1
    assert _count(fams, "dockroute_entrypoint_requests", entrypoint="web", code="200") == 3


async def test_a_routers_observability_leaves_its_requests_out_of_the_log_and_metrics(
    backend, proxy, tmp_path
):
    """Traefik v3.2+'s router ``observability``: accessLogs false keeps a router's requests out of the access
    log, metrics false out of the metrics; the other router is logged and counted as usual."""
    log_path = tmp_path / "access.log"
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "metrics": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "accessLog": {"filePath": str(log_path), "format": "json"},
        "metrics": {"prometheus": {"entryPoint": "metrics", "addRoutersLabels": True}},
    }
    quiet = {"accessLogs": False, "metrics": False}
    svc = {"loadBalancer": {"servers": [{"url": backend}]}}
    dynamic = {
        "http": {
            "routers": {
                "loud": {"rule": "Host(`loud.test`)", "service": "svc", "entryPoints": ["web"]},
                "quiet": {"rule": "Host(`quiet.test`)", "service": "svc", "observability": quiet},
            },
            "services": {"svc": svc},
        }
    }
    dr = await proxy(dynamic, static=static)
    async with aiohttp.ClientSession() as s:
        for host in ("quiet.test", "loud.test", "quiet.test"):
            async with s.get(dr.url(OK), headers={"Host": host}) as r:
                assert r.status == 200 and await r.read() == OK_BODY
    await wait_for(lambda: log_path.exists() and log_path.read_text().strip())
    fams = await _scrape(dr.url("/metrics", ep="metrics"))
    assert [json.loads(line)["RouterName"] for line in log_path.read_text().splitlines()] == ["loud@file"]
    assert _count(fams, "dockroute_router_requests", router="loud@file") == 1
    assert _count(fams, "dockroute_router_requests", router="quiet@file") == 0
    assert _count(fams, "dockroute_entrypoint_requests", entrypoint="web") == 1
