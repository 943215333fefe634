"""A DNS provider's environment, read once at start the way lego (Traefik's ACME library) reads it.

A Traefik user's ``.env`` must work unchanged: the same variable names, each also readable from
``<NAME>_FILE`` (a file's content: Docker and Kubernetes secrets), the older names lego still accepts
(aliases), and the common per-provider knobs (``<P>_TTL``, ``<P>_PROPAGATION_TIMEOUT``,
``<P>_POLLING_INTERVAL``, ``<P>_HTTP_TIMEOUT``...) in lego's form: whole seconds (lego's
``env.GetOrDefaultSecond`` is ``strconv.Atoi``; a Go duration such as ``2m`` is not one, and lego would
silently use its default instead). Everything wrong is said at start, naming the variable: a missing
credential or a malformed value stops the start, a set variable the provider does not read is a warning
(a typo would otherwise be ignored silently).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from acme_client.dns.base import (
    DEFAULT_POLLING_INTERVAL,
    DEFAULT_PROPAGATION_TIMEOUT,
    DEFAULT_TTL,
    DnsConfigError,
    ProviderConfig,
    ProviderSpec,
)

__all__ = ["raw_mode", "read_config", "seconds"]

_WHOLE_SECONDS = re.compile(r"[0-9]+")  # what strconv.Atoi reads, signs aside: no duration is negative
_MAX_FILE = 64 * 1024  # a credential file is small; a bigger one is a wrong path


def raw_mode(config: ProviderConfig, name: str) -> bool:
    """lego's ``<P>_MODE`` of the generic providers (exec, httpreq): ``RAW`` hands over the challenge
    itself (domain, token, key authorization), empty the record (name and value); anything else is
    refused naming the variable."""
    mode = config.get(name) or ""
    if mode not in ("", "RAW"):
        raise DnsConfigError(f"{name}: {mode!r} is neither RAW nor empty", name)
    return mode == "RAW"


def seconds(config: ProviderConfig, name: str, default: float) -> float:
    """A duration variable of ``config`` in seconds (``default`` when unset). :func:`read_config` has
    already checked and normalized it, so this cannot fail on a config it made."""
    value = config.get(name)
    return default if value is None else float(value)


def _lookup(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(value, where)`` for ``name`` itself or its ``_FILE`` variant; None when neither is set.

    As lego's ``GetOrFile``: the variable wins over the file; an empty variable counts as unset (a
    compose file's ``CF_DNS_API_TOKEN=`` placeholder)."""
    value = environ.get(name, "")
    if value.strip():
        return value.strip(), name
    path = environ.get(f"{name}_FILE", "").strip()
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as exc:
        raise DnsConfigError(
            f"{name}_FILE: cannot read {path}: {exc.strerror or exc}", f"{name}_FILE"
        ) from exc
    if len(data) > _MAX_FILE:
        raise DnsConfigError(
            f"{name}_FILE: {path} is over {_MAX_FILE} bytes, not a credential", f"{name}_FILE"
        )
    text = data.decode("utf-8", errors="replace").strip()
    return (text, f"{name}_FILE") if text else None


def _declared(spec: ProviderSpec) -> tuple[str, ...]:
    names = [n for group in spec.required for n in group] + list(spec.optional)
    return tuple(dict.fromkeys(names))


def _normalized(name: str, value: str, where: str) -> str:
    """Common knobs checked and put in one form: a TTL and a duration as a whole number of seconds above
    0 (lego reads both with ``strconv.Atoi``; an interval or a timeout of 0 would poll back to back or
    fail every order at once)."""
    if not name.endswith(("_TTL", "_TIMEOUT", "_INTERVAL")):
        return value
    if not _WHOLE_SECONDS.fullmatch(value):
        if name.endswith("_TTL"):
            raise DnsConfigError(f"{where}={value!r} is not a positive integer (seconds)", where)
        raise DnsConfigError(
            f"{where}={value!r} is not a whole number of seconds: lego takes whole seconds here "
            "(write 120, not 2m)",
            where,
        )
    if int(value) <= 0:
        raise DnsConfigError(f"{where}={value!r}: {name} must be more than 0 seconds", where)
    return str(int(value))


def _missing(spec: ProviderSpec, values: Mapping[str, str]) -> DnsConfigError | None:
    """The error for a provider none of whose required groups is complete, naming the variable most
    likely meant: the first one missing from the most complete group."""
    if not spec.required or any(all(n in values for n in group) for group in spec.required):
        return None
    best = max(spec.required, key=lambda g: sum(n in values for n in g))
    variable = next(n for n in best if n not in values)
    choices = [" and ".join(group) for group in spec.required]
    alternatives = choices[0] + (f" (or {' or '.join(choices[1:])})" if len(choices) > 1 else "")
    return DnsConfigError(
        f"DNS provider {spec.name}: {variable} is not set; set {alternatives} "
        f"in the environment (each also as <NAME>_FILE, a file holding it)",
        variable,
    )


def _unread(spec: ProviderSpec, environ: Mapping[str, str]) -> list[str]:
    read = set(_declared(spec)) | set(spec.aliases)
    read |= {f"{n}_FILE" for n in list(read)}
    return [
        f"DNS provider {spec.name}: {var} is set but not read by dockroute; ignored"
        for var in sorted(environ)
        if spec.prefixes and var.startswith(spec.prefixes) and var not in read
    ]


def read_config(spec: ProviderSpec, environ: Mapping[str, str]) -> tuple[ProviderConfig, list[str]]:
    """``spec``'s variables from ``environ`` (``spec.defaults`` for those unset): the config (values keyed
    by lego's primary names) and the warnings for variables under the provider's prefixes that it does
    not read, then ``spec.warnings``' own. DnsConfigError names the variable at fault (missing,
    unreadable file, malformed value)."""
    aliases: dict[str, list[str]] = {}
    for alias, primary in spec.aliases.items():
        aliases.setdefault(primary, []).append(alias)
    values: dict[str, str] = {}
    for name in _declared(spec):
        for candidate in (name, *aliases.get(name, ())):
            found = _lookup(environ, candidate)
            if found is not None:
                values[name] = _normalized(name, *found)
                break
        else:
            if name in spec.defaults:  # lego's own default for this provider (Cloudflare's 120 s...)
                values[name] = _normalized(name, spec.defaults[name], name)
    error = _missing(spec, values)
    if error is not None:
        raise error

    def common(suffix: str, default: float) -> float:
        name = next((n for n in values if n.endswith(suffix)), None)
        return default if name is None else float(values[name])

    config = ProviderConfig(
        provider=spec.name,
        values=values,
        ttl=int(common("_TTL", DEFAULT_TTL)),
        propagation_timeout=common("_PROPAGATION_TIMEOUT", DEFAULT_PROPAGATION_TIMEOUT),
        polling_interval=common("_POLLING_INTERVAL", DEFAULT_POLLING_INTERVAL),
    )
    return config, _unread(spec, environ) + (spec.warnings(config) if spec.warnings else [])
