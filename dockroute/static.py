"""Traefik's static configuration: a YAML/TOML file, ``DOCKROUTE_*`` / ``TRAEFIK_*`` variables and flags.

Every source is first turned into the same shape: a nested dict keyed by Traefik's canonical camelCase
names (entry point names as the user spelled them), whose leaves remember where they came from. The three
layers are merged by key path (file < environment < flags) and only then checked and typed, so a flag for
``entryPoints.web.address`` keeps the file's other entry points, and an error names the key path and the
flag, variable or file that set it.

Like Traefik, keys match case-insensitively everywhere; lists may be given comma-separated or indexed
(``--entrypoints.web.forwardedheaders.trustedips[0]=…``, ``…_TRUSTEDIPS_0=…``); a section can be switched on
with its defaults by a bare ``--providers.docker`` (or ``=true``) and off with ``=false``.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import yaml

from discover.docker_model import DockerSettings
from discover.parse import parse_duration
from router.settings import EntryPoint, Redirection, Transport

__all__ = [
    "AccessLogSettings",
    "DockerProviderSettings",
    "FileProviderSettings",
    "LogSettings",
    "StaticConfig",
    "StaticConfigError",
    "load_static",
    "split_config_flag",
]

CONFIG_NAMES = ("dockroute.yml", "dockroute.yaml", "dockroute.toml")
ENV_PREFIXES = ("TRAEFIK_", "DOCKROUTE_")  # lowest precedence first: DOCKROUTE_ wins


class StaticConfigError(Exception):
    """A problem in the static configuration; ``str(e)`` is one line starting with the key path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


# -- the result ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileProviderSettings:
    filename: str | None = None
    directory: str | None = None
    watch: bool = True


@dataclass(frozen=True)
class DockerProviderSettings(DockerSettings):
    """``providers.docker``: the provider's own settings plus whether the user asked for it."""

    explicit: bool = True  # False only for the embedded default (enabled when the socket exists)


_PY_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "PANIC": logging.CRITICAL,
}


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"  # one of _PY_LEVELS, upper case
    format: str = "common"  # common | json
    file_path: str | None = None

    @property
    def python_level(self) -> int:
        return _PY_LEVELS.get(self.level, logging.INFO)


@dataclass(frozen=True)
class AccessLogSettings:
    file_path: str | None = None  # None = stdout
    format: str = "common"  # common | json


@dataclass(frozen=True)
class StaticConfig:
    entry_points: tuple[EntryPoint, ...] = ()
    transport: Transport = field(default_factory=Transport)
    file_provider: FileProviderSettings | None = None
    docker_provider: DockerProviderSettings | None = None
    log: LogSettings = field(default_factory=LogSettings)
    access_log: AccessLogSettings | None = None  # None = off (Traefik: off unless the section exists)
    certificates_resolvers: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str | None = None  # the file it came from
    ignored: tuple[
        str, ...
    ] = ()  # accepted Traefik sections not supported yet ("api", "providers.kubernetesCRD")
    providers_throttle_duration: float = 2.0  # providers.providersThrottleDuration (Traefik: 2s)


# -- the schema ---------------------------------------------------------------------------------------
# A section is a dict canonical name -> node; a leaf is one of the kinds below; _Named is a map of
# user-named entries (entryPoints.<name>); IGNORED accepts anything and is listed in StaticConfig.ignored;
# RAW is kept as given (certificatesResolvers).

STR, BOOL, INT, DUR, LIST, ADDR = "str", "bool", "int", "duration", "list", "address"
IGNORED, RAW = "<ignored>", "<raw>"
RAW_ITEM = "<raw item>"  # a key inside an ignored or raw section, set by a flag or variable
ANY = "<any>"  # a Traefik key inside an owned section that dockroute accepts and does not act on yet


@dataclass(frozen=True)
class _Named:
    child: dict[str, Any]


