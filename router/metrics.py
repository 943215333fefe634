"""Prometheus metrics with Traefik's names (``traefik_`` → ``dockroute_``), counted on the event loop.

A request costs one dict lookup and one ``bisect`` (:meth:`Metrics.observe`): its series key is the tuple
(entry point, router, service, method, protocol, code, header label values...) and its value one list
(count, duration sum, request bytes, response bytes, one count per histogram bucket). Nothing is locked and
no ``prometheus_client`` object is touched per request: the entry point, router and service families are
sums over those fine series, made at scrape time (:func:`families`) from a copy taken on the loop
(:meth:`Metrics.snapshot`), and written out by ``prometheus_client``'s exposition in a worker thread
(:mod:`router.metrics_handler`). docs/metrics.md has the measurements behind this design.

Which families exist follows Traefik's ``addEntryPointsLabels``, ``addRoutersLabels`` and
``addServicesLabels``; ``headerLabels`` adds labels (from request headers) to the three ``requests_total``
counters only, as in Traefik. Requests to internal services (``api@internal``, ``prometheus@internal``...)
are not counted unless ``addInternals`` is set, as in Traefik.

The state the proxy does not see per request (configuration reloads, servers up, certificates, ACME
failures, open connections) is pushed by the app (:meth:`Metrics.config_reloaded`,
:meth:`Metrics.acme_failed`) or read at scrape time from sources it registers (:class:`Sources`).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from discover.tls_names import CIPHER_SUITES
from router.settings import PrometheusSettings

__all__ = ["Metrics", "Snapshot", "Sources", "families", "protocol_of", "method_label"]

PREFIX = "dockroute_"

# Go's net/http method names Traefik keeps as they are; any other becomes EXTENSION_METHOD (getMethod).
_METHODS = frozenset({"HEAD", "GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI"})
_OPENSSL_TO_GO = {openssl: go for go, openssl in CIPHER_SUITES.items()}
_TLS_VERSIONS = {"TLSv1": "1.0", "TLSv1.1": "1.1", "TLSv1.2": "1.2", "TLSv1.3": "1.3"}

# Series key: (entry point, router, service, method, protocol, code, served, *header label values); router
# and service are "" when the request reached none (a 404 from no router, a redirect). ``service`` is the
# router's service (the router families' label); ``served`` is "1" when one of its servers was asked (the
# service families count only those, as Traefik's service metrics sit in front of each server), else "".
Key = tuple[str, ...]
_SERVED = 6
# The distinct values one header label takes (values the client chooses); later ones count as OTHER.
MAX_HEADER_VALUES = 100
OTHER = "other"
# Series value: [count, duration sum, request bytes, response bytes, bucket 0, ..., bucket +Inf]
_COUNT, _SUM, _REQ, _RESP, _B0 = 0, 1, 2, 3, 4


def method_label(method: str) -> str:
    """Traefik's ``method`` label: the method, or EXTENSION_METHOD for one Go does not name."""
    return method if method in _METHODS else "EXTENSION_METHOD"


def protocol_of(headers: Any, status: int) -> str:
    """Traefik's ``protocol`` label (getRequestProtocol): websocket, sse, grpc-web, grpc or http."""
    upgrade = headers.get("Upgrade")
    if status == 101 or (
        upgrade is not None
        and "websocket" in upgrade.lower()
        and "upgrade" in headers.get("Connection", "").lower()
    ):
        return "websocket"  # asked for, whether or not the upgrade was granted (as Traefik)
    accept = headers.get("Accept")
    if accept is not None and "text/event-stream" in accept.lower():
        return "sse"
    ctype = headers.get("Content-Type")
    if ctype is not None and ctype.startswith("application/grpc"):
        return "grpc-web" if ctype.startswith("application/grpc-web") else "grpc"
    return "http"


