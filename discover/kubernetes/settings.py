"""``providers.kubernetesIngress``: Traefik v3's options, as the provider acts on them.

dockroute's only departure: ``ingressClass`` defaults to ``dockroute`` (Traefik's default is empty, which
takes every Ingress without a class and those of class ``traefik``), so a dockroute beside a Traefik in one
cluster never serves Traefik's Ingresses unless told to.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_INGRESS_CLASS",
    "INGRESS_CONTROLLERS",
    "IngressEndpoint",
    "KubernetesIngressSettings",
]

DEFAULT_INGRESS_CLASS = "dockroute"
# IngressClass controllers whose classes this provider serves: Traefik's (so a Traefik IngressClass works
# unchanged) and dockroute's own (the Helm chart's IngressClass names it).
INGRESS_CONTROLLERS = ("traefik.io/ingress-controller", "dockroute.io/ingress-controller")


@dataclass(frozen=True, slots=True)
class IngressEndpoint:
    """``ingressEndpoint``: what is written into each routed Ingress's ``status.loadBalancer``."""

    ip: str = ""
    hostname: str = ""
    published_service: str = ""  # "namespace/name": copy that Service's address


@dataclass(frozen=True, slots=True)
class KubernetesIngressSettings:
    endpoint: str = ""  # the API server's URL; "" = in-cluster, $KUBECONFIG or ~/.kube/config
    token: str = ""  # a bearer token, or a file holding one (Traefik's FileOrContent)
    cert_auth_file_path: str = ""  # the CA that signed the API server's certificate
    namespaces: tuple[str, ...] = ()  # () = every namespace
    label_selector: str = ""  # applies to Ingresses only, as in Traefik
    ingress_class: str = DEFAULT_INGRESS_CLASS
    ingress_endpoint: IngressEndpoint | None = None
    throttle_duration: float = 0.0  # seconds between two rebuilds at most once
    allow_empty_services: bool = False
    allow_external_name_services: bool = False
    cross_provider_namespaces: tuple[str, ...] | None = None  # None: no restriction
    disable_ingress_class_lookup: bool = False
    disable_cluster_scope_resources: bool = False
    native_lb_by_default: bool = False
    strict_prefix_matching: bool = False
    default_rule_syntax: str = "v3"  # core.defaultRuleSyntax is not read by dockroute: v3

    @property
    def lookup_classes(self) -> bool:
        """IngressClass resources are listed and watched (cluster-scoped: both switches turn it off)."""
        return not (self.disable_ingress_class_lookup or self.disable_cluster_scope_resources)
