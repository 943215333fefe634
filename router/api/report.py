"""The API's other documents: ``/api/entrypoints`` and ``/api/overview`` (Traefik's shapes,
``pkg/api/handler_entrypoint.go`` and ``handler_overview.go``), ``/api/version``, and dockroute's own
``/api/certificates`` and ``/api/discovery``.

``/api/certificates`` carries dockroute's fields (resolver, issuer, next renewal, last error) and, under
the same names as Traefik's certificate list, the ones both have (``commonName``, ``sans``, ``notAfter``,
``notBefore``, ``issuerCN``, ``status``), so a client of either reads it.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from discover.model import Discovered
from router.api.query import Query
from router.api.render import DISABLED, WARNING, Runtime, domain_json, go_duration, provider_of
from router.api.state import ApiState, CertificateReport
from router.settings import EntryPoint

__all__ = ["certificates", "discovery", "entry_point_json", "overview", "rfc3339", "version"]

Json = dict[str, Any]
DAY = 86400.0
CERT_WARNING_DAYS = 30  # Traefik's certificate status: "warning" under 30 days left, "expired" after
# provider name → Traefik's (the field name of its static ``providers`` section)
PROVIDER_NAMES = {"docker": "Docker", "swarm": "Swarm", "file": "File", "rest": "Rest"}


def rfc3339(unix: float | None) -> str | None:
    """UNIX seconds as Go's ``time.Time`` JSON (RFC 3339, UTC, ``Z``; fractions only when present)."""
    if unix is None:
        return None
    t = datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)
    text = t.isoformat(timespec="microseconds" if t.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def entry_point_json(ep: EntryPoint) -> Json:
    """One entry point as Traefik's static ``EntryPoint`` JSON, plus its ``name``."""
    out: Json = {"address": f"{ep.address}/udp" if ep.udp else ep.address}
    if ep.udp:
        out["udp"] = {"timeout": go_duration(ep.udp_timeout)}
    life: Json = {}
    if ep.request_accept_grace_timeout:
        life["requestAcceptGraceTimeout"] = go_duration(ep.request_accept_grace_timeout)
    life["graceTimeOut"] = go_duration(ep.grace_timeout)
    responding: Json = {"readTimeout": go_duration(ep.read_timeout)}
    if ep.write_timeout:
        responding["writeTimeout"] = go_duration(ep.write_timeout)
    responding["idleTimeout"] = go_duration(ep.idle_timeout)
    out["transport"] = {"lifeCycle": life, "respondingTimeouts": responding}
    forwarded: Json = {}
    if ep.forwarded_insecure:
        forwarded["insecure"] = True
    if ep.trusted_ips:
        forwarded["trustedIPs"] = list(ep.trusted_ips)
    out["forwardedHeaders"] = forwarded
    http: Json = {}
    if ep.redirection is not None:
        red = ep.redirection
        target: Json = {"to": red.to, "scheme": red.scheme}
        if red.permanent:
            target["permanent"] = True
        target["priority"] = red.priority
        http["redirections"] = {"entryPoint": target}
    if ep.middlewares:
        http["middlewares"] = list(ep.middlewares)
    if ep.tls is not None:
        tls: Json = {}
        if ep.tls.options:
            tls["options"] = ep.tls.options
        if ep.tls.cert_resolver:
            tls["certResolver"] = ep.tls.cert_resolver
        if ep.tls.domains:
            tls["domains"] = [domain_json(d) for d in ep.tls.domains]
        http["tls"] = tls
    out["http"] = http
    out["name"] = ep.name
    return out


def status_counts(items: Sequence[Json]) -> Json:
    """An overview entry: the items, those with a warning and those disabled (Traefik's ``errors``);
    HTTP's here, TCP's and UDP's in :mod:`router.api.l4`."""
    return {
        "total": len(items),
        "warnings": sum(1 for i in items if i.get("status") == WARNING),
        "errors": sum(1 for i in items if i.get("status") == DISABLED),
    }


def overview(runtime: Runtime, certs: Sequence[Json], features: Json) -> Json:
    """``/api/overview``: counts per kind (``errors`` = disabled, ``warnings``), HTTP, TCP and UDP, the
    certificates' counts (expired ones are errors), the features and
    the providers."""
    state = runtime.state
    out: Json = {
        "http": {
            "routers": status_counts(runtime.routers),
            "services": status_counts(runtime.services),
            "middlewares": status_counts(runtime.middlewares),
        },
        "tcp": runtime.tcp.overview(),  # type: ignore[attr-defined]  # set by the handler's build_view
        "udp": runtime.udp.overview(),  # type: ignore[attr-defined]  # set by the handler's build_view
        "certificates": {
            "total": len(certs),
            "warnings": sum(1 for c in certs if c["status"] == "warning"),
            "errors": sum(1 for c in certs if c["status"] == "expired"),
        },
        "features": features,
    }
    providers = [PROVIDER_NAMES.get(p, p[:1].upper() + p[1:]) for p in state.providers if p != "internal"]
    if providers:
        out["providers"] = providers
    return out


def version(state: ApiState, started: float) -> Json:
    """``/api/version``: Traefik's keys (``Version``, ``Codename``, ``startDate``)."""
    return {"Version": state.version, "Codename": "dockroute", "startDate": rfc3339(started)}


PENDING = "pending"  # asked for, not issued yet (dockroute's status: Traefik lists served certificates only)


def _cert_status(c: CertificateReport, now: float) -> str:
    if not c.not_after:
        return PENDING
    left = c.not_after - now
    if left < 0:
        return "expired"
    return "warning" if left < CERT_WARNING_DAYS * DAY else "enabled"


def certificate_json(c: CertificateReport, now: float) -> Json:
    """One certificate: dockroute's fields, then Traefik's names for what both have. One not issued yet
    (``not_after`` 0: the resolver was asked for these names and has none so far) has no dates and
    status ``pending``, never the 1970 of UNIX second 0."""
    issued = bool(c.not_after)
    return {
        "domains": list(c.domains),
        "resolver": c.resolver,
        "source": c.source,
        "issuer": c.issuer,
        "notAfter": rfc3339(c.not_after) if issued else None,
        "notBefore": rfc3339(c.not_before) if c.not_before else None,
        "daysLeft": int((c.not_after - now) // DAY) if issued else None,
        "nextRenewal": rfc3339(c.next_renewal),
        "lastError": c.last_error,
        "lastErrorAt": rfc3339(c.last_error_at),
        "commonName": c.domains[0] if c.domains else "",
        "sans": sorted(c.domains),
        "issuerCN": c.issuer,
        "status": _cert_status(c, now),
    }


# Traefik 3.7's sortBy for certificates (pkg/api/sort.go): its sort key from (report, JSON)
_CERT_KEYS: dict[str, Callable[[CertificateReport, Json], Any]] = {
    "status": lambda c, j: j["status"],
    "issuer": lambda c, j: c.issuer,
    "validUntil": lambda c, j: c.not_after,  # not issued yet: 0, first, as Go's zero time
}


def certificates(state: ApiState, now: float | None = None, query: Query | None = None) -> list[Json]:
    """``/api/certificates``, sorted as Traefik 3.7 sorts its list: by ``sortBy`` (``name`` or ``cn``:
    the main name, the default; ``status``, ``issuer``, ``validUntil``), ties by name, ``direction``
    ``asc`` unless ``desc``."""
    now = time.time() if now is None else now
    rows = [(c, certificate_json(c, now)) for c in state.certificates()]
    key = _CERT_KEYS.get(query.get("sortBy")) if query is not None else None
    desc = query is not None and query.get("direction") == "desc"
    if key is None:
        rows.sort(key=lambda r: (r[1]["commonName"], r[0].resolver, r[0].not_after), reverse=desc)
    else:
        rows.sort(key=lambda r: (key(*r), r[1]["commonName"], r[0].resolver), reverse=desc)
    return [j for _, j in rows]


def _router_error(name: str, why: str) -> str:
    """A router's compile error for a container's ``detail``; a rule that fails names the label it is set
    with (Docker's ``traefik.http.routers.<name>.rule``; the provider's defaultRule when that is absent)."""
    bare, _, provider = name.partition("@")
    if provider == "docker" and why.startswith("rule "):
        return f"router {name} (label traefik.http.routers.{bare}.rule, else the defaultRule): {why}"
    return f"router {name}: {why}"


def _container_json(d: Discovered, errors: Mapping[str, str]) -> Json:
    """One discovered container; one whose routers were all left out by the compile (a missing middleware,
    a rule that does not parse) is not routed, reason ``error``, those errors in ``detail``."""
    routed, reason, detail = d.routed, d.reason, d.detail
    if routed and d.routers and all(r in errors for r in d.routers):
        routed, reason = False, "error"
        detail = "; ".join([*(_router_error(r, errors[r]) for r in d.routers), *([detail] if detail else [])])
    return {
        "provider": d.provider,
        "name": d.name,
        "id": d.id,
        "routed": routed,
        "reason": reason,
        "detail": detail,
        "fix": d.fix,
        "routers": list(d.routers),
        "services": list(d.services),
        "networks": list(d.networks),
    }


def discovery(runtime: Runtime) -> Json:
    """``/api/discovery``: every container a provider saw, routed or not and why not; and every router
    left out (not routed, or routed with an error), with its provider and errors."""
    state = runtime.state
    containers = [
        _container_json(d, state.errors)
        for d in sorted(state.config.discovered, key=lambda d: (d.provider, d.name, d.id))
    ]
    routers = [
        {"name": r["name"], "provider": r["provider"], "status": r["status"], "error": r["error"]}
        for r in runtime.routers
        if r.get("error")
    ]
    for name, why in sorted(state.errors.items()):  # compile errors of routers absent from the config
        if name not in runtime.by_name["routers"]:
            routers.append({"name": name, "provider": provider_of(name), "status": DISABLED, "error": [why]})
    return {"containers": containers, "routers": routers}
