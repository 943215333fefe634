"""Traefik's ``tcp`` section, as a plain dict, → :mod:`discover.model_tcp`.

The same readers as the HTTP sections (:mod:`discover.readers`: case-insensitive keys, label strings,
Go durations), so files and Docker labels land on one model. What Traefik accepts and dockroute does not
do is warned about by name (``healthCheck`` of TCP services); what would silently weaken a connection
(SPIFFE, peer SAN checks) refuses the transport, and the services using it are not served.
"""

from __future__ import annotations

from typing import Any

from discover.middlewares.access import parse_networks
from discover.model_base import frozen_map, host_and_port, host_name_error
from discover.model_tcp import (
    TCPConfig,
    TCPInFlightConn,
    TCPIPAllowList,
    TCPLoadBalancer,
    TCPMiddleware,
    TCPRouter,
    TCPRouterTLS,
    TCPServer,
    TCPServerHealthCheck,
    TCPServersTransport,
    TCPServersTransportTLS,
    TCPService,
    TCPWeighted,
    TCPWeightedRef,
)
from discover.parse_tls import read_domains
from discover.readers import (
    At,
    ConfigError,
    Fields,
    as_bool,
    as_int,
    as_list,
    as_str,
    describe,
    duration,
    named,
    one_of,
    opt_str,
    str_list,
)

__all__ = ["TCP_MIDDLEWARE_TYPES", "parse_tcp"]

TCP_MIDDLEWARE_TYPES = ("ipAllowList", "ipWhiteList", "inFlightConn")


def parse_tcp(value: Any, at: At, warnings: list[str]) -> TCPConfig:
    """The ``tcp`` section at ``at``; raises ConfigError on the first bad key, warnings as parse's."""
    f = Fields(value, at, ("routers", "services", "middlewares", "serversTransports"))
    routers = {n: _router(n, v, rat) for n, v, rat in named(*f.get("routers"), "router")}
    services = {n: _service(v, sat, warnings, n) for n, v, sat in named(*f.get("services"), "service")}
    middlewares = {n: _middleware(n, v, mat) for n, v, mat in named(*f.get("middlewares"), "middleware")}
    transports: dict[str, TCPServersTransport] = {}
    for name, v, tat in named(*f.get("serversTransports"), "serversTransport"):
        try:
            transports[name] = _transport(v, tat)
        except _Refused as exc:
            warnings.append(str(exc))
    warnings.extend(m.error for m in middlewares.values() if m.error)
    return TCPConfig(
        routers=frozen_map(routers),
        services=frozen_map(services),
        middlewares=frozen_map(middlewares),
        servers_transports=frozen_map(transports),
    )


def _router(name: str, value: Any, at: At) -> TCPRouter:
    f = Fields(value, at, ("rule", "service", "entryPoints", "middlewares", "priority", "tls", "ruleSyntax"))
    rule = as_str(*f.required("rule")).strip()
    service = as_str(*f.required("service")).strip()
    if not rule or not service:
        raise f.get("rule" if not rule else "service")[1].error("must not be empty")
    syntax = one_of(*f.get("ruleSyntax"), ("v2", "v3")) if f.present("ruleSyntax") else None
    return TCPRouter(
        name=name,
        rule=rule,
        service=service,
        entry_points=str_list(*f.get("entryPoints")),
        middlewares=str_list(*f.get("middlewares")),
        priority=as_int(*f.get("priority")) if f.present("priority") else 0,
        tls=_router_tls(*f.get("tls")) if "tls" in f else None,
        rule_syntax=syntax,
    )


def _router_tls(value: Any, at: At) -> TCPRouterTLS | None:
    """``tls: true`` / empty (present: TLS terminated with the default options) or its options."""
    if value is None:
        return TCPRouterTLS()
    if isinstance(value, bool | str | int):
        return TCPRouterTLS() if as_bool(value, at) else None
    f = Fields(value, at, ("passthrough", "certResolver", "domains", "options"))
    return TCPRouterTLS(
        passthrough=as_bool(*f.get("passthrough")) if f.present("passthrough") else False,
        cert_resolver=opt_str(*f.get("certResolver")),
        domains=read_domains(*f.get("domains")),
        options=opt_str(*f.get("options")),
    )


