"""Traefik's dynamic configuration, as a plain dict, → :mod:`discover.model`.

The input is what ``yaml.safe_load`` or ``tomllib`` give for a Traefik dynamic-configuration file (and what
Docker labels are turned into), so nothing here knows where the dict came from. The typed readers that
give Traefik's decoding rules (case-insensitive keys, scalars as strings, Go's boolean words, comma lists)
are in :mod:`discover.readers`; this module knows the sections: routers, services, middlewares,
serversTransports and tls. Error messages use the canonical camelCase path (``http.routers.app.rule``);
:attr:`ConfigError.keys` holds the keys exactly as written so that a provider can point at the line.

References between routers, services, middlewares and serversTransports are not resolved here (``merge()``
does that); a bare reference that does not exist in the same config is reported as a warning, as Traefik
logs it and skips the router.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.middlewares.registry import OPTION_TYPES, read_middleware_options
from discover.model import (
    CertificateFile,
    DynamicConfig,
    Middleware,
    Router,
    RouterTLS,
    ServersTransport,
    TLSConfig,
    frozen_map,
    idle_conns_per_host,
    service_children,
)
from discover.model_tcp import TCPConfig
from discover.model_udp import UDPConfig
from discover.parse_services import h2c_scheme, h2c_url, parse_service, preserve_path
from discover.parse_tcp import parse_tcp
from discover.parse_tls import read_domains, tls_options
from discover.parse_udp import parse_udp
from discover.readers import (
    At,
    ConfigError,
    Fields,
    Key,
    as_bool,
    as_int,
    as_list,
    as_str,
    describe,
    duration,
    freeze,
    named,
    one_of,
    opt_str,
    parse_duration,
    str_list,
)
from discover.values import find_key

__all__ = [
    "MIDDLEWARE_TYPES",
    "h2c_scheme",
    "h2c_url",
    "preserve_path",
    "ConfigError",
    "Key",
    "check_references",
    "parse_duration",
    "parse_dynamic",
    "parse_dynamic_with_warnings",
]

# Traefik's HTTP middleware types (v2 and v3), canonical spelling. The router decides which it supports.
MIDDLEWARE_TYPES: tuple[str, ...] = (
    "addPrefix",
    "basicAuth",
    "buffering",
    "cache",  # dockroute's own (Traefik has it only as a plugin)
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
    "encodedCharacters",  # Traefik v3.7
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "inFlightReq",
    "ipAllowList",
    "ipWhiteList",
    "passTLSClientCert",
    "plugin",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
)


# -- routers ------------------------------------------------------------------------------------------

_ROUTER_KEYS = (
    "rule",
    "service",
    "entryPoints",
    "middlewares",
    "priority",
    "tls",
    "ruleSyntax",
    "observability",
)
_OBSERVABILITY_KEYS = ("accessLogs", "metrics", "tracing", "traceVerbosity")


def _observability(value: Any, at: At, warnings: list[str]) -> dict[str, bool]:
    """A router's ``observability``: ``accessLogs`` and ``metrics`` are acted on; dockroute has no tracing,
    so ``tracing``/``traceVerbosity`` are read (checked) and warned about by name."""
    f = Fields(value, at, _OBSERVABILITY_KEYS)
    out = {}
    if f.present("accessLogs"):
        out["access_logs"] = as_bool(*f.get("accessLogs"))
    if f.present("metrics"):
        out["metrics"] = as_bool(*f.get("metrics"))
    if f.present("traceVerbosity"):
        one_of(*f.get("traceVerbosity"), ("minimal", "detailed"))
    if f.present("tracing"):
        as_bool(*f.get("tracing"))
    for key in ("tracing", "traceVerbosity"):
        if f.present(key):
            warnings.append(f"{f.get(key)[1].path}: dockroute has no tracing; ignored")
    return out


def _router(name: str, value: Any, at: At, warnings: list[str]) -> Router:
    if value is None:
        raise at.error("a router needs at least a rule and a service")
    f = Fields(value, at, _ROUTER_KEYS)
    rule = as_str(*f.required("rule")).strip()
    if not rule:
        raise f.get("rule")[1].error("must not be empty")
    service = as_str(*f.required("service")).strip()
    if not service:
        raise f.get("service")[1].error("must not be empty")
    priority = as_int(*f.get("priority"), minimum=0) if f.present("priority") else 0
    rule_syntax = one_of(*f.get("ruleSyntax"), ("v2", "v3")) if f.present("ruleSyntax") else None
    tls = _router_tls(*f.get("tls")) if "tls" in f else None
    return Router(
        name=name,
        rule=rule,
        service=service,
        entry_points=str_list(*f.get("entryPoints")),
        middlewares=str_list(*f.get("middlewares")),
        priority=priority,
        tls=tls,
        rule_syntax=rule_syntax,
        **(_observability(*f.get("observability"), warnings) if "observability" in f else {}),
    )


def _router_tls(value: Any, at: At) -> RouterTLS | None:
    """``tls: true``, ``tls: {}``, ``tls:`` (empty: present, so enabled) or the options; ``false`` is off."""
    if value is None:
        return RouterTLS()
    if isinstance(value, bool | str | int):
        return RouterTLS() if as_bool(value, at) else None
    f = Fields(value, at, ("certResolver", "domains", "options"))
    return RouterTLS(
        cert_resolver=opt_str(*f.get("certResolver")),
        domains=read_domains(*f.get("domains")),
        options=opt_str(*f.get("options")),
    )


# -- middlewares --------------------------------------------------------------------------------------


def _middleware(name: str, value: Any, at: At) -> Middleware:
    if not isinstance(value, Mapping) or len(value) != 1:
        got = f"{len(value)} keys" if isinstance(value, Mapping) else describe(value)
        raise at.error(f"a middleware needs exactly one type key (e.g. redirectScheme), got {got}")
    ((raw, options),) = value.items()
    mtype = find_key(MIDDLEWARE_TYPES, raw) if isinstance(raw, str) else None
    if mtype is None:
        raise at.key(str(raw), raw).error(f"unknown middleware type {raw!r}")
    oat = at.key(mtype, raw)
    if mtype not in OPTION_TYPES:  # not implemented: kept as given, the router refuses its routers
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise oat.error(f"expected a mapping of options, got {describe(options)}")
        return Middleware(name=name, type=mtype, options=freeze(options))
    try:
        return Middleware(name=name, type=mtype, options=read_middleware_options(mtype, options, oat))
    except ConfigError as exc:
        # Kept, with the reason: the routers using it are refused by name when the configuration is
        # applied, and the rest of this file still works.
        return Middleware(name=name, type=mtype, options=None, error=str(exc))


# -- tls ----------------------------------------------------------------------------------------------


def _certificate(value: Any, at: At, *, stores: bool) -> CertificateFile:
    f = Fields(value, at, ("certFile", "keyFile", "stores") if stores else ("certFile", "keyFile"))
    return CertificateFile(
        cert_file=as_str(*f.required("certFile")),
        key_file=as_str(*f.required("keyFile")),
        stores=str_list(*f.get("stores")),
    )


def _tls(value: Any, at: At, warnings: list[str]) -> TLSConfig:
    f = Fields(value, at, ("certificates", "stores", "options"))
    certificates = tuple(_certificate(v, cat, stores=True) for v, cat in as_list(*f.get("certificates")))
    options = tls_options(*f.get("options"), warnings)
    default: CertificateFile | None = None
    for store, v, sat in named(*f.get("stores"), "store"):
        sf = Fields(v, sat, ("defaultCertificate", "defaultGeneratedCert"))
        if store != "default":
            warnings.append(f"{sat.path}: only the default TLS store is supported; this store is ignored")
            continue
        if sf.present("defaultGeneratedCert"):
            warnings.append(f"{sat.path}.defaultGeneratedCert: not supported yet; ignored")
        if sf.present("defaultCertificate"):
            default = _certificate(*sf.get("defaultCertificate"), stores=False)
    return TLSConfig(certificates=certificates, default_certificate=default, options=frozen_map(options))


# -- serversTransports -------------------------------------------------------------------------------

_TRANSPORT_KEYS = (
    "serverName",
    "insecureSkipVerify",
    "rootCAs",
    "certificates",
    "maxIdleConnsPerHost",
    "forwardingTimeouts",
    "disableHTTP2",
    "peerCertURI",
    "spiffe",
)
_TIMEOUT_KEYS = ("dialTimeout", "responseHeaderTimeout", "idleConnTimeout", "readIdleTimeout", "pingTimeout")
_HTTP1_ONLY = "has no effect: dockroute speaks HTTP/1.1 to backends"


class _Refused(Exception):
    """A transport that must not be used: the message says why (a warning), the transport is left out."""


def _servers_transport(value: Any, at: At, warnings: list[str]) -> ServersTransport:
    """``http.serversTransports.<name>``: how the proxy connects to the backends of the services that
    reference it.

    dockroute always speaks HTTP/1.1 to backends, which is what ``disableHTTP2: true`` asks for; the keys
    that tune HTTP/2 to backends (``disableHTTP2: false``, ``forwardingTimeouts.readIdleTimeout`` and
    ``pingTimeout``) are read and checked, and a warning says they have no effect. ``spiffe`` (a SPIFFE
    identity check of the backend) is not supported: silently skipping an identity check would expose the
    user, so the transport is refused (:class:`_Refused`) and the services using it are not served.
    """
    f = Fields(value, at, _TRANSPORT_KEYS)
    if "spiffe" in f:
        raise _Refused(
            f"{f.get('spiffe')[1].path}: SPIFFE is not supported; the transport is refused and the "
            "services using it are not served"
        )
    kw: dict[str, Any] = {}
    if f.present("serverName"):
        kw["server_name"] = as_str(*f.get("serverName"))
    if f.present("insecureSkipVerify"):
        kw["insecure_skip_verify"] = as_bool(*f.get("insecureSkipVerify"))
    if f.present("rootCAs"):
        kw["root_cas"] = str_list(*f.get("rootCAs"))
    if f.present("certificates"):
        kw["certificates"] = tuple(
            _certificate(v, cat, stores=False) for v, cat in as_list(*f.get("certificates"))
        )
    if f.present("maxIdleConnsPerHost"):
        kw["max_idle_conns_per_host"] = idle_conns_per_host(as_int(*f.get("maxIdleConnsPerHost")))
    if f.present("peerCertURI"):
        kw["peer_cert_uri"] = as_str(*f.get("peerCertURI"))
    if f.present("disableHTTP2") and not as_bool(*f.get("disableHTTP2")):
        warnings.append(f"{f.get('disableHTTP2')[1].path}: false {_HTTP1_ONLY}")
    if "forwardingTimeouts" in f:
        kw.update(_forwarding_timeouts(*f.get("forwardingTimeouts"), warnings))
    return ServersTransport(**kw)


def _forwarding_timeouts(value: Any, at: At, warnings: list[str]) -> dict[str, float]:
    """``forwardingTimeouts``: zero means "no timeout", as in Go's transport; negative is refused."""
    f = Fields(value, at, _TIMEOUT_KEYS)
    kw: dict[str, float] = {}
    for key, attr in (
        ("dialTimeout", "dial_timeout"),
        ("responseHeaderTimeout", "response_header_timeout"),
        ("idleConnTimeout", "idle_conn_timeout"),
        ("readIdleTimeout", None),
        ("pingTimeout", None),
    ):
        if not f.present(key):
            continue
        v, kat = f.get(key)
        seconds = duration(v, kat, positive=False)
        if seconds < 0:
            raise kat.error(f"must not be negative, got {v!r}")
        if attr is None:
            warnings.append(f"{kat.path}: HTTP/2 only; {_HTTP1_ONLY}")
        else:
            kw[attr] = seconds
    return kw


