"""``tls.options.<name>`` of a dynamic configuration → :class:`~discover.model.TLSOptions`.

Each options set is checked on its own against Go's names (:mod:`discover.tls_names`): a set with a bad
value is left out with one warning naming ``tls.options.<name>.<key>`` and the value, and the routers that
use it are then reported as not routed, as Traefik does for options it cannot build; the rest of the file
is kept. Values that dockroute cannot serve as Traefik does (client certificates accepted unverified, an
ALPN list without HTTP/1.1) are refused the same way rather than served as something else.
"""

from __future__ import annotations

from typing import Any

from discover import tls_names as names
from discover.model import DEFAULT_TLS_OPTIONS, ClientAuth, Domain, TLSOptions
from discover.readers import At, ConfigError, Fields, as_bool, as_list, as_str, named, str_list


class _Refused(Exception):
    """One options set is left out: ``at`` names the key."""

    def __init__(self, at: At, message: str) -> None:
        super().__init__(message)
        self.at = at


_OPTION_KEYS = (
    "minVersion",
    "maxVersion",
    "cipherSuites",
    "curvePreferences",
    "clientAuth",
    "sniStrict",
    "alpnProtocols",
    "disableSessionTickets",
    "preferServerCipherSuites",
)


def tls_options(value: Any, at: At, warnings: list[str]) -> dict[str, TLSOptions]:
    """``tls.options.<name>``: each set checked on its own; a set with a bad value is left out with one
    warning naming the key and the value (routers using it are then not routed), never the whole file.
    A bad ``default`` set is kept as unusable (:data:`~discover.tls_names.REFUSED_DEFAULT`): the router
    then refuses HTTPS handshakes rather than serve the built-in defaults in its place."""
    options: dict[str, TLSOptions] = {}
    for name, v, oat in named(value, at, "TLS options"):
        said: list[str] = []  # a set left out gets its one line only
        try:
            options[name] = _tls_option_set(v, oat, said)
            warnings.extend(said)
            continue
        except ConfigError as e:
            why = e.reason
        except _Refused as e:
            why = f"{e.at.path}: {e}"
        if name == DEFAULT_TLS_OPTIONS:
            # Falling back to the built-in defaults could drop what was asked (client certificates, TLS
            # 1.3 only): HTTPS fails closed instead, as in Traefik.
            options[name] = TLSOptions(client_auth=ClientAuth((), names.REFUSED_DEFAULT))
            warnings.append(f"{why}; TLS options 'default' are unusable: HTTPS handshakes are refused")
        else:
            warnings.append(f"{why}; TLS options {name!r} are left out (routers using them are not routed)")
    return options


def _tls_option_set(value: Any, at: At, warnings: list[str]) -> TLSOptions:
    """One options set, with Traefik's defaults for what it leaves out; ``_Refused``/``ConfigError``
    name the first key that makes it unusable."""
    f = Fields(value, at, _OPTION_KEYS)
    versions: dict[str, str] = {}
    for key in ("minVersion", "maxVersion"):
        v, vat = f.get(key)
        if v is not None:
            versions[key] = as_str(v, vat)
            if versions[key] not in names.VERSIONS:
                raise _Refused(vat, f"unknown TLS version {v!r}; expected one of {', '.join(names.VERSIONS)}")
    order = list(names.VERSIONS)
    low, high = versions.get("minVersion", "VersionTLS12"), versions.get("maxVersion")
    if high is not None and order.index(high) < order.index(low):
        raise _Refused(f.get("maxVersion")[1], f"{high} is below minVersion {low}")
    if f.present("preferServerCipherSuites"):
        as_bool(*f.get("preferServerCipherSuites"))
        warnings.append(
            f"{at.path}.preferServerCipherSuites: deprecated and ineffective (as in Traefik); ignored"
        )
    return TLSOptions(
        min_version=low,
        max_version=high or "",
        cipher_suites=_cipher_suites(*f.get("cipherSuites"), warnings, tls12=low != "VersionTLS13"),
        curve_preferences=_curves(*f.get("curvePreferences"), warnings),
        sni_strict=as_bool(*f.get("sniStrict")) if f.present("sniStrict") else False,
        alpn_protocols=_alpn(*f.get("alpnProtocols"), warnings)
        if "alpnProtocols" in f
        else TLSOptions().alpn_protocols,
        client_auth=_client_auth(*f.get("clientAuth")),
        disable_session_tickets=as_bool(*f.get("disableSessionTickets"))
        if f.present("disableSessionTickets")
        else False,
    )


