"""Providers by name, each checked against the environment at start (:func:`read_provider`).

Provider modules are imported only when named, so an unused provider costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from acme_client.dns.base import DnsConfigError, DnsProvider, ProviderConfig, ProviderSpec
from acme_client.dns.credentials import read_config

__all__ = ["PROVIDERS", "build_provider", "provider_spec", "read_provider"]

# name (Traefik's dnsChallenge.provider) → the module holding its SPEC
PROVIDERS: Mapping[str, str] = {
    "rfc2136": "acme_client.dns.rfc2136",
    "cloudflare": "acme_client.dns.cloudflare",
    "duckdns": "acme_client.dns.duckdns",
    "exec": "acme_client.dns.exec_provider",
    "httpreq": "acme_client.dns.httpreq",
}


def provider_spec(name: str) -> ProviderSpec:
    """The SPEC of provider ``name``; DnsConfigError naming the ones that exist for any other."""
    module = PROVIDERS.get(name)
    if module is None:
        raise DnsConfigError(
            f"DNS provider {name!r} is not supported; supported: {', '.join(sorted(PROVIDERS))} "
            "(exec and httpreq hand the records to a script or an HTTP endpoint of yours)"
        )
    return importlib.import_module(module).SPEC


def read_provider(name: str, environ: Mapping[str, str]) -> tuple[ProviderConfig, list[str]]:
    """Provider ``name``'s config from ``environ`` (lego's names, aliases, ``_FILE`` variants), and the
    warnings to log at start (variables under its prefix that it does not read). Raises DnsConfigError
    naming the first missing or malformed variable.

    The provider is built once here and thrown away (a build only parses its values, it never calls
    out), so a value it cannot use (a TSIG algorithm, a nameserver) also stops the start, not the first
    order hours later."""
    spec = provider_spec(name.strip().lower())
    config, warnings = read_config(spec, environ)
    if spec.build is not None:
        spec.build(config)
    return config, warnings


def build_provider(config: ProviderConfig) -> DnsProvider:
    spec = provider_spec(config.provider)
    assert spec.build is not None
    return spec.build(config)