def _servers_transports(value: Any, at: At, warnings: list[str]) -> dict[str, ServersTransport]:
    out: dict[str, ServersTransport] = {}
    for name, v, tat in named(value, at, "serversTransport"):
        try:
            out[name] = _servers_transport(v, tat, warnings)
        except _Refused as exc:
            warnings.append(str(exc))
    return out


# -- the document -------------------------------------------------------------------------------------


def check_references(cfg: DynamicConfig) -> list[str]:
    """Warnings for bare references (no ``@``) to a service, middleware or serversTransport missing from
    ``cfg``."""
    warnings = []
    for name, r in cfg.routers.items():
        if "@" not in r.service and r.service not in cfg.services:
            warnings.append(
                f"http.routers.{name}.service: service {r.service!r} is not defined; "
                "the router will be skipped"
            )
        for m in r.middlewares:
            if "@" not in m and m not in cfg.middlewares:
                warnings.append(
                    f"http.routers.{name}.middlewares: middleware {m!r} is not defined; "
                    "the router will be skipped"
                )
    for name, s in cfg.services.items():
        transport = s.load_balancer.servers_transport if s.load_balancer is not None else None
        if transport and "@" not in transport and transport not in cfg.servers_transports:
            warnings.append(
                f"http.services.{name}.loadBalancer.serversTransport: serversTransport {transport!r} is not "
                "defined; the service will not be served"
            )
        kind = next((k for k in _COMPOSITE if getattr(s, k) is not None), "")
        for ref in service_children(s):
            if "@" not in ref and ref not in cfg.services:
                warnings.append(f"http.services.{name}.{kind}: service {ref!r} is not defined")
    return warnings