def tls_labels(transport: Any) -> tuple[str, str] | None:
    """(tls_version, tls_cipher) of a TLS connection as Traefik names them ("1.3", Go's suite name), worked
    out once per connection (kept on its SSL object: a keep-alive connection carries many requests)."""
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return None
    labels: tuple[str, str] | None = getattr(sslobj, _TLS_ATTR, None)
    if labels is None:
        version = sslobj.version() or ""
        cipher = (sslobj.cipher() or ("",))[0]
        labels = (_TLS_VERSIONS.get(version, version), _OPENSSL_TO_GO.get(cipher, cipher))
        if version:  # known once the handshake is done
            try:
                setattr(sslobj, _TLS_ATTR, labels)
            except AttributeError:  # an SSL object without a __dict__: worked out each time
                pass
    return labels


_TLS_ATTR = "_dockroute_tls_labels"


@dataclass
class Sources:
    """What the app knows and the proxy does not, read on the loop when a scrape takes its snapshot.
    Each returns rows; None: not known (the family is left out)."""

    # (service, server URL, up) → dockroute_service_server_up
    servers_up: Callable[[], Iterable[tuple[str, str, bool]]] | None = None
    # (entry point, protocol, open connections) → dockroute_open_connections
    open_connections: Callable[[], Iterable[tuple[str, str, int]]] | None = None


@dataclass
class Snapshot:
    """A copy of the counters, taken on the loop, that a worker thread can format while requests go on."""

    settings: PrometheusSettings
    series: dict[Key, list[float]]
    tls: dict[tuple[str, str, str, str, str, str], int]
    reloads: int
    last_reload_success: float
    acme_failures: dict[str, int]
    servers_up: list[tuple[str, str, bool]] | None = None
    certificates: list[tuple[str, str, str, float]] | None = None
    open_connections: list[tuple[str, str, int]] | None = None
    header_names: tuple[str, ...] = field(default=())
    retries: dict[str, int] = field(default_factory=dict)


