"""Records → :class:`~discover.model.DynamicConfig`, as Traefik v3's Kubernetes Ingress provider builds it.

Pure: the watch hands in what it holds (:class:`Cluster`), this returns the configuration, the log lines to
say (once) and the ``status.loadBalancer`` each routed Ingress should have. Names follow Traefik, so that
``myns-myingress-example-com-api@kubernetes`` is the same router in both: routers are
``<namespace>-<ingress>-<host><path>`` normalized, services ``<namespace>-<service>-<port>``; the default
backend is ``default-router`` / ``default-backend``. An Ingress carries certificates (``spec.tls``), not
HTTPS: as in Traefik, a router serves TLS when ``router.tls`` (or a ``router.tls.*`` annotation) asks, or
its entry point has ``http.tls``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from discover.kubernetes.annotations import (
    AnnotationError,
    RouterAnnotations,
    router_annotations,
    service_annotations,
)
from discover.kubernetes.records import (
    Backend,
    EndpointSliceRecord,
    IngressClassRecord,
    IngressPath,
    IngressRecord,
    IngressRule,
    LoadBalancerIngress,
    SecretRecord,
    ServicePort,
    ServiceRecord,
)
from discover.kubernetes.settings import INGRESS_CONTROLLERS, KubernetesIngressSettings
from discover.model import (
    CertificateFile,
    DynamicConfig,
    LoadBalancer,
    Router,
    Server,
    Service,
    TLSConfig,
    frozen_map,
)

__all__ = ["BuildResult", "Cluster", "build_ingress_config", "normalize"]

LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_TRAEFIK_DEFAULT_CLASS = "traefik"
_MIN_PRIORITY = -(2**31)  # Go's math.MinInt32: the default backend loses to every other router


@dataclass(frozen=True)
class Cluster:
    """What the watch holds, keyed ``namespace/name`` (IngressClasses by name)."""

    ingresses: Mapping[str, IngressRecord] = field(default_factory=dict)
    classes: Mapping[str, IngressClassRecord] = field(default_factory=dict)
    services: Mapping[str, ServiceRecord] = field(default_factory=dict)
    slices: Mapping[str, EndpointSliceRecord] = field(default_factory=dict)
    secrets: Mapping[str, SecretRecord] = field(default_factory=dict)


@dataclass
class BuildResult:
    config: DynamicConfig
    lines: list[tuple[int, str]] = field(default_factory=list)  # (level, message): said once each
    # Ingress key → the status.loadBalancer.ingress it should have, only where it differs from the API's
    statuses: dict[str, tuple[LoadBalancerIngress, ...]] = field(default_factory=dict)


def normalize(name: str) -> str:
    """Traefik's ``provider.Normalize``: runs of characters that are neither letters nor digits → ``-``."""
    out, word = [], []
    for ch in name:
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return "-".join(out)


class _ServiceError(Exception):
    pass


@dataclass
class _Build:
    settings: KubernetesIngressSettings
    cluster: Cluster
    routers: dict[str, Router] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    certs: dict[str, CertificateFile] = field(default_factory=dict)
    lines: list[tuple[int, str]] = field(default_factory=list)
    _by_service: dict[tuple[str, str], list[EndpointSliceRecord]] | None = None

    def slices_of(self, namespace: str, service: str) -> list[EndpointSliceRecord]:
        """The Service's EndpointSlices, by name order (indexed once per build: a cluster has thousands)."""
        if self._by_service is None:
            self._by_service = {}
            for key in sorted(self.cluster.slices):
                sl = self.cluster.slices[key]
                self._by_service.setdefault((sl.namespace, sl.service), []).append(sl)
        return self._by_service.get((namespace, service), [])

    def say(self, level: int, ing: IngressRecord, message: str) -> None:
        self.lines.append((level, f"ingress {ing.key}: {message}"))


def build_ingress_config(cluster: Cluster, settings: KubernetesIngressSettings) -> BuildResult:
    """The provider's whole configuration from what the cluster holds now."""
    b = _Build(settings, cluster)
    classes = _classes(cluster, settings)
    statuses: dict[str, tuple[LoadBalancerIngress, ...]] = {}
    for key in sorted(cluster.ingresses):
        ing = cluster.ingresses[key]
        if not _should_process(ing, classes, settings):
            continue
        status = _wanted_status(b, ing)
        if status is not None and status != ing.status:
            statuses[key] = status
        _ingress(b, ing)
    cfg = DynamicConfig(
        routers=frozen_map(b.routers),
        services=frozen_map(b.services),
        tls=TLSConfig(certificates=tuple(b.certs[k] for k in sorted(b.certs))),
    )
    return BuildResult(config=cfg, lines=b.lines, statuses=statuses)


