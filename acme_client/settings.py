"""What one ``certificatesResolvers.<name>.acme`` asks for, as plain typed data.

The static configuration's readers (labels, files, flags and environment share one vocabulary there) fill
it; the resolver only consumes it, so nothing in ``acme_client`` reads raw configuration.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from acme_client.dns.base import DnsChallengeSettings

__all__ = [
    "DEFAULT_CERTIFICATES_DURATION",
    "LETS_ENCRYPT",
    "InternalCASettings",
    "ResolverSettings",
    "is_public_ca",
    "parse_permitted_domains",
    "permitted_domain",
    "renewal_check_interval",
]

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
# Hosts of the public ACME CAs' directories (production and staging). They only certify names under the
# public suffix list; a CA not listed (step-ca, Pebble, smallstep, a company's own) may certify anything.
PUBLIC_CA_HOSTS = frozenset(
    {
        "acme-v02.api.letsencrypt.org",
        "acme-staging-v02.api.letsencrypt.org",
        "acme.zerossl.com",
        "dv.acme-v02.api.pki.goog",
        "dv.acme-v02.test-api.pki.goog",
        "api.buypass.com",
        "api.test4.buypass.no",
        "acme.ssl.com",
        "acme.sectigo.com",
        "acme-api.actalis.com",
        "acme.digicert.com",
        "acme.harica.gr",  # HARICA (GÉANT TCS): https://acme.harica.gr/<account alias>/directory
        "acme.certum.pl",
        "emea.acme.atlas.globalsign.com",
        "acme.entrust.net",
    }
)
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # one DNS label (LDH), ASCII only
DEFAULT_CERTIFICATES_DURATION = 2160  # hours (Traefik's default: 90 days)
CHECK_INTERVAL_MAX = 600.0  # renewals and ARI are looked at least every 10 minutes


def is_public_ca(ca_server: str) -> bool:
    """Whether ``caServer`` is one of the public CAs (which refuse ``.lan``, ``.home.arpa``, IPs...)."""
    host = urlsplit(ca_server.strip()).hostname or ""
    return host.lower().rstrip(".") in PUBLIC_CA_HOSTS or host.lower().endswith(
        (".letsencrypt.org", ".zerossl.com", ".pki.goog", ".buypass.com", ".ssl.com", ".sectigo.com")
    )


def renewal_check_interval(certificates_duration: int) -> float:
    """Seconds between renewal checks for ``certificatesDuration`` hours.

    Traefik picks its check interval from ``certificatesDuration`` (>= 1 year: 7 days, >= 90 days: 24 h,
    >= 30 days: 12 h, >= 7 days: 1 h, >= 1 day: 10 min, less: 1 min). dockroute looks every 10 minutes
    anyway and takes the renewal window from the certificate itself, so the option can only make checks
    more frequent: min(10 min, Traefik's interval).
    """
    # Traefik's table capped at 10 minutes leaves one step: under a day, every minute.
    return 60.0 if certificates_duration < 24 else CHECK_INTERVAL_MAX


def permitted_domain(entry: str) -> str:
    """One ``internalCA.permittedDomains`` entry as it goes into the root's name constraints (lower
    case, no trailing dot). Raises ValueError with the reason for anything else.

    The one parser of these entries, for the static configuration (exit 2) and the CA alike: a value
    that passed the check but meant something else to the CA would give a root constrained otherwise
    than configured (an IP address once became an IP-only constraint, leaving every DNS name open).
    Refused: IP addresses and networks (a constrained root excludes every IP address), names whose last
    label is all digits (they read as addresses to clients), wildcards and leading dots (an entry
    already covers every name below it), and anything that is not a DNS name of LDH labels."""
    e = entry.strip().lower()
    try:
        ipaddress.ip_network(e.strip("[]"), strict=False)
    except ValueError:
        pass
    else:
        raise ValueError("an IP address or network; only domain names can be permitted")
    if e.startswith(("*", ".")):
        raise ValueError("a wildcard or leading dot; an entry already covers every name below it")
    e = e.removesuffix(".")
    labels = e.split(".")
    if not e or len(e) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("not a domain name (labels of letters, digits and inner '-', at most 63 each)")
    if labels[-1].isdigit():
        raise ValueError("the last label is all digits, which clients read as an IP address")
    return e


def parse_permitted_domains(entries: Iterable[str]) -> tuple[str, ...]:
    """Every entry through :func:`permitted_domain` (first error raised), duplicates dropped."""
    return tuple(dict.fromkeys(permitted_domain(e) for e in entries))


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """``certificatesResolvers.<name>.acme``.

    ``eab`` is ``(kid, hmacEncoded)`` for CAs that require External Account Binding (kept out of repr: it
    is a secret). ``profile`` is asked for in newOrder only when the CA's directory offers profiles.
    ``certificates_duration`` (hours, Traefik's ``certificatesDuration``) only shortens the renewal check
    interval (see :func:`renewal_check_interval`): the renewal window itself comes from each
    certificate's own lifetime (a third of it left) or from the CA's ARI, which is more accurate than a
    configured duration. Values are checked before they get here (the static configuration refuses what
    it cannot use), so nothing in them is a fallback.
    """

    email: str | None = None
    storage: str = "acme.json"
    ca_server: str = LETS_ENCRYPT
    key_type: str = "EC256"
    http_entry_point: str | None = None
    tls_challenge: bool = False
    ca_certificates: tuple[str, ...] = ()
    eab: tuple[str, str] | None = field(default=None, repr=False)
    profile: str | None = None
    certificates_duration: int = DEFAULT_CERTIFICATES_DURATION
    dns_challenge: DnsChallengeSettings | None = None  # dnsChallenge: DNS-01 through a DNS provider


@dataclass(frozen=True, slots=True)
class InternalCASettings:
    """``certificatesResolvers.<name>.internalCA``: dockroute's own CA for names no public CA will
    certify (``.lan``, ``.home.arpa``, ``.internal``). The root lives in ``storage`` (``root.crt``,
    ``root.key`` kept 0600) and is created once; leaves are issued on demand for ``leaf_lifetime``
    seconds and renewed with a third of it left. ``permitted_domains``, when given, become the root's
    X.509 name constraints (and nothing outside them is issued), so trusting the root on a device cannot
    let it vouch for any other name. ``permitted_domains`` are as :func:`permitted_domain` returns
    them (the static configuration checks them; the CA parses them again with the same function)."""

    storage: str = "internal-ca"
    leaf_lifetime: float = 7 * 86400.0
    permitted_domains: tuple[str, ...] = ()
