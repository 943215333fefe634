"""What every DNS provider is: the record it is handed, the settings it is built from, its errors.

A provider is small on purpose: it writes and removes one TXT value in a zone it is told. Finding the
zone (an SOA lookup that follows CNAMEs), waiting for the authoritative servers, remembering records for
cleanup after a crash: all of that is done once, around every provider, by the DNS-01 solver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "DnsChallengeSettings",
    "DnsConfigError",
    "DnsError",
    "DnsProvider",
    "ProviderConfig",
    "ProviderSpec",
    "TxtRecord",
]

DEFAULT_TTL = 120  # lego's default for most providers
DEFAULT_PROPAGATION_TIMEOUT = 60.0  # seconds
DEFAULT_POLLING_INTERVAL = 2.0  # seconds


class DnsConfigError(ValueError):
    """A provider cannot be built from the environment: unknown name, a missing or malformed variable.

    ``variable`` names the environment variable at fault (None when the provider name itself is)."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class DnsError(Exception):
    """A provider's API or a DNS server refused or did not answer; ``str()`` says which and why."""


@dataclass(frozen=True, slots=True)
class TxtRecord:
    """One TXT value to present.

    ``domain`` is the name being validated (``home.example.com`` for ``*.home.example.com``); ``fqdn``
    is where the record goes, absolute with a trailing dot (``_acme-challenge.home.example.com.``, or
    the target of a CNAME found there); ``zone`` is the zone holding ``fqdn`` (absolute, trailing dot);
    ``value`` is the TXT value. ``token`` and ``key_authorization`` are the challenge's own, for the
    providers that hand the raw challenge to someone else (lego's ``exec``/``httpreq`` in RAW mode)."""

    domain: str
    fqdn: str
    zone: str
    value: str
    token: str = ""
    key_authorization: str = ""


class DnsProvider(Protocol):
    """Writes and removes TXT values. Both calls block (worker threads only) and raise :class:`DnsError`.

    ``present`` adds ``record.value`` beside any other value at ``record.fqdn`` (a wildcard and its apex
    in one order have two values at one name); ``cleanup`` removes only that value, and succeeds when it
    is already gone (cleanup runs again after a crash)."""

    def present(self, record: TxtRecord) -> None: ...

    def cleanup(self, record: TxtRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider's environment, read and checked at start: ``values`` maps each variable the provider
    reads (lego's primary name, whatever alias or ``_FILE`` variant supplied it) to its value. Kept
    out of repr: it holds secrets."""

    provider: str
    values: Mapping[str, str] = field(default_factory=dict, repr=False)
    ttl: int = DEFAULT_TTL
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT
    polling_interval: float = DEFAULT_POLLING_INTERVAL

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What a provider module declares (its ``SPEC``), so the registry can check the environment at
    start without building anything.

    ``required``: groups of variables, one group of which must be fully set (``(("CF_DNS_API_TOKEN",),
    ("CF_API_EMAIL", "CF_API_KEY"))``: a token, or the older email and key). ``optional``: the other
    variables it reads. ``aliases``: another accepted name → lego's primary name. ``prefixes``: the
    variables' common prefixes (``CF_``, ``CLOUDFLARE_``): a variable under one that the provider does not
    read is named in a warning at start, never silently ignored. ``defaults``: lego's default for a variable
    when it is unset, where the provider's differs from the common one (Cloudflare waits 120 s for
    propagation, not 60 s). ``build`` makes the provider from its checked config. ``warnings`` names, for a
    complete config, what the start log should still say (Cloudflare: two sets of credentials, one ignored).
    """

    name: str
    required: tuple[tuple[str, ...], ...]
    optional: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    prefixes: tuple[str, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)
    build: Callable[[ProviderConfig], DnsProvider] | None = None
    warnings: Callable[[ProviderConfig], list[str]] | None = None


@dataclass(frozen=True, slots=True)
class DnsChallengeSettings:
    """``certificatesResolvers.<name>.acme.dnsChallenge``, checked at start.

    ``resolvers`` (``host:port``) answer the zone lookups and the recursive checks (the system's
    resolvers when empty). Propagation: after ``delay_before_checks`` seconds, every authoritative
    server of the zone must answer with the value (unless ``disable_ans_checks``), and, with
    ``require_all_rns``, every recursive resolver too; ``disable_checks`` skips all of it."""

    provider: ProviderConfig
    resolvers: tuple[str, ...] = ()
    delay_before_checks: float = 0.0
    disable_checks: bool = False
    disable_ans_checks: bool = False
    require_all_rns: bool = False
