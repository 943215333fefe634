"""What one ``certificatesResolvers.<name>.acme`` asks for, as plain typed data.

The static configuration's readers (labels, files, flags and environment share one vocabulary there) fill
it; the resolver only consumes it, so nothing in ``acme_client`` reads raw configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_CERTIFICATES_DURATION", "LETS_ENCRYPT", "ResolverSettings", "renewal_check_interval"]

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
DEFAULT_CERTIFICATES_DURATION = 2160  # hours (Traefik's default: 90 days)
CHECK_INTERVAL_MAX = 600.0  # renewals and ARI are looked at least every 10 minutes


def renewal_check_interval(certificates_duration: int) -> float:
    """Seconds between renewal checks for ``certificatesDuration`` hours.

    Traefik picks its check interval from ``certificatesDuration`` (>= 1 year: 7 days, >= 90 days: 24 h,
    >= 30 days: 12 h, >= 7 days: 1 h, >= 1 day: 10 min, less: 1 min). dockroute looks every 10 minutes
    anyway and takes the renewal window from the certificate itself, so the option can only make checks
    more frequent: min(10 min, Traefik's interval).
    """
    # Traefik's table capped at 10 minutes leaves one step: under a day, every minute.
    return 60.0 if certificates_duration < 24 else CHECK_INTERVAL_MAX


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """``certificatesResolvers.<name>.acme``.

    ``eab`` is ``(kid, hmacEncoded)`` for CAs that require External Account Binding (kept out of repr: it
    is a secret). ``profile`` is asked for in newOrder only when the CA's directory offers profiles.
    ``certificates_duration`` (hours, Traefik's ``certificatesDuration``) only shortens the renewal check
    interval (see :func:`renewal_check_interval`): the renewal window itself comes from each
    certificate's own lifetime (a third of it left) or from the CA's ARI, which is more accurate than a
    configured duration. ``config_errors`` are what the reader refused (and replaced by defaults); the
    resolver logs them under its name.
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
    config_errors: tuple[str, ...] = ()
