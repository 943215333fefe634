"""Traefik's TLS option values (Go's ``crypto/tls`` names) and what they are called in OpenSSL.

``tls.options`` keep Go's spelling in the model (``VersionTLS13``, ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``,
``CurveP256``), so a configuration written for Traefik reads unchanged. The file provider checks every value
against these tables when it parses (a bad one leaves its options set out, with one warning), and the
router maps them to OpenSSL's names when it builds the handshake contexts: one table for both, so what
parses is what the router can build.

Whether the local OpenSSL actually has a cipher suite or a group is asked of the ``ssl`` module once per
name (cached): Debian's OpenSSL 3 has no RC4 or 3DES at its default security level, and post-quantum
hybrid groups only from OpenSSL 3.5 on.
"""

from __future__ import annotations

import functools
import ssl

# Go's VersionTLS1x → the ``ssl.TLSVersion`` member name.
VERSIONS: dict[str, str] = {
    "VersionTLS10": "TLSv1",
    "VersionTLS11": "TLSv1_1",
    "VersionTLS12": "TLSv1_2",
    "VersionTLS13": "TLSv1_3",
}

# Go's TLS 1.0-1.2 cipher suites → OpenSSL's names (the list Traefik accepts).
CIPHER_SUITES: dict[str, str] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Go's default suites beyond Mozilla's intermediate list (router.tls): the CBC ones, the only suites TLS 1.0
# and 1.1 can use. Offered when minVersion allows those versions and no cipherSuites are configured.
GO_DEFAULT_CBC = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
)
LEGACY_VERSIONS = frozenset({"VersionTLS10", "VersionTLS11"})
# Names Go accepts in the list but never uses to choose a TLS 1.2 suite: TLS 1.3's (not configurable in
# Go, nor here: OpenSSL's defaults, all sound) and the fallback signalling value.
IGNORED_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_FALLBACK_SCSV"}
)

# Go's curve names and the RFC 8446 names Traefik also accepts → OpenSSL's group names.
CURVES: dict[str, str] = {
    "CurveP256": "prime256v1",
    "secp256r1": "prime256v1",
    "CurveP384": "secp384r1",
    "secp384r1": "secp384r1",
    "CurveP521": "secp521r1",
    "secp521r1": "secp521r1",
    "X25519": "X25519",
    "x25519": "X25519",
    "X25519MLKEM768": "X25519MLKEM768",
    "x25519mlkem768": "X25519MLKEM768",
    "SecP256r1MLKEM768": "SecP256r1MLKEM768",
    "secp256r1mlkem768": "SecP256r1MLKEM768",
    "SecP384r1MLKEM1024": "SecP384r1MLKEM1024",
    "secp384r1mlkem1024": "SecP384r1MLKEM1024",
}

# ``SSLContext.set_groups`` (several groups, in order) where the ssl module has it; else one curve only.
SEVERAL_GROUPS = hasattr(ssl.SSLContext, "set_groups")

NO_CLIENT_CERT = "NoClientCert"
REQUEST_CLIENT_CERT = "RequestClientCert"
REQUIRE_ANY_CLIENT_CERT = "RequireAnyClientCert"
VERIFY_CLIENT_CERT_IF_GIVEN = "VerifyClientCertIfGiven"
REQUIRE_AND_VERIFY_CLIENT_CERT = "RequireAndVerifyClientCert"
CLIENT_AUTH_TYPES = (
    NO_CLIENT_CERT,
    REQUEST_CLIENT_CERT,
    REQUIRE_ANY_CLIENT_CERT,
    VERIFY_CLIENT_CERT_IF_GIVEN,
    REQUIRE_AND_VERIFY_CLIENT_CERT,
)
# Accepting a client certificate without verifying it needs an OpenSSL verify callback, which Python's
# ``ssl`` module does not expose: with CERT_OPTIONAL/CERT_REQUIRED and no CA, OpenSSL refuses every client
# certificate ("unknown ca"), and no verify flag (partial chains, trusted-first, ...) waives the chain
# check. Serving these types as something else would weaken or strengthen them silently.
UNSERVABLE_CLIENT_AUTH = {
    REQUEST_CLIENT_CERT: "Python's ssl module cannot accept a client certificate without verifying it",
    REQUIRE_ANY_CLIENT_CERT: "Python's ssl module cannot accept a client certificate without verifying it",
}

# The client auth "type" of a ``default`` options set refused when parsed: kept under that name so that
# HTTPS fails closed (as in Traefik, whose default TLS configuration is then missing), instead of falling
# back to the built-in defaults, which could drop what the user asked for (client certificates, TLS 1.3).
REFUSED_DEFAULT = "(the default TLS options were refused when parsed)"

HTTP_11 = "http/1.1"
ACME_TLS_1 = "acme-tls/1"
SERVED_ALPN = (HTTP_11, ACME_TLS_1)  # what dockroute speaks to clients (HTTP/1.1 and TLS-ALPN-01)


@functools.lru_cache(maxsize=64)
def cipher_available(openssl_name: str) -> bool:
    """Whether the local OpenSSL can negotiate this TLS 1.2 suite at its configured security level."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.set_ciphers(openssl_name)
    except ssl.SSLError:
        return False
    return any(c["name"] == openssl_name for c in ctx.get_ciphers())


@functools.lru_cache(maxsize=32)
def group_available(openssl_name: str) -> bool:
    """Whether the local OpenSSL knows this key-exchange group (asked through ``set_ecdh_curve``, the call
    the router makes where ``set_groups`` is missing)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    setter = getattr(ctx, "set_groups", None)
    try:
        if setter is not None:
            setter(openssl_name)
        else:
            ctx.set_ecdh_curve(openssl_name)
    except (ssl.SSLError, ValueError):
        return False
    return True


def load_ca(pem: str) -> None:
    """Check that ``pem`` holds at least one certificate OpenSSL accepts as a CA; ``ValueError`` if not."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("no PEM certificate")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=pem)
    except ssl.SSLError as e:
        raise ValueError(e.reason or str(e)) from None
