"""The settings dataclasses built from the merged tree, and :func:`load_static` that ties it together.

Each builder reads one section through a :class:`~dockroute.static.readers.Reader` and applies the
cross-key rules Traefik has (the embedded ``web`` entry point, the implicit Docker provider, redirection
targets, exactly one of ``filename`` / ``directory``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from types import MappingProxyType
from typing import Any

from discover.docker_model import DockerSettings
from discover.model import Domain, RouterTLS, idle_conns_per_host
from discover.swarm_model import SwarmSettings
from discover.values import find_key
from dockroute.static.access_log import read_access_log
from dockroute.static.kubernetes import read_kubernetes_ingress
from dockroute.static.observability import (
    check_entry_points,
    read_observability,
    with_internal_entry_point,
)
from dockroute.static.readers import Reader, check_address
from dockroute.static.resolvers import read_resolvers
from dockroute.static.schema import (
    ANY,
    ENCODED_ALLOWED_BY_DEFAULT,
    ENCODED_CHARACTERS,
    IGNORED,
    OTHER_PROVIDERS,
    SCHEMA,
    WARNED,
    ListOf,
    Named,
)
from dockroute.static.settings import (
    PY_LEVELS,
    DockerProviderSettings,
    FileProviderSettings,
    LogSettings,
    StaticConfig,
    StaticConfigError,
)
from dockroute.static.sources import default_search_dirs, find_file, merged_tree
from dockroute.static.tcp import read_tcp_transport
from dockroute.static.tree import OFF, Val, get, join, merge, where
from dockroute.static.udp import udp_timeout, udp_warnings
from router.settings import DEFAULT_MAX_HEADER_BYTES, EntryPoint, ProxyProtocolIn, Redirection, Transport

__all__ = ["load_static"]

_DEFAULTS: dict[type, dict[str, Any]] = {
    cls: {f.name: f.default for f in fields(cls)} for cls in (EntryPoint, Transport, Redirection)
}


def load_static(
    argv: Sequence[str],
    environ: Mapping[str, str],
    config_file: str | None = None,
    search_dirs: Sequence[str] | None = None,
) -> StaticConfig:
    """The static configuration from a file (explicit, else the first of Traefik's names found in
    ``search_dirs``, by default :func:`~dockroute.static.sources.default_search_dirs`), the environment
    and flags, in rising precedence. Raises :class:`StaticConfigError` on anything wrong or unknown."""
    dirs = default_search_dirs(environ) if search_dirs is None else search_dirs
    source, flags = find_file(config_file, argv, environ, dirs)
    tree = merged_tree(source, flags, environ)
    providers = get(tree, "providers")
    docker = _docker_provider(get(providers, "docker"))
    configured = isinstance(providers, dict) and any(
        find_key(providers, p) is not None for p in ("file", "docker", "swarm", *OTHER_PROVIDERS)
    )
    configured = configured or find_key(providers or {}, "kubernetesIngress") is not None
    if docker is None and not configured:
        # No provider asked for: the Docker provider, opt-in only (traefik.enable / dockroute.enable),
        # so a bare start never publishes every container on the host.
        docker = DockerProviderSettings(explicit=False, exposed_by_default=False)
    obs = read_observability(tree)
    entries = with_internal_entry_point(_with_default_web(get(tree, "entryPoints")), obs)
    live = [name for name, sub in entries.items() if sub is not OFF]
    obs = check_entry_points(tree, obs, live)
    resolvers, warned, warnings = read_resolvers(get(tree, "certificatesResolvers"), live, environ)
    tls_challenge = any(getattr(r, "tls_challenge", False) for r in resolvers.values())
    entry_points = _entry_points(entries, list(resolvers), tls_challenge)
    warnings += udp_warnings(entries, {ep.name for ep in entry_points if ep.udp}, entry_points)
    return StaticConfig(
        entry_points=entry_points,
        transport=_transport(get(tree, "serversTransport")),
        tcp_transport=read_tcp_transport(get(tree, "tcpServersTransport")),
        file_provider=_file_provider(get(providers, "file")),
        docker_provider=docker,
        kubernetes_ingress=read_kubernetes_ingress(get(providers, "kubernetesIngress")),
        swarm_provider=_swarm_provider(get(providers, "swarm")),
        log=_log(get(tree, "log")),
        access_log=read_access_log(get(tree, "accessLog")),
        resolvers=MappingProxyType(resolvers),
        api=obs.api,
        ping=obs.ping,
        metrics=obs.metrics,
        internal_entry_point=obs.internal_entry_point,
        metrics_add_internals=Reader(get(tree, "metrics"), "metrics").flag("addInternals", False),
        source=source,
        ignored=(*not_acted_on(SCHEMA, tree), *warned),
        warnings=tuple(warnings),
        providers_throttle_duration=Reader(providers, "providers").duration("providersThrottleDuration", 2.0),
    )


def _with_default_web(entry_tree: Any) -> dict[str, Any]:
    """The embedded ``web`` on :80 stays unless another entry point is configured; settings for ``web``
    itself (``--entrypoints.web.address=…``, ``…forwardedheaders.insecure``) apply to it."""
    entries = entry_tree if isinstance(entry_tree, dict) else {}
    if all(find_key(("web",), name) is not None for name in entries):
        entries = merge({next(iter(entries), "web"): {"address": Val(":80", "")}}, entries)
    return entries


# -- entry points -------------------------------------------------------------------------------------


def _entry_points(
    entries: dict[str, Any], resolvers: list[str], tls_challenge: bool
) -> tuple[EntryPoint, ...]:
    """``tls_challenge``: some resolver answers TLS-ALPN-01; without one, every entry point lets
    ``acme-tls/1`` ClientHellos through to its TCP routers, as Traefik does (``allowACMEByPass``)."""
    live = [name for name, sub in entries.items() if sub is not OFF]
    out = [_entry_point(name, entries[name], live, resolvers, tls_challenge) for name in live]
    if not out:
        raise StaticConfigError("entryPoints", "every entry point is switched off; at least one is needed")
    return tuple(out)


def _entry_point(
    name: str, tree: Any, names: list[str], resolvers: list[str], tls_challenge: bool
) -> EntryPoint:
    r = Reader(tree, f"entryPoints.{name}")
    found = r.address()
    if found is None:
        raise StaticConfigError(f"entryPoints.{name}.address", "required (e.g. ':80')")
    address, udp = found
    fwd = r.sub("forwardedHeaders")
    rt = r.sub("transport", "respondingTimeouts")
    lc = r.sub("transport", "lifeCycle")
    d = _DEFAULTS[EntryPoint]
    http = r.sub("http")
    obs = r.sub("observability")
    # Read as Traefik reads them (a bad value stops the start), not acted on: reported by name (WARNED).
    obs.flag("tracing", True)
    obs.text("traceVerbosity", choices=("minimal", "detailed"))
    fwd.flag("notAppendXForwardedFor", False)
    fwd.flag("addXForwardedSchemeHeaders", False)
    bypass = r.flag("allowACMEByPass", False)
    return EntryPoint(
        name=name,
        address=address,
        redirection=_redirection(r.sub("http", "redirections", "entryPoint"), names),
        tls=_entry_point_tls(r.sub("http"), resolvers),
        middlewares=tuple(item for item, _ in r.sub("http").items("middlewares")),
        as_default=r.flag("asDefault", False),
        allow_acme_bypass=bypass,
        acme_tls_bypass=bypass or not tls_challenge,
        access_logs=obs.flag("accessLogs", True),
        metrics=obs.flag("metrics", True),
        trusted_ips=_trusted_ips(fwd),
        forwarded_insecure=fwd.flag("insecure", False),
        proxy_protocol=None if udp else _proxy_protocol(r),  # UDP: warned as ignored (udp_warnings)
        read_timeout=rt.duration("readTimeout", d["read_timeout"]),
        write_timeout=rt.duration("writeTimeout", d["write_timeout"]),
        idle_timeout=rt.duration("idleTimeout", d["idle_timeout"]),
        grace_timeout=lc.duration("graceTimeOut", d["grace_timeout"]),
        request_accept_grace_timeout=lc.duration(
            "requestAcceptGraceTimeout", d["request_accept_grace_timeout"]
        ),
        allowed_encoded=_encoded_characters(http),
        max_header_bytes=_max_header_bytes(http),
        underscore_headers=_underscore_headers(http),
        sanitize_path=http.flag("sanitizePath", True),
        udp=udp,
        udp_timeout=udp_timeout(r),
    )


def _encoded_characters(http: Reader) -> frozenset[str]:
    """``http.encodedCharacters``: the ``allowEncoded*`` keys set to true, the encoded characters of a
    request path the entry point lets through; every other one is answered 400 (router.proxy).

    Encoded ``/ \\ NUL ; #`` are refused unless allowed: the default of Traefik 3.6.4 to 3.6.6 (its fix for
    GHSA-gm3x-23wp-hc2c), which Traefik 3.6.7 turned back to allowed for compatibility. dockroute keeps
    the refusal for those five, as an encoded ``/`` read one way by a rule and another by a backend is the
    split view that advisory is about. ``%25`` and ``%3F`` pass unless refused (as in Traefik 3.7): they
    are ordinary in file names (``50%25.pdf``, WebDAV) and a path decoded once cannot route on them."""
    enc = http.sub("encodedCharacters")
    return frozenset(key for key in ENCODED_CHARACTERS if enc.flag(key, key in ENCODED_ALLOWED_BY_DEFAULT))


def _max_header_bytes(http: Reader) -> int:
    """``http.maxHeaderBytes``: the most a request head (request line and headers) may take, as Go's
    ``MaxHeaderBytes`` (a head over it is answered 431 and closed); 0 or less means Go's default, 1 MiB."""
    max_header = http.integer("maxHeaderBytes", DEFAULT_MAX_HEADER_BYTES, minimum=None)
    return max_header if max_header > 0 else DEFAULT_MAX_HEADER_BYTES


