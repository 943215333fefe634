"""Traefik's dynamic configuration, as a plain dict, → :mod:`discover.model`.

The input is what ``yaml.safe_load`` or ``tomllib`` give for a Traefik dynamic-configuration file (and what
Docker labels are turned into), so nothing here knows where the dict came from. Like Traefik's decoder
(paerser), keys are matched case-insensitively, scalars may be given as strings (``"10"``, ``"true"``: what
labels carry) and a list of strings may be given as one comma-separated string. Error messages use the
canonical camelCase path (``http.routers.app.rule``); :attr:`ConfigError.keys` holds the keys exactly as
written so that a provider can point at the line.

References between routers, services and middlewares are not resolved here (``merge()`` does that); a
bare reference that does not exist in the same config is reported as a warning, as Traefik logs it and
skips the router.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from discover.model import (
    CertificateFile,
    Domain,
    DynamicConfig,
    HealthCheck,
    LoadBalancer,
    Middleware,
    Router,
    RouterTLS,
    Server,
    Service,
    StickyCookie,
    TLSConfig,
    Weighted,
    WeightedRef,
    frozen_map,
)

__all__ = [
    "MIDDLEWARE_TYPES",
    "ConfigError",
    "check_references",
    "parse_duration",
    "parse_dynamic",
    "parse_dynamic_with_warnings",
]

Key = str | int


class ConfigError(ValueError):
    """A problem in a dynamic configuration.

    ``path`` is the canonical key path (``http.routers.app.rule``, ``tls.certificates[0].certFile``; empty
    for the document itself), ``message`` the reason. ``keys`` is the same path with the keys as they were
    written (list positions as ints), for locating it in a source file. ``file`` and ``line`` are set by a
    provider that knows them (1-based line; ``None`` when unknown).
    """

    def __init__(
        self,
        path: str,
        message: str,
        line: int | None = None,
        *,
        file: str | None = None,
        keys: Sequence[Key] = (),
    ) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message
        self.line = line
        self.file = file
        self.keys: tuple[Key, ...] = tuple(keys)

    @property
    def reason(self) -> str:
        """``path: message`` (the message alone for the whole document)."""
        return f"{self.path}: {self.message}" if self.path else self.message

    @property
    def location(self) -> str:
        """``file:line``, ``file``, ``line N`` or empty, as far as known."""
        if self.file is not None:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"line {self.line}" if self.line is not None else ""

    def located(self, file: str | None, line: int | None) -> ConfigError:
        """The same error, placed in ``file`` at ``line``."""
        return ConfigError(self.path, self.message, line, file=file, keys=self.keys)

    def __str__(self) -> str:
        loc = self.location
        return f"{loc}: {self.reason}" if loc else self.reason

    def __reduce__(self) -> Any:
        return (_rebuild_error, (self.path, self.message, self.line, self.file, self.keys))


def _rebuild_error(path: str, message: str, line: int | None, file: str | None, keys: tuple[Key, ...]):
    return ConfigError(path, message, line, file=file, keys=keys)


# Traefik's HTTP middleware types (v2 and v3), canonical spelling. The router decides which it supports.
MIDDLEWARE_TYPES: tuple[str, ...] = (
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
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


# -- walking ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _At:
    """Where a value sits: canonical path for messages, raw keys for locating it."""

    path: str = ""
    keys: tuple[Key, ...] = ()

    def key(self, canonical: str, raw: Key) -> _At:
        return _At(f"{self.path}.{canonical}" if self.path else canonical, (*self.keys, raw))

    def index(self, i: int) -> _At:
        return _At(f"{self.path}[{i}]", (*self.keys, i))

    def error(self, message: str) -> ConfigError:
        return ConfigError(self.path, message, keys=self.keys)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


class _Fields:
    """The keys of one mapping, matched case-insensitively against the names it may hold."""

    def __init__(self, value: Any, at: _At, names: Sequence[str]) -> None:
        self.at = at
        self.values: dict[str, tuple[Any, _At]] = {}
        if value is None:
            return
        if not isinstance(value, Mapping):
            raise at.error(f"expected a mapping, got {_kind(value)}")
        by_lower = {n.lower(): n for n in names}
        for raw, v in value.items():
            if not isinstance(raw, str):
                raise at.key(str(raw), raw).error(f"unknown key {raw!r}; expected one of {', '.join(names)}")
            canonical = by_lower.get(raw.lower())
            if canonical is None:
                raise at.key(raw, raw).error(f"unknown key {raw!r}; expected one of {', '.join(names)}")
            if canonical in self.values:
                raise at.key(canonical, raw).error("given twice (keys are case-insensitive)")
            self.values[canonical] = (v, at.key(canonical, raw))

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> tuple[Any, _At]:
        """The value (``None`` when absent) and where it is."""
        return self.values.get(name, (None, self.at.key(name, name)))

    def present(self, name: str) -> bool:
        return name in self.values and self.values[name][0] is not None

    def required(self, name: str) -> tuple[Any, _At]:
        v, at = self.get(name)
        if v is None:
            raise at.error("required")
        return v, at


def _named(value: Any, at: _At, what: str) -> Iterator[tuple[str, Any, _At]]:
    """The entries of ``routers``/``services``/``middlewares``: user-chosen names, kept as written."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise at.error(f"expected a mapping of {what} names, got {_kind(value)}")
    for raw, v in value.items():
        name = str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
        if not name:
            raise at.key(str(raw), raw).error(f"invalid {what} name {raw!r}")
        if "@" in name:
            raise at.key(name, raw).error(
                f"a {what} name defined here cannot contain '@' (it is added when providers are merged)"
            )
        yield name, v, at.key(name, raw)