def _service(value: Any, at: At, warnings: list[str], name: str) -> TCPService:
    f = Fields(value, at, ("loadBalancer", "weighted"))
    if ("loadBalancer" in f) == ("weighted" in f):
        raise at.error("a TCP service needs exactly one of loadBalancer or weighted")
    if "weighted" in f:
        w = Fields(*f.get("weighted"), ("services", "healthCheck"))
        if "healthCheck" in w:
            Fields(*w.get("healthCheck"), ())  # Traefik's marker: present and empty
        refs = []
        for v, rat in as_list(*w.get("services")):
            rf = Fields(v, rat, ("name", "weight"))
            weight = as_int(*rf.get("weight"), minimum=0) if rf.present("weight") else 1
            refs.append(TCPWeightedRef(name=as_str(*rf.required("name")).strip(), weight=weight))
        return TCPService(
            name=name, weighted=TCPWeighted(services=tuple(refs), health_check="healthCheck" in w)
        )
    lb = Fields(
        *f.get("loadBalancer"),
        ("servers", "serversTransport", "proxyProtocol", "terminationDelay", "healthCheck"),
    )
    servers = []
    for v, sat in as_list(*lb.get("servers")):
        sf = Fields(v, sat, ("address", "tls"))
        address = _address(*sf.required("address"))
        bad = host_name_error(host_and_port(address)[0])
        if bad is not None:  # Traefik's every dial would fail; a name no lookup can take is left out now
            warnings.append(f"{sat.path}: {address!r}: {bad}; this server is left out")
            continue
        servers.append(
            TCPServer(address=address, tls=as_bool(*sf.get("tls")) if sf.present("tls") else False)
        )
    delay = None
    if lb.present("terminationDelay"):  # Traefik: an int of milliseconds; negative: never
        delay = as_int(*lb.get("terminationDelay")) / 1000.0
        warnings.append(f"{lb.get('terminationDelay')[1].path}: deprecated; use a serversTransport")
    version = 0
    if "proxyProtocol" in lb:
        version = _proxy_protocol(*lb.get("proxyProtocol"))
        warnings.append(f"{lb.get('proxyProtocol')[1].path}: deprecated; use a serversTransport")
    return TCPService(
        name=name,
        load_balancer=TCPLoadBalancer(
            servers=tuple(servers),
            proxy_protocol_version=version,
            servers_transport=opt_str(*lb.get("serversTransport")),
            termination_delay=delay,
            health_check=_health_check(*lb.get("healthCheck"), warnings) if "healthCheck" in lb else None,
        ),
    )


_HEALTH_KEYS = ("port", "send", "expect", "interval", "unhealthyInterval", "timeout")
_MAX_PAYLOAD = 65535


def _health_check(value: Any, at: At, warnings: list[str]) -> TCPServerHealthCheck:
    """``loadBalancer.healthCheck``, with Traefik's fallbacks: an interval or timeout not above zero is
    logged and replaced by the default, a ``send`` or ``expect`` over 64 KiB is dropped, with a warning."""
    f = Fields(value, at, _HEALTH_KEYS)
    d = TCPServerHealthCheck()
    kw: dict[str, Any] = {}
    if f.present("port"):
        kw["port"] = as_int(*f.get("port"), minimum=0, maximum=65535)
    for key in ("send", "expect"):
        if f.present(key):
            text = as_str(*f.get(key), empty=True)
            if len(text) > _MAX_PAYLOAD:
                warnings.append(
                    f"{f.get(key)[1].path}: longer than {_MAX_PAYLOAD} bytes; not used (Traefik's)"
                )
            else:
                kw[key] = text
    for key, attr in (
        ("interval", "interval"),
        ("unhealthyInterval", "unhealthy_interval"),
        ("timeout", "timeout"),
    ):
        if f.present(key):
            seconds = duration(*f.get(key), positive=False)
            if seconds <= 0:
                fallback = d.timeout if key == "timeout" else d.interval
                warnings.append(
                    f"{f.get(key)[1].path}: not above zero; {fallback:g}s is used, as Traefik does"
                )
                seconds = fallback
            kw[attr] = seconds
    return TCPServerHealthCheck(**kw)


