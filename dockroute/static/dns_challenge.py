"""``certificatesResolvers.<name>.acme.dnsChallenge``: Traefik's DNS-01 keys read into
:class:`~acme_client.dns.base.DnsChallengeSettings`, with the provider's credentials read from the
environment once, here, at start (:func:`read_dns_challenge`).

The provider's variables are lego's (``CF_DNS_API_TOKEN``, ``RFC2136_NAMESERVER``, each also as
``<NAME>_FILE``), read by :func:`acme_client.dns.registry.read_provider`: a missing or malformed one stops
the start with one line naming it, at ``…dnsChallenge.provider``, rather than surfacing as a failed order
hours later. Traefik's older spellings ``delayBeforeCheck`` and ``disablePropagationCheck`` act as their
``propagation.*`` successors (with Traefik's deprecation warning); both spellings set to different values
is refused naming both, since either choice would silently drop one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acme_client.dns import registry
from acme_client.dns.base import DnsChallengeSettings, DnsConfigError
from acme_client.dns.zone import describe, parse_server
from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import got, where

__all__ = ["read_dns_challenge"]


def read_dns_challenge(r: Reader, environ: Mapping[str, str], warnings: list[str]) -> DnsChallengeSettings:
    """The ``dnsChallenge`` section ``r``, every key checked. ``warnings`` receives whole messages for the
    start's log: each variable under the provider's prefix it does not read, each deprecated key used."""
    provider_name = r.text("provider")
    if provider_name is None:
        raise StaticConfigError(
            f"{r.path}.provider",
            f"required: the DNS provider that writes the TXT records (supported: "
            f"{', '.join(sorted(registry.PROVIDERS))})",
        )
    resolvers = tuple(_resolver(item, path, r) for item, path in r.items("resolvers"))
    prop = r.sub("propagation")
    delay = _renamed(r, prop, "delayBeforeCheck", "delayBeforeChecks", "duration", 0.0, warnings)
    disable = _renamed(r, prop, "disablePropagationCheck", "disableChecks", "flag", False, warnings)
    try:
        config, provider_warnings = registry.read_provider(provider_name.strip().lower(), environ)
    except DnsConfigError as exc:
        raise StaticConfigError(f"{r.path}.provider", f"{exc}{where(r.origin('provider'))}") from None
    warnings.extend(f"{r.path}.provider: {w}" for w in provider_warnings)
    return DnsChallengeSettings(
        provider=config,
        resolvers=resolvers,
        delay_before_checks=delay,
        disable_checks=disable,
        disable_ans_checks=prop.flag("disableANSChecks", False),
        require_all_rns=prop.flag("requireAllRNS", False),
    )


def _renamed(
    r: Reader, prop: Reader, old: str, new: str, kind: str, default: float | bool, warnings: list[str]
) -> Any:
    """``propagation.<new>``, else the deprecated ``<old>`` beside it (Traefik v3.3 moved the keys and
    still reads the old ones). ``kind`` is the :class:`Reader` method that reads both (``duration``,
    ``flag``). Both set to different values stop the start naming both."""
    new_value = getattr(prop, kind)(new, default) if prop.leaf(new) is not None else None
    if r.leaf(old) is None:
        return default if new_value is None else new_value
    old_value = getattr(r, kind)(old, default)
    if new_value is not None and new_value != old_value:
        raise StaticConfigError(
            f"{prop.path}.{new}",
            f"set to {_raw(prop, new)}{where(prop.origin(new))} while the deprecated {r.path}.{old} is "
            f"set to {_raw(r, old)}{where(r.origin(old))}: set only propagation.{new}",
        )
    warnings.append(f"{r.path}.{old} is deprecated, use {prop.path}.{new} (read as that)")
    return old_value


def _raw(r: Reader, key: str) -> str:
    found = r.leaf(key)
    return got(found[1] if found else None)


def _resolver(item: str, path: str, r: Reader) -> str:
    """One ``resolvers`` entry, checked and written as ``host:port`` (``[v6]:port``) by the one parser of
    DNS server entries (:func:`acme_client.dns.zone.parse_server`: lego's ``ParseNameservers`` rules)."""
    try:
        return describe(parse_server(item))
    except ValueError as exc:
        raise StaticConfigError(
            path,
            f"expected a DNS server's address or name with an optional port, like '1.1.1.1:53', '9.9.9.9' "
            f"or '[2606:4700:4700::1111]:53': {exc}{where(r.origin('resolvers'))}",
        ) from None