# -- scalars ------------------------------------------------------------------------------------------


def _str(value: Any, at: _At, *, empty: bool = False) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
        raise at.error(f"expected a string, got {_kind(value)}")
    s = value if isinstance(value, str) else str(value)
    if not s and not empty:
        raise at.error("must not be empty")
    return s


def _opt_str(value: Any, at: _At) -> str | None:
    return None if value is None else _str(value, at)


_INT = re.compile(r"[+-]?\d+")


def _int(value: Any, at: _At, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        n = int(value.strip())
    else:
        raise at.error(f"expected an integer, got {_kind(value)}")
    if minimum is not None and n < minimum:
        raise at.error(f"must be at least {minimum}, got {n}")
    if maximum is not None and n > maximum:
        raise at.error(f"must be at most {maximum}, got {n}")
    return n


def _bool(value: Any, at: _At) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise at.error(f"expected true or false, got {_kind(value)}")


def _str_list(value: Any, at: _At) -> tuple[str, ...]:
    """A list of non-empty strings; one string is split on commas, as Traefik does for labels."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if not isinstance(value, list | tuple):
        raise at.error(f"expected a list of strings, got {_kind(value)}")
    return tuple(_str(v, at.index(i)) for i, v in enumerate(value))


def _list(value: Any, at: _At) -> list[tuple[Any, _At]]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise at.error(f"expected a list, got {_kind(value)}")
    return [(v, at.index(i)) for i, v in enumerate(value)]


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """A Traefik duration in seconds: a number of seconds (``10``, ``"10"``, ``1.5``) or Go's format
    (``"10s"``, ``"500ms"``, ``"1m30s"``, ``"1h"``). Raises ``ValueError`` for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {_kind(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        s = value.strip()
        if _NUMBER.fullmatch(s):
            seconds = float(s)
        else:
            sign = -1.0 if s.startswith("-") else 1.0
            body = s.lstrip("+-")
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(body):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
                pos = m.end()
            if not body or pos != len(body):
                raise ValueError(
                    f"invalid duration {value!r} (use e.g. 10s, 500ms, 1m30s or a number of seconds)"
                )
            seconds *= sign
    else:
        raise ValueError(f"expected a duration, got {_kind(value)}")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}")
    return seconds


def _duration(value: Any, at: _At, *, positive: bool = True) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise at.error(str(exc)) from None
    if positive and seconds <= 0:
        raise at.error(f"must be a positive duration, got {value!r}")
    return seconds


def _freeze(value: Any) -> Any:
    """Dicts → read-only mappings, lists → tuples, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# -- routers ------------------------------------------------------------------------------------------

_ROUTER_KEYS = ("rule", "service", "entryPoints", "middlewares", "priority", "tls", "ruleSyntax")


def _router(name: str, value: Any, at: _At) -> Router:
    if value is None:
        raise at.error("a router needs at least a rule and a service")
    f = _Fields(value, at, _ROUTER_KEYS)
    rule = _str(*f.required("rule")).strip()
    if not rule:
        raise f.get("rule")[1].error("must not be empty")
    service = _str(*f.required("service")).strip()
    if not service:
        raise f.get("service")[1].error("must not be empty")
    priority = _int(*f.get("priority"), minimum=0) if f.present("priority") else 0
    rule_syntax = None
    if f.present("ruleSyntax"):
        v, vat = f.get("ruleSyntax")
        rule_syntax = _str(v, vat).lower()
        if rule_syntax not in ("v2", "v3"):
            raise vat.error(f"must be v2 or v3, got {v!r}")
    tls = _router_tls(*f.get("tls")) if "tls" in f else None
    return Router(
        name=name,
        rule=rule,
        service=service,
        entry_points=_str_list(*f.get("entryPoints")),
        middlewares=_str_list(*f.get("middlewares")),
        priority=priority,
        tls=tls,
        rule_syntax=rule_syntax,
    )


def _router_tls(value: Any, at: _At) -> RouterTLS | None:
    """``tls: true``, ``tls: {}``, ``tls:`` (empty: present, so enabled) or the options; ``false`` is off."""
    if value is None:
        return RouterTLS()
    if isinstance(value, bool | str):
        return RouterTLS() if _bool(value, at) else None
    f = _Fields(value, at, ("certResolver", "domains", "options"))
    domains = []
    for v, dat in _list(*f.get("domains")):
        df = _Fields(v, dat, ("main", "sans"))
        domains.append(Domain(main=_str(*df.required("main")), sans=_str_list(*df.get("sans"))))
    return RouterTLS(
        cert_resolver=_opt_str(*f.get("certResolver")),
        domains=tuple(domains),
        options=_opt_str(*f.get("options")),
    )


# -- services -----------------------------------------------------------------------------------------

_UNSUPPORTED_SERVICES = {"mirroring", "failover"}


def _service(name: str, value: Any, at: _At) -> Service:
    f = _Fields(value, at, ("loadBalancer", "weighted", "mirroring", "failover"))
    for kind in _UNSUPPORTED_SERVICES:
        if kind in f:
            raise f.get(kind)[1].error(f"{kind} services are not supported")
    if ("loadBalancer" in f) == ("weighted" in f):
        raise at.error("a service needs exactly one of loadBalancer or weighted")
    if "loadBalancer" in f:
        return Service(name=name, load_balancer=_load_balancer(*f.get("loadBalancer")))
    return Service(name=name, weighted=_weighted(*f.get("weighted")))


def _load_balancer(value: Any, at: _At) -> LoadBalancer:
    f = _Fields(value, at, ("servers", "passHostHeader", "healthCheck", "sticky", "serversTransport"))
    servers = tuple(_server(v, sat) for v, sat in _list(*f.get("servers")))
    return LoadBalancer(
        servers=servers,
        pass_host_header=_bool(*f.get("passHostHeader")) if f.present("passHostHeader") else True,
        health_check=_health_check(*f.get("healthCheck")) if "healthCheck" in f else None,
        sticky=_sticky(*f.get("sticky")) if "sticky" in f else None,
        servers_transport=_opt_str(*f.get("serversTransport")),
    )


def _server(value: Any, at: _At) -> Server:
    f = _Fields(value, at, ("url", "weight"))
    url, uat = f.required("url")
    url = _str(url, uat).strip()
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
    weight = _int(*f.get("weight"), minimum=0) if f.present("weight") else 1
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


def _health_check(value: Any, at: _At) -> HealthCheck:
    f = _Fields(value, at, _HEALTH_KEYS)
    kw: dict[str, Any] = {}
    if f.present("path"):
        kw["path"] = _str(*f.get("path"))
    if f.present("interval"):
        kw["interval"] = _duration(*f.get("interval"))
    if f.present("timeout"):
        kw["timeout"] = _duration(*f.get("timeout"))
    if f.present("hostname"):
        kw["hostname"] = _str(*f.get("hostname"))
    if f.present("scheme"):
        v, sat = f.get("scheme")
        scheme = _str(v, sat).lower()
        if scheme not in ("http", "https"):
            raise sat.error(f"must be http or https, got {v!r}")
        kw["scheme"] = scheme
    if f.present("port"):
        kw["port"] = _int(*f.get("port"), minimum=1, maximum=65535)
    if f.present("method"):
        kw["method"] = _str(*f.get("method")).upper()
    if f.present("status"):
        kw["status"] = _int(*f.get("status"), minimum=100, maximum=599)
    if f.present("headers"):
        v, hat = f.get("headers")
        if not isinstance(v, Mapping):
            raise hat.error(f"expected a mapping of header names to values, got {_kind(v)}")
        kw["headers"] = frozen_map(
            {_str(k, hat.key(str(k), k)): _str(hv, hat.key(str(k), k), empty=True) for k, hv in v.items()}
        )
    if f.present("followRedirects"):
        kw["follow_redirects"] = _bool(*f.get("followRedirects"))
    return HealthCheck(**kw)


_SAME_SITE = ("", "none", "lax", "strict")


def _sticky(value: Any, at: _At) -> StickyCookie | None:
    """``sticky: {cookie: {...}}``; ``sticky`` without ``cookie`` is not sticky, as in Traefik."""
    f = _Fields(value, at, ("cookie",))
    if "cookie" not in f:
        return None
    v, cat = f.get("cookie")
    c = _Fields(v, cat, ("name", "secure", "httpOnly", "sameSite", "maxAge", "path"))
    kw: dict[str, Any] = {}
    if c.present("name"):
        kw["name"] = _str(*c.get("name"), empty=True)
    if c.present("secure"):
        kw["secure"] = _bool(*c.get("secure"))
    if c.present("httpOnly"):
        kw["http_only"] = _bool(*c.get("httpOnly"))
    if c.present("sameSite"):
        sv, sat = c.get("sameSite")
        same_site = _str(sv, sat, empty=True).lower()
        if same_site not in _SAME_SITE:
            raise sat.error(f"must be none, lax or strict, got {sv!r}")
        kw["same_site"] = same_site
    if c.present("maxAge"):
        kw["max_age"] = _int(*c.get("maxAge"))
    if c.present("path"):
        kw["path"] = _str(*c.get("path"))
    return StickyCookie(**kw)


def _weighted(value: Any, at: _At) -> Weighted:
    f = _Fields(value, at, ("services", "sticky"))
    refs = []
    for v, rat in _list(*f.get("services")):
        rf = _Fields(v, rat, ("name", "weight"))
        refs.append(
            WeightedRef(
                name=_str(*rf.required("name")).strip(),
                weight=_int(*rf.get("weight"), minimum=0) if rf.present("weight") else 1,
            )
        )
    return Weighted(services=tuple(refs), sticky=_sticky(*f.get("sticky")) if "sticky" in f else None)


# -- middlewares --------------------------------------------------------------------------------------


def _middleware(name: str, value: Any, at: _At) -> Middleware:
    if not isinstance(value, Mapping) or len(value) != 1:
        got = f"{len(value)} keys" if isinstance(value, Mapping) else _kind(value)
        raise at.error(f"a middleware needs exactly one type key (e.g. redirectScheme), got {got}")
    ((raw, options),) = value.items()
    by_lower = {t.lower(): t for t in MIDDLEWARE_TYPES}
    mtype = by_lower.get(raw.lower()) if isinstance(raw, str) else None
    if mtype is None:
        raise at.key(str(raw), raw).error(f"unknown middleware type {raw!r}")
    oat = at.key(mtype, raw)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise oat.error(f"expected a mapping of options, got {_kind(options)}")
    return Middleware(name=name, type=mtype, options=_freeze(options))


# -- tls ----------------------------------------------------------------------------------------------


def _certificate(value: Any, at: _At, *, stores: bool) -> CertificateFile:
    f = _Fields(value, at, ("certFile", "keyFile", "stores") if stores else ("certFile", "keyFile"))
    return CertificateFile(
        cert_file=_str(*f.required("certFile")),
        key_file=_str(*f.required("keyFile")),
        stores=_str_list(*f.get("stores")),
    )


def _tls(value: Any, at: _At, warnings: list[str]) -> TLSConfig:
    f = _Fields(value, at, ("certificates", "stores", "options"))
    certificates = tuple(_certificate(v, cat, stores=True) for v, cat in _list(*f.get("certificates")))
    if f.present("options"):
        warnings.append("tls.options: TLS options are not supported yet; the section is ignored")
    default: CertificateFile | None = None
    for store, v, sat in _named(*f.get("stores"), "store"):
        sf = _Fields(v, sat, ("defaultCertificate", "defaultGeneratedCert"))
        if store != "default":
            warnings.append(f"{sat.path}: only the default TLS store is supported; this store is ignored")
            continue
        if sf.present("defaultGeneratedCert"):
            warnings.append(f"{sat.path}.defaultGeneratedCert: not supported yet; ignored")
        if sf.present("defaultCertificate"):
            default = _certificate(*sf.get("defaultCertificate"), stores=False)
    return TLSConfig(certificates=certificates, default_certificate=default)


# -- the document -------------------------------------------------------------------------------------


def check_references(cfg: DynamicConfig) -> list[str]:
    """Warnings for bare references (no ``@``) to a service or middleware missing from ``cfg``."""
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
        if s.weighted is None:
            continue
        for ref in s.weighted.services:
            if "@" not in ref.name and ref.name not in cfg.services:
                warnings.append(f"http.services.{name}.weighted: service {ref.name!r} is not defined")
    return warnings


def parse_dynamic_with_warnings(
    data: Mapping[str, Any] | None, *, references: bool = True
) -> tuple[DynamicConfig, list[str]]:
    """Parse one provider's dynamic configuration; raise :class:`ConfigError` on the first problem.

    The warnings are things Traefik logs and goes on without: ignored ``tcp``/``udp`` sections and
    unsupported parts, and (with ``references``) bare references to services or middlewares missing from
    this config. A provider that merges several documents passes ``references=False`` and calls
    :func:`check_references` on the merged result.
    """
    warnings: list[str] = []
    if data is None:
        return DynamicConfig(), warnings
    root = _At()
    if not isinstance(data, Mapping):
        raise root.error(f"a dynamic configuration must be a mapping, got {_kind(data)}")
    top = _Fields(data, root, ("http", "tcp", "udp", "tls"))
    for section in ("tcp", "udp"):
        if top.present(section):
            warnings.append(f"{section}: {section.upper()} routing is not supported; the section is ignored")

    http = _Fields(*top.get("http"), ("routers", "services", "middlewares", "serversTransports"))
    if http.present("serversTransports"):
        warnings.append("http.serversTransports: not supported yet; the section is ignored")
    routers = {n: _router(n, v, at) for n, v, at in _named(*http.get("routers"), "router")}
    services = {n: _service(n, v, at) for n, v, at in _named(*http.get("services"), "service")}
    middlewares = {n: _middleware(n, v, at) for n, v, at in _named(*http.get("middlewares"), "middleware")}
    tls = _tls(*top.get("tls"), warnings) if top.present("tls") else TLSConfig()

    cfg = DynamicConfig(
        routers=frozen_map(routers),
        services=frozen_map(services),
        middlewares=frozen_map(middlewares),
        tls=tls,
    )
    if references:
        warnings.extend(check_references(cfg))
    return cfg, warnings


def parse_dynamic(data: Mapping[str, Any] | None) -> DynamicConfig:
    """Parse one provider's dynamic configuration, dropping the warnings.

    See :func:`parse_dynamic_with_warnings`."""
    return parse_dynamic_with_warnings(data)[0]