def _address(value: Any, at: At) -> str:
    """``host:port`` (``[v6]:port``), as Go's ``net.SplitHostPort`` wants it."""
    address = as_str(value, at).strip()
    try:
        host, _ = host_and_port(address)
    except ValueError as exc:
        hint = " (an IPv6 address goes in brackets: [::1]:port)" if "too many colons" in str(exc) else ""
        raise at.error(f"expected host:port, got {address!r}{hint}") from None
    if not host:
        raise at.error(f"expected host:port, got {address!r}")
    return address


def _proxy_protocol(value: Any, at: At) -> int:
    """``proxyProtocol: {version}``; present without a version is version 2 (Traefik's default)."""
    f = Fields(value, at, ("version",))
    return as_int(*f.get("version"), minimum=1, maximum=2) if f.present("version") else 2


def _middleware(name: str, value: Any, at: At) -> TCPMiddleware:
    f = Fields(value, at, TCP_MIDDLEWARE_TYPES)
    if len(f.values) != 1:
        raise at.error(f"a TCP middleware needs exactly one of {', '.join(TCP_MIDDLEWARE_TYPES)}")
    ((mtype, (options, oat)),) = f.values.items()
    try:
        if mtype == "inFlightConn":
            o = Fields(options, oat, ("amount",))
            return TCPMiddleware(
                name=name, type=mtype, options=TCPInFlightConn(as_int(*o.get("amount"), minimum=0))
            )
        o = Fields(options, oat, ("sourceRange",))
        ranges, rat = str_list(*o.get("sourceRange")), o.get("sourceRange")[1]
        if not ranges:
            raise rat.error("must not be empty (Traefik refuses an allow-list without ranges)")
        try:
            parse_networks(ranges)
        except ValueError as exc:
            raise rat.error(str(exc)) from None
        return TCPMiddleware(name=name, type=mtype, options=TCPIPAllowList(ranges))
    except ConfigError as exc:  # kept with the reason: its routers are refused by name
        return TCPMiddleware(name=name, type=mtype, options=None, error=str(exc))


class _Refused(Exception):
    """A transport that must not be used; the message is the warning."""


def _transport(value: Any, at: At) -> TCPServersTransport:
    f = Fields(value, at, ("dialTimeout", "dialKeepAlive", "terminationDelay", "proxyProtocol", "tls"))
    kw: dict[str, Any] = {}
    for key, attr in (("dialTimeout", "dial_timeout"), ("dialKeepAlive", "dial_keep_alive")):
        if f.present(key):
            kw[attr] = duration(*f.get(key), positive=False)
    if f.present("terminationDelay"):
        kw["termination_delay"] = duration(*f.get("terminationDelay"), positive=False)
    if "proxyProtocol" in f:
        kw["proxy_protocol_version"] = _proxy_protocol(*f.get("proxyProtocol"))
    if "tls" in f:
        kw["tls"] = _transport_tls(*f.get("tls"))
    return TCPServersTransport(**kw)


def _transport_tls(value: Any, at: At) -> TCPServersTransportTLS:
    f = Fields(
        value,
        at,
        (
            "serverName",
            "insecureSkipVerify",
            "rootCAs",
            "certificates",
            "peerCertURI",
            "peerCertSANs",
            "spiffe",
        ),
    )
    for key in ("spiffe", "peerCertSANs"):
        if f.present(key):
            raise _Refused(
                f"{f.get(key)[1].path}: not supported; the transport is refused and the services using it "
                "are not served (a peer check must never be skipped silently)"
            )
    certificates = []
    for v, cat in as_list(*f.get("certificates")):
        cf = Fields(v, cat, ("certFile", "keyFile"))
        certificates.append((as_str(*cf.required("certFile")), as_str(*cf.required("keyFile"))))
    if f.present("rootCAs") and not isinstance(f.get("rootCAs")[0], list | tuple | str):
        raise f.get("rootCAs")[1].error(f"expected a list of files, got {describe(f.get('rootCAs')[0])}")
    return TCPServersTransportTLS(
        server_name=as_str(*f.get("serverName")) if f.present("serverName") else "",
        insecure_skip_verify=as_bool(*f.get("insecureSkipVerify"))
        if f.present("insecureSkipVerify")
        else False,
        root_cas=str_list(*f.get("rootCAs")),
        certificates=tuple(certificates),
        peer_cert_uri=as_str(*f.get("peerCertURI")) if f.present("peerCertURI") else "",
    )
