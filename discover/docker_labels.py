"""Docker containers and their labels → the dynamic-configuration model, with Traefik's Docker semantics.

Pure functions over :class:`~discover.docker_model.ContainerInfo`; the engine-facing code is in
``docker_provider.py``. The steps follow Traefik's ``pkg/provider/docker`` (``config.go``):

1. filter: ``enable`` label or ``exposedByDefault``, the ``constraints`` expression, running state, health;
2. labels ``traefik.*`` and ``dockroute.*`` (``dockroute.`` wins on the same key) → the nested dict of a
   dynamic configuration file (keys case-insensitive, ``[n]`` list indexes, ``loadbalancer.server.*`` → the
   one server), then the defaults: one service of the implicit name, its server from the container's address
   and port, one router with the default rule, routers without ``service`` bound to the only service;
3. that dict goes through :func:`discover.parse.parse_dynamic_with_warnings`: the same parser as a file, so
   labels and files land on one model;
4. containers (sorted by name) merge: equal definitions of a router/middleware merge, a service's servers
   are appended; a conflicting definition is reported in both records and the first one is kept.

Every container seen gets a :class:`~discover.docker_model.ContainerRecord` saying whether it is routed and
why not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from discover.constraints import parse_constraints
from discover.docker_model import ContainerInfo, ContainerRecord, DockerSettings
from discover.model import DynamicConfig, Middleware, Router, Service, frozen_map
from discover.parse import MIDDLEWARE_TYPES, ConfigError, check_references, parse_dynamic_with_warnings

__all__ = [
    "MIDDLEWARE_OPTIONS",
    "PREFIXES",
    "RuleTemplate",
    "TemplateError",
    "build_docker_config",
    "implicit_name",
    "normalize",
]

# Later prefixes win when both give the same key.
PREFIXES: tuple[str, ...] = ("traefik.", "dockroute.")

_COMPOSE_PROJECT = "com.docker.compose.project"
_COMPOSE_SERVICE = "com.docker.compose.service"

Key = str | int


# -- names ----------------------------------------------------------------------------------------------


def normalize(name: str) -> str:
    """Traefik's ``provider.Normalize``: every run of characters that are not letters or digits → ``-``,
    leading and trailing ones dropped (``web_blog`` → ``web-blog``)."""
    return "-".join(p for p in re.split(r"[^\w]|_", name) if p)


def implicit_name(c: ContainerInfo) -> str:
    """Traefik's ``getServiceName``: ``normalize(service + "_" + project)`` for a compose container (both
    labels non-empty), else ``normalize(container name)``."""
    project, service = c.labels.get(_COMPOSE_PROJECT), c.labels.get(_COMPOSE_SERVICE)
    if project and service:
        return normalize(f"{service}_{project}")
    return normalize(c.name)


# -- the default-rule template ----------------------------------------------------------------------------


class TemplateError(ValueError):
    """A default rule that uses more of Go's template language than is implemented here."""


_SUPPORTED_FORMS = (
    'supported: {{ .Name }}, {{ .ContainerName }}, {{ normalize .Name }}, {{ index .Labels "key" }}, '
    '{{ normalize (index .Labels "key") }} and pipelines of these'
)

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<raw>`[^`]*`)
    | (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<punct>[()|])
    )""",
    re.VERBOSE,
)

_FIELDS = ("Name", "ContainerName", "Labels")
_FUNCS: dict[str, int] = {"normalize": 1, "index": 2}


def _go_string(lit: str) -> str:
    if lit.startswith("`"):
        return lit[1:-1]
    body = lit[1:-1]
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}
    while i < len(body):
        if body[i] == "\\":
            e = body[i + 1]
            if e not in simple:
                raise TemplateError(f"unsupported escape \\{e} in {lit}")
            out.append(simple[e])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


# An expression: ("field", name) | ("str", value) | ("call", func, [args])
Expr = tuple[Any, ...]