def _cipher_suites(value: Any, at: At, warnings: list[str], *, tls12: bool) -> tuple[str, ...]:
    """Go's suite names; TLS 1.3's are ignored, as in Go. A list naming no TLS 1.2 suite while TLS 1.2 is
    allowed is refused: Go would fail every TLS 1.2 handshake, and () here means the defaults."""
    suites = str_list(value, at)
    ignored: list[str] = []
    for i, s in enumerate(suites):
        if s in names.IGNORED_SUITES:
            ignored.append(f"{at.index(i).path}: {s} is not a TLS 1.2 suite; ignored, as Go does")
        elif s not in names.CIPHER_SUITES:
            raise _Refused(
                at.index(i),
                f"unknown cipher suite {s!r} (Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
            )
        elif not names.cipher_available(names.CIPHER_SUITES[s]):
            raise _Refused(at.index(i), f"cipher suite {s} is not available in this OpenSSL")
    kept = tuple(s for s in suites if s not in names.IGNORED_SUITES)
    if suites and not kept and tls12:
        raise _Refused(at, "names no TLS 1.2 suite while TLS 1.2 is allowed (set minVersion: VersionTLS13)")
    warnings.extend(ignored)
    return kept


def _curves(value: Any, at: At, warnings: list[str]) -> tuple[str, ...]:
    """Go's (or RFC 8446) curve names. Python 3.11's ssl module sets one group only: the first is used,
    and the others are named in a warning."""
    curves = str_list(value, at)
    for i, c in enumerate(curves):
        if c not in names.CURVES:
            raise _Refused(at.index(i), f"unknown curve {c!r}; expected one of {', '.join(names.CURVES)}")
        if not names.group_available(names.CURVES[c]):
            raise _Refused(at.index(i), f"curve {c} is not available in this OpenSSL")
    if len(curves) > 1 and not names.SEVERAL_GROUPS:
        warnings.append(
            f"{at.path}: this Python's ssl module sets one curve only: {curves[0]} is used, "
            f"{', '.join(curves[1:])} not offered"
        )
    return curves


def _alpn(value: Any, at: At, warnings: list[str]) -> tuple[str, ...]:
    """dockroute speaks HTTP/1.1 (and TLS-ALPN-01) to clients: other protocols are not offered; a list
    without http/1.1 would make every client fail that offers it, as in Traefik, so it is refused."""
    protocols = str_list(value, at)
    others = [p for p in protocols if p not in names.SERVED_ALPN]
    if protocols and names.HTTP_11 not in protocols:
        raise _Refused(at, f"{list(protocols)} lacks http/1.1, the only protocol dockroute serves")
    if others:
        warnings.append(f"{at.path}: {', '.join(others)} not served (dockroute speaks HTTP/1.1 to clients)")
    return protocols


def _client_auth(value: Any, at: At) -> ClientAuth:
    f = Fields(value, at, ("caFiles", "clientAuthType"))
    ca_files = str_list(*f.get("caFiles"))
    for i, ca in enumerate(ca_files):
        problem = _ca_problem(ca)
        if problem:
            raise _Refused(f.get("caFiles")[1].index(i), problem)
    # Traefik: CA files alone mean RequireAndVerifyClientCert.
    kind = names.REQUIRE_AND_VERIFY_CLIENT_CERT if ca_files else names.NO_CLIENT_CERT
    if f.present("clientAuthType"):
        kind, kat = as_str(*f.get("clientAuthType")), f.get("clientAuthType")[1]
        if kind not in names.CLIENT_AUTH_TYPES:
            raise _Refused(
                kat,
                f"unknown client auth type {kind!r}; expected one of {', '.join(names.CLIENT_AUTH_TYPES)}",
            )
        if kind in names.UNSERVABLE_CLIENT_AUTH:
            raise _Refused(kat, f"{kind} cannot be served: {names.UNSERVABLE_CLIENT_AUTH[kind]}")
        if not ca_files and kind in (names.VERIFY_CLIENT_CERT_IF_GIVEN, names.REQUIRE_AND_VERIFY_CLIENT_CERT):
            raise _Refused(kat, f"{kind} needs clientAuth.caFiles")
    return ClientAuth(ca_files=ca_files, client_auth_type=kind)


def _ca_problem(value: str) -> str | None:
    """Why a CA file (a path or inline PEM, as Traefik allows) cannot be used, or None."""
    try:
        if "-----BEGIN" in value:
            data = value
        else:
            with open(value, encoding="ascii", errors="replace") as fh:
                data = fh.read()
        names.load_ca(data)
    except OSError as e:
        return f"cannot read CA file {value!r}: {e.strerror or e}"
    except ValueError as e:
        return (
            f"no usable CA certificate in {'the inline PEM' if '-----BEGIN' in value else repr(value)}: {e}"
        )
    return None


def read_domains(value: Any, at: At) -> tuple[Domain, ...]:
    """A router's ``tls.domains`` (``main`` and ``sans``): the one reader for HTTP and TCP routers."""
    out = []
    for v, dat in as_list(value, at):
        df = Fields(v, dat, ("main", "sans"))
        out.append(Domain(main=as_str(*df.required("main")), sans=str_list(*df.get("sans"))))
    return tuple(out)
