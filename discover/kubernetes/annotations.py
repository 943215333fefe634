"""Traefik's Ingress and Service annotations, read under ``traefik.ingress.kubernetes.io/`` and
``dockroute.ingress.kubernetes.io/`` (dockroute's spelling wins when both set one key).

Every key Traefik v3 reads is here: acted on, or named in a warning when dockroute cannot do what it asks
(tracing, a sticky cookie's domain, a Service's own middlewares, node-port load balancing). A value that
does not read (``router.priority: high``), and an unknown ``router.*`` key, raise :class:`AnnotationError`:
Traefik then leaves the whole Ingress out, and so does the builder, with a log line naming the annotation
(an unknown or unreadable ``service.*`` key on a Service: Traefik refuses that Service, so its paths are
skipped). Keys outside ``router.`` and ``service.`` (an old ``preserve-host``) Traefik's decoder skips;
dockroute ignores them too, with a warning naming each. Names are case-insensitive, as Traefik's label
decoder reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from discover.model import Domain, RouterTLS, StickyCookie
from discover.values import BOOL_WORDS, parse_bool

__all__ = [
    "PREFIXES",
    "AnnotationError",
    "RouterAnnotations",
    "ServiceAnnotations",
    "router_annotations",
    "service_annotations",
]

PREFIXES = ("traefik.ingress.kubernetes.io/", "dockroute.ingress.kubernetes.io/")
_PATH_MATCHERS = ("Path", "PathPrefix", "PathRegexp")
_SAME_SITE = ("", "none", "lax", "strict")
_DOMAIN_KEY = re.compile(r"router\.tls\.domains\.(\d+)\.(main|sans)")
_ROUTER_KEYS = frozenset(
    {
        "router.entrypoints",
        "router.middlewares",
        "router.priority",
        "router.rulesyntax",
        "router.pathmatcher",
        "router.tls",
        "router.tls.certresolver",
        "router.tls.options",
        "router.observability.accesslogs",
        "router.observability.metrics",
    }
)
# Read by Traefik, not acted on by dockroute: each one set is named in a warning.
_ROUTER_WARNED = {
    "router.observability.tracing": "dockroute has no tracing",
    "router.observability.traceverbosity": "dockroute has no tracing",
}
_SERVICE_KEYS = frozenset(
    {
        "service.serversscheme",
        "service.serverstransport",
        "service.passhostheader",
        "service.nativelb",
        "service.sticky.cookie",
        "service.sticky.cookie.name",
        "service.sticky.cookie.secure",
        "service.sticky.cookie.httponly",
        "service.sticky.cookie.samesite",
        "service.sticky.cookie.maxage",
        "service.sticky.cookie.path",
    }
)
_SERVICE_WARNED = {
    "service.sticky.cookie.domain": "dockroute's sticky cookie has no Domain attribute; it is host-only",
    "service.middlewares": "a Service's own middlewares are not supported; put them on the Ingress "
    "(router.middlewares)",
    "service.nodeportlb": "node-port load balancing needs the cluster's nodes, which dockroute does not read;"
    " the Service's EndpointSlices are used",
}


class AnnotationError(ValueError):
    """An annotation whose value cannot be read; ``str()`` names it."""


def _collect(annotations: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """lower-cased key after the prefix → (value, the annotation as written); dockroute's prefix wins."""
    out: dict[str, tuple[str, str]] = {}
    for prefix in PREFIXES:  # dockroute's last: it overrides Traefik's
        for key, value in annotations.items():
            if key.lower().startswith(prefix):
                out[key[len(prefix) :].lower()] = (value, key)
    return out


def _bool(value: str, name: str) -> bool:
    b = parse_bool(value)
    if b is None:
        raise AnnotationError(f"annotation {name}: expected {BOOL_WORDS}, got {value!r}")
    return b


