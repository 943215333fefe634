"""Rows for the metrics the proxy does not count per request, from what the app already holds.

:class:`router.metrics.Sources` reads them when a scrape takes its snapshot, on the event loop: the
balancers' and servers' rows are a walk over objects in memory; certificate rows need X.509 parsing, so
:func:`certificate_rows` is meant for the thread that builds a configuration, its result kept and handed
out as is (:meth:`router.metrics.Metrics.set_certificates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from router.balancer import ServiceBalancer
from router.tls import CertKeyPair

__all__ = ["certificate_rows", "open_connection_rows", "server_up_rows"]


def server_up_rows(balancers: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(service, url, up) of every server of a load balancer with an active health check: Traefik sets
    ``service_server_up`` from its health checker only, so unchecked services have no series."""
    rows = []
    for name, balancer in balancers.items():
        if isinstance(balancer, ServiceBalancer) and balancer.spec.health_check is not None:
            rows.extend((name, u.url, bool(u.healthy)) for u in balancer.servers)
    return rows


def open_connection_rows(servers: Iterable[Any]) -> list[tuple[str, str, int]]:
    """(entry point, "TCP", open connections) of each :class:`router.server.EntryPointServer`: the HTTP
    and HTTPS sides' connections together, as Traefik counts its TCP entry point's."""
    rows = []
    for s in servers:
        n = sum(len(w.connections) for w in (s.web_server, s.tls_web_server) if w is not None)
        rows.append((s.name, "TCP", n))
    return rows


def certificate_rows(pairs: Iterable[CertKeyPair]) -> list[tuple[str, str, str, float]]:
    """(cn, serial, sans, not-after as Unix seconds) of each leaf, as Traefik's ``tls_certs_not_after``
    labels them (serial in decimal, DNS names joined with ","). Parses X.509: call it off the loop."""
    rows = []
    seen = set()
    for pair in pairs:
        try:
            cert = x509.load_pem_x509_certificate(pair.cert_pem)
        except ValueError:
            continue
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = ",".join(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            sans = ""
        row = (cn, str(cert.serial_number), sans, cert.not_valid_after_utc.timestamp())
        if row not in seen:
            seen.add(row)
            rows.append(row)
    return rows