def _underscore_headers(http: Reader) -> str:
    """``http.underscoreHeadersStrategy`` (Traefik v3.7.6): ``keep`` (the default) passes request headers
    whose names hold ``_``; ``delete`` removes them and ``reject`` answers 400, before routing
    (router.headers.underscore_guard). CGI, WSGI and PHP read ``X_Auth_User`` as ``X-Auth-User``."""
    return http.text("underscoreHeadersStrategy", "keep", choices=("keep", "delete", "reject"))


def _entry_point_tls(http: Reader, resolvers: list[str]) -> RouterTLS | None:
    """``http.tls``: absent or switched off is None; a bare switch is ``RouterTLS()`` (HTTPS with the
    default certificate). ``certResolver`` must name a resolver (Traefik only logs an error and leaves
    the routers without certificates; a start that cannot do what was asked stops instead)."""
    node = get(http.tree, "tls")
    if node is None or node is OFF:
        return None
    r = http.sub("tls")
    resolver = r.reference("certResolver", list(resolvers), "certificate resolver")
    domains = []
    for item in r.sections("domains"):
        main = item.text("main")
        if main is None:
            raise StaticConfigError(
                f"{item.path}.main", f"required: the certificate's main name{where(item.origin('sans'))}"
            )
        domains.append(Domain(main=main.strip(), sans=tuple(name for name, _ in item.items("sans"))))
    options = r.text("options")
    return RouterTLS(
        cert_resolver=resolver, domains=tuple(domains), options=options.strip() if options else None
    )