def _int(value: str, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise AnnotationError(f"annotation {name}: expected an integer, got {value!r}") from None


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class RouterAnnotations:
    """What the ``router.*`` annotations of an Ingress say; empty fields were not set."""

    entry_points: tuple[str, ...] = ()
    middlewares: tuple[str, ...] = ()
    priority: int = 0
    rule_syntax: str | None = None
    path_matcher: str = "PathPrefix"
    tls: RouterTLS | None = None
    access_logs: bool = True
    metrics: bool = True


_READ_ON = {"router.": "the Ingress", "service.": "the Service"}


def _screened(
    found: Mapping[str, tuple[str, str]], own: str, warned: Mapping[str, str], warnings: list[str]
) -> Iterator[tuple[str, str, str]]:
    """(key, value, annotation name) of the annotations under ``own`` (``router.`` on an Ingress,
    ``service.`` on a Service) that are read; each other one gets a warning naming it: Traefik decodes only
    its own prefix on each object and skips the rest, and dockroute does not support the ``warned`` ones."""
    other = "service." if own == "router." else "router."
    for key, (value, name) in sorted(found.items()):
        if key.startswith(other):
            where = f"on {_READ_ON[other]}, not on {_READ_ON[own]}"
            warnings.append(f"annotation {name} is read {where}; ignored")
        elif not key.startswith(own):
            warnings.append(f"annotation {name} is not one Traefik v3 reads ({own}* only); ignored")
        elif key in warned:
            warnings.append(f"annotation {name} is not supported ({warned[key]}); ignored")
        else:
            yield key, value, name


def router_annotations(annotations: Mapping[str, str]) -> tuple[RouterAnnotations, list[str]]:
    """The Ingress's ``router.*`` annotations, and warnings for those not acted on. Raises
    :class:`AnnotationError` for a value that cannot be read (Traefik leaves the Ingress out)."""
    found = _collect(annotations)
    warnings: list[str] = []
    kw: dict[str, object] = {}
    tls_on: bool | None = None
    tls_kw: dict[str, object] = {}
    domains: dict[int, dict[str, object]] = {}
    for key, value, name in _screened(found, "router.", _ROUTER_WARNED, warnings):
        m = _DOMAIN_KEY.fullmatch(key)
        if m:
            d = domains.setdefault(int(m[1]), {})
            d[m[2]] = value.strip() if m[2] == "main" else _list(value)
            continue
        if key not in _ROUTER_KEYS:
            raise AnnotationError(f"annotation {name}: unknown (Traefik leaves such an Ingress out too)")
        if key == "router.entrypoints":
            kw["entry_points"] = _list(value)
        elif key == "router.middlewares":
            kw["middlewares"] = _list(value)
        elif key == "router.priority":
            kw["priority"] = _int(value, name)
        elif key == "router.rulesyntax":
            syntax = value.strip().lower()
            if syntax not in ("v2", "v3", "default"):
                raise AnnotationError(f"annotation {name}: must be v2 or v3, got {value!r}")
            kw["rule_syntax"] = None if syntax == "default" else syntax
        elif key == "router.pathmatcher":
            if value.strip() not in _PATH_MATCHERS:
                raise AnnotationError(
                    f"annotation {name}: invalid path matcher {value!r}: must be one of Path, PathPrefix, "
                    "PathRegexp"
                )
            kw["path_matcher"] = value.strip()
        elif key == "router.tls":
            tls_on = _bool(value, name)
        elif key == "router.tls.certresolver":
            tls_kw["cert_resolver"] = value.strip() or None
        elif key == "router.tls.options":
            tls_kw["options"] = value.strip() or None
        elif key == "router.observability.accesslogs":
            kw["access_logs"] = _bool(value, name)
        elif key == "router.observability.metrics":
            kw["metrics"] = _bool(value, name)
    if domains:
        tls_kw["domains"] = tuple(
            Domain(main=str(d.get("main", "")), sans=d.get("sans", ()))  # type: ignore[arg-type]
            for _, d in sorted(domains.items())
        )
    # Any tls.* key turns TLS on, as Traefik's decoder does; router.tls=false with none of them is off.
    if tls_kw or tls_on:
        kw["tls"] = RouterTLS(**tls_kw)  # type: ignore[arg-type]
    return RouterAnnotations(**kw), warnings  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ServiceAnnotations:
    """What the ``service.*`` annotations of a Kubernetes Service say."""

    servers_scheme: str = ""
    servers_transport: str | None = None
    pass_host_header: bool = True
    native_lb: bool | None = None
    sticky: StickyCookie | None = None


def service_annotations(annotations: Mapping[str, str]) -> tuple[ServiceAnnotations, list[str]]:
    """The Service's ``service.*`` annotations (``router.*`` ones are the Ingress's: Traefik ignores them
    on a Service; so does dockroute, with a warning), and warnings for those not acted on."""
    found = _collect(annotations)
    warnings: list[str] = []
    kw: dict[str, object] = {}
    cookie: dict[str, object] | None = None
    for key, value, name in _screened(found, "service.", _SERVICE_WARNED, warnings):
        if key not in _SERVICE_KEYS:
            raise AnnotationError(f"annotation {name}: unknown (Traefik refuses such a Service too)")
        if key == "service.serversscheme":
            kw["servers_scheme"] = value.strip()
        elif key == "service.serverstransport":
            kw["servers_transport"] = value.strip() or None
        elif key == "service.passhostheader":
            kw["pass_host_header"] = _bool(value, name)
        elif key == "service.nativelb":
            kw["native_lb"] = _bool(value, name)
        elif key == "service.sticky.cookie":
            if _bool(value, name) and cookie is None:
                cookie = {}
        else:
            cookie = {} if cookie is None else cookie
            field = key.removeprefix("service.sticky.cookie.")
            if field in ("secure", "httponly"):
                cookie["http_only" if field == "httponly" else "secure"] = _bool(value, name)
            elif field == "maxage":
                cookie["max_age"] = _int(value, name)
            elif field == "samesite":
                same_site = value.strip().lower()
                if same_site not in _SAME_SITE:
                    raise AnnotationError(f"annotation {name}: must be none, lax or strict, got {value!r}")
                cookie["same_site"] = same_site
            else:  # name, path
                cookie[field] = value.strip()
    if cookie is not None:
        kw["sticky"] = StickyCookie(**cookie)  # type: ignore[arg-type]
    return ServiceAnnotations(**kw), warnings  # type: ignore[arg-type]