class Metrics:
    """The counters of one process: fed by :meth:`observe` (the entry points' handlers), read by
    :meth:`snapshot`. Also a ``prometheus_client`` collector (register it with a registry to expose it
    there)."""

    def __init__(self, settings: PrometheusSettings, add_internals: bool = False) -> None:
        self.settings = settings
        self.add_internals = add_internals
        self.buckets = tuple(sorted(settings.buckets))
        self.header_labels = tuple(label for label, _ in settings.header_labels)
        self.header_sources = tuple(header for _, header in settings.header_labels)
        self.series: dict[Key, list[float]] = {}
        self.tls: dict[tuple[str, str, str, str, str, str], int] = {}
        self._header_seen: tuple[set[str], ...] = tuple(set() for _ in self.header_sources)
        self.reloads = 0
        self.last_reload_success = 0.0
        self.acme_failures: dict[str, int] = {}
        self.retries: dict[str, int] = {}  # service → retries the retry middleware made
        self.certificates: list[tuple[str, str, str, float]] | None = None
        self.sources = Sources()
        # The routers and services of the applied configuration (None: not told; nothing is dropped)
        self._live: tuple[frozenset[str], frozenset[str]] | None = None
        self._width = _B0 + len(self.buckets) + 1

    def observe(
        self,
        entry_point: str,
        router: str,
        service: str,
        method: str,
        headers: Any,
        status: int,
        duration: float,
        request_size: int,
        response_size: int,
        served: bool = True,
    ) -> None:
        """Count one answered request (called once per request, on the loop). ``served``: a server of
        ``service`` was asked (else the request counts for its router, not for the service)."""
        key: Key = (
            entry_point,
            router,
            service,
            method if method in _METHODS else "EXTENSION_METHOD",
            protocol_of(headers, status),
            str(status),
            "1" if served and service else "",
        )
        if self.header_sources:
            key += self._header_values(headers)
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0] * self._width
        row[_COUNT] += 1
        row[_SUM] += duration
        row[_REQ] += request_size
        row[_RESP] += response_size
        row[_B0 + bisect_left(self.buckets, duration)] += 1

    def _header_values(self, headers: Any) -> tuple[str, ...]:
        """The header labels' values of a request. Clients choose them: a value that is not UTF-8 (aiohttp
        keeps such bytes as surrogates, which the exposition cannot encode) is cleaned, and each label
        takes at most :data:`MAX_HEADER_VALUES` distinct values (later ones count as :data:`OTHER`), so
        that no client can grow the series without bound."""
        out = []
        for header, seen in zip(self.header_sources, self._header_seen, strict=True):
            value = headers.get(header, "")
            if value not in seen:
                if not value.isascii():
                    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                if value not in seen:
                    if len(seen) >= MAX_HEADER_VALUES:
                        value = OTHER
                    else:
                        seen.add(value)
            out.append(value)
        return tuple(out)

    def observe_tls(
        self, entry_point: str, router: str, service: str, version: str, cipher: str, served: bool = True
    ) -> None:
        """Count one request made over TLS (``requests_tls_total``)."""
        key = (entry_point, router, service, version, cipher, "1" if served and service else "")
        self.tls[key] = self.tls.get(key, 0) + 1

    def retried(self, service: str, retries: int) -> None:
        """A request was retried ``retries`` times (``service_retries_total``)."""
        self.retries[service] = self.retries.get(service, 0) + retries

    def config_reloaded(self, when: float | None = None) -> None:
        """A new configuration was applied (``config_reloads_total``, ``config_last_reload_success``)."""
        self.reloads += 1
        self.last_reload_success = time.time() if when is None else when

    def set_certificates(self, rows: list[tuple[str, str, str, float]]) -> None:
        """The certificates served now: (cn, serial in decimal, DNS names joined with ",", not-after as
        Unix seconds), parsed off the loop by the caller → ``tls_certs_not_after``."""
        self.certificates = rows

    def acme_failed(self, resolver: str) -> None:
        """An ACME order of ``resolver`` failed (``dockroute_acme_failures_total``, dockroute's own)."""
        self.acme_failures[resolver] = self.acme_failures.get(resolver, 0) + 1

    def set_configuration(self, routers: Iterable[str], services: Iterable[str]) -> None:
        """The routers and services the applied configuration has. Series of others (a container gone,
        a router renamed) are exported by the next scrape one last time, then dropped, as Traefik's
        promState does: the counters of a busy host whose containers come and go stay bounded."""
        self._live = (frozenset(routers), frozenset(services))

    def snapshot(self) -> Snapshot:
        """A copy to format off the loop (the loop keeps counting into the originals meanwhile)."""
        snap = self._copy()
        if self._live is not None:
            self._drop_gone(*self._live)
        return snap

    def _drop_gone(self, routers: frozenset[str], services: frozenset[str]) -> None:
        """Drop the fine series of routers/services gone; what they counted moves to their entry point's
        router-less series, so that the entry point's counters never go down (a reset to Prometheus)."""
        series = self.series
        for k in [k for k in series if (k[1] and k[1] not in routers) or (k[2] and k[2] not in services)]:
            row = series.pop(k)
            into = (k[0], "", "", *k[3:_SERVED], "", *k[_SERVED + 1 :])
            kept = series.get(into)
            if kept is None:
                series[into] = row
            else:
                for i, x in enumerate(row):
                    kept[i] += x
        for gone in [svc for svc in self.retries if svc not in services]:
            del self.retries[gone]
        tls = self.tls
        for t in [t for t in tls if (t[1] and t[1] not in routers) or (t[2] and t[2] not in services)]:
            n = tls.pop(t)
            into_tls = (t[0], "", "", t[3], t[4], "")
            tls[into_tls] = tls.get(into_tls, 0) + n

    def _copy(self) -> Snapshot:
        s = self.sources
        return Snapshot(
            settings=self.settings,
            series={k: v[:] for k, v in self.series.items()},
            tls=dict(self.tls),
            reloads=self.reloads,
            last_reload_success=self.last_reload_success,
            acme_failures=dict(self.acme_failures),
            servers_up=list(s.servers_up()) if s.servers_up else None,
            certificates=self.certificates,
            open_connections=list(s.open_connections()) if s.open_connections else None,
            header_names=self.header_labels,
            retries=dict(self.retries),
        )

    def collect(self) -> Iterator[Metric]:
        """``prometheus_client``'s collector protocol (runs on the loop: snapshot and format together)."""
        return families(self.snapshot())

    def describe(self) -> list[Metric]:
        return []