def _redirection(red: Reader, names: list[str]) -> Redirection | None:
    """``http.redirections.entryPoint``: ``to`` names an entry point (any case) or is an address."""
    if not (red.has("to") or red.tree):
        return None
    to = red.text("to")
    if to is None:
        raise StaticConfigError(f"{red.path}.to", "required: an entry point name or an address like ':443'")
    target = find_key(names, to.strip())
    if target is None and check_address(to) is None:
        raise StaticConfigError(
            f"{red.path}.to",
            f"no entry point named {to!r} (known: {', '.join(names)}) and not an address like ':443'"
            f"{where(red.origin('to'))}",
        )
    return Redirection(
        to=target or to.strip(),
        scheme=red.text("scheme", "https", choices=("https", "http")),
        permanent=red.flag("permanent", True),
        priority=red.integer("priority", _DEFAULTS[Redirection]["priority"], minimum=1),
    )


def _proxy_protocol(r: Reader) -> ProxyProtocolIn | None:
    """``proxyProtocol``: set at all (a bare ``--entrypoints.<ep>.proxyprotocol``, an empty section), PROXY
    headers are read on the entry point, as Traefik wraps its listener whenever the section is there; whose
    header is used: ``trustedIPs`` (read as ``forwardedHeaders.trustedIPs`` is), or every peer's with
    ``insecure``. Neither (a bare switch, an empty section or list) stops the start naming ``trustedIPs``,
    as Traefik's entry point fails to build then (its IP checker refuses an empty list: "no trusted IPs
    provided")."""
    node = get(r.tree, "proxyProtocol")
    if node is None or node is OFF:
        return None
    pp = r.sub("proxyProtocol")
    found = ProxyProtocolIn(trusted_ips=_trusted_ips(pp), insecure=pp.flag("insecure", False))
    if not found.insecure and not found.trusted_ips:
        origin = pp.origin("trustedIPs") or r.origin("proxyProtocol")
        raise StaticConfigError(
            f"{pp.path}.trustedIPs",
            "required (the load balancers whose PROXY headers are used), unless insecure is true; "
            f"Traefik refuses to start without it{where(origin)}",
        )
    return found