# Traefik keys inside the owned sections that dockroute does not act on yet: accepted (a Traefik file must
# load unchanged) and not acted on yet (TLS and middlewares arrive with later issues).
_ENTRY_POINT: dict[str, Any] = {
    "address": ADDR,
    "http": {
        "redirections": {"entryPoint": {"to": STR, "scheme": STR, "permanent": BOOL, "priority": INT}},
        **dict.fromkeys(
            ("tls", "middlewares", "encodeQuerySemicolons", "sanitizePath", "maxHeaderBytes"), ANY
        ),
    },
    "forwardedHeaders": {"trustedIPs": LIST, "insecure": BOOL, "connection": ANY},
    "transport": {
        "respondingTimeouts": {"readTimeout": DUR, "writeTimeout": DUR, "idleTimeout": DUR},
        "lifeCycle": {"graceTimeOut": DUR, "requestAcceptGraceTimeout": DUR},
        **dict.fromkeys(("keepAliveMaxRequests", "keepAliveMaxTime"), ANY),
    },
    **dict.fromkeys(
        (
            "http2",
            "http3",
            "proxyProtocol",
            "udp",
            "asDefault",
            "allowACMEByPass",
            "observability",
            "reusePort",
        ),
        ANY,
    ),
}

_OTHER_PROVIDERS = (
    "swarm",
    "kubernetesIngress",
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
    "api",
    "metrics",
    "ping",
    "tracing",
    "hostResolver",
    "experimental",
    "core",
    "tcpServersTransport",
    "spiffe",
)

_SCHEMA: dict[str, Any] = {
    "entryPoints": _Named(_ENTRY_POINT),
    "providers": {
        "providersThrottleDuration": DUR,
        "file": {"filename": STR, "directory": STR, "watch": BOOL},
        "docker": {
            "endpoint": STR,
            "exposedByDefault": BOOL,
            "defaultRule": STR,
            "network": STR,
            "useBindPortIP": BOOL,
            "watch": BOOL,
            "constraints": STR,
            "allowEmptyServices": BOOL,
            "tls": {"ca": STR, "cert": STR, "key": STR, "insecureSkipVerify": ANY},
            **dict.fromkeys(("httpClientTimeout", "username", "password"), ANY),
        },
        **{p: IGNORED for p in _OTHER_PROVIDERS},
    },
    "serversTransport": {
        "forwardingTimeouts": {
            "dialTimeout": DUR,
            "responseHeaderTimeout": DUR,
            "idleConnTimeout": DUR,
            **dict.fromkeys(("pingTimeout", "readIdleTimeout"), ANY),
        },
        "maxIdleConnsPerHost": INT,
        "insecureSkipVerify": BOOL,
        "rootCAs": LIST,
        **dict.fromkeys(("certificates", "spiffe"), ANY),
    },
    "log": {
        "level": STR,
        "format": STR,
        "filePath": STR,
        **dict.fromkeys(("noColor", "maxSize", "maxAge", "maxBackups", "compress"), ANY),
    },
    "accessLog": {
        "filePath": STR,
        "format": STR,
        **dict.fromkeys(("filters", "fields", "bufferingSize", "addInternals"), ANY),
    },
    "certificatesResolvers": RAW,
    **{s: IGNORED for s in _IGNORED_SECTIONS},
}


# -- the merged tree ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Val:
    """A leaf value and where it was set (for messages)."""

    value: Any
    origin: str


class _Off:
    """A section switched off (``--providers.docker=false``)."""

    def __repr__(self) -> str:
        return "<off>"


OFF = _Off()


class _Indexed(dict):
    """List items given one by one (``trustedips[0]=…``, ``…_TRUSTEDIPS_1=…``), index -> item."""


def _find(d: Mapping[str, Any], key: str) -> str | None:
    low = key.lower()
    for k in d:
        if k.lower() == low:
            return k
    return None


def _merge(low: Any, high: Any) -> Any:
    """``high`` over ``low``: dicts merge key by key (case-insensitively), anything else replaces."""
    if isinstance(low, dict) and isinstance(high, dict):
        out = dict(low)
        for k, v in high.items():
            existing = _find(out, k)
            if existing is None:
                out[k] = v
            else:
                out[existing] = _merge(out[existing], v)
        return out
    return high


def _got(value: Any) -> str:
    if isinstance(value, _Indexed):
        value = [value[i] for i in sorted(value)]
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def _where(origin: str) -> str:
    return f" ({origin})" if origin else ""


def _suggest(key: str, choices: Sequence[str]) -> str:
    low = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(key.lower(), list(low), n=1, cutoff=0.6)
    return f" (did you mean '{low[close[0]]}'?)" if close else ""