Collector.register(Metrics)


def families(snap: Snapshot) -> Iterator[Metric]:
    """Every metric family of a snapshot, in Traefik's order (safe in any thread: reads only ``snap``)."""
    yield from _server_families(snap)
    st = snap.settings
    levels = (
        (st.add_entry_points_labels, "entrypoint", ("entrypoint",), lambda k: (k[0],)),
        (st.add_routers_labels, "router", ("router", "service"), lambda k: (k[1], k[2])),
        (st.add_services_labels, "service", ("service",), lambda k: (k[2],)),
    )
    for enabled, level, names, pick in levels:
        if not enabled:
            continue
        rows = snap.series if level == "entrypoint" else _with(snap.series, level)
        yield from _request_families(snap, rows, level, names, pick)
        if level == "service" and snap.servers_up is not None:
            up = GaugeMetricFamily(
                PREFIX + "service_server_up",
                "service server is up, described by gauge value of 0 or 1.",
                labels=("service", "url"),
            )
            for service, url, ok in snap.servers_up:
                up.add_metric((service, url), 1.0 if ok else 0.0)
            yield up
        if level == "service":
            retries = CounterMetricFamily(
                PREFIX + "service_retries",
                "How many request retries happened on a service.",
                labels=("service",),
            )
            for service, n in sorted(snap.retries.items()):
                retries.add_metric((service,), n)
            yield retries


# Traefik's help texts, word for word (pkg/observability/metrics/prometheus.go): requests, TLS requests,
# duration, request bytes, response bytes.
_PARTS = "partitioned by status code, protocol, and method."
_RPARTS = "partitioned by service, status code, protocol, and method."
HELP = {
    "entrypoint": (
        f"How many HTTP requests processed on an entrypoint, {_PARTS}",
        "How many HTTP requests with TLS processed on an entrypoint, partitioned by TLS Version and TLS "
        "cipher Used.",
        f"How long it took to process the request on an entrypoint, {_PARTS}",
        f"The total size of requests in bytes handled by an entrypoint, {_PARTS}",
        f"The total size of responses in bytes handled by an entrypoint, {_PARTS}",
    ),
    "router": (
        f"How many HTTP requests are processed on a router, {_RPARTS}",
        "How many HTTP requests with TLS are processed on a router, partitioned by service, TLS Version, and "
        "TLS cipher Used.",
        f"How long it took to process the request on a router, {_RPARTS}",
        f"The total size of requests in bytes handled by a router, {_RPARTS}",
        f"The total size of responses in bytes handled by a router, {_RPARTS}",
    ),
    "service": (
        f"How many HTTP requests processed on a service, {_PARTS}",
        "How many HTTP requests with TLS processed on a service, partitioned by TLS version and TLS cipher.",
        f"How long it took to process the request on a service, {_PARTS}",
        f"The total size of requests in bytes received by a service, {_PARTS}",
        f"The total size of responses in bytes returned by a service, {_PARTS}",
    ),
}


def _with(series: dict[Key, list[float]], level: str) -> dict[Key, list[float]]:
    """The series that reached a router (or one of a service's servers)."""
    index = 1 if level == "router" else _SERVED
    return {k: v for k, v in series.items() if k[index]}


