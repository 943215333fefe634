"""Plain records of the Kubernetes objects the Ingress provider reads, made from the API's JSON dicts.

The watch thread hands the builder these, never the API's dicts or the client library's models: every rule of
the builder is then testable table by table from a few lines of data, and a field the API leaves out (most of
them are optional) is defaulted here, once. The ``from_api`` functions take the object exactly as the API
serves it (``metadata``/``spec``/``status``, camelCase), the form a list or a watch event carries.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from discover.model import EMPTY, frozen_map

__all__ = [
    "Backend",
    "Endpoint",
    "EndpointSliceRecord",
    "IngressClassRecord",
    "IngressPath",
    "IngressRecord",
    "IngressRule",
    "IngressTLS",
    "LoadBalancerIngress",
    "SecretRecord",
    "ServicePort",
    "ServiceRecord",
    "SlicePort",
    "ingress_class_from_api",
    "ingress_from_api",
    "secret_from_api",
    "service_from_api",
    "slice_from_api",
]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else EMPTY


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str_map(value: Any) -> Mapping[str, str]:
    return frozen_map({str(k): str(v) for k, v in _dict(value).items() if v is not None})


@dataclass(frozen=True, slots=True)
class Backend:
    """``IngressBackend``: a Service and its port (by number, or by name), or a ``resource`` (unsupported)."""

    service: str = ""
    port_number: int = 0
    port_name: str = ""
    resource: bool = False  # a resource backend (Traefik refuses them too)

    @property
    def port(self) -> str:
        """The port as Traefik names it in a service name: its name, else its number."""
        return self.port_name or str(self.port_number)


def _backend(value: Any) -> Backend | None:
    b = _dict(value)
    if not b:
        return None
    svc = _dict(b.get("service"))
    port = _dict(svc.get("port"))
    number = port.get("number")
    return Backend(
        service=str(svc.get("name") or ""),
        port_number=number if isinstance(number, int) else 0,
        port_name=str(port.get("name") or ""),
        resource=bool(b.get("resource")),
    )


@dataclass(frozen=True, slots=True)
class IngressPath:
    path: str = ""
    path_type: str = ""  # Exact, Prefix, ImplementationSpecific ("" when left out)
    backend: Backend | None = None


@dataclass(frozen=True, slots=True)
class IngressRule:
    host: str = ""
    paths: tuple[IngressPath, ...] = ()
    http: bool = True  # False: the rule has no ``http`` section (nothing to route)


@dataclass(frozen=True, slots=True)
class IngressTLS:
    hosts: tuple[str, ...] = ()
    secret_name: str = ""


@dataclass(frozen=True, slots=True)
class LoadBalancerIngress:
    """One entry of ``status.loadBalancer.ingress``; ``ports`` as (port, protocol)."""

    ip: str = ""
    hostname: str = ""
    ports: tuple[tuple[int, str], ...] = ()

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ip:
            out["ip"] = self.ip
        if self.hostname:
            out["hostname"] = self.hostname
        if self.ports:
            out["ports"] = [{"port": p, "protocol": proto} for p, proto in self.ports]
        return out


def _lb_status(value: Any) -> tuple[LoadBalancerIngress, ...]:
    out = []
    for item in _list(_dict(value).get("ingress")):
        d = _dict(item)
        ports = tuple(
            (int(_dict(p).get("port") or 0), str(_dict(p).get("protocol") or "TCP"))
            for p in _list(d.get("ports"))
        )
        out.append(
            LoadBalancerIngress(ip=str(d.get("ip") or ""), hostname=str(d.get("hostname") or ""), ports=ports)
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class IngressRecord:
    namespace: str
    name: str
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    class_name: str | None = None  # spec.ingressClassName (None when unset)
    default_backend: Backend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()
    status: tuple[LoadBalancerIngress, ...] = ()  # status.loadBalancer.ingress as the API has it
    resource_version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _rule(value: Any) -> IngressRule:
    r = _dict(value)
    http = r.get("http")
    paths = tuple(
        IngressPath(
            path=str(_dict(p).get("path") or ""),
            path_type=str(_dict(p).get("pathType") or ""),
            backend=_backend(_dict(p).get("backend")),
        )
        for p in _list(_dict(http).get("paths"))
    )
    return IngressRule(host=str(r.get("host") or ""), paths=paths, http=isinstance(http, Mapping))


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(obj.get("metadata"))


def ingress_from_api(obj: Mapping[str, Any]) -> IngressRecord:
    """A ``networking.k8s.io/v1`` Ingress as the API serves it → :class:`IngressRecord`."""
    meta, spec = _meta(obj), _dict(obj.get("spec"))
    class_name = spec.get("ingressClassName")
    return IngressRecord(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        annotations=_str_map(meta.get("annotations")),
        class_name=str(class_name) if class_name is not None else None,
        default_backend=_backend(spec.get("defaultBackend")),
        rules=tuple(_rule(r) for r in _list(spec.get("rules"))),
        tls=tuple(
            IngressTLS(
                hosts=tuple(str(h) for h in _list(_dict(t).get("hosts"))),
                secret_name=str(_dict(t).get("secretName") or ""),
            )
            for t in _list(spec.get("tls"))
        ),
        status=_lb_status(_dict(obj.get("status")).get("loadBalancer")),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


@dataclass(frozen=True, slots=True)
class IngressClassRecord:
    name: str
    controller: str = ""


def ingress_class_from_api(obj: Mapping[str, Any]) -> IngressClassRecord:
    return IngressClassRecord(
        name=str(_meta(obj).get("name") or ""), controller=str(_dict(obj.get("spec")).get("controller") or "")
    )


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: str = "TCP"
    node_port: int = 0
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    namespace: str
    name: str
    type: str = "ClusterIP"
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str = ""
    external_name: str = ""
    external_ips: tuple[str, ...] = ()
    status: tuple[LoadBalancerIngress, ...] = ()  # status.loadBalancer.ingress (type LoadBalancer)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def service_from_api(obj: Mapping[str, Any]) -> ServiceRecord:
    meta, spec = _meta(obj), _dict(obj.get("spec"))
    ports = tuple(
        ServicePort(
            port=int(_dict(p).get("port") or 0),
            name=str(_dict(p).get("name") or ""),
            protocol=str(_dict(p).get("protocol") or "TCP"),
            node_port=int(_dict(p).get("nodePort") or 0),
            app_protocol=str(_dict(p).get("appProtocol") or ""),
        )
        for p in _list(spec.get("ports"))
    )
    return ServiceRecord(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        type=str(spec.get("type") or "ClusterIP"),
        annotations=_str_map(meta.get("annotations")),
        ports=ports,
        cluster_ip=str(spec.get("clusterIP") or ""),
        external_name=str(spec.get("externalName") or ""),
        external_ips=tuple(str(ip) for ip in _list(spec.get("externalIPs"))),
        status=_lb_status(_dict(obj.get("status")).get("loadBalancer")),
    )


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str = ""
    port: int = 0
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a slice; the conditions are None when the API leaves them out (then: true/false as
    the API documents: ready and serving unknown mean ready, terminating unknown means not terminating)."""

    addresses: tuple[str, ...] = ()
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@dataclass(frozen=True, slots=True)
class EndpointSliceRecord:
    namespace: str
    name: str
    service: str = ""  # the label kubernetes.io/service-name
    address_type: str = "IPv4"
    ports: tuple[SlicePort, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _condition(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def slice_from_api(obj: Mapping[str, Any]) -> EndpointSliceRecord:
    meta = _meta(obj)
    labels = _dict(meta.get("labels"))
    endpoints = []
    for e in _list(obj.get("endpoints")):
        d = _dict(e)
        cond = _dict(d.get("conditions"))
        endpoints.append(
            Endpoint(
                addresses=tuple(str(a) for a in _list(d.get("addresses"))),
                ready=_condition(cond.get("ready")),
                serving=_condition(cond.get("serving")),
                terminating=_condition(cond.get("terminating")),
            )
        )
    return EndpointSliceRecord(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        service=str(labels.get("kubernetes.io/service-name") or ""),
        address_type=str(obj.get("addressType") or "IPv4"),
        ports=tuple(
            SlicePort(
                name=str(_dict(p).get("name") or ""),
                port=int(_dict(p).get("port") or 0),
                protocol=str(_dict(p).get("protocol") or "TCP"),
            )
            for p in _list(obj.get("ports"))
        ),
        endpoints=tuple(endpoints),
    )


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """A Secret; ``data`` decoded from base64 (as the API serves it), a key that does not decode is left
    out and named in ``bad_keys``."""

    namespace: str
    name: str
    type: str = "Opaque"
    data: Mapping[str, bytes] = field(default_factory=lambda: EMPTY)
    bad_keys: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def secret_from_api(obj: Mapping[str, Any]) -> SecretRecord:
    meta = _meta(obj)
    data: dict[str, bytes] = {}
    bad: list[str] = []
    for k, v in _dict(obj.get("data")).items():
        try:
            data[str(k)] = base64.b64decode(str(v or ""), validate=True)
        except (binascii.Error, ValueError):
            bad.append(str(k))
    for k, v in _dict(obj.get("stringData")).items():  # never served by the API; accepted in tests
        data[str(k)] = str(v).encode()
    return SecretRecord(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        type=str(obj.get("type") or "Opaque"),
        data=frozen_map(data),
        bad_keys=tuple(bad),
    )