def _trusted_ips(fwd: Reader) -> tuple[str, ...]:
    """``trustedIPs`` of ``forwardedHeaders`` or ``proxyProtocol``: addresses or CIDRs, each checked."""
    trusted = []
    for item, path in fwd.items("trustedIPs"):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise StaticConfigError(
                path,
                f"expected an IP address or CIDR like '10.0.0.0/8', got {item!r}"
                f"{where(fwd.origin('trustedIPs'))}",
            ) from None
        trusted.append(item)
    return tuple(trusted)


# -- the default transport to backends ----------------------------------------------------------------


def _transport(tree: Any) -> Transport:
    """Traefik's static ``serversTransport``: every key it has is read (SPIFFE is refused by name)."""
    r = Reader(tree, "serversTransport")
    _refuse_spiffe(r)
    ft = r.sub("forwardingTimeouts")
    d = _DEFAULTS[Transport]
    idle_per_host = r.integer("maxIdleConnsPerHost", d["max_idle_conns_per_host"], minimum=None)
    return Transport(
        dial_timeout=ft.duration("dialTimeout", d["dial_timeout"]),
        response_header_timeout=ft.duration("responseHeaderTimeout", d["response_header_timeout"]),
        idle_conn_timeout=ft.duration("idleConnTimeout", d["idle_conn_timeout"]),
        max_idle_conns_per_host=idle_conns_per_host(idle_per_host),
        insecure_skip_verify=r.flag("insecureSkipVerify", False),
        root_cas=tuple(item for item, _ in r.items("rootCAs")),
    )


def _refuse_spiffe(r: Reader) -> None:
    """``serversTransport.spiffe`` asks that every backend prove a SPIFFE identity; dockroute has no
    Workload API client, and dropping the setting would silently skip that check, so it stops the start."""
    spiffe = get(r.tree, "spiffe")
    if spiffe is None or spiffe is OFF:
        return
    sub = r.sub("spiffe")
    sub.items("ids")  # a malformed value is still reported as such
    sub.text("trustDomain")
    origin = sub.origin("ids") or sub.origin("trustDomain")
    raise StaticConfigError(
        "serversTransport.spiffe",
        "SPIFFE is not supported: dockroute cannot verify backends' SPIFFE identities, and ignoring it "
        f"would skip that check; remove it, or trust the backends' CA with rootCAs{where(origin)}",
    )


# -- providers, logs ----------------------------------------------------------------------------------


def _file_provider(tree: Any) -> FileProviderSettings | None:
    if not isinstance(tree, dict):
        return None
    r = Reader(tree, "providers.file")
    filename, directory = r.text("filename"), r.text("directory")
    if (filename is None) == (directory is None):
        raise StaticConfigError(
            "providers.file",
            "set exactly one of filename or directory" + (", not both" if filename else ""),
        )
    return FileProviderSettings(filename=filename, directory=directory, watch=r.flag("watch", True))


