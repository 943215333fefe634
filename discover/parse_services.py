"""Traefik's ``http.services`` section, as a plain dict, → :mod:`discover.model` services.

Split from :mod:`discover.parse` (which knows the document and its other sections) because services carry
the most keys: load balancers (servers, health checks, sticky cookies, strategies, passive health),
weighted, mirroring and failover services, and dockroute's own ``static`` service. The same readers
(:mod:`discover.readers`) decode every key, so files and labels land on one model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from discover.model import (
    STRATEGIES,
    Failover,
    HealthCheck,
    LoadBalancer,
    Mirroring,
    MirrorRef,
    PassiveHealthCheck,
    Server,
    Service,
    StaticFiles,
    StickyCookie,
    Weighted,
    WeightedRef,
    frozen_map,
)
from discover.readers import (
    At,
    Fields,
    as_bool,
    as_int,
    as_list,
    as_str,
    describe,
    duration,
    one_of,
    opt_str,
    str_list,
)

__all__ = ["h2c_scheme", "h2c_url", "parse_service", "preserve_path"]


_KINDS = ("loadBalancer", "weighted", "static", "mirroring", "failover")


def parse_service(name: str, value: Any, at: At, warnings: list[str]) -> Service:
    f = Fields(value, at, _KINDS)
    if sum(k in f for k in _KINDS) != 1:
        raise at.error("a service needs exactly one of loadBalancer, weighted, mirroring, failover or static")
    if "loadBalancer" in f:
        return Service(name=name, load_balancer=_load_balancer(*f.get("loadBalancer"), warnings))
    if "static" in f:
        return Service(name=name, static=_static(*f.get("static")))
    if "mirroring" in f:
        return Service(name=name, mirroring=_mirroring(*f.get("mirroring")))
    if "failover" in f:
        return Service(name=name, failover=_failover(*f.get("failover")))
    return Service(name=name, weighted=_weighted(*f.get("weighted")))


def _mirroring(value: Any, at: At) -> Mirroring:
    """``mirroring`` with Traefik's defaults (``mirrorBody`` true, ``maxBodySize`` -1: no limit; a mirror's
    ``percent`` 0: it gets nothing). ``percent`` outside 0-100 is refused, as Traefik's ``AddMirror`` does."""
    f = Fields(value, at, ("service", "mirrors", "mirrorBody", "maxBodySize", "healthCheck"))
    mirrors = []
    for v, mat in as_list(*f.get("mirrors")):
        mf = Fields(v, mat, ("name", "percent"))
        percent = as_int(*mf.get("percent"), minimum=0, maximum=100) if mf.present("percent") else 0
        mirrors.append(MirrorRef(name=as_str(*mf.required("name")).strip(), percent=percent))
    return Mirroring(
        service=as_str(*f.required("service")).strip(),
        mirrors=tuple(mirrors),
        mirror_body=as_bool(*f.get("mirrorBody")) if f.present("mirrorBody") else True,
        max_body_size=as_int(*f.get("maxBodySize")) if f.present("maxBodySize") else -1,
        health_check=_health_propagation(f),
    )


def _failover(value: Any, at: At) -> Failover:
    """``failover``: ``service`` while it is up (its health check says so), ``fallback`` otherwise. Traefik
    3.7's status-code-based ``errors`` (retrying the fallback after given answers) is refused by name."""
    f = Fields(value, at, ("service", "fallback", "healthCheck", "errors"))
    if "errors" in f:
        raise f.get("errors")[1].error(
            "not supported: dockroute fails over on the main service's health only (remove errors)"
        )
    return Failover(
        service=as_str(*f.required("service")).strip(),
        fallback=as_str(*f.required("fallback")).strip(),
        health_check=_health_propagation(f),
    )


def _health_propagation(f: Fields) -> bool:
    """A mirroring or failover service's ``healthCheck``: Traefik's ``{}`` (it has no options) asks for
    the service's health to be propagated to its parents; present means on."""
    if "healthCheck" not in f:
        return False
    v, hat = f.get("healthCheck")
    if v is not None and v != "" and not (isinstance(v, Mapping) and not v):
        raise hat.error("takes no options here (healthCheck: {})")
    return True