def _unknown(path: str, key: str, choices: Sequence[str], origin: str) -> StaticConfigError:
    return StaticConfigError(_join(path, key), f"unknown key{_suggest(key, choices)}{_where(origin)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _truthy(value: Any) -> bool | None:
    """Go's ParseBool, plus real booleans; None when it is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "t", "1"):
            return True
        if v in ("false", "f", "0"):
            return False
    return None


# -- source 1: the file -------------------------------------------------------------------------------


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise StaticConfigError("configFile", f"cannot read {path}: {exc.strerror or exc}") from None
    if path.lower().endswith(".toml"):
        try:
            doc: Any = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StaticConfigError(path, f"invalid TOML: {exc}") from None
    else:
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            raise StaticConfigError(path, f"invalid YAML: {at}{problem}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise StaticConfigError(path, f"expected a mapping of sections at the top, got {_got(doc)}")
    return doc


def _section_switch(value: Any, path: str, origin: str) -> Any:
    """A scalar given for a whole section: true = on with defaults, false = off."""
    on = _truthy(value)
    if value is None or on is True:
        return {}
    if on is False:
        return OFF
    raise StaticConfigError(path, f"expected a section (or true/false), got {_got(value)}{_where(origin)}")


def _canon(node: Any, value: Any, path: str, origin: str) -> Any:
    """A file's subtree → canonical keys; leaves wrapped in _Val."""
    if node == RAW:
        if not isinstance(value, dict):
            return _section_switch(value, path, origin)
        return value
    if node == IGNORED:
        return value if isinstance(value, dict) else _section_switch(value, path, origin)
    if node == ANY:
        return value
    if isinstance(node, str):
        return _Val(value, origin)
    if not isinstance(value, dict):
        return _section_switch(value, path, origin)
    out: dict[str, Any] = {}
    for key, sub in value.items():
        key = str(key)
        if isinstance(node, _Named):
            name, child = key, node.child
        else:
            name = _find(node, key)  # type: ignore[assignment]
            if name is None:
                raise _unknown(path, key, list(node), origin)
            child = node[name]
        if _find(out, name) is not None:
            raise StaticConfigError(
                _join(path, name), f"given twice (keys are case-insensitive){_where(origin)}"
            )
        if sub is None and isinstance(child, str) and child not in (RAW, IGNORED):
            continue  # "key:" with nothing: not set
        out[name] = _canon(child, sub, _join(path, name), origin)
    return out


# -- sources 2 and 3: variables and flags -------------------------------------------------------------


def _resolve(
    node: Any, segs: list[str], path: str, origin: str, env: bool
) -> tuple[list[str], Any, int | None]:
    """Key segments → (canonical keys, the node they reach, list index or None)."""
    if not segs:
        return [], node, None
    if node in (RAW, IGNORED, ANY):
        return [s.lower() if env else s for s in segs], RAW_ITEM, None
    if isinstance(node, str):
        if len(segs) == 1 and segs[0].isdigit() and node == LIST:
            return [], node, int(segs[0])
        raise _unknown(path, segs[0], [], origin)
    if isinstance(node, _Named):
        # With variables a name may hold underscores: the shortest name whose rest makes sense wins.
        spans = range(1, len(segs) + 1) if env else range(1, 2)
        first: StaticConfigError | None = None
        for n in spans:
            name = "_".join(segs[:n]).lower() if env else segs[0]
            try:
                keys, end, index = _resolve(node.child, segs[n:], _join(path, name), origin, env)
            except StaticConfigError as exc:
                first = first or exc
                continue
            return [name, *keys], end, index
        assert first is not None
        raise first
    name = _find(node, segs[0])
    if name is None:
        raise _unknown(path, segs[0], list(node), origin)
    keys, end, index = _resolve(node[name], segs[1:], _join(path, name), origin, env)
    return [name, *keys], end, index


def _put(tree: dict[str, Any], keys: list[str], end: Any, index: int | None, text: str, origin: str) -> None:
    """Set one flag/variable in a source's tree (later ones win; indexed list items accumulate)."""
    path = ".".join(keys)
    if end == ANY:
        value: Any = text
    elif isinstance(end, dict | _Named) or end in (RAW, IGNORED):
        value = _section_switch(text, path, origin)
    elif end == RAW_ITEM:
        value = text
    elif index is not None:
        value = _Val(_Indexed({index: text}), origin)
    else:
        value = _Val(text, origin)
    if not keys:
        return
    here = tree
    for k in keys[:-1]:
        existing = _find(here, k)
        if existing is None or not isinstance(here[existing], dict):
            here[existing or k] = {}
            existing = existing or k
        here = here[existing]
    last = _find(here, keys[-1]) or keys[-1]
    old = here.get(last)
    if value == {} and isinstance(old, dict):
        return  # a bare --providers.docker after --providers.docker.network=…: keep what is set
    if (
        index is not None
        and isinstance(old, _Val)
        and isinstance(old.value, _Indexed)
        and isinstance(value, _Val)
    ):
        value = _Val(_Indexed({**old.value, index: text}), origin)
    here[last] = value


_INDEX = re.compile(r"^(.*?)\[(\d+)\]$")


def _flag_segments(key: str) -> list[str]:
    segs: list[str] = []
    for part in key.split("."):
        m = _INDEX.match(part)
        segs.extend([m.group(1), m.group(2)] if m else [part])
    return segs


def _is_switch(end: Any, index: int | None) -> bool:
    """Whether a bare flag (no value) means true."""
    return index is None and (end in (BOOL, RAW, IGNORED, RAW_ITEM) or isinstance(end, dict | _Named))


def _from_flags(argv: Sequence[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            raise StaticConfigError(
                "", f"unexpected argument {arg!r} (flags look like --entrypoints.web.address=:80)"
            )
        key, eq, text = arg[2:].partition("=")
        origin = f"from flag --{key}"
        segs = _flag_segments(key)
        if any(not s for s in segs):
            raise StaticConfigError(key, f"malformed flag --{key}")
        keys, end, index = _resolve(_SCHEMA, segs, "", origin, env=False)
        if not eq:
            if i < len(args) and not args[i].startswith("--"):
                text = args[i]
                i += 1
            elif _is_switch(end, index):
                text = "true"
            else:
                raise StaticConfigError(".".join(keys), f"missing value{_where(origin)}")
        _put(tree, keys, end, index, text, origin)
    return tree


_K8S_SERVICE_LINK = re.compile(r"^(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)$")


def _from_env(environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.upper().startswith(prefix) or len(name) == len(prefix):
            continue
        rest = name[len(prefix) :].upper()
        if rest == "CONFIGFILE" or _K8S_SERVICE_LINK.match(rest):
            continue  # the file's name; or a Kubernetes service link for a service named dockroute/traefik
        origin = f"from environment variable {name}"
        segs = [s.lower() for s in rest.split("_")]
        if any(not s for s in segs):
            raise StaticConfigError(name, f"malformed variable name{_where(origin)}")
        keys, end, index = _resolve(_SCHEMA, segs, "", origin, env=True)
        _put(tree, keys, end, index, environ[name], origin)
    return tree


def split_config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` / ``--configFile=FILE`` (any case) out of ``argv``; the last one wins."""
    config: str | None = None
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        if key.lower() in ("--config", "--configfile"):
            if not eq:
                if i + 1 >= len(args):
                    raise StaticConfigError("configFile", "missing value (--configFile=FILE)")
                value = args[i + 1]
                i += 1
            config = value
        else:
            rest.append(arg)
        i += 1
    return config, rest


# -- checking and typing ------------------------------------------------------------------------------


def _get(tree: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(tree, dict):
            return None
        found = _find(tree, k)
        if found is None:
            return None
        tree = tree[found]
    return tree


class _Reader:
    """Typed access to one section of the merged tree, with errors naming the key path."""

    def __init__(self, tree: Any, path: str) -> None:
        self.tree = tree if isinstance(tree, dict) else {}
        self.path = path

    def sub(self, *keys: str) -> _Reader:
        return _Reader(_get(self.tree, *keys), ".".join([self.path, *keys]))

    def has(self, *keys: str) -> bool:
        return _get(self.tree, *keys) is not None

    def _leaf(self, key: str) -> tuple[str, Any, str] | None:
        v = _get(self.tree, key)
        if not isinstance(v, _Val) or v.value is None:
            return None
        return _join(self.path, key), v.value, v.origin

    def text(self, key: str, default: str | None = None, *, choices: Sequence[str] = ()) -> Any:
        got = self._leaf(key)
        if got is None:
            return default
        path, value, origin = got
        if not isinstance(value, str) or not value.strip():
            raise StaticConfigError(path, f"expected a non-empty string, got {_got(value)}{_where(origin)}")
        if choices:
            low = value.strip().lower()
            for c in choices:
                if c.lower() == low:
                    return c
            raise StaticConfigError(
                path, f"expected one of {', '.join(choices)}, got {_got(value)}{_where(origin)}"
            )
        return value

    def flag(self, key: str, default: bool) -> bool:
        got = self._leaf(key)
        if got is None:
            return default
        path, value, origin = got
        b = _truthy(value)
        if b is None:
            raise StaticConfigError(path, f"expected true or false, got {_got(value)}{_where(origin)}")
        return b

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        got = self._leaf(key)
        if got is None:
            return default
        path, value, origin = got
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            n = int(value)
        if n is None:
            raise StaticConfigError(path, f"expected a whole number, got {_got(value)}{_where(origin)}")
        if n < minimum:
            raise StaticConfigError(path, f"must be at least {minimum}, got {n}{_where(origin)}")
        return n

    def duration(self, key: str, default: float) -> float:
        got = self._leaf(key)
        if got is None:
            return default
        path, value, origin = got
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise StaticConfigError(
                path,
                f"expected a duration like '10s', '1m30s', '500ms' or a number of seconds, got {_got(value)}"
                f"{_where(origin)}",
            ) from None
        if seconds < 0:
            raise StaticConfigError(
                path, f"must not be a negative duration, got {_got(value)}{_where(origin)}"
            )
        return seconds

    def items(self, key: str) -> tuple[tuple[str, str], ...]:
        """(item, its key path) pairs; a string is split on commas."""
        got = self._leaf(key)
        if got is None:
            return ()
        path, value, origin = got
        if isinstance(value, _Indexed):
            value = [value[i] for i in sorted(value)]
        elif isinstance(value, str):
            value = [s for s in (p.strip() for p in value.split(",")) if s]
        if not isinstance(value, list | tuple):
            raise StaticConfigError(path, f"expected a list of strings, got {_got(value)}{_where(origin)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise StaticConfigError(
                    f"{path}[{i}]", f"expected a string, got {_got(item)}{_where(origin)}"
                )
            out.append((item.strip(), f"{path}[{i}]"))
        return tuple(out)

    def origin(self, key: str) -> str:
        got = self._leaf(key)
        return got[2] if got else ""


_DEFAULTS: dict[type, dict[str, Any]] = {
    cls: {f.name: f.default for f in fields(cls)} for cls in (EntryPoint, Transport, Redirection)
}

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def check_address(address: str) -> str | None:
    """``[host]:port`` (Traefik's entry point address, optionally ``/tcp``) → the address, or None if bad."""
    addr = address.strip()
    if addr.lower().endswith("/tcp"):
        addr = addr[:-4]
    host, colon, port = addr.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1].split("%")[0])
        except ValueError:
            return None
    elif host and (":" in host or not _HOSTNAME.match(host)):
        return None
    return addr


def _address(r: _Reader) -> str | None:
    got = r._leaf("address")
    if got is None:
        return None
    path, value, origin = got
    if isinstance(value, str) and value.strip().lower().endswith("/udp"):
        raise StaticConfigError(
            path, f"UDP entry points are not supported, got {_got(value)}{_where(origin)}"
        )
    checked = check_address(value) if isinstance(value, str) else None
    if checked is None:
        raise StaticConfigError(
            path, f"expected a string like ':80' or '127.0.0.1:8080', got {_got(value)}{_where(origin)}"
        )
    return checked


def _entry_points(tree: Any) -> tuple[EntryPoint, ...]:
    entries = tree if isinstance(tree, dict) else {}
    names = {name.lower(): name for name, sub in entries.items() if sub is not OFF}
    out: list[EntryPoint] = []
    for name, sub in entries.items():
        if sub is OFF:
            continue
        r = _Reader(sub, f"entryPoints.{name}")
        address = _address(r)
        if address is None:
            raise StaticConfigError(f"entryPoints.{name}.address", "required (e.g. ':80')")
        redirection = None
        red = r.sub("http", "redirections", "entryPoint")
        if red.has("to") or red.tree:
            to = red.text("to")
            if to is None:
                raise StaticConfigError(
                    f"{red.path}.to", "required: an entry point name or an address like ':443'"
                )
            target = names.get(to.strip().lower())
            if target is None and check_address(to) is None:
                raise StaticConfigError(
                    f"{red.path}.to",
                    f"no entry point named {to!r} (known: {', '.join(names.values())}) and not an address "
                    f"like ':443'{_where(red.origin('to'))}",
                )
            redirection = Redirection(
                to=target or to.strip(),
                scheme=red.text("scheme", "https", choices=("https", "http")),
                permanent=red.flag("permanent", True),
                priority=red.integer("priority", _DEFAULTS[Redirection]["priority"], minimum=1),
            )
        fwd = r.sub("forwardedHeaders")
        trusted = []
        for item, path in fwd.items("trustedIPs"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise StaticConfigError(
                    path,
                    f"expected an IP address or CIDR like '10.0.0.0/8', got {item!r}"
                    f"{_where(fwd.origin('trustedIPs'))}",
                ) from None
            trusted.append(item)
        rt = r.sub("transport", "respondingTimeouts")
        lc = r.sub("transport", "lifeCycle")
        d = _DEFAULTS[EntryPoint]
        out.append(
            EntryPoint(
                name=name,
                address=address,
                redirection=redirection,
                trusted_ips=tuple(trusted),
                forwarded_insecure=fwd.flag("insecure", False),
                read_timeout=rt.duration("readTimeout", d["read_timeout"]),
                write_timeout=rt.duration("writeTimeout", d["write_timeout"]),
                idle_timeout=rt.duration("idleTimeout", d["idle_timeout"]),
                grace_timeout=lc.duration("graceTimeOut", d["grace_timeout"]),
                request_accept_grace_timeout=lc.duration(
                    "requestAcceptGraceTimeout", d["request_accept_grace_timeout"]
                ),
            )
        )
    if not out:
        raise StaticConfigError("entryPoints", "every entry point is switched off; at least one is needed")
    return tuple(out)


def _transport(tree: Any) -> Transport:
    r = _Reader(tree, "serversTransport")
    ft = r.sub("forwardingTimeouts")
    d = _DEFAULTS[Transport]
    return Transport(
        dial_timeout=ft.duration("dialTimeout", d["dial_timeout"]),
        response_header_timeout=ft.duration("responseHeaderTimeout", d["response_header_timeout"]),
        idle_conn_timeout=ft.duration("idleConnTimeout", d["idle_conn_timeout"]),
        max_idle_conns_per_host=r.integer("maxIdleConnsPerHost", d["max_idle_conns_per_host"]),
        insecure_skip_verify=r.flag("insecureSkipVerify", False),
        root_cas=tuple(item for item, _ in r.items("rootCAs")),
    )


def _file_provider(tree: Any) -> FileProviderSettings | None:
    if not isinstance(tree, dict):
        return None
    r = _Reader(tree, "providers.file")
    filename, directory = r.text("filename"), r.text("directory")
    if (filename is None) == (directory is None):
        raise StaticConfigError(
            "providers.file",
            "set exactly one of filename or directory" + (", not both" if filename else ""),
        )
    return FileProviderSettings(filename=filename, directory=directory, watch=r.flag("watch", True))


def _docker_provider(tree: Any) -> DockerProviderSettings | None:
    if not isinstance(tree, dict):
        return None
    r = _Reader(tree, "providers.docker")
    tls = r.sub("tls")
    d = DockerProviderSettings()
    endpoint = r.text("endpoint", d.endpoint)
    if "://" not in endpoint:
        raise StaticConfigError(
            "providers.docker.endpoint",
            f"expected a URL like 'unix:///var/run/docker.sock' or 'tcp://host:2376', got {endpoint!r}"
            f"{_where(r.origin('endpoint'))}",
        )
    return DockerProviderSettings(
        endpoint=endpoint,
        exposed_by_default=r.flag("exposedByDefault", d.exposed_by_default),
        default_rule=r.text("defaultRule", d.default_rule),
        network=r.text("network"),
        use_bind_port_ip=r.flag("useBindPortIP", d.use_bind_port_ip),
        watch=r.flag("watch", d.watch),
        constraints=r.text("constraints"),
        allow_empty_services=r.flag("allowEmptyServices", d.allow_empty_services),
        tls_ca=tls.text("ca"),
        tls_cert=tls.text("cert"),
        tls_key=tls.text("key"),
        explicit=True,
    )


def _log(tree: Any) -> LogSettings:
    r = _Reader(tree, "log")
    level = r.text("level", "INFO", choices=tuple(_PY_LEVELS))
    return LogSettings(
        level=level,
        format=r.text("format", "common", choices=("common", "json")),
        file_path=r.text("filePath"),
    )


def _access_log(tree: Any) -> AccessLogSettings | None:
    if not isinstance(tree, dict):
        return None
    r = _Reader(tree, "accessLog")
    return AccessLogSettings(
        file_path=r.text("filePath"), format=r.text("format", "common", choices=("common", "json"))
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, _Val):
        return _freeze(value.value)
    if isinstance(value, dict):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _ignored(tree: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for name in _IGNORED_SECTIONS:
        v = _get(tree, name)
        if v is not None and v is not OFF:
            out.append(name)
    providers = _get(tree, "providers")
    for name in _OTHER_PROVIDERS:
        v = _get(providers, name)
        if v is not None and v is not OFF:
            out.append(f"providers.{name}")
    return tuple(out)


# -- putting it together ------------------------------------------------------------------------------


def _find_file(
    config_file: str | None, argv: Sequence[str], environ: Mapping[str, str], search_dirs: Sequence[str]
) -> tuple[str | None, list[str]]:
    flag, rest = split_config_flag(argv)
    chosen = config_file or flag
    if chosen is None:
        for prefix in reversed(ENV_PREFIXES):
            for name, value in environ.items():
                if name.upper() == f"{prefix}CONFIGFILE" and value:
                    chosen = value
                    break
            if chosen:
                break
    if chosen is not None:
        if not os.path.isfile(chosen):
            raise StaticConfigError("configFile", f"no such file: {chosen}")
        return chosen, rest
    for directory in search_dirs:
        for name in CONFIG_NAMES:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path, rest
    return None, rest


def load_static(
    argv: Sequence[str],
    environ: Mapping[str, str],
    config_file: str | None = None,
    search_dirs: Sequence[str] = ("/etc/dockroute", "."),
) -> StaticConfig:
    """The static configuration from a file (explicit, else found in ``search_dirs``), the environment and
    flags, in rising precedence. Raises :class:`StaticConfigError` on anything wrong or unknown."""
    source, flags = _find_file(config_file, argv, environ, search_dirs)
    layers: list[dict[str, Any]] = []
    if source is not None:
        layers.append(_canon(_SCHEMA, _read_file(source), "", f"in {source}"))
    layers.extend(_from_env(environ, prefix) for prefix in ENV_PREFIXES)
    layers.append(_from_flags(flags))
    tree: dict[str, Any] = {}
    for layer in layers:
        tree = _merge(tree, layer)

    # The embedded `web` on :80 stays unless another entry point is configured; settings for `web` itself
    # (--entrypoints.web.address=…, …forwardedheaders.insecure) apply to it.
    entry_tree = _get(tree, "entryPoints")
    entry_tree = entry_tree if isinstance(entry_tree, dict) else {}
    if all(name.lower() == "web" for name in entry_tree):
        entry_tree = _merge({next(iter(entry_tree), "web"): {"address": _Val(":80", "")}}, entry_tree)
    providers = _get(tree, "providers")
    docker = _docker_provider(_get(providers, "docker"))
    configured = isinstance(providers, dict) and any(
        _find(providers, p) is not None for p in ("file", "docker", *_OTHER_PROVIDERS)
    )
    if docker is None and not configured:
        docker = DockerProviderSettings(explicit=False)
    resolvers = _get(tree, "certificatesResolvers")
    return StaticConfig(
        entry_points=_entry_points(entry_tree),
        transport=_transport(_get(tree, "serversTransport")),
        file_provider=_file_provider(_get(providers, "file")),
        docker_provider=docker,
        log=_log(_get(tree, "log")),
        access_log=_access_log(_get(tree, "accessLog")),
        certificates_resolvers=_freeze(resolvers if isinstance(resolvers, dict) else {}),
        source=source,
        ignored=_ignored(tree),
        providers_throttle_duration=_Reader(providers, "providers").duration(
            "providersThrottleDuration", 2.0
        ),
    )