# -- which Ingresses -----------------------------------------------------------------------------------


def _classes(cluster: Cluster, settings: KubernetesIngressSettings) -> set[str]:
    """Names of the IngressClasses this provider serves: those of Traefik's or dockroute's controller,
    named ``ingressClass`` when that is set (as Traefik filters them); none when the lookup is off."""
    if not settings.lookup_classes:
        return set()
    return {
        c.name
        for c in cluster.classes.values()
        if c.controller in INGRESS_CONTROLLERS
        and (not settings.ingress_class or c.name == settings.ingress_class)
    }


def _should_process(ing: IngressRecord, classes: set[str], settings: KubernetesIngressSettings) -> bool:
    """Traefik's ``shouldProcessIngress``: ``spec.ingressClassName`` must name a served IngressClass; else
    the legacy annotation must equal ``ingressClass`` (``ingressClass`` empty: be unset or ``traefik``)."""
    if ing.class_name is not None:
        return ing.class_name in classes
    legacy = ing.annotations.get(LEGACY_CLASS_ANNOTATION, "")
    return settings.ingress_class == legacy or (
        not settings.ingress_class and legacy == _TRAEFIK_DEFAULT_CLASS
    )


# -- one Ingress ---------------------------------------------------------------------------------------


def _ingress(b: _Build, ing: IngressRecord) -> str:
    """Adds what one Ingress routes; returns why it is left out in full ("" when it is not)."""
    try:
        ann, warnings = router_annotations(ing.annotations)
    except AnnotationError as exc:
        b.say(logging.ERROR, ing, f"left out: {exc}")
        return str(exc)
    for w in warnings:
        b.say(logging.WARNING, ing, w)
    for m in ann.middlewares:
        if m.endswith("@kubernetescrd"):
            b.say(
                logging.WARNING,
                ing,
                f"middleware {m}: dockroute has no kubernetesCRD provider, so the router is refused; define "
                "the middleware in the file provider and reference it as <name>@file",
            )
    cross = b.settings.cross_provider_namespaces
    crossing = ann.middlewares or (ann.tls is not None and ann.tls.options)
    if cross is not None and ing.namespace not in cross and crossing:
        what = "middleware" if ann.middlewares else "TLS option"
        msg = f"left out: cross-provider {what} reference is not allowed from namespace {ing.namespace!r}"
        b.say(logging.ERROR, ing, msg + " (crossProviderNamespaces)")
        return msg
    _certificates(b, ing)
    if not ing.rules and ing.default_backend is not None:
        return _default_backend(b, ing, ann)
    grouped: dict[str, list[Router]] = {}
    for rule in ing.rules:
        if not rule.http:
            continue
        for pa in rule.paths:
            _path(b, ing, rule, pa, ann, grouped)
    for key, routers in grouped.items():
        if len(routers) == 1:
            b.routers[key] = replace(routers[0], name=key)
            continue
        for r in routers:  # Traefik: the same key twice gets the rule's hash appended, as Go's "%.10x":
            # the first 10 bytes of the SHA-256, so 20 hex characters
            hashed = f"{key}-{hashlib.sha256(r.rule.encode()).digest()[:10].hex()}"
            b.routers[hashed] = replace(r, name=hashed)
    return ""


def _path(
    b: _Build,
    ing: IngressRecord,
    rule: IngressRule,
    pa: IngressPath,
    ann: RouterAnnotations,
    grouped: dict[str, list[Router]],
) -> None:
    backend = pa.backend
    if backend is None or backend.resource or not backend.service:
        what = "resource backends are not supported" if backend and backend.resource else "missing service"
        b.say(logging.ERROR, ing, f"path {rule.host}{pa.path}: {what}; skipped")
        return
    service = normalize(f"{ing.namespace}-{backend.service}-{backend.port}")
    if service not in b.services and not _add_service(b, ing, backend, service):
        return
    try:
        r = _rule(b.settings, rule.host, pa, ann)
    except AnnotationError as exc:
        b.say(logging.ERROR, ing, f"path {rule.host}{pa.path}: {exc}; skipped")
        return
    router = _router(ing, r, service, ann)
    key = normalize(f"{ing.namespace}-{ing.name}-{rule.host}{pa.path}").removeprefix("-")
    grouped.setdefault(key, []).append(router)


def _router(ing: IngressRecord, rule: str, service: str, ann: RouterAnnotations, priority: int = 0) -> Router:
    return Router(
        name="",
        rule=rule,
        service=service,
        entry_points=ann.entry_points,
        middlewares=ann.middlewares,
        priority=ann.priority or priority,
        tls=ann.tls,
        rule_syntax=ann.rule_syntax,
        access_logs=ann.access_logs,
        metrics=ann.metrics,
        origin=f"ingress {ing.key}",
    )