def _static(value: Any, at: At) -> StaticFiles:
    f = Fields(value, at, ("root", "index", "browse", "tryFiles"))
    return StaticFiles(
        root=as_str(*f.required("root")),
        index=str_list(*f.get("index")) if f.present("index") else ("index.html",),
        browse=as_bool(*f.get("browse")) if f.present("browse") else False,
        try_files=str_list(*f.get("tryFiles")),
    )


_LB_KEYS = (
    "servers",
    "passHostHeader",
    "healthCheck",
    "sticky",
    "serversTransport",
    "strategy",
    "passiveHealthCheck",
)


def _load_balancer(value: Any, at: At, warnings: list[str]) -> LoadBalancer:
    f = Fields(value, at, _LB_KEYS)
    servers = tuple(_server(v, sat, warnings) for v, sat in as_list(*f.get("servers")))
    return LoadBalancer(
        servers=servers,
        pass_host_header=as_bool(*f.get("passHostHeader")) if f.present("passHostHeader") else True,
        health_check=_health_check(*f.get("healthCheck")) if "healthCheck" in f else None,
        sticky=_sticky(*f.get("sticky")) if "sticky" in f else None,
        servers_transport=opt_str(*f.get("serversTransport")),
        strategy=_strategy(*f.get("strategy")) if f.present("strategy") else "wrr",
        passive_health_check=(
            _passive_health_check(*f.get("passiveHealthCheck")) if "passiveHealthCheck" in f else None
        ),
    )


def _strategy(value: Any, at: At) -> str:
    """``loadBalancer.strategy``: one of Traefik's names, spelled as Traefik spells them (its switch is
    case-sensitive, so ``P2C`` is refused there too); empty is ``wrr``, as in Traefik."""
    name = as_str(value, at, empty=True)
    if name == "":
        return "wrr"
    if name not in STRATEGIES:
        expected = ", ".join(STRATEGIES)
        raise at.error(f"unsupported load-balancer strategy {name!r}; expected one of {expected}")
    return name


def _passive_health_check(value: Any, at: At) -> PassiveHealthCheck:
    """``loadBalancer.passiveHealthCheck`` with Traefik's defaults (10s, 1) for the keys not given. A
    window of zero or less is refused (Traefik would take the server out for no time at all)."""
    f = Fields(value, at, ("failureWindow", "maxFailedAttempts"))
    kw: dict[str, Any] = {}
    if f.present("failureWindow"):
        kw["failure_window"] = duration(*f.get("failureWindow"))
    if f.present("maxFailedAttempts"):
        kw["max_failed_attempts"] = as_int(*f.get("maxFailedAttempts"))
    return PassiveHealthCheck(**kw)


def h2c_scheme(where: str, warnings: list[str]) -> str:
    """Traefik's ``h2c`` scheme (HTTP/2 without TLS) is accepted and proxied as HTTP/1.1 until dockroute
    speaks HTTP/2 to backends: the scheme to use instead, and a warning naming ``where`` it was set, so that
    a backend speaking only HTTP/2 is explained. Files and Docker labels share it."""
    warnings.append(
        f"{where}: scheme h2c is proxied as HTTP/1.1 (dockroute does not speak HTTP/2 to backends); "
        "a backend that only speaks HTTP/2 will not answer"
    )
    return "http"


def h2c_url(url: str, where: str, warnings: list[str]) -> str:
    """A server URL: an ``h2c://`` one as ``http://`` (:func:`h2c_scheme`), any other as it is."""
    return h2c_scheme(where, warnings) + url[3:] if url[:6].lower() == "h2c://" else url


def preserve_path(flag: bool, where: str, warnings: list[str]) -> None:
    """Traefik's ``server.preservePath``: false (its default) is what dockroute does, the server URL's path
    is not sent; true is warned about by name, as not supported. Files and Docker labels share it."""
    if flag:
        warnings.append(f"{where}: not supported; the path of the server URL is not sent (Traefik's default)")


