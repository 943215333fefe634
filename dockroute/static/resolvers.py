"""``certificatesResolvers``: every resolver typed and checked at start, with the rest of the static
configuration (:func:`read_resolvers`).

Each of Traefik's ACME keys is either acted on (what :class:`~acme_client.settings.ResolverSettings`
holds, ``dnsChallenge`` through :mod:`.dns_challenge`), refused by name when ignoring it would
change what the user gets (``emailAddresses``, Traefik's ``tailscale`` resolver), or accepted with a
warning naming it when it has no effect on security or on which certificates are served (timeouts,
delays, ``preferredChain``, ``caServerName``). A resolver that cannot work is a configuration error
(exit 2), not a log line at order time. ``internalCA`` is dockroute's own:
:class:`~acme_client.settings.InternalCASettings`.

This is the only reader of these keys: a value it cannot use stops the start; no default is put in its
place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from acme_client.kubernetes.settings import is_kubernetes_storage
from acme_client.settings import (
    DEFAULT_CERTIFICATES_DURATION,
    LETS_ENCRYPT,
    InternalCASettings,
    ResolverSettings,
    is_public_ca,
    permitted_domain,
)
from dockroute.kubernetes_certs import storage_problem
from dockroute.static.dns_challenge import read_dns_challenge
from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, get, where

__all__ = ["KEY_TYPES", "read_resolvers"]

KEY_TYPES = ("EC256", "EC384", "RSA2048", "RSA4096", "RSA8192")  # Traefik's keyType values
DEFAULT_LEAF_LIFETIME = 168 * 3600.0  # internalCA.leafLifetime: a week, renewed with a third left
# Apple platforms reject TLS server certificates valid longer than 825 days, even under a user-trusted root.
MAX_LEAF_LIFETIME = 825 * 86400.0

_DEFAULT_ACME = ResolverSettings()
Resolvers = dict[str, ResolverSettings | InternalCASettings]


def _on(tree: Any, key: str) -> bool:
    """Whether a switch section (``tlsChallenge: {}``, a bare flag, ``=true``) is set and not off."""
    node = get(tree, key)
    return node is not None and node is not OFF


def read_resolvers(
    tree: Any, entry_points: Sequence[str], environ: Mapping[str, str]
) -> tuple[Resolvers, list[str], list[str]]:
    """Every resolver by name (in the order given), the key paths that were set and are accepted
    without effect (the app names each in a warning at start), and other warnings for the start's log
    (whole messages: a DNS provider's variable it does not read, a deprecated key). ``entry_points`` are
    the live entry point names, for ``httpChallenge.entryPoint``; ``environ`` holds the DNS providers'
    credentials (lego's variables), read once here."""
    entries = tree if isinstance(tree, dict) else {}
    kinds: dict[str, str] = {}
    for name, sub in entries.items():
        if sub is OFF:
            continue
        path = f"certificatesResolvers.{name}"
        if _on(sub, "tailscale"):
            raise StaticConfigError(
                f"{path}.tailscale",
                "Tailscale resolvers are not supported: dockroute cannot ask tailscaled for certificates; "
                "use acme (or internalCA for names only your devices resolve)",
            )
        present = [k for k in ("acme", "internalCA") if _on(sub, k)]
        if len(present) != 1:
            raise StaticConfigError(
                path, "set exactly one of acme or internalCA" + (", not both" if present else "")
            )
        kinds[name] = present[0]
    warned: list[str] = []
    warnings: list[str] = []
    out: Resolvers = {}
    for name, kind in kinds.items():
        if kind == "acme":
            r = Reader(entries[name], f"certificatesResolvers.{name}").sub("acme")
            out[name] = _acme(r, entry_points, environ, warned, warnings)
    # The internal CA's default folder sits beside the first ACME resolver's storage file.
    first_acme = next(
        (s for s in out.values() if isinstance(s, ResolverSettings) and not is_kubernetes_storage(s.storage)),
        None,
    )
    default_storage = os.path.join(
        os.path.dirname(first_acme.storage if first_acme else "acme.json"), "internal-ca"
    )
    # Each internal CA needs its own folder, which is no ACME storage file either (compared as the
    # paths the processes will open: realpath, so a symlink or "a/../b" is the same folder).
    folders: dict[str, str] = {
        os.path.realpath(s.storage): name for name, s in out.items() if isinstance(s, ResolverSettings)
    }
    for name, kind in kinds.items():
        if kind == "internalCA":
            r = Reader(entries[name], f"certificatesResolvers.{name}").sub("internalCA")
            ca = _internal_ca(r, default_storage)
            other = folders.get(os.path.realpath(ca.storage))
            if other is not None:
                what = "'s folder" if isinstance(out[other], InternalCASettings) else "'s ACME storage file"
                raise StaticConfigError(
                    f"{r.path}.storage",
                    f"{ca.storage!r} is also resolver {other}{what}: each internal CA needs its own "
                    f"folder{where(r.origin('storage'))}",
                )
            folders[os.path.realpath(ca.storage)] = name
            out[name] = ca
    return {name: out[name] for name in kinds}, warned, warnings


def _acme(
    r: Reader,
    entry_points: Sequence[str],
    environ: Mapping[str, str],
    warned: list[str],
    warnings: list[str],
) -> ResolverSettings:
    """One ``acme`` section: every Traefik key checked, then acted on, refused or warned about."""
    ca_server = r.text("caServer", LETS_ENCRYPT).strip()
    parts = urlsplit(ca_server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise StaticConfigError(
            f"{r.path}.caServer",
            f"expected the URL of an ACME directory, like {LETS_ENCRYPT}, got {ca_server!r}"
            f"{where(r.origin('caServer'))}",
        )
    email = r.text("email")
    if email is None and is_public_ca(ca_server):
        raise StaticConfigError(
            f"{r.path}.email",
            f"required: {parts.hostname} is a public CA; the account is registered with this contact "
            "address (the CA's notices about the account and its certificates go there)",
        )
    addresses = r.items("emailAddresses")
    if addresses:
        # Traefik puts them in the CSR: certificates ordered without them would not carry what was asked.
        raise StaticConfigError(
            f"{r.path}.emailAddresses",
            "email addresses in certificates are not supported; refusing to order certificates without "
            f"them{where(r.origin('emailAddresses'))}",
        )
    _warn_if_set(r, warned)
    dns = None
    if _on(r.tree, "dnsChallenge"):
        dns = read_dns_challenge(r.sub("dnsChallenge"), environ, warnings)
    settings = ResolverSettings(
        email=email.strip() if email else None,
        storage=_storage(r),
        ca_server=ca_server,
        key_type=r.text("keyType", _DEFAULT_ACME.key_type, choices=KEY_TYPES),
        http_entry_point=_http_challenge(r, entry_points, warned),
        tls_challenge=_tls_challenge(r, warned),
        ca_certificates=_ca_certificates(r),
        eab=_eab_pair(r.sub("eab")),
        profile=(r.text("profile") or "").strip() or None,
        certificates_duration=r.integer("certificatesDuration", DEFAULT_CERTIFICATES_DURATION, minimum=1),
        dns_challenge=dns,
    )
    if settings.http_entry_point is None and not settings.tls_challenge and dns is None:
        # Traefik orders nothing then; answering HTTP-01 on every entry point is not what was asked.
        raise StaticConfigError(
            r.path,
            "ACME challenge not specified, please select TLS or HTTP or DNS Challenge (tlsChallenge, "
            "httpChallenge.entryPoint naming the entry point on port 80, or dnsChallenge.provider)",
        )
    return settings


def _storage(r: Reader) -> str:
    """``storage``: an acme.json file, or dockroute's ``kubernetes://<namespace>/<secret>`` (a Secret
    shared by replicas), refused here when it cannot be used."""
    storage = r.text("storage", "acme.json")
    problem = storage_problem(storage)
    if problem is not None:
        raise StaticConfigError(f"{r.path}.storage", f"{problem}{where(r.origin('storage'))}")
    return storage


def _warn_if_set(r: Reader, warned: list[str]) -> None:
    """Keys accepted (their values checked) that change neither security nor what is served:
    - the ACME client timeouts: dockroute bounds every ACME request with its own deadlines;
    - preferredChain: the CA's default chain is served; it verifies in every current trust store
      (the choice mattered for old Android devices during Let's Encrypt's 2021 root change);
    - caServerName: the CA's certificate is verified against the caServer URL's host, which is
      stricter (a mismatch fails the connection and the resolver logs it, nothing is trusted more);
    - caSystemCertPool with caCertificates: only the caCertificates are trusted (stricter as well);
    - disableCommonName: false: dockroute's CSRs never carry a common name (names are in the SANs,
      which is all clients read), so only an explicit false differs from what it does."""
    for key in ("clientTimeout", "clientResponseHeaderTimeout", "certificateTimeout"):
        if r.leaf(key) is not None:
            r.duration(key, 0.0)
            warned.append(f"{r.path}.{key}")
    for key in ("preferredChain", "caServerName"):
        if r.text(key) is not None:
            warned.append(f"{r.path}.{key}")
    if r.flag("caSystemCertPool", False) and r.items("caCertificates"):
        warned.append(f"{r.path}.caSystemCertPool")
    if r.leaf("disableCommonName") is not None and not r.flag("disableCommonName", True):
        warned.append(f"{r.path}.disableCommonName")


def _http_challenge(r: Reader, entry_points: Sequence[str], warned: list[str]) -> str | None:
    """``httpChallenge.entryPoint``: the entry point (on port 80) that answers HTTP-01, which must exist."""
    if not _on(r.tree, "httpChallenge"):
        return None
    h = r.sub("httpChallenge")
    if h.leaf("delay") is not None:
        h.duration("delay", 0.0)
        warned.append(f"{h.path}.delay")  # the token is served before the CA is asked to look
    found = h.reference("entryPoint", list(entry_points), "entry point")
    if found is None:
        raise StaticConfigError(
            f"{h.path}.entryPoint", "required: the entry point on port 80 that answers the HTTP-01 challenge"
        )
    return found


def _tls_challenge(r: Reader, warned: list[str]) -> bool:
    """``tlsChallenge``: a switch section (``{}``, a bare flag or a true word); its ``delay`` has no use
    here since the challenge certificate is in place before the CA is asked to look."""
    if not _on(r.tree, "tlsChallenge"):
        return False
    t = r.sub("tlsChallenge")
    if t.leaf("delay") is not None:
        t.duration("delay", 0.0)
        warned.append(f"{t.path}.delay")
    return True


def _ca_certificates(r: Reader) -> tuple[str, ...]:
    """``caCertificates``: PEM files trusted for the CA's own HTTPS; a missing one would only surface
    as a failed order much later, so it is refused now."""
    out = []
    for item, path in r.items("caCertificates"):
        if not os.path.isfile(item):
            raise StaticConfigError(path, f"no such file: {item}{where(r.origin('caCertificates'))}")
        out.append(item)
    return tuple(out)


def _eab_pair(e: Reader) -> tuple[str, str] | None:
    """``eab``: External Account Binding needs both ``kid`` and ``hmacEncoded`` (or neither)."""
    kid, hmac_encoded = e.text("kid"), e.text("hmacEncoded")
    if kid is None and hmac_encoded is None:
        return None
    if kid is None or hmac_encoded is None:
        missing = "kid" if kid is None else "hmacEncoded"
        raise StaticConfigError(
            f"{e.path}.{missing}",
            "required: External Account Binding needs both kid and hmacEncoded"
            f"{where(e.origin('kid') or e.origin('hmacEncoded'))}",
        )
    return kid.strip(), hmac_encoded.strip()


def _internal_ca(r: Reader, default_storage: str) -> InternalCASettings:
    storage = r.text("storage", default_storage)
    if os.path.exists(storage) and not os.path.isdir(storage):
        raise StaticConfigError(
            f"{r.path}.storage", f"{storage!r} is a file; storage is a folder{where(r.origin('storage'))}"
        )
    lifetime = r.duration("leafLifetime", DEFAULT_LEAF_LIFETIME)
    if not 60 <= lifetime <= MAX_LEAF_LIFETIME:
        why = (
            "must be at least 1m (leaves are renewed with a third of it left)"
            if lifetime < 60
            else "must be at most 825 days (19800h): Apple platforms reject server certificates valid "
            "longer, even from a root the user trusts"
        )
        raise StaticConfigError(f"{r.path}.leafLifetime", f"{why}{where(r.origin('leafLifetime'))}")
    return InternalCASettings(storage=storage, leaf_lifetime=lifetime, permitted_domains=_permitted(r))


def _permitted(r: Reader) -> tuple[str, ...]:
    """``permittedDomains``, each entry read by :func:`acme_client.settings.permitted_domain` (the
    parser the CA uses too). Set but empty is refused: the root would be created unconstrained, and a
    root's constraints never change."""
    items = r.items("permittedDomains")
    if not items and r.has("permittedDomains"):
        raise StaticConfigError(
            f"{r.path}.permittedDomains",
            "set but empty: list domains like 'lan,home.arpa', or leave the key out for a root that "
            f"may sign any name{where(r.origin('permittedDomains'))}",
        )
    domains = []
    for item, path in items:
        try:
            domains.append(permitted_domain(item))
        except ValueError as exc:
            raise StaticConfigError(
                path,
                f"expected a domain name like 'lan' or 'home.arpa' (it covers every name below it), got "
                f"{item!r}: {exc}{where(r.origin('permittedDomains'))}",
            ) from exc
    return tuple(dict.fromkeys(domains))