def _engine_keys(r: Reader, d: DockerSettings) -> dict[str, Any]:
    """The keys the Docker and the swarm providers share (Traefik's ``Shared`` and ``ClientConfig``), as
    the settings' fields; ``d`` holds the defaults."""
    tls = r.sub("tls")
    endpoint = r.text("endpoint", d.endpoint)
    if "://" not in endpoint:
        raise StaticConfigError(
            f"{r.path}.endpoint",
            f"expected a URL like 'unix:///var/run/docker.sock' or 'tcp://host:2376', got {endpoint!r}"
            f"{where(r.origin('endpoint'))}",
        )
    cert, key = tls.text("cert"), tls.text("key")
    if (cert is None) != (key is None):
        # Traefik's ClientTLS.CreateTLSConfig: "both TLS cert and key must be defined"
        missing, given = ("key", "cert") if key is None else ("cert", "key")
        raise StaticConfigError(
            f"{tls.path}.{missing}",
            f"required with {tls.path}.{given}: both TLS cert and key must be defined",
        )
    return {
        "endpoint": endpoint,
        "exposed_by_default": r.flag("exposedByDefault", d.exposed_by_default),
        "default_rule": r.text("defaultRule", d.default_rule),
        "network": r.text("network"),
        "watch": r.flag("watch", d.watch),
        "constraints": r.text("constraints"),
        "allow_empty_services": r.flag("allowEmptyServices", d.allow_empty_services),
        "tls_ca": tls.text("ca"),
        "tls_cert": cert,
        "tls_key": key,
        "tls_insecure_skip_verify": tls.flag("insecureSkipVerify", False),
    }


def _docker_provider(tree: Any) -> DockerProviderSettings | None:
    if not isinstance(tree, dict):
        return None
    r = Reader(tree, "providers.docker")
    d = DockerProviderSettings()
    return DockerProviderSettings(
        **_engine_keys(r, d),
        use_bind_port_ip=r.flag("useBindPortIP", d.use_bind_port_ip),
        explicit=True,
    )


def _swarm_provider(tree: Any) -> SwarmSettings | None:
    """``providers.swarm`` (``--providers.swarm=true`` gives an empty section: Traefik's defaults)."""
    if tree is None or tree is OFF:
        return None
    r = Reader(tree if isinstance(tree, dict) else {}, "providers.swarm")
    d = SwarmSettings()
    keys = _engine_keys(r, d)
    refresh = r.duration("refreshSeconds", d.refresh_seconds)
    if refresh <= 0:
        raise StaticConfigError("providers.swarm.refreshSeconds", "must be more than 0 (Traefik: 15s)")
    return SwarmSettings(**keys, refresh_seconds=refresh)


def _log(tree: Any) -> LogSettings:
    r = Reader(tree, "log")
    r.flag("noColor", True)  # checked only: dockroute's log never has colours
    return LogSettings(
        level=r.text("level", "INFO", choices=tuple(PY_LEVELS)),
        format=r.text("format", "common", choices=("common", "json")),
        file_path=r.text("filePath"),
    )


# -- what is not acted on -----------------------------------------------------------------------------


def not_acted_on(node: Any, tree: Any, path: str = "", spath: str = "") -> Iterator[str]:
    """Key paths set in ``tree`` that dockroute accepts and does not act on (``IGNORED`` sections,
    ``ANY`` keys, typed keys listed in ``WARNED``), in schema order: the app names each in a warning at
    start. ``spath``: the path in schema spelling (``*`` for a user-named entry)."""
    if not isinstance(tree, dict):
        return
    if isinstance(node, Named):
        for name, sub in tree.items():
            if sub is not OFF:
                yield from not_acted_on(node.child, sub, join(path, name), join(spath, "*"))
        return
    if isinstance(node, ListOf):
        for index, sub in tree.items():
            if sub is not OFF:
                yield from not_acted_on(node.child, sub, f"{path}[{index}]", f"{spath}[*]")
        return
    if not isinstance(node, dict):
        return
    for key, child in node.items():
        found = find_key(tree, key)
        if found is None or tree[found] is OFF:
            continue
        if (isinstance(child, str) and child in (IGNORED, ANY)) or join(spath, key) in WARNED:
            yield join(path, key)
        else:
            yield from not_acted_on(child, tree[found], join(path, key), join(spath, key))
