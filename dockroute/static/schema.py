"""The table of Traefik static keys dockroute knows, and what kind of value each takes.

A section is a dict canonical name -> node; a leaf is one of the kind names below; ``Named`` is a map of
user-named entries (``entryPoints.<name>``, ``certificatesResolvers.<name>``); ``ListOf`` is a list of
sections (``entryPoints.<ep>.http.tls.domains``). The canonical (camelCase) spelling here is the one every
key path in a message uses, whatever case the user typed. Every section is checked key by key: a key not
in this table stops the start with a "did you mean".

Traefik keys that dockroute accepts but does not act on yet are ``ANY`` (inside a section dockroute owns)
or ``IGNORED`` (a whole section): a Traefik file must load unchanged, and each such key that is set is
reported by name at start (``StaticConfig.ignored``), never dropped silently. Keys whose being ignored
would change what the user gets are typed here and refused by name when set (entry-point
``middlewares``, ``serversTransport.spiffe``; see :mod:`.build` and :mod:`.resolvers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.paths import ENCODED_ESCAPES

__all__ = [
    "ADDR",
    "ANY",
    "BOOL",
    "ENCODED_ALLOWED_BY_DEFAULT",
    "ENCODED_CHARACTERS",
    "DUR",
    "IGNORED",
    "INT",
    "LIST",
    "ListOf",
    "NAMED_TRANSPORT_ONLY",
    "OTHER_METRICS",
    "OTHER_PROVIDERS",
    "RAW_ITEM",
    "SCHEMA",
    "STR",
    "WARNED",
    "Named",
]

STR, BOOL, INT, DUR, LIST, ADDR = "str", "bool", "int", "duration", "list", "address"
IGNORED = "<ignored>"  # a whole section not supported yet
RAW_ITEM = "<raw item>"  # a key inside an ignored section or below an ANY key, set by a flag or variable
ANY = "<any>"  # a Traefik key inside an owned section that dockroute accepts and does not act on yet


@dataclass(frozen=True)
class Named:
    """A map of user-named entries, each shaped like ``child``."""

    child: dict[str, Any] | str  # a section, or a leaf kind for a plain map (``headerLabels``)


@dataclass(frozen=True)
class ListOf:
    """A list of sections, each shaped like ``child`` (``http.tls.domains``): a YAML/TOML list of mappings,
    or items given one by one with an index (``--….domains[0].main=…``, ``…_DOMAINS_0_MAIN=…``). In the
    merged tree it is a dict index (as text) -> section, so a flag for one item's key keeps the file's
    other keys of that item, like everywhere else."""

    child: dict[str, Any]


# Traefik's ``types.Domain``: the names of one certificate.
_DOMAIN: dict[str, Any] = {"main": STR, "sans": LIST}

# ``entryPoints.<ep>.http.encodedCharacters`` (Traefik v3.6+): the encoded characters a request path may
# hold. False by default in dockroute for / \ NUL ; # (Traefik 3.6.4's default; Traefik 3.6.7 made every one
# true again); % and ? are allowed by default, as in Traefik 3.7 (ENCODED_ALLOWED_BY_DEFAULT).
ENCODED_CHARACTERS = tuple(ENCODED_ESCAPES)  # the keys of router.paths' one table (key → escape refused)
ENCODED_ALLOWED_BY_DEFAULT = frozenset({"allowEncodedPercent", "allowEncodedQuestionMark"})

_ENTRY_POINT: dict[str, Any] = {
    "address": ADDR,
    "http": {
        "redirections": {"entryPoint": {"to": STR, "scheme": STR, "permanent": BOOL, "priority": INT}},
        # The TLS every router on this entry point gets when it has none of its own; a switch section
        # (a bare flag or ``tls: {}`` turns it on with no resolver: the default certificate).
        "tls": {"certResolver": STR, "options": STR, "domains": ListOf(_DOMAIN)},
        "middlewares": LIST,  # run before every router's own there (router.chains)
        "encodeQuerySemicolons": ANY,
        "sanitizePath": BOOL,  # acted on: false keeps dot segments and duplicate slashes (router.paths)
        "maxHeaderBytes": INT,  # acted on: the request head's size limit (router.connection)
        # Acted on: the encoded characters let through in a request path (router.proxy refuses the others).
        "encodedCharacters": dict.fromkeys(ENCODED_CHARACTERS, BOOL),
        # Acted on: keep, delete or reject request headers with "_" in their names (router.headers).
        "underscoreHeadersStrategy": STR,
    },
    "asDefault": BOOL,
    # Acted on: ACME validations may pass dockroute's own answers, HTTP-01 to a user's router
    # (router.compile) and TLS-ALPN-01 (acme-tls/1) to TLS TCP routers (router.tcp.table)
    "allowACMEByPass": BOOL,
    # Acted on: a PROXY protocol header (v1 or v2) is read first on each connection (router.proxy_protocol)
    "proxyProtocol": {"trustedIPs": LIST, "insecure": BOOL},
    "forwardedHeaders": {
        "trustedIPs": LIST,
        "insecure": BOOL,
        "connection": ANY,
        # Traefik v3 switches dockroute does not act on (it appends to X-Forwarded-For, adds no
        # X-Forwarded-Scheme): reported (WARNED)
        **dict.fromkeys(("notAppendXForwardedFor", "addXForwardedSchemeHeaders"), BOOL),
    },
    "transport": {
        "respondingTimeouts": {"readTimeout": DUR, "writeTimeout": DUR, "idleTimeout": DUR},
        "lifeCycle": {"graceTimeOut": DUR, "requestAcceptGraceTimeout": DUR},
        **dict.fromkeys(("keepAliveMaxRequests", "keepAliveMaxTime"), ANY),
    },
    **dict.fromkeys(
        (
            "http2",
            "http3",
            "reusePort",
        ),
        ANY,
    ),
    # Acted on by UDP entry points (address ending in /udp): the idle time after which a session is forgotten.
    "udp": {"timeout": DUR},
    # Acted on per entry point: requests there are left out of the access log / metrics when false.
    # dockroute has no tracing: ``tracing`` and ``traceVerbosity`` are reported (WARNED).
    "observability": {"accessLogs": BOOL, "metrics": BOOL, "tracing": BOOL, "traceVerbosity": STR},
}

OTHER_PROVIDERS = (
    "kubernetesIngressNGINX",
    "kubernetesCRD",
    "kubernetesGateway",
    "rest",
    "http",
    "consul",
    "consulCatalog",
    "nomad",
    "ecs",
    "etcd",
    "zooKeeper",
    "redis",
    "plugin",
    "marathon",
    "rancher",
)

_IGNORED_SECTIONS = (
    "global",
    "tracing",
    "hostResolver",
    "experimental",
    "core",
    "spiffe",
)

# Traefik's static serversTransport has exactly these keys. SPIFFE is typed so that its keys are checked,
# and then refused as a whole when set: ignoring it would skip the identity check the user asked for.
_SERVERS_TRANSPORT: dict[str, Any] = {
    "forwardingTimeouts": {"dialTimeout": DUR, "responseHeaderTimeout": DUR, "idleConnTimeout": DUR},
    "maxIdleConnsPerHost": INT,
    "insecureSkipVerify": BOOL,
    "rootCAs": LIST,
    "spiffe": {"ids": LIST, "trustDomain": STR},
}

# Keys a named ``http.serversTransports.<name>`` has and the static default transport does not (Traefik
# refuses them there too): the "unknown key" message says where they belong.
NAMED_TRANSPORT_ONLY: dict[str, tuple[str, ...]] = {
    "serversTransport": (
        "serverName",
        "certificates",
        "peerCertURI",
        "disableHTTP2",
        "cipherSuites",
        "minVersion",
        "maxVersion",
    ),
    "serversTransport.forwardingTimeouts": ("readIdleTimeout", "pingTimeout"),
}

# Traefik v3's ACME resolver configuration, every key. What dockroute does with each is decided in
# :mod:`dockroute.static.resolvers`: acted on, refused by name, or accepted with a warning naming it.
_ACME: dict[str, Any] = {
    "email": STR,
    "caServer": STR,
    "preferredChain": STR,
    "profile": STR,
    "emailAddresses": LIST,
    "disableCommonName": BOOL,
    "storage": STR,
    "keyType": STR,
    "eab": {"kid": STR, "hmacEncoded": STR},
    "certificatesDuration": INT,
    "clientTimeout": DUR,
    "clientResponseHeaderTimeout": DUR,
    "certificateTimeout": DUR,
    "caCertificates": LIST,
    "caSystemCertPool": BOOL,
    "caServerName": STR,
    "dnsChallenge": {
        "provider": STR,
        "resolvers": LIST,
        "propagation": {
            "disableChecks": BOOL,
            "disableANSChecks": BOOL,
            "requireAllRNS": BOOL,
            "delayBeforeChecks": DUR,
        },
        "delayBeforeCheck": DUR,
        "disablePropagationCheck": BOOL,
    },
    "httpChallenge": {"entryPoint": STR, "delay": DUR},
    "tlsChallenge": {"delay": DUR},
}

# dockroute's own CA (not in Traefik): a root kept in ``storage`` that issues short-lived leaves.
_INTERNAL_CA: dict[str, Any] = {"storage": STR, "leafLifetime": DUR, "permittedDomains": LIST}

# A resolver is one of these; ``tailscale`` is Traefik's and is refused by name at start.
_RESOLVER: dict[str, Any] = {"acme": _ACME, "internalCA": _INTERNAL_CA, "tailscale": {}}

# ``api``, ``ping`` and ``metrics`` (Traefik v3), read in :mod:`.observability`. ``dashboardName`` (a title
# for Traefik's dashboard) is accepted and reported as not acted on; so are the metrics backends other
# than Prometheus: a Traefik file that sends to Datadog must still load, and the
# warning names the backend that receives nothing.
_API: dict[str, Any] = {
    "dashboard": BOOL,
    "insecure": BOOL,
    "debug": BOOL,
    "basePath": STR,
    "disableDashboardAd": BOOL,  # dockroute's dashboard has no ad: what it asks is always true
    "dashboardName": ANY,
}
_PING: dict[str, Any] = {"entryPoint": STR, "manualRouting": BOOL, "terminatingStatusCode": INT}
_PROMETHEUS: dict[str, Any] = {
    "buckets": LIST,
    "addEntryPointsLabels": BOOL,
    "addRoutersLabels": BOOL,
    "addServicesLabels": BOOL,
    "entryPoint": STR,
    "manualRouting": BOOL,
    "headerLabels": Named(STR),  # label -> request header
}
OTHER_METRICS = ("datadog", "statsD", "influxDB2", "otlp")
_METRICS: dict[str, Any] = {
    "prometheus": _PROMETHEUS,
    "addInternals": BOOL,  # count requests to internal services (ping, api) too
    **dict.fromkeys(OTHER_METRICS, IGNORED),
}

# Typed keys (read as their kind, a bare flag included) that dockroute does not act on: reported by name at
# start like ``ANY`` keys. Key paths in schema spelling, ``*`` for a user-named entry.
WARNED: frozenset[str] = frozenset(
    {
        "accessLog.dualOutput",
        "providers.swarm.useBindPortIP",
        "entryPoints.*.forwardedHeaders.notAppendXForwardedFor",
        "entryPoints.*.forwardedHeaders.addXForwardedSchemeHeaders",
        "entryPoints.*.observability.tracing",
        "entryPoints.*.observability.traceVerbosity",
    }
)

# Traefik v3's providers.kubernetesIngress, every key: acted on by discover.kubernetes, except
# reportNodeInternalIPs, refused by name when true (dockroute.static.kubernetes).
_KUBERNETES_INGRESS: dict[str, Any] = {
    "endpoint": STR,
    "token": STR,
    "certAuthFilePath": STR,
    "namespaces": LIST,
    "labelSelector": STR,
    "ingressClass": STR,
    "ingressEndpoint": {"ip": STR, "hostname": STR, "publishedService": STR},
    "reportNodeInternalIPs": BOOL,
    "throttleDuration": DUR,
    "allowEmptyServices": BOOL,
    "allowExternalNameServices": BOOL,
    "crossProviderNamespaces": LIST,
    "disableIngressClassLookup": BOOL,
    "disableClusterScopeResources": BOOL,
    "nativeLBByDefault": BOOL,
    "strictPrefixMatching": BOOL,
}

# Traefik's Docker provider's keys (its Shared and ClientConfig options), shared by its swarm provider.
_ENGINE_PROVIDER: dict[str, Any] = {
    "endpoint": STR,
    "exposedByDefault": BOOL,
    "defaultRule": STR,
    "network": STR,
    "useBindPortIP": BOOL,
    "watch": BOOL,
    "constraints": STR,
    "allowEmptyServices": BOOL,
    "tls": {"ca": STR, "cert": STR, "key": STR, "insecureSkipVerify": BOOL},
    **dict.fromkeys(("httpClientTimeout", "username", "password"), ANY),
}

SCHEMA: dict[str, Any] = {
    "entryPoints": Named(_ENTRY_POINT),
    "providers": {
        "providersThrottleDuration": DUR,
        "kubernetesIngress": _KUBERNETES_INGRESS,
        "file": {"filename": STR, "directory": STR, "watch": BOOL},
        "docker": _ENGINE_PROVIDER,
        # Traefik's swarm provider: the Docker provider's keys plus refreshSeconds. useBindPortIP is
        # reported (WARNED): a swarm task has no port bindings, Traefik falls back to the task's address.
        "swarm": {**_ENGINE_PROVIDER, "refreshSeconds": DUR},
        **{p: IGNORED for p in OTHER_PROVIDERS},
    },
    "serversTransport": _SERVERS_TRANSPORT,
    "log": {
        "level": STR,
        "format": STR,
        "filePath": STR,
        "noColor": BOOL,  # dockroute never colours its log: what noColor asks is always true
        **dict.fromkeys(("maxSize", "maxAge", "maxBackups", "compress"), ANY),
        "otlp": IGNORED,  # OpenTelemetry export of the log: not supported, reported by name
    },
    "accessLog": {
        "filePath": STR,
        "format": STR,
        "filters": {"statusCodes": LIST, "retryAttempts": BOOL, "minDuration": DUR},
        "fields": {
            "defaultMode": STR,
            "names": Named(STR),  # field name -> keep | drop
            "headers": {"defaultMode": STR, "names": Named(STR)},  # header -> keep | drop | redact
            "queryParameters": {"defaultMode": STR},
        },
        "bufferingSize": INT,
        "addInternals": BOOL,
        "dualOutput": BOOL,  # with otlp only (OpenTelemetry export): not supported, reported (WARNED)
        "otlp": IGNORED,
    },
    "certificatesResolvers": Named(_RESOLVER),
    "api": _API,
    "ping": _PING,
    "metrics": _METRICS,
    **{s: IGNORED for s in _IGNORED_SECTIONS},
    # The default TCP transport (dockroute.static.tcp): every key Traefik has; tls.spiffe is refused there.
    "tcpServersTransport": {
        "dialKeepAlive": DUR,
        "dialTimeout": DUR,
        "terminationDelay": DUR,
        "tls": {"insecureSkipVerify": BOOL, "rootCAs": LIST, "spiffe": {"ids": LIST, "trustDomain": STR}},
    },
}