def _default_backend(b: _Build, ing: IngressRecord, ann: RouterAnnotations) -> str:
    backend = ing.default_backend
    assert backend is not None
    if "default-backend" in b.services:
        b.say(logging.ERROR, ing, "the default backend already exists (another Ingress set one); left out")
        return "the default backend already exists"
    if backend.resource or not backend.service:
        msg = "resource default backends are not supported" if backend.resource else "missing service"
        b.say(logging.ERROR, ing, f"default backend: {msg}; left out")
        return msg
    if not _add_service(b, ing, backend, "default-backend"):
        return "default backend: no service"
    router = _router(ing, 'PathPrefix("/")', "default-backend", replace(ann, priority=0), _MIN_PRIORITY)
    b.routers["default-router"] = replace(router, name="default-router", rule_syntax=None)
    return ""


def _rule(settings: KubernetesIngressSettings, host: str, pa: IngressPath, ann: RouterAnnotations) -> str:
    """Traefik's ``loadRouter`` rule: ``Host`` and a path matcher from ``pathType`` (Exact → ``Path``,
    Prefix → ``PathPrefix``, ImplementationSpecific or none → ``router.pathmatcher``, default
    ``PathPrefix``), joined by ``&&``."""
    parts = []
    v2 = ann.rule_syntax == "v2" or (ann.rule_syntax is None and settings.default_rule_syntax == "v2")
    if host:
        if v2 and host.startswith("*."):
            parts.append(f'HostRegexp("{{subdomain:[a-zA-Z0-9-]+}}.{host[2:]}")')
        else:
            parts.append(f"Host({_quote(host)})")
    if pa.path:
        matcher = "PathPrefix"
        if pa.path_type in ("", "ImplementationSpecific"):
            matcher = ann.path_matcher
        elif pa.path_type == "Exact":
            matcher = "Path"
        if settings.strict_prefix_matching and matcher == "PathPrefix":
            if pa.path == "/":
                parts.append('PathPrefix("/")')
            else:
                p = pa.path.rstrip("/")
                parts.append(f"(Path({_quote(p)}) || PathPrefix({_quote(p + '/')}))")
        else:
            parts.append(f"{matcher}({_quote(pa.path)})")
    return " && ".join(parts)


def _quote(s: str) -> str:
    """Go's ``%q`` for the characters a host or path can hold."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- services ------------------------------------------------------------------------------------------


def _add_service(b: _Build, ing: IngressRecord, backend: Backend, name: str) -> bool:
    try:
        svc = _service(b, ing.namespace, backend, name)
    except _ServiceError as exc:
        b.say(logging.ERROR, ing, f"service {backend.service} port {backend.port}: {exc}; skipped")
        return False
    lb = svc.load_balancer
    if lb is not None and not lb.servers and not b.settings.allow_empty_services:
        b.say(
            logging.WARNING,
            ing,
            f"service {backend.service} port {backend.port}: no ready endpoints; skipped "
            "(allowEmptyServices)",
        )
        return False
    b.services[name] = svc
    return True


def _service(b: _Build, namespace: str, backend: Backend, name: str) -> Service:
    """Traefik's ``loadService``: the Service's port (by number or name), its annotations, then its servers:
    ExternalName, the cluster IP (``nativeLB``), or the EndpointSlices' serving endpoints."""
    rec = b.cluster.services.get(f"{namespace}/{backend.service}")
    if rec is None:
        raise _ServiceError("service not found")
    if rec.type == "ExternalName" and not b.settings.allow_external_name_services:
        raise _ServiceError(f"externalName services not allowed: {rec.key} (allowExternalNameServices)")
    port = next(
        (
            p
            for p in rec.ports
            if (backend.port_number and p.port == backend.port_number)
            or (p.name and p.name == backend.port_name)
        ),
        None,
    )
    if port is None:
        raise _ServiceError("service port not found")
    try:
        ann, warnings = service_annotations(rec.annotations)
    except AnnotationError as exc:
        raise _ServiceError(str(exc)) from None
    for w in warnings:
        b.lines.append((logging.WARNING, f"service {rec.key}: {w}"))
    cross = b.settings.cross_provider_namespaces
    if ann.servers_transport and cross is not None and namespace not in cross:
        # Traefik's loadService: a serversTransport is always a cross-provider reference
        raise _ServiceError(
            f"cross-provider serversTransport reference is not allowed from namespace {namespace!r} "
            "(crossProviderNamespaces)"
        )
    scheme = _scheme(port, ann.servers_scheme, rec, b)
    if rec.type == "ExternalName":
        servers = (Server(url=f"{scheme}://{_host_port(rec.external_name, port.port)}"),)
    elif ann.native_lb if ann.native_lb is not None else b.settings.native_lb_by_default:
        if rec.cluster_ip in ("", "None"):
            raise _ServiceError(f"no clusterIP on service {rec.key} (nativeLB needs one)")
        servers = (Server(url=f"{scheme}://{_host_port(rec.cluster_ip, port.port)}"),)
    else:
        servers = _endpoint_servers(b.slices_of(rec.namespace, rec.name), port, scheme)
    return Service(
        name=name,
        load_balancer=LoadBalancer(
            servers=servers,
            pass_host_header=ann.pass_host_header,
            sticky=ann.sticky,
            servers_transport=ann.servers_transport,
        ),
    )


