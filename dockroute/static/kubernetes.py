"""``providers.kubernetesIngress``: every key of Traefik v3's Kubernetes Ingress provider, read and checked.

Each key acts (:mod:`discover.kubernetes`), except ``reportNodeInternalIPs``, which is refused by name when
true: it needs the cluster's Node objects, which dockroute does not read. A ``labelSelector`` that does not
parse is refused, as Traefik refuses it when its provider starts. The section starts the provider,
and the start stops when the client library (an optional extra) is not installed, naming the pip command.
"""

from __future__ import annotations

from typing import Any

from discover.kubernetes.client import INSTALL_HINT, client_installed
from discover.kubernetes.settings import (
    DEFAULT_INGRESS_CLASS,
    IngressEndpoint,
    KubernetesIngressSettings,
    SelectorError,
    check_selector,
)
from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, where

__all__ = ["read_kubernetes_ingress"]

_KEY = "providers.kubernetesIngress"


def _ingress_class(r: Reader) -> str:
    """``ingressClass``: dockroute's default is ``dockroute``; an empty value is allowed and means what it
    means in Traefik (Ingresses without a class, and those of class ``traefik``)."""
    found = r.leaf("ingressClass")
    if found is not None and isinstance(found[1], str) and not found[1].strip():
        return ""
    return str(r.text("ingressClass", DEFAULT_INGRESS_CLASS)).strip()


def _ingress_endpoint(r: Reader) -> IngressEndpoint | None:
    ep = r.sub("ingressEndpoint")
    if not ep.tree:
        return None
    published = str(ep.text("publishedService", "")).strip()
    if published and published.count("/") != 1:
        raise StaticConfigError(
            f"{_KEY}.ingressEndpoint.publishedService",
            f"expected 'namespace/service', got {published!r}{where(ep.origin('publishedService'))}",
        )
    ip, hostname = str(ep.text("ip", "")).strip(), str(ep.text("hostname", "")).strip()
    out = IngressEndpoint(ip=ip, hostname=hostname, published_service=published)
    if not (out.ip or out.hostname or out.published_service):
        raise StaticConfigError(f"{_KEY}.ingressEndpoint", "set publishedService, ip or hostname")
    return out


def read_kubernetes_ingress(tree: Any) -> KubernetesIngressSettings | None:
    """The section's settings, or None when it is absent; refuses what cannot work, by key."""
    if tree is None or tree is OFF:
        return None
    r = Reader(tree if isinstance(tree, dict) else {}, _KEY)
    if r.flag("reportNodeInternalIPs", False):
        raise StaticConfigError(
            f"{_KEY}.reportNodeInternalIPs",
            "not supported: it needs the cluster's Node objects, which dockroute does not read; set "
            "ingressEndpoint (ip, hostname or publishedService) instead"
            f"{where(r.origin('reportNodeInternalIPs'))}",
        )
    cross = tuple(item for item, _ in r.items("crossProviderNamespaces"))
    settings = KubernetesIngressSettings(
        endpoint=str(r.text("endpoint", "")).strip(),
        token=str(r.text("token", "")),
        cert_auth_file_path=str(r.text("certAuthFilePath", "")).strip(),
        namespaces=tuple(item for item, _ in r.items("namespaces")),
        label_selector=str(r.text("labelSelector", "")).strip(),
        ingress_class=_ingress_class(r),
        ingress_endpoint=_ingress_endpoint(r),
        throttle_duration=r.duration("throttleDuration", 0.0),
        allow_empty_services=r.flag("allowEmptyServices", False),
        allow_external_name_services=r.flag("allowExternalNameServices", False),
        cross_provider_namespaces=cross if r.has("crossProviderNamespaces") else None,
        disable_ingress_class_lookup=r.flag("disableIngressClassLookup", False),
        disable_cluster_scope_resources=r.flag("disableClusterScopeResources", False),
        native_lb_by_default=r.flag("nativeLBByDefault", False),
        strict_prefix_matching=r.flag("strictPrefixMatching", False),
    )
    if settings.endpoint and "://" not in settings.endpoint:
        raise StaticConfigError(
            f"{_KEY}.endpoint",
            f"expected a URL like 'https://10.0.0.1:6443', got {settings.endpoint!r}"
            f"{where(r.origin('endpoint'))}",
        )
    try:  # Traefik refuses a selector labels.Parse cannot read when it starts; so does dockroute
        check_selector(settings.label_selector)
    except SelectorError as exc:
        raise StaticConfigError(
            f"{_KEY}.labelSelector",
            f"invalid label selector {settings.label_selector!r}: {exc}{where(r.origin('labelSelector'))}",
        ) from None
    if not client_installed():  # found, not imported: a healthcheck reading this config stays cheap
        raise StaticConfigError(
            _KEY, f"needs the Kubernetes client library, which is not installed: {INSTALL_HINT}"
        )
    return settings
