"""``certificatesResolvers.<name>.acme`` read into :class:`acme_client.settings.ResolverSettings`.

Keys are matched and booleans read the one way every source is read (``discover.values``). A value that
cannot be used is not guessed: it falls back to the default and the reason goes to ``config_errors``,
which the resolver logs under its name (an ACME resolver that cannot work must not stop a proxy that
serves everything else).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acme_client.settings import DEFAULT_CERTIFICATES_DURATION, LETS_ENCRYPT, ResolverSettings
from discover.values import BOOL_WORDS, find_key, parse_bool

__all__ = ["resolver_settings"]


def _get(d: Mapping[str, Any], key: str, default: Any = None) -> Any:
    found = find_key(d, key)
    return default if found is None else d[found]


def _switch(name: str, value: Any) -> tuple[bool, str | None]:
    """Traefik's switch sections: ``tlsChallenge: {}`` (present, empty) turns it on, as does a true word
    or a bare flag (empty text); absent, a false word or ``null`` leave it off. Any other word is refused
    (off, with the reason) rather than guessed."""
    if isinstance(value, str):
        on = True if not value.strip() else parse_bool(value)
        if on is None:
            return False, f"{name} {value!r} is neither a section nor {BOOL_WORDS}; {name} stays off"
        return on, None
    return value is not None and value is not False, None


def _hours(value: Any) -> tuple[int, str | None]:
    """``certificatesDuration`` as whole hours, or the default and the reason it was refused."""
    if value is None:
        return DEFAULT_CERTIFICATES_DURATION, None
    hours: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        hours = value
    elif isinstance(value, str):
        try:
            hours = int(value.strip())
        except ValueError:
            hours = None
    if hours is None or hours <= 0:
        return DEFAULT_CERTIFICATES_DURATION, (
            f"certificatesDuration {value!r} is not a positive whole number of hours; "
            f"using {DEFAULT_CERTIFICATES_DURATION}"
        )
    return hours, None


def _eab(value: Any) -> tuple[tuple[str, str] | None, str | None]:
    """``eab: {kid, hmacEncoded}`` as a pair, or None and the reason when the section is incomplete."""
    if value is None or value == {}:
        return None, None
    if not isinstance(value, Mapping):
        return None, "eab must be a section with kid and hmacEncoded; registering without it"
    kid, hmac_encoded = _get(value, "kid"), _get(value, "hmacEncoded")
    if not kid or not hmac_encoded:
        return None, "eab needs both kid and hmacEncoded; registering without external account binding"
    return (str(kid), str(hmac_encoded)), None


def resolver_settings(raw: Mapping[str, Any]) -> ResolverSettings:
    """One resolver's ``acme`` section (Traefik's keys, any case) as typed settings."""
    http = _get(raw, "httpChallenge") or {}
    cas = _get(raw, "caCertificates") or ()
    if isinstance(cas, str):
        cas = tuple(c.strip() for c in cas.split(",") if c.strip())
    eab, eab_error = _eab(_get(raw, "eab"))
    hours, hours_error = _hours(_get(raw, "certificatesDuration"))
    tls_challenge, tls_error = _switch("tlsChallenge", _get(raw, "tlsChallenge"))
    profile = str(_get(raw, "profile") or "").strip() or None
    return ResolverSettings(
        email=_get(raw, "email"),
        storage=_get(raw, "storage", "acme.json"),
        ca_server=_get(raw, "caServer", LETS_ENCRYPT),
        key_type=str(_get(raw, "keyType", "EC256")),
        http_entry_point=_get(http, "entryPoint") if isinstance(http, Mapping) else None,
        tls_challenge=tls_challenge,
        ca_certificates=tuple(cas),
        eab=eab,
        profile=profile,
        certificates_duration=hours,
        config_errors=tuple(e for e in (eab_error, hours_error, tls_error) if e),
    )