class _TemplateParser:
    def __init__(self, action: str) -> None:
        self.action = action
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(action):
            if not action[pos:].strip():
                break
            m = _TOKEN.match(action, pos)
            if m is None or m.end() == pos:
                raise TemplateError(f"unsupported template action {{{{{action}}}}}; {_SUPPORTED_FORMS}")
            kind = m.lastgroup or ""
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def fail(self) -> TemplateError:
        return TemplateError(f"unsupported template action {{{{{self.action}}}}}; {_SUPPORTED_FORMS}")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def pipeline(self) -> Expr:
        expr = self.command(None)
        while self.peek() == ("punct", "|"):
            self.i += 1
            expr = self.command(expr)
        return expr

    def command(self, piped: Expr | None) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.fail()
        if tok[0] == "ident":
            func = tok[1]
            if func not in _FUNCS:
                raise TemplateError(f"unsupported template function {func!r}; {_SUPPORTED_FORMS}")
            self.i += 1
            args = []
            while (t := self.peek()) is not None and t != ("punct", "|") and t != ("punct", ")"):
                args.append(self.operand())
            if piped is not None:
                args.append(piped)
            if len(args) != _FUNCS[func]:
                raise TemplateError(f"{func} takes {_FUNCS[func]} argument(s) in {{{{{self.action}}}}}")
            return ("call", func, args)
        if piped is not None:
            raise self.fail()
        return self.operand()

    def operand(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.fail()
        kind, text = tok
        self.i += 1
        if kind == "field":
            if text[1:] not in _FIELDS:
                raise TemplateError(f"unknown field {text} in {{{{{self.action}}}}}; {_SUPPORTED_FORMS}")
            return ("field", text[1:])
        if kind in ("raw", "str"):
            return ("str", _go_string(text))
        if tok == ("punct", "("):
            inner = self.pipeline()
            if self.peek() != ("punct", ")"):
                raise self.fail()
            self.i += 1
            return inner
        raise self.fail()


class RuleTemplate:
    """Traefik's ``defaultRule``: literal text with ``{{ ... }}`` actions over ``.Name`` (the implicit
    name), ``.ContainerName`` and ``.Labels``, with the functions ``normalize`` and ``index``.

    Go's ``{{-`` / ``-}}`` whitespace trimming is honoured. Anything else raises :class:`TemplateError`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[str | Expr] = []
        pos = 0
        while True:
            start = source.find("{{", pos)
            if start < 0:
                self._text(source[pos:])
                break
            end = source.find("}}", start + 2)
            if end < 0:
                raise TemplateError(f"unclosed action in template {source!r}")
            text = source[pos:start]
            action = source[start + 2 : end]
            if action.startswith("- "):
                text = text.rstrip()
                action = action[2:]
            trim_after = action.endswith(" -")
            if trim_after:
                action = action[:-2]
            self._text(text)
            if action.strip().startswith("/*"):
                pass  # a comment
            else:
                parser = _TemplateParser(action)
                expr = parser.pipeline()
                if parser.peek() is not None:
                    raise parser.fail()
                self.parts.append(expr)
            pos = end + 2
            if trim_after:
                while pos < len(source) and source[pos].isspace():
                    pos += 1

    def _text(self, text: str) -> None:
        if text:
            self.parts.append(text)

    def render(self, name: str, container_name: str, labels: Mapping[str, str]) -> str:
        env = {"Name": name, "ContainerName": container_name, "Labels": labels}
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self._eval(part, env)
            if not isinstance(value, str):
                raise TemplateError(f'template {self.source!r} prints a map (use index .Labels "key")')
            out.append(value)
        return "".join(out)

    def _eval(self, expr: Expr, env: Mapping[str, Any]) -> Any:
        if expr[0] == "field":
            return env[expr[1]]
        if expr[0] == "str":
            return expr[1]
        _, func, args = expr
        values = [self._eval(a, env) for a in args]
        if func == "normalize":
            if not isinstance(values[0], str):
                raise TemplateError("normalize takes a string")
            return normalize(values[0])
        # index
        if not isinstance(values[0], Mapping) or not isinstance(values[1], str):
            raise TemplateError("index takes a map (.Labels) and a string key")
        return values[0].get(values[1], "")


# -- middleware options (Traefik's pkg/config/dynamic/middlewares.go, label-visible fields) -----------------

_S, _B, _I, _D, _L, _M, _ANY = "string", "bool", "int", "duration", "list", "map", "any"
Schema = Mapping[str, Any]

_CLIENT_TLS: Schema = {"ca": _S, "cert": _S, "key": _S, "insecureSkipVerify": _B, "caOptional": _B}
_IP_STRATEGY: Schema = {"depth": _I, "excludedIPs": _L, "ipv6Subnet": _I}
_SOURCE_CRITERION: Schema = {"ipStrategy": _IP_STRATEGY, "requestHeaderName": _S, "requestHost": _B}
_DN_ISSUER: Schema = {
    k: _B
    for k in (
        "country",
        "province",
        "locality",
        "organization",
        "commonName",
        "serialNumber",
        "domainComponent",
    )
}
_DN_SUBJECT: Schema = {**_DN_ISSUER, "organizationalUnit": _B}

MIDDLEWARE_OPTIONS: Mapping[str, Schema | str] = {
    "addPrefix": {"prefix": _S},
    "basicAuth": {"users": _L, "usersFile": _S, "realm": _S, "removeHeader": _B, "headerField": _S},
    "buffering": {
        "maxRequestBodyBytes": _I,
        "memRequestBodyBytes": _I,
        "maxResponseBodyBytes": _I,
        "memResponseBodyBytes": _I,
        "retryExpression": _S,
    },
    "chain": {"middlewares": _L},
    "circuitBreaker": {
        "expression": _S,
        "checkPeriod": _D,
        "fallbackDuration": _D,
        "recoveryDuration": _D,
        "responseCode": _I,
    },
    "compress": {
        "excludedContentTypes": _L,
        "includedContentTypes": _L,
        "minResponseBodyBytes": _I,
        "encodings": _L,
        "defaultEncoding": _S,
    },
    "contentType": {"autoDetect": _B},
    "digestAuth": {"users": _L, "usersFile": _S, "removeHeader": _B, "realm": _S, "headerField": _S},
    "errors": {"status": _L, "statusRewrites": _M, "service": _S, "query": _S, "errorRequestHeaders": _L},
    "forwardAuth": {
        "address": _S,
        "tls": _CLIENT_TLS,
        "trustForwardHeader": _B,
        "authResponseHeaders": _L,
        "authResponseHeadersRegex": _S,
        "authRequestHeaders": _L,
        "maxResponseBodySize": _I,
        "addAuthCookiesToResponse": _L,
        "headerField": _S,
        "forwardBody": _B,
        "maxBodySize": _I,
        "preserveLocationHeader": _B,
        "preserveRequestMethod": _B,
        "authSigninURL": _S,
    },
    "grpcWeb": {"allowOrigins": _L},
    "headers": {
        "customRequestHeaders": _M,
        "customResponseHeaders": _M,
        "accessControlAllowCredentials": _B,
        "accessControlAllowHeaders": _L,
        "accessControlAllowMethods": _L,
        "accessControlAllowOriginList": _L,
        "accessControlAllowOriginListRegex": _L,
        "accessControlExposeHeaders": _L,
        "accessControlMaxAge": _I,
        "addVaryHeader": _B,
        "allowedHosts": _L,
        "hostsProxyHeaders": _L,
        "sslProxyHeaders": _M,
        "stsSeconds": _I,
        "stsIncludeSubdomains": _B,
        "stsPreload": _B,
        "forceSTSHeader": _B,
        "frameDeny": _B,
        "customFrameOptionsValue": _S,
        "contentTypeNosniff": _B,
        "browserXssFilter": _B,
        "customBrowserXSSValue": _S,
        "contentSecurityPolicy": _S,
        "contentSecurityPolicyReportOnly": _S,
        "publicKey": _S,
        "referrerPolicy": _S,
        "permissionsPolicy": _S,
        "isDevelopment": _B,
        "featurePolicy": _S,
        "sslRedirect": _B,
        "sslTemporaryRedirect": _B,
        "sslHost": _S,
        "sslForceHost": _B,
    },
    "inFlightReq": {"amount": _I, "sourceCriterion": _SOURCE_CRITERION},
    "ipAllowList": {"sourceRange": _L, "ipStrategy": _IP_STRATEGY, "rejectStatusCode": _I},
    "ipWhiteList": {"sourceRange": _L, "ipStrategy": _IP_STRATEGY},
    "passTLSClientCert": {
        "pem": _B,
        "info": {
            "notAfter": _B,
            "notBefore": _B,
            "sans": _B,
            "serialNumber": _B,
            "subject": _DN_SUBJECT,
            "issuer": _DN_ISSUER,
        },
    },
    "plugin": _ANY,
    "rateLimit": {
        "average": _I,
        "period": _D,
        "burst": _I,
        "sourceCriterion": _SOURCE_CRITERION,
        "redis": {
            "endpoints": _L,
            "tls": _CLIENT_TLS,
            "username": _S,
            "password": _S,
            "db": _I,
            "poolSize": _I,
            "minIdleConns": _I,
            "maxActiveConns": _I,
            "readTimeout": _D,
            "writeTimeout": _D,
            "dialTimeout": _D,
        },
    },
    "redirectRegex": {"regex": _S, "replacement": _S, "permanent": _B},
    "redirectScheme": {"scheme": _S, "port": _S, "permanent": _B},
    "replacePath": {"path": _S},
    "replacePathRegex": {"regex": _S, "replacement": _S},
    "retry": {
        "attempts": _I,
        "timeout": _D,
        "initialInterval": _D,
        "maxRequestBodyBytes": _I,
        "status": _L,
        "disableRetryOnNetworkError": _B,
        "retryNonIdempotentMethod": _B,
    },
    "stripPrefix": {"prefixes": _L, "forceSlash": _B},
    "stripPrefixRegex": {"regex": _L},
}

_INT = re.compile(r"[+-]?\d+")


def _options(value: Any, schema: Schema | str, keys: tuple[Key, ...], path: str) -> Any:
    """Label strings → typed middleware options, canonical names; unknown options raise ConfigError."""
    if schema == _ANY:
        return value
    if isinstance(schema, Mapping):
        if isinstance(value, str):
            if value.strip().lower() == "true":  # `compress=true`, `ipstrategy=true`: present and empty
                return {}
            raise ConfigError(path, f"expected sub-options, got {value!r}", keys=keys)
        if not isinstance(value, Mapping):
            raise ConfigError(path, "expected sub-options", keys=keys)
        by_lower = {k.lower(): k for k in schema}
        out: dict[str, Any] = {}
        for raw, v in value.items():
            canonical = by_lower.get(str(raw).lower())
            if canonical is None:
                raise ConfigError(
                    f"{path}.{raw}",
                    f"unknown option {raw!r}; expected one of {', '.join(schema)}",
                    keys=(*keys, raw),
                )
            out[canonical] = _options(v, schema[canonical], (*keys, raw), f"{path}.{canonical}")
        return out
    if schema == _M:
        if not isinstance(value, Mapping) or any(not isinstance(v, str) for v in value.values()):
            raise ConfigError(path, "expected <name>=<value> sub-keys", keys=keys)
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(path, "expected a value, got sub-keys", keys=keys)
    if schema == _L:
        return [p.strip() for p in value.split(",") if p.strip()]
    if schema == _B:
        if value.strip().lower() not in ("true", "false"):
            raise ConfigError(path, f"expected true or false, got {value!r}", keys=keys)
        return value.strip().lower() == "true"
    if schema == _I:
        if not _INT.fullmatch(value.strip()):
            raise ConfigError(path, f"expected an integer, got {value!r}", keys=keys)
        return int(value.strip())
    return value  # string, duration (parse_duration reads Go's format)


# -- labels → nested dict ---------------------------------------------------------------------------------

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def _split(rest: str) -> list[Key]:
    """``tls.domains[0].main`` → ``["tls", "domains", 0, "main"]``."""
    out: list[Key] = []
    for part in rest.split("."):
        m = _INDEX.match(part)
        if m and m.group(1):
            out.extend((m.group(1), int(m.group(2))))
        else:
            out.append(part)
    return out


def _low(keys: Sequence[Key]) -> tuple[Key, ...]:
    return tuple(k.lower() if isinstance(k, str) else k for k in keys)


@dataclass
class _Node:
    value: str | None = None
    label: str | None = None
    children: dict[Key, tuple[Key, _Node]] = field(default_factory=dict)  # lowered key → (raw key, node)


def _insert(root: _Node, keys: Sequence[Key], value: str, label: str) -> None:
    node = root
    for k in keys:
        lk = k.lower() if isinstance(k, str) else k
        if lk not in node.children:
            node.children[lk] = (k, _Node())
        node = node.children[lk][1]
    node.value, node.label = value, label


def _to_data(node: _Node, keys: tuple[Key, ...], path: str) -> Any:
    if not node.children:
        return node.value
    if node.value is not None and node.value.strip().lower() != "true":
        raise ConfigError(path, f"has both a value ({node.value!r}) and sub-keys", keys=keys)
    items = list(node.children.values())
    ints = [k for k, _ in items if isinstance(k, int)]
    if ints and len(ints) != len(items):
        raise ConfigError(path, "mixes list indexes [n] and names", keys=keys)
    if ints:
        return [_to_data(n, (*keys, k), f"{path}[{k}]") for k, n in sorted(items, key=lambda item: item[0])]
    return {k: _to_data(n, (*keys, k), f"{path}.{k}") for k, n in items}


@dataclass
class _Labels:
    """One container's labels under the prefixes, sorted out."""

    enable: tuple[str, str] | None = None  # (value, label)
    network: tuple[str, str] | None = None
    http: _Node = field(default_factory=_Node)
    origins: dict[tuple[Key, ...], str] = field(default_factory=dict)  # lowered path under http → label
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    tcp_udp: bool = False  # has traefik.tcp.* or traefik.udp.* labels


def _collect(labels: Mapping[str, str]) -> _Labels:
    entries: dict[tuple[Key, ...], tuple[list[Key], str, str]] = {}
    for prefix in PREFIXES:
        for label in sorted(labels):
            if not label.lower().startswith(prefix):
                continue
            keys = _split(label[len(prefix) :])
            entries[_low(keys)] = (keys, labels[label], label)
    out = _Labels()
    for low, (keys, value, label) in sorted(entries.items(), key=lambda e: e[1][2]):
        head = low[0]
        if low == ("enable",):
            out.enable = (value, label)
        elif head == "docker":
            if low == ("docker", "network"):
                out.network = (value, label)
            elif low in (("docker", "allownonrunning"), ("docker", "lbswarm")):
                out.warnings.append(f"label {label}: not supported; ignored")
            elif out.error is None:
                out.error = f"label {label}: unknown key; expected docker.network"
        elif head == "http":
            if len(keys) < 2:
                out.error = (
                    out.error or f"label {label}: expected http.routers, http.services or http.middlewares"
                )
                continue
            _insert(out.http, keys[1:], value, label)
            out.origins[low[1:]] = label
        elif head in ("tcp", "udp"):
            out.tcp_udp = True
            note = f"{head.upper()} routing is not supported; the {head}.* labels are ignored"
            if note not in out.warnings:
                out.warnings.append(note)
        elif head == "tls":
            note = "tls.* labels (TLS stores) are not supported; ignored"
            if note not in out.warnings:
                out.warnings.append(note)
        else:
            out.warnings.append(f"label {label}: unknown key; ignored")
    return out


def _label_for(origins: Mapping[tuple[Key, ...], str], keys: Sequence[Key]) -> str | None:
    """The label behind a path (keys under ``http``): itself, else one below it, else one above it."""
    low = _low(keys)
    if low in origins:
        return origins[low]
    below = sorted(lbl for path, lbl in origins.items() if path[: len(low)] == low)
    if below:
        return below[0]
    for n in range(len(low) - 1, 0, -1):
        if low[:n] in origins:
            return origins[low[:n]]
    return None


# -- per container ----------------------------------------------------------------------------------------


class _LeftOut(Exception):
    """The container contributes nothing; the message is the record's reason."""


def _ci(d: Mapping[Key, Any], name: str) -> Key | None:
    """The key of ``d`` equal to ``name`` ignoring case."""
    low = name.lower()
    for k in d:
        if isinstance(k, str) and k.lower() == low:
            return k
    return None


def _map_at(
    d: dict[Key, Any], name: str, keys: tuple[Key, ...], path: str
) -> tuple[Key, dict[Key, Any]] | None:
    k = _ci(d, name)
    if k is None:
        return None
    v = d[k]
    if not isinstance(v, dict):
        raise ConfigError(f"{path}.{name}", f"expected sub-keys, got {v!r}", keys=(*keys, k))
    return k, v


_ENABLE_TRUE = {"1", "t", "true"}
_ENABLE_FALSE = {"0", "f", "false"}


def _enabled(lab: _Labels, settings: DockerSettings) -> bool:
    if lab.enable is None:
        return settings.exposed_by_default
    value, label = lab.enable
    v = value.strip().lower()
    if v in _ENABLE_TRUE:
        return True
    if v in _ENABLE_FALSE:
        return False
    raise _LeftOut(f"label {label}: expected true or false, got {value!r}")


def _find_container(containers: Sequence[ContainerInfo], ref: str) -> ContainerInfo | None:
    for c in containers:
        if c.name == ref.lstrip("/"):
            return c
    for c in containers:
        if ref and c.id.startswith(ref):
            return c
    return None


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


@dataclass
class _Ctx:
    settings: DockerSettings
    own_networks: frozenset[str]
    containers: Sequence[ContainerInfo]


def _address(
    c: ContainerInfo, wanted: tuple[str, str] | None, ctx: _Ctx, warnings: list[str], depth: int = 0
) -> str:
    """The IP the container is reached at (Traefik's getIPAddress); ``wanted`` is (network, where from)."""
    mode = c.network_mode or ""
    if mode == "host":
        return ctx.settings.host_address
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        target = _find_container(ctx.containers, ref)
        if target is None or depth > 4:
            raise _LeftOut(f"network_mode {mode}: that container is not running; no IP address")
        # Traefik: the target's traefik.docker.network (its default: providers.docker.network), else ours.
        tlab = _collect(target.labels)
        if tlab.network is not None:
            twanted: tuple[str, str] | None = (tlab.network[0], f"label {tlab.network[1]} of {target.name}")
        elif ctx.settings.network:
            twanted = (ctx.settings.network, "providers.docker.network")
        else:
            twanted = wanted
        return _address(target, twanted, ctx, warnings, depth + 1)
    nets = {k: v for k, v in c.networks.items() if v}
    if not nets:
        raise _LeftOut(f"no IP address: the container is on no network (network_mode {mode or 'none'})")
    if wanted is not None:
        name, source = wanted
        if name in nets:
            return nets[name]
        hint = ""
        if c.compose_project and not name.startswith(c.compose_project + "_"):
            hint = f" (missing the compose project prefix: {c.compose_project}_{name}?)"
        warnings.append(
            f"network {name!r} ({source}) is not one of the container's networks "
            f"({', '.join(sorted(nets))}){hint}; choosing another"
        )
    if len(nets) == 1:
        return next(iter(nets.values()))
    shared = sorted(n for n in nets if n in ctx.own_networks)
    if shared:
        return nets[shared[0]]
    first = sorted(nets)[0]
    warnings.append(
        f"several networks ({', '.join(sorted(nets))}) and none shared with dockroute; using {first!r} "
        "(set traefik.docker.network to choose)"
    )
    return nets[first]


def _default_port(c: ContainerInfo, service: str, warnings: list[str]) -> int:
    tcp = sorted({p.port for p in c.ports if p.protocol == "tcp"})
    if not tcp:
        raise _LeftOut(
            f"service {service}: no exposed TCP port; "
            f"set traefik.http.services.{service}.loadbalancer.server.port"
        )
    if len(tcp) > 1:
        note = (
            f"several exposed ports ({', '.join(map(str, tcp))}); "
            f"using the lowest, {tcp[0]} (Traefik's rule); "
            f"set traefik.http.services.{service}.loadbalancer.server.port to choose"
        )
        if note not in warnings:
            warnings.append(note)
    return tcp[0]


@dataclass
class _Built:
    cfg: DynamicConfig
    warnings: list[str]
    reasons: list[str]
    has_servers: bool
    router_labels: dict[str, str]  # router name → where it came from, for messages


def _build_one(
    c: ContainerInfo,
    lab: _Labels,
    ctx: _Ctx,
    template: RuleTemplate | TemplateError,
    with_servers: bool,
) -> _Built:
    """One container's configuration. Raises _LeftOut or ConfigError (mapped to a label by the caller)."""
    warnings = list(lab.warnings)
    reasons: list[str] = []
    name = implicit_name(c)
    http = _to_data(lab.http, ("http",), "http") if lab.http.children else {}
    if not isinstance(http, dict):
        raise ConfigError("http", "expected sub-keys", keys=("http",))
    root: tuple[Key, ...] = ("http",)

    # services
    found = _map_at(http, "services", root, "http")
    if found is None or not found[1]:
        skey = found[0] if found else "services"
        http[skey] = {name: {"loadBalancer": {}}}
        services = http[skey]
    else:
        skey, services = found
    has_servers = False
    address: str | None = None
    for sname, svc in services.items():
        skeys = (*root, skey, sname)
        spath = f"http.services.{sname}"
        if not isinstance(svc, dict):
            raise ConfigError(spath, f"expected sub-keys, got {svc!r}", keys=skeys)
        lbf = _map_at(svc, "loadBalancer", skeys, spath)
        if lbf is None:
            raise _LeftOut(f"service {sname}: only loadbalancer services can be defined with labels")
        lbkey, lb = lbf
        lkeys, lpath = (*skeys, lbkey), f"{spath}.loadBalancer"
        for k in list(lb):
            low = str(k).lower()
            if low == "servers":
                raise ConfigError(f"{lpath}.servers", "use loadbalancer.server.* in labels", keys=(*lkeys, k))
            if low == "strategy":
                if str(lb[k]).lower() != "wrr":
                    warnings.append(
                        f"service {sname}: load-balancing strategy {lb[k]!r} not supported; wrr used"
                    )
                del lb[k]
            elif low == "responseforwarding":
                warnings.append(f"service {sname}: responseforwarding is not supported; ignored")
                del lb[k]
            elif low in ("healthcheck", "sticky") and isinstance(lb[k], str):
                _allow_empty(lb, k)
        stf = _ci(lb, "sticky")
        if stf is not None and isinstance(lb[stf], dict):
            ck = _ci(lb[stf], "cookie")
            if ck is not None and isinstance(lb[stf][ck], str):
                _allow_empty(lb[stf], ck)
        server: dict[Key, Any] = {}
        srv_key = _ci(lb, "server")
        if srv_key is not None:
            server = lb.pop(srv_key)
            if not isinstance(server, dict):
                raise ConfigError(
                    f"{lpath}.server", f"expected sub-keys, got {server!r}", keys=(*lkeys, srv_key)
                )
        srv_keys = (*lkeys, srv_key or "server")
        fields: dict[str, tuple[Key, Any]] = {}
        for k, v in server.items():
            low = str(k).lower()
            if low not in ("port", "scheme", "url", "weight"):
                raise ConfigError(
                    f"{lpath}.server.{k}",
                    f"unknown key {k!r}; expected one of port, scheme, url, weight",
                    keys=(*srv_keys, k),
                )
            fields[low] = (k, v)
        entry: dict[str, Any] = {}
        if "weight" in fields:
            entry["weight"] = fields["weight"][1]
        if "url" in fields:
            if "port" in fields or "scheme" in fields:
                raise ConfigError(
                    f"{lpath}.server.url",
                    "defining scheme or port is not allowed when url is defined",
                    keys=(*srv_keys, fields["url"][0]),
                )
            entry["url"] = fields["url"][1]
            lb["servers"] = [entry] if with_servers else []
            has_servers = has_servers or with_servers
            _alias(lab, (*lkeys, "servers", 0), (*srv_keys, fields["url"][0]))
            continue
        port: int | None = None
        if "port" in fields:
            pk, pv = fields["port"]
            text = pv.strip() if isinstance(pv, str) else ""
            if not text.isdigit() or not 1 <= int(text) <= 65535:
                raise ConfigError(
                    f"{lpath}.server.port",
                    f"expected a port number (1-65535), got {pv!r}",
                    keys=(*srv_keys, pk),
                )
            port = int(text)
        scheme = fields["scheme"][1] if "scheme" in fields else "http"
        if with_servers:
            if port is None:
                port = _default_port(c, sname, warnings)
            if address is None:
                address = _address(c, _wanted(lab, ctx.settings), ctx, warnings)
            host, hport = address, port
            if ctx.settings.use_bind_port_ip:
                bound = [b for b in c.ports if b.port == port and b.host_port]
                if bound:
                    b = bound[0]
                    ip = b.host_ip or ""
                    host = ctx.settings.host_address if ip in ("", "0.0.0.0", "::") else ip
                    hport = b.host_port
                else:
                    note = f"useBindPortIP: port {port} is not published; using the container's address"
                    if note not in warnings:
                        warnings.append(note)
            entry["url"] = f"{scheme}://{_host(host)}:{hport}"
            lb["servers"] = [entry]
            has_servers = True
            if "port" in fields:
                _alias(lab, (*lkeys, "servers", 0), (*srv_keys, fields["port"][0]))
            elif "scheme" in fields:
                _alias(lab, (*lkeys, "servers", 0), (*srv_keys, fields["scheme"][0]))
        else:
            lb["servers"] = []

    # routers
    found = _map_at(http, "routers", root, "http")
    if found is None or not found[1]:
        rkey = found[0] if found else "routers"
        if len(services) > 1:
            reasons.append(
                "no router: the container defines several services "
                f"({', '.join(sorted(map(str, services)))}) and no router"
            )
            http.pop(rkey, None)
            routers: dict[Key, Any] = {}
        else:
            http[rkey] = {name: {}}
            routers = http[rkey]
    else:
        rkey, routers = found
    router_labels: dict[str, str] = {}
    for rname in list(routers):
        router = routers[rname]
        if router is None or (isinstance(router, str) and not router.strip()):
            router = routers[rname] = {}
        if not isinstance(router, dict):
            continue  # the parser reports it
        rule_key = _ci(router, "rule")
        if rule_key is None or router[rule_key] is None or not str(router[rule_key]).strip():
            if isinstance(template, TemplateError):
                raise _LeftOut(f"router {rname}: default rule {ctx.settings.default_rule!r}: {template}")
            try:
                rule = template.render(name, c.name, c.labels)
            except TemplateError as exc:
                raise _LeftOut(f"router {rname}: default rule {ctx.settings.default_rule!r}: {exc}") from None
            if not rule.strip():
                reasons.append(f"router {rname}: the default rule is empty; router left out")
                del routers[rname]
                continue
            router[rule_key or "rule"] = rule
        svc_key = _ci(router, "service")
        if svc_key is None or not str(router[svc_key] or "").strip():
            if len(services) > 1:
                reasons.append(
                    f"router {rname}: no service label and several services "
                    f"({', '.join(sorted(map(str, services)))}); router left out"
                )
                del routers[rname]
                continue
            router[svc_key or "service"] = next(iter(services))
        router_labels[str(rname)] = _label_for(lab.origins, (rkey, rname)) or "default router"

    # middlewares
    found = _map_at(http, "middlewares", root, "http")
    if found is not None:
        mkey, middlewares = found
        by_lower = {t.lower(): t for t in MIDDLEWARE_TYPES}
        for mname, mw in middlewares.items():
            if not isinstance(mw, dict) or len(mw) != 1:
                continue  # the parser reports it
            ((tkey, opts),) = mw.items()
            mtype = by_lower.get(str(tkey).lower())
            if mtype is None:
                continue
            mw[tkey] = _options(
                opts,
                MIDDLEWARE_OPTIONS.get(mtype, _ANY),
                (*root, mkey, mname, tkey),
                f"http.middlewares.{mname}.{mtype}",
            )

    cfg, parse_warnings = parse_dynamic_with_warnings({"http": http}, references=False)
    warnings.extend(parse_warnings)
    return _Built(cfg, warnings, reasons, has_servers, router_labels)


def _allow_empty(d: dict[Key, Any], k: Key) -> None:
    """``sticky=true``-style labels for Traefik's ``allowEmpty`` sections: true → present and empty."""
    v = str(d[k]).strip().lower()
    if v == "true":
        d[k] = {}
    elif v == "false":
        del d[k]


def _alias(lab: _Labels, synthetic: tuple[Key, ...], real: tuple[Key, ...]) -> None:
    """Errors at a synthesized path (``...servers[0]``) are reported against the label they came from."""
    label = _label_for(lab.origins, real[1:])
    if label is not None:
        lab.origins[_low(synthetic[1:])] = label


def _wanted(lab: _Labels, settings: DockerSettings) -> tuple[str, str] | None:
    if lab.network is not None and lab.network[0].strip():
        return lab.network[0].strip(), f"label {lab.network[1]}"
    if settings.network:
        return settings.network, "providers.docker.network"
    return None


# -- everything -----------------------------------------------------------------------------------------


@dataclass
class _State:
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    routed: bool = False


def _entry_points_overlap(a: Router, b: Router) -> bool:
    return not a.entry_points or not b.entry_points or bool(set(a.entry_points) & set(b.entry_points))


def build_docker_config(
    containers: Sequence[ContainerInfo],
    settings: DockerSettings,
    own_networks: frozenset[str] = frozenset(),
) -> tuple[DynamicConfig, dict[str, ContainerRecord]]:
    """The Docker provider's dynamic configuration (bare names) and a record for every container seen.

    ``own_networks`` are the networks dockroute's own container is on (empty when not in a container): a
    container on several networks is reached through one it shares with dockroute.
    """
    ordered = sorted(containers, key=lambda c: c.name)
    ctx = _Ctx(settings, own_networks, ordered)
    states = {c.name: _State() for c in ordered}

    matcher: Callable[[Mapping[str, str]], bool] | None = None
    constraint_error: str | None = None
    if settings.constraints:
        try:
            matcher = parse_constraints(settings.constraints)
        except ValueError as exc:
            constraint_error = str(exc)
    template: RuleTemplate | TemplateError
    try:
        template = RuleTemplate(settings.default_rule)
    except TemplateError as exc:
        template = exc

    routers: dict[str, tuple[Router, str]] = {}
    services: dict[str, tuple[Service, str]] = {}
    middlewares: dict[str, tuple[Middleware, str]] = {}
    contributed: set[str] = set()  # kept, healthy containers
    served: set[str] = set()  # containers whose servers made it into a service

    for c in ordered:
        st = states[c.name]
        lab = _collect(c.labels)
        st.warnings.extend(lab.warnings)
        try:
            if lab.error is not None:
                raise _LeftOut(lab.error)
            if not _enabled(lab, settings):
                st.reasons.append(
                    "not enabled: exposedByDefault is false and there is no traefik.enable=true label"
                    if lab.enable is None
                    else f"not enabled: label {lab.enable[1]}={lab.enable[0]}"
                )
                continue
            if constraint_error is not None:
                raise _LeftOut(constraint_error)
            if matcher is not None and not matcher(c.labels):
                raise _LeftOut(f"left out by the constraints {settings.constraints!r}")
            if lab.tcp_udp and not lab.http.children:
                raise _LeftOut("only TCP/UDP labels, and TCP/UDP routing is not supported")
            if c.state != "running":
                raise _LeftOut(f"state: {c.state or 'unknown'} (not running)")
            healthy = c.health in (None, "healthy")
            if not healthy and not settings.allow_empty_services:
                raise _LeftOut(f"health: {c.health}")
            try:
                built = _build_one(c, lab, ctx, template, with_servers=healthy)
            except ConfigError as exc:
                label = _label_for(lab.origins, exc.keys[1:]) if exc.keys[1:] else None
                where = f"label {label}" if label else (exc.path or "labels")
                raise _LeftOut(f"{where}: {exc.message}") from None
        except _LeftOut as exc:
            st.reasons.append(str(exc))
            continue
        st.warnings.extend(w for w in built.warnings if w not in st.warnings)
        st.reasons.extend(built.reasons)
        if not healthy:
            st.reasons.append(f"health: {c.health}; its service is kept with no servers (allowEmptyServices)")
        if healthy:
            contributed.add(c.name)
        for sname, svc in built.cfg.services.items():
            if sname not in services:
                services[sname] = (svc, c.name)
            else:
                first, owner = services[sname]
                merged = _merge_service(first, svc)
                if merged is None:
                    _conflict(states, "service", sname, owner, c.name)
                    continue
                services[sname] = (merged, owner)
            if healthy and svc.load_balancer is not None and svc.load_balancer.servers:
                served.add(c.name)
        for rname, router in built.cfg.routers.items():
            if rname not in routers:
                routers[rname] = (router, c.name)
            elif routers[rname][0] != router:
                _conflict(states, "router", rname, routers[rname][1], c.name)
        for mname, mw in built.cfg.middlewares.items():
            if mname not in middlewares:
                middlewares[mname] = (mw, c.name)
            elif middlewares[mname][0] != mw:
                _conflict(states, "middleware", mname, middlewares[mname][1], c.name)

    # Two routers from different containers with the same rule and priority: the later one is left out.
    seen: list[tuple[Router, str]] = []
    for rname, (router, owner) in list(routers.items()):
        clash = next(
            (
                (other, o)
                for other, o in seen
                if o != owner
                and other.rule == router.rule
                and other.effective_priority == router.effective_priority
                and _entry_points_overlap(other, router)
            ),
            None,
        )
        if clash is not None:
            other, o = clash
            states[owner].reasons.append(
                f"router {rname}: same rule {router.rule!r} and priority as router {other.name} of "
                f"container {o}; router left out (set a priority to choose)"
            )
            del routers[rname]
            continue
        seen.append((router, owner))

    cfg = DynamicConfig(
        routers=frozen_map({n: r for n, (r, _) in routers.items()}),
        services=frozen_map({n: s for n, (s, _) in services.items()}),
        middlewares=frozen_map({n: m for n, (m, _) in middlewares.items()}),
    )
    for warning in check_references(cfg):
        m = re.match(r"http\.routers\.([^.:]+)\.", warning)
        if m and m.group(1) in routers:
            states[routers[m.group(1)][1]].warnings.append(warning)

    records = {}
    owners = {owner for _, owner in routers.values()}
    for c in ordered:
        st = states[c.name]
        records[c.name] = ContainerRecord(
            name=c.name,
            routed=c.name in served or (c.name in contributed and c.name in owners),
            reasons=tuple(st.reasons),
            warnings=tuple(st.warnings),
        )
    return cfg, records


def _merge_service(a: Service, b: Service) -> Service | None:
    """Traefik's ServersLoadBalancer.Merge: equal settings → servers appended (deduplicated by URL)."""
    if a.load_balancer is None or b.load_balancer is None:
        return a if a == b else None
    if replace(a.load_balancer, servers=()) != replace(b.load_balancer, servers=()):
        return None
    urls = {s.url for s in a.load_balancer.servers}
    extra = tuple(s for s in b.load_balancer.servers if s.url not in urls)
    return replace(a, load_balancer=replace(a.load_balancer, servers=a.load_balancer.servers + extra))


def _conflict(states: Mapping[str, _State], kind: str, name: str, first: str, later: str) -> None:
    msg = (
        f"{kind} {name} is defined differently by containers {first} and {later}; "
        f"the definition of {first} is used"
    )
    for owner in (first, later):
        if msg not in states[owner].reasons:
            states[owner].reasons.append(msg)