_COMPOSITE = ("weighted", "mirroring", "failover")  # the sections of services made of services


def parse_dynamic_with_warnings(
    data: Mapping[str, Any] | None, *, references: bool = True
) -> tuple[DynamicConfig, list[str]]:
    """Parse one provider's dynamic configuration; raise :class:`ConfigError` on the first problem.

    The warnings are things Traefik logs and goes on without: unsupported parts, servers left out (the
    ``tcp`` and ``udp`` parsers' too), and (with ``references``) bare references to services, middlewares or
    serversTransports missing from this config. A provider that merges several documents passes
    ``references=False`` and calls :func:`check_references` on the merged result.
    """
    warnings: list[str] = []
    if data is None:
        return DynamicConfig(), warnings
    root = At()
    if not isinstance(data, Mapping):
        raise root.error(f"a dynamic configuration must be a mapping, got {describe(data)}")
    top = Fields(data, root, ("http", "tcp", "udp", "tls"))

    http = Fields(*top.get("http"), ("routers", "services", "middlewares", "serversTransports"))
    routers = {n: _router(n, v, at, warnings) for n, v, at in named(*http.get("routers"), "router")}
    services = {n: parse_service(n, v, at, warnings) for n, v, at in named(*http.get("services"), "service")}
    middlewares = {n: _middleware(n, v, at) for n, v, at in named(*http.get("middlewares"), "middleware")}
    transports = _servers_transports(*http.get("serversTransports"), warnings)
    tls = _tls(*top.get("tls"), warnings) if top.present("tls") else TLSConfig()
    tcp = parse_tcp(*top.get("tcp"), warnings) if top.present("tcp") else TCPConfig()
    udp = parse_udp(*top.get("udp"), warnings) if top.present("udp") else UDPConfig()

    cfg = DynamicConfig(
        routers=frozen_map(routers),
        services=frozen_map(services),
        middlewares=frozen_map(middlewares),
        tls=tls,
        servers_transports=frozen_map(transports),
        tcp=tcp,
        udp=udp,
    )
    warnings.extend(m.error for m in middlewares.values() if m.error)
    if references:
        warnings.extend(check_references(cfg))
    return cfg, warnings


def parse_dynamic(data: Mapping[str, Any] | None) -> DynamicConfig:
    """Parse one provider's dynamic configuration, dropping the warnings.

    See :func:`parse_dynamic_with_warnings`."""
    return parse_dynamic_with_warnings(data)[0]