def _server_families(snap: Snapshot) -> Iterator[Metric]:
    reloads = CounterMetricFamily(PREFIX + "config_reloads", "Config reloads", labels=())
    reloads.add_metric((), snap.reloads)
    yield reloads
    last = GaugeMetricFamily(PREFIX + "config_last_reload_success", "Last config reload success", labels=())
    last.add_metric((), snap.last_reload_success)
    yield last
    if snap.certificates is not None:
        certs = GaugeMetricFamily(
            PREFIX + "tls_certs_not_after",
            "Certificate expiration timestamp",
            labels=("cn", "serial", "sans"),
        )
        for cn, serial, sans, not_after in snap.certificates:
            certs.add_metric((cn, serial, sans), not_after)
        yield certs
    if snap.open_connections is not None:
        conns = GaugeMetricFamily(
            PREFIX + "open_connections",
            "How many open connections exist, by entryPoint and protocol",
            labels=("entrypoint", "protocol"),
        )
        for ep, proto, n in snap.open_connections:
            conns.add_metric((ep, proto), n)
        yield conns
    acme = CounterMetricFamily(
        PREFIX + "acme_failures", "ACME certificate orders that failed, by resolver.", labels=("resolver",)
    )
    for resolver, n in sorted(snap.acme_failures.items()):
        acme.add_metric((resolver,), n)
    yield acme


def _request_families(
    snap: Snapshot,
    rows: dict[Key, list[float]],
    level: str,
    names: tuple[str, ...],
    pick: Callable[[Key], tuple[str, ...]],
) -> Iterator[Metric]:
    """requests_total (with header labels), requests_tls_total, request_duration_seconds,
    requests_bytes_total and responses_bytes_total of one level, summed from the fine series."""
    base = ("code", "method", "protocol", *names)
    by_headers: dict[tuple[str, ...], float] = {}
    summed: dict[tuple[str, ...], list[float]] = {}
    for k, v in rows.items():
        labels = (k[5], k[3], k[4], *pick(k))
        hk = labels + k[_SERVED + 1 :]
        by_headers[hk] = by_headers.get(hk, 0) + v[_COUNT]
        acc = summed.get(labels)
        if acc is None:
            summed[labels] = v[:]
        else:
            for i, x in enumerate(v):
                acc[i] += x
    prefix = f"{PREFIX}{level}_"
    total = CounterMetricFamily(
        prefix + "requests",
        HELP[level][0],
        labels=base + snap.header_names,
    )
    for labels, n in by_headers.items():
        total.add_metric(labels, n)
    yield total
    yield _tls_family(snap, level, names)
    yield _histogram(snap, summed, prefix, base, level)
    for index, name, text in (
        (_REQ, "requests_bytes", HELP[level][3]),
        (_RESP, "responses_bytes", HELP[level][4]),
    ):
        fam = CounterMetricFamily(prefix + name, text, labels=base)
        for labels, v in summed.items():
            fam.add_metric(labels, v[index])
        yield fam


def _tls_family(snap: Snapshot, level: str, names: tuple[str, ...]) -> Metric:
    fam = CounterMetricFamily(
        f"{PREFIX}{level}_requests_tls",
        HELP[level][1],
        labels=("tls_version", "tls_cipher", *names),
    )
    sums: dict[tuple[str, ...], int] = {}
    for (ep, router, service, version, cipher, served), n in snap.tls.items():
        if level == "entrypoint":
            key: tuple[str, ...] = (version, cipher, ep)
        elif level == "router":
            if not router:
                continue
            key = (version, cipher, router, service)
        else:
            if not served:
                continue
            key = (version, cipher, service)
        sums[key] = sums.get(key, 0) + n
    for key, n in sums.items():
        fam.add_metric(key, n)
    return fam


def _go_float(value: float) -> str:
    """A bucket bound as Go's client writes it (``5``, ``0.3``), so dashboards matching ``le="5"`` work."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _histogram(
    snap: Snapshot, summed: dict[tuple[str, ...], list[float]], prefix: str, base: tuple[str, ...], level: str
) -> Metric:
    bounds = [_go_float(b) for b in sorted(snap.settings.buckets)] + ["+Inf"]
    fam = HistogramMetricFamily(
        prefix + "request_duration_seconds",
        HELP[level][2],
        labels=base,
    )
    for labels, v in summed.items():
        running = 0.0
        cumulative = []
        for bound, n in zip(bounds, v[_B0:], strict=True):
            running += n
            cumulative.append((bound, running))
        fam.add_metric(labels, cumulative, v[_SUM])
    return fam