def _scheme(port: ServicePort, configured: str, rec: ServiceRecord, b: _Build) -> str:
    """Traefik's ``getProtocol``: the ``service.serversscheme`` annotation, else https for port 443 or a
    port named ``https…``, else http. ``h2c`` is proxied as HTTP/1.1 (warned)."""
    scheme = configured or ("https" if port.port == 443 or port.name.startswith("https") else "http")
    if scheme.lower() == "h2c":
        b.lines.append(
            (logging.WARNING, f"service {rec.key}: scheme h2c is proxied as HTTP/1.1 (no HTTP/2 to backends)")
        )
        return "http"
    return scheme


def _endpoint_servers(
    slices: list[EndpointSliceRecord], port: ServicePort, scheme: str
) -> tuple[Server, ...]:
    """Servers from the Service's EndpointSlices: the slice port named as the Service's port, every
    endpoint that is serving (unknown counts as serving, as the API says); a terminating one is kept with
    weight 0 (Traefik fences it: no new traffic). Each address once."""
    seen: set[str] = set()
    servers = []
    for sl in slices:
        number = next((p.port for p in sl.ports if p.name == port.name), 0)
        if not number:
            continue
        for ep in sl.endpoints:
            if ep.serving is False or (ep.serving is None and ep.ready is False):
                continue
            for address in ep.addresses:
                if address in seen:
                    continue
                seen.add(address)
                servers.append(
                    Server(url=f"{scheme}://{_host_port(address, number)}", weight=0 if ep.terminating else 1)
                )
    return tuple(servers)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- TLS certificates and status -----------------------------------------------------------------------


def _certificates(b: _Build, ing: IngressRecord) -> None:
    """``spec.tls[].secretName``: the Secret's ``tls.crt``/``tls.key`` as an inline certificate."""
    for t in ing.tls:
        if not t.secret_name:
            continue
        key = f"{ing.namespace}-{t.secret_name}"
        if key in b.certs:
            continue
        secret = b.cluster.secrets.get(f"{ing.namespace}/{t.secret_name}")
        if secret is None:
            b.say(logging.ERROR, ing, f"TLS: secret {ing.namespace}/{t.secret_name} does not exist")
            continue
        missing = [k for k in ("tls.crt", "tls.key") if not secret.data.get(k)]
        if missing:
            b.say(
                logging.ERROR,
                ing,
                f"TLS: secret {secret.key} is missing or has empty TLS data entries: {', '.join(missing)}",
            )
            continue
        b.certs[key] = CertificateFile(
            cert_file=secret.data["tls.crt"].decode("utf-8", "replace"),
            key_file=secret.data["tls.key"].decode("utf-8", "replace"),
        )


def _wanted_status(b: _Build, ing: IngressRecord) -> tuple[LoadBalancerIngress, ...] | None:
    """Traefik's ``updateIngressStatus``: ``ingressEndpoint``'s ip/hostname, or the published Service's
    address; None when nothing is to be written."""
    ep = b.settings.ingress_endpoint
    if ep is None:
        return None
    if not ep.published_service:
        if not ep.ip and not ep.hostname:
            return None
        return (LoadBalancerIngress(ip=ep.ip, hostname=ep.hostname),)
    svc = b.cluster.services.get(ep.published_service)
    if svc is None:
        b.lines.append(
            (logging.ERROR, f"ingressEndpoint.publishedService: missing service {ep.published_service}")
        )
        return None
    if svc.type == "LoadBalancer":
        return svc.status or None
    if svc.type == "ClusterIP":
        ports = tuple((p.port, p.protocol) for p in svc.ports)
        return tuple(LoadBalancerIngress(ip=ip, ports=ports) for ip in svc.external_ips)
    if svc.type == "ExternalName":
        return (LoadBalancerIngress(hostname=svc.external_name),)
    b.lines.append(
        (
            logging.ERROR,
            f"ingressEndpoint.publishedService {ep.published_service}: type {svc.type} is not supported "
            "(NodePort needs the cluster's nodes, which dockroute does not read)",
        )
    )
    return None
