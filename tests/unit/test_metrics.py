"""Prometheus metrics: Traefik's families and labels with the ``dockroute_`` prefix, counted exactly, parsed
back with prometheus_client's own parser; the observation point (EntryPointHandler.log) feeding them."""

from __future__ import annotations

import asyncio
import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from discover.model import HealthCheck, LoadBalancer, Server
from router.accesslog import AccessLog
from router.balancer import ServiceBalancer
from router.metrics import MAX_HEADER_VALUES, OTHER, Metrics, method_label, protocol_of, tls_labels
from router.metrics_handler import prometheus_handler, render
from router.metrics_sources import open_connection_rows, server_up_rows
from router.proxy import EntryPointHandler
from router.replies import SENT_KEEP
from router.settings import EntryPoint, PrometheusSettings
from router.table import Route, RoutingTable
from tests.exchange_fakes import fake_exchange

H = CIMultiDict()


def _parse(m: Metrics) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(render(m.snapshot()).decode())}


def _value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    family = sample
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            family = sample[: -len(suffix)]
            break
    for s in fams[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((sample, labels))


def _traffic(m: Metrics) -> None:
    for i in range(60):
        m.observe("web", "r@file", "svc@file", "GET", H, 200, 0.05 if i % 2 else 0.2, 0, 10)
    for _ in range(40):
        m.observe("web", "r@file", "svc@file", "GET", H, 404, 2.0, 5, 19)
    m.observe("web", "", "", "GET", H, 404, 0.001, 0, 19)  # no router matched


def test_request_counters_count_by_code_at_each_level():
    m = Metrics(PrometheusSettings(add_routers_labels=True))
    _traffic(m)
    f = _parse(m)
    ep = {"entrypoint": "web", "method": "GET", "protocol": "http"}
    assert _value(f, "dockroute_entrypoint_requests_total", code="200", **ep) == 60
    assert _value(f, "dockroute_entrypoint_requests_total", code="404", **ep) == 41
    rt = {"router": "r@file", "service": "svc@file", "method": "GET", "protocol": "http"}
    assert _value(f, "dockroute_router_requests_total", code="200", **rt) == 60
    assert _value(f, "dockroute_router_requests_total", code="404", **rt) == 40
    assert _value(f, "dockroute_service_requests_total", code="404", service="svc@file") == 40
    assert len(f["dockroute_service_requests"].samples) == 2  # the router-less 404 is no service's
    assert _value(f, "dockroute_service_responses_bytes_total", code="200", service="svc@file") == 600
    assert _value(f, "dockroute_service_requests_bytes_total", code="404", service="svc@file") == 200


def test_duration_histogram_uses_the_configured_buckets_cumulatively():
    m = Metrics(PrometheusSettings(buckets=(0.1, 0.3, 1.2, 5.0)))
    _traffic(m)
    f = _parse(m)
    lab = {"service": "svc@file", "code": "200"}
    name = "dockroute_service_request_duration_seconds_bucket"
    assert [_value(f, name, le=le, **lab) for le in ("0.1", "0.3", "1.2", "5", "+Inf")] == [
        30,
        60,
        60,
        60,
        60,
    ]
    assert _value(f, "dockroute_service_request_duration_seconds_count", **lab) == 60
    assert (
        abs(_value(f, "dockroute_service_request_duration_seconds_sum", **lab) - (30 * 0.05 + 30 * 0.2))
        < 1e-9
    )
    lab404 = {"service": "svc@file", "code": "404"}
    assert _value(f, name, le="1.2", **lab404) == 0 and _value(f, name, le="5", **lab404) == 40


def test_families_follow_the_add_labels_settings():
    m = Metrics(PrometheusSettings())  # Traefik's defaults: entry points and services, no routers
    _traffic(m)
    names = set(_parse(m))
    assert "dockroute_entrypoint_requests" in names and "dockroute_service_requests" in names
    assert not any(n.startswith("dockroute_router_") for n in names)
    m = Metrics(PrometheusSettings(add_entry_points_labels=False, add_services_labels=False))
    _traffic(m)
    names = set(_parse(m))
    assert not any(
        n.startswith(("dockroute_entrypoint_", "dockroute_service_", "dockroute_router_")) for n in names
    )
    assert {"dockroute_config_reloads", "dockroute_config_last_reload_success"} <= names


def test_header_labels_go_on_requests_total_only():
    m = Metrics(PrometheusSettings(header_labels=(("tenant", "X-Tenant"),)))
    m.observe("web", "r", "s", "GET", CIMultiDict({"X-Tenant": "acme"}), 200, 0.01, 0, 0)
    m.observe("web", "r", "s", "GET", CIMultiDict({"X-Tenant": "acme"}), 200, 0.01, 0, 0)
    m.observe("web", "r", "s", "GET", H, 200, 0.01, 0, 0)
    f = _parse(m)
    assert _value(f, "dockroute_service_requests_total", tenant="acme") == 2
    assert _value(f, "dockroute_service_requests_total", tenant="") == 1
    hist = f["dockroute_service_request_duration_seconds"].samples
    assert all("tenant" not in s.labels for s in hist)
    assert _value(f, "dockroute_service_request_duration_seconds_count", service="s") == 3


def test_method_and_protocol_labels_are_traefiks():
    assert method_label("PATCH") == "PATCH" and method_label("PROPFIND") == "EXTENSION_METHOD"
    assert protocol_of(H, 101) == "websocket"
    ws = CIMultiDict({"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"})
    assert protocol_of(ws, 404) == "websocket"  # refused, still a websocket request
    assert protocol_of(CIMultiDict({"Accept": "text/event-stream"}), 200) == "sse"
    assert protocol_of(CIMultiDict({"Content-Type": "application/grpc+proto"}), 200) == "grpc"
    assert protocol_of(CIMultiDict({"Content-Type": "application/grpc-web"}), 200) == "grpc-web"
    assert protocol_of(H, 200) == "http"


def test_server_state_families():
    m = Metrics(PrometheusSettings())
    m.config_reloaded(when=1700000000.0)
    m.config_reloaded(when=1700000100.0)
    m.acme_failed("le")
    m.set_certificates([("a.test", "12345", "a.test,b.test", 1800000000.0)])
    m.sources.servers_up = lambda: [
        ("svc@file", "http://10.0.0.1:80", True),
        ("svc@file", "http://10.0.0.2:80", False),
    ]
    m.sources.open_connections = lambda: [("web", "TCP", 3)]
    f = _parse(m)
    assert _value(f, "dockroute_config_reloads_total") == 2
    assert _value(f, "dockroute_config_last_reload_success") == 1700000100.0
    assert _value(f, "dockroute_acme_failures_total", resolver="le") == 1
    assert (
        _value(f, "dockroute_tls_certs_not_after", cn="a.test", serial="12345", sans="a.test,b.test") == 1.8e9
    )
    assert _value(f, "dockroute_service_server_up", url="http://10.0.0.2:80") == 0
    assert _value(f, "dockroute_service_server_up", url="http://10.0.0.1:80") == 1
    assert _value(f, "dockroute_open_connections", entrypoint="web", protocol="TCP") == 3
    assert "process_cpu_seconds" in f  # the process collector, as Traefik exposes Go's process metrics


def test_snapshot_is_a_copy():
    m = Metrics(PrometheusSettings())
    _traffic(m)
    snap = m.snapshot()
    m.observe("web", "r@file", "svc@file", "GET", H, 200, 0.05, 0, 10)
    text = render(snap).decode()
    f = {x.name: x for x in text_string_to_metric_families(text)}
    assert _value(f, "dockroute_service_requests_total", code="200") == 60


async def test_prometheus_handler_answers_the_exposition():
    m = Metrics(PrometheusSettings())
    _traffic(m)
    ex = fake_exchange("GET", "/metrics")
    await prometheus_handler(m)(ex)
    head, _, body = ex.transport.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: text/plain; version=" in head
    fams = {x.name: x for x in text_string_to_metric_families(body.decode())}
    assert _value(fams, "dockroute_entrypoint_requests_total", code="404") == 41


# -- the observation point -----------------------------------------------------------------------------


class _Request(dict):
    def __init__(self, method: str = "GET", headers: CIMultiDict | None = None, path: str = "/x?q=1") -> None:
        super().__init__()
        self._message = SimpleNamespace(
            method=method,
            path=path,
            version=(1, 1),
            headers=headers if headers is not None else CIMultiDict({"Host": "app.test"}),
            should_close=False,
            chunked=False,
        )
        self.transport = SimpleNamespace(get_extra_info=lambda name: ("127.0.0.1", 5555))
        self.protocol = SimpleNamespace(client_ip="127.0.0.1", client_port=5555)  # router.connection's
        self.content = SimpleNamespace(total_bytes=0, is_eof=lambda: True)


def _handler(metrics: Metrics, *targets: Any) -> EntryPointHandler:
    h = EntryPointHandler(EntryPoint("web", ":0"), pool=None, metrics=metrics)  # type: ignore[arg-type]
    rule = SimpleNamespace(hosts=None, match=lambda _r: True)
    h.table = RoutingTable(Route(t.router, 1, rule, t) for t in targets)  # type: ignore[arg-type]
    return h


def test_log_feeds_metrics_with_the_routes_service_and_skips_internal_services():
    m = Metrics(PrometheusSettings(add_routers_labels=True))
    svc = SimpleNamespace(router="r@file", service="svc@file")
    chain = SimpleNamespace(router="c@file", final=SimpleNamespace(service="other@file"))
    internal = SimpleNamespace(router="metrics@file", service="prometheus@internal")
    h = _handler(m, svc, chain, internal)
    assert h.observe
    for router in ("r@file", "c@file", "metrics@file", "web-to-websecure@internal"):
        h.log(_Request(), None, 200, 10, router, None, None)
    f = _parse(m)
    assert _value(f, "dockroute_router_requests_total", router="r@file", service="svc@file") == 1
    assert _value(f, "dockroute_router_requests_total", router="c@file", service="other@file") == 1
    assert _value(f, "dockroute_entrypoint_requests_total", entrypoint="web") == 2  # internal ones left out
    m2 = Metrics(PrometheusSettings(), add_internals=True)
    h2 = _handler(m2, internal)
    h2.log(_Request(), None, 200, 10, "metrics@file", None, None)
    f2 = _parse(m2)
    assert _value(f2, "dockroute_entrypoint_requests_total", entrypoint="web") == 1
    # an internal service has no servers: Traefik's service metrics (in front of each server) never see it
    assert not f2["dockroute_service_requests"].samples


async def test_nothing_observed_without_metrics_or_access_log(monkeypatch):
    """With both off, no request reaches the observation point, nor leaves anything on the request: a
    routed one, a 404, a HEAD, one cancelled (the client gone)."""

    def observed(*args: Any) -> None:
        raise AssertionError("observed with metrics and access log off")

    monkeypatch.setattr(EntryPointHandler, "log", observed)
    gate = asyncio.Event()

    class Answers:
        router = "r@file"

        async def handle(self, ep, request, transport, msg, info, host_header, close):
            if ep.observe:
                ep.log(request, info, 200, 0, self.router, None, None)
            if msg.path == "/wait":
                await gate.wait()
            return SENT_KEEP

    h = EntryPointHandler(EntryPoint("web", ":0"), pool=None)  # type: ignore[arg-type]
    assert not h.observe
    rule = SimpleNamespace(hosts=None, match=lambda r: r.path != "/nope")
    h.table = RoutingTable([Route("r@file", 1, rule, Answers())])  # type: ignore[arg-type]
    requests = [_Request(path=p, method=m) for p, m in (("/x", "GET"), ("/nope", "GET"), ("/nope", "HEAD"))]
    for req in requests:
        req.transport = SimpleNamespace(
            get_extra_info=lambda name: None, is_closing=lambda: False, write=lambda data: None
        )
        await h(req)
    waiting = _Request(path="/wait")
    task = asyncio.create_task(h(waiting))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(not req for req in [*requests, waiting])  # nothing kept on the request either


def test_header_label_values_that_are_not_utf8_or_too_many_never_break_a_scrape():
    """A header label's value is chosen by the client: bytes that are not UTF-8 (aiohttp keeps them as
    surrogates) are cleaned, or every later scrape would fail to encode; and one label takes at most
    MAX_HEADER_VALUES distinct values, later ones counting as OTHER, so no client grows the series."""
    m = Metrics(PrometheusSettings(header_labels=(("tenant", "X-Tenant"),)))
    m.observe("web", "", "", "GET", CIMultiDict({"X-Tenant": "caf\udce9"}), 200, 0.01, 0, 0)
    for i in range(MAX_HEADER_VALUES + 50):
        m.observe("web", "", "", "GET", CIMultiDict({"X-Tenant": f"t{i}"}), 200, 0.01, 0, 0)
    f = _parse(m)
    tenants = {s.labels["tenant"] for s in f["dockroute_entrypoint_requests"].samples}
    assert "caf\ufffd" in tenants
    assert len(tenants) == MAX_HEADER_VALUES + 1 and OTHER in tenants
    assert _value(f, "dockroute_entrypoint_requests_total", tenant=OTHER) == 51


def test_help_texts_are_traefiks():
    m = Metrics(PrometheusSettings(add_routers_labels=True))
    f = _parse(m)
    assert f["dockroute_router_requests"].documentation == (
        "How many HTTP requests are processed on a router, partitioned by service, status code, protocol, "
        "and method."
    )
    assert f["dockroute_service_requests_tls"].documentation == (
        "How many HTTP requests with TLS processed on a service, partitioned by TLS version and TLS cipher."
    )
    assert f["dockroute_service_requests_bytes"].documentation.startswith(
        "The total size of requests in bytes received by a service"
    )
    assert f["dockroute_service_responses_bytes"].documentation.startswith(
        "The total size of responses in bytes returned by a service"
    )
    assert f["dockroute_entrypoint_requests_tls"].documentation == (
        "How many HTTP requests with TLS processed on an entrypoint, partitioned by TLS Version and TLS "
        "cipher Used."
    )


def test_server_up_rows_come_from_health_checked_balancers_only():
    checked = ServiceBalancer(
        "a@file",
        LoadBalancer(
            servers=(Server("http://10.0.0.1"), Server("http://10.0.0.2")), health_check=HealthCheck()
        ),
    )
    checked.servers[1].healthy = False
    unchecked = ServiceBalancer("b@file", LoadBalancer(servers=(Server("http://10.0.0.3"),)))
    rows = server_up_rows({"a@file": checked, "b@file": unchecked})
    assert rows == [("a@file", "http://10.0.0.1", True), ("a@file", "http://10.0.0.2", False)]


def test_open_connection_rows_add_both_sides_of_an_entry_point():
    side = SimpleNamespace
    servers = [
        side(name="web", web_server=side(connections=[1, 2]), tls_web_server=side(connections=[3])),
        side(name="api", web_server=side(connections=[]), tls_web_server=None),
        side(name="db", web_server=side(connections=[]), tls_web_server=None, tcp_relays={"r1", "r2"}),
    ]
    assert open_connection_rows(servers) == [("web", "TCP", 3), ("api", "TCP", 0), ("db", "TCP", 2)]


def test_the_access_log_record_has_the_origin_form_path_of_an_absolute_target():
    out = io.StringIO()
    h = EntryPointHandler(EntryPoint("web", ":0"), pool=None, access_log=AccessLog(fmt="json", stream=out))  # type: ignore[arg-type]
    req = _Request()
    req._message.path = "http://app.test/a/b?c=1"
    h.log(req, None, 200, 3, None, None, None)
    h.access_log.flush(wait=True)
    assert json.loads(out.getvalue())["RequestPath"] == "/a/b?c=1"


def test_series_of_removed_routers_and_services_go_after_one_more_scrape():
    m = Metrics(PrometheusSettings(add_routers_labels=True))
    m.observe("web", "old@docker", "old@docker", "GET", H, 200, 0.01, 0, 0)
    m.observe("web", "app@file", "svc@file", "GET", H, 200, 0.01, 0, 0)
    m.observe("web", "", "", "GET", H, 404, 0.01, 0, 0)
    m.observe_tls("web", "old@docker", "old@docker", "1.3", "TLS_AES_128_GCM_SHA256")
    m.set_configuration(["app@file"], ["svc@file"])
    f = _parse(m)  # the last scrape that shows the old router's counts
    assert _value(f, "dockroute_router_requests_total", router="old@docker") == 1
    f = _parse(m)
    assert {s.labels["router"] for s in f["dockroute_router_requests"].samples} == {"app@file"}
    assert not f["dockroute_router_requests_tls"].samples
    assert _value(f, "dockroute_entrypoint_requests_total", code="404") == 1  # router-less series stay
    # the entry point's counters keep what the gone router counted: a counter never goes down
    assert _value(f, "dockroute_entrypoint_requests_total", code="200") == 2
    assert _value(f, "dockroute_entrypoint_requests_tls_total", tls_version="1.3") == 1


def test_retries_the_retry_middleware_made_count_per_service():
    """``service_retries_total``: what the retry middleware left on the request (router.proxy.RETRIES), per
    service; a request not retried adds nothing, and a service gone from the configuration is dropped."""
    from router.proxy import RETRIES

    m = Metrics(PrometheusSettings())
    h = _handler(m, SimpleNamespace(router="r@file", service="svc@file"))
    retried = _Request()
    retried[RETRIES] = 2
    h.log(retried, None, 200, 10, "r@file", None, None)
    h.log(_Request(), None, 200, 10, "r@file", None, None)
    assert _value(_parse(m), "dockroute_service_retries_total", service="svc@file") == 2
    m.set_configuration([], [])
    m.snapshot()
    assert not _parse(m)["dockroute_service_retries"].samples


def test_tls_labels_are_worked_out_once_per_connection():
    calls = []

    class SSLObject:
        def version(self) -> str:
            calls.append("version")
            return "TLSv1.3"

        def cipher(self) -> tuple[str, str, int]:
            return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)

    sslobj = SSLObject()
    transport = SimpleNamespace(get_extra_info=lambda name: sslobj if name == "ssl_object" else None)
    assert tls_labels(transport) == tls_labels(transport) == ("1.3", "TLS_AES_128_GCM_SHA256")
    assert calls == ["version"]