def _server(value: Any, at: At, warnings: list[str]) -> Server:
    """A server, as the Docker labels read one: ``h2c`` and ``preservePath`` as :func:`h2c_url` and
    :func:`preserve_path` say."""
    f = Fields(value, at, ("url", "weight", "preservePath"))
    url, uat = f.required("url")
    url = h2c_url(as_str(url, uat).strip(), uat.path, warnings)
    if f.present("preservePath"):
        preserve_path(as_bool(*f.get("preservePath")), f.get("preservePath")[1].path, warnings)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise uat.error(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise uat.error(f"must be an absolute http:// or https:// URL, got {url!r}")
    if not parts.hostname:
        raise uat.error(f"the URL {url!r} has no host")
    if port == 0:
        raise uat.error(f"invalid port in URL {url!r}")
    weight = as_int(*f.get("weight"), minimum=0) if f.present("weight") else 1
    return Server(url=url, weight=weight)


_HEALTH_KEYS = (
    "path",
    "interval",
    "timeout",
    "hostname",
    "scheme",
    "port",
    "method",
    "status",
    "headers",
    "followRedirects",
)


def _health_check(value: Any, at: At) -> HealthCheck:
    f = Fields(value, at, _HEALTH_KEYS)
    kw: dict[str, Any] = {}
    if f.present("path"):
        kw["path"] = as_str(*f.get("path"))
    if f.present("interval"):
        kw["interval"] = duration(*f.get("interval"))
    if f.present("timeout"):
        kw["timeout"] = duration(*f.get("timeout"))
    if f.present("hostname"):
        kw["hostname"] = as_str(*f.get("hostname"))
    if f.present("scheme"):
        kw["scheme"] = one_of(*f.get("scheme"), ("http", "https"))
    if f.present("port"):
        kw["port"] = as_int(*f.get("port"), minimum=1, maximum=65535)
    if f.present("method"):
        kw["method"] = as_str(*f.get("method")).upper()
    if f.present("status"):
        kw["status"] = as_int(*f.get("status"), minimum=100, maximum=599)
    if f.present("headers"):
        v, hat = f.get("headers")
        if not isinstance(v, Mapping):
            raise hat.error(f"expected a mapping of header names to values, got {describe(v)}")
        kw["headers"] = frozen_map(
            {as_str(k, hat.key(str(k), k)): as_str(hv, hat.key(str(k), k), empty=True) for k, hv in v.items()}
        )
    if f.present("followRedirects"):
        kw["follow_redirects"] = as_bool(*f.get("followRedirects"))
    return HealthCheck(**kw)


_SAME_SITE = ("", "none", "lax", "strict")


def _sticky(value: Any, at: At) -> StickyCookie | None:
    """``sticky: {cookie: {...}}``; ``sticky`` without ``cookie`` is not sticky, as in Traefik."""
    f = Fields(value, at, ("cookie",))
    if "cookie" not in f:
        return None
    v, cat = f.get("cookie")
    c = Fields(v, cat, ("name", "secure", "httpOnly", "sameSite", "maxAge", "path"))
    kw: dict[str, Any] = {}
    if c.present("name"):
        kw["name"] = as_str(*c.get("name"), empty=True)
    if c.present("secure"):
        kw["secure"] = as_bool(*c.get("secure"))
    if c.present("httpOnly"):
        kw["http_only"] = as_bool(*c.get("httpOnly"))
    if c.present("sameSite"):
        kw["same_site"] = one_of(*c.get("sameSite"), _SAME_SITE)
    if c.present("maxAge"):
        kw["max_age"] = as_int(*c.get("maxAge"))
    if c.present("path"):
        kw["path"] = as_str(*c.get("path"))
    return StickyCookie(**kw)


def _weighted(value: Any, at: At) -> Weighted:
    f = Fields(value, at, ("services", "sticky"))
    refs = []
    for v, rat in as_list(*f.get("services")):
        rf = Fields(v, rat, ("name", "weight"))
        refs.append(
            WeightedRef(
                name=as_str(*rf.required("name")).strip(),
                weight=as_int(*rf.get("weight"), minimum=0) if rf.present("weight") else 1,
            )
        )
    return Weighted(services=tuple(refs), sticky=_sticky(*f.get("sticky")) if "sticky" in f else None)
