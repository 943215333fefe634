"""``tls.options`` in a dynamic configuration: Go's names checked when parsed, a bad set left out with one
warning naming ``tls.options.<name>.<key>`` and the value, the rest of the file kept."""

from __future__ import annotations

import pytest
import trustme

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.model import ClientAuth, TLSOptions
from discover.parse import parse_dynamic_with_warnings
from discover.tls_names import CIPHER_SUITES, CURVES, REFUSED_DEFAULT, cipher_available


def options(opts: dict) -> tuple[dict, list[str]]:
    cfg, warnings = parse_dynamic_with_warnings({"tls": {"options": opts}})
    return dict(cfg.tls.options), warnings


@pytest.fixture(scope="module")
def ca_pem() -> str:
    return trustme.CA().cert_pem.bytes().decode()


def test_every_key_in_gos_names(tmp_path, ca_pem):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca_pem)
    got, warnings = options(
        {
            "mtls": {
                "minVersion": "VersionTLS12",
                "maxVersion": "VersionTLS13",
                "cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
                "curvePreferences": ["CurveP256"],
                "sniStrict": "true",
                "alpnProtocols": ["http/1.1", "acme-tls/1"],
                "clientAuth": {
                    "caFiles": [str(ca_file), ca_pem],
                    "clientAuthType": "VerifyClientCertIfGiven",
                },
                "disableSessionTickets": True,
            },
            "default": None,
        }
    )
    assert got["mtls"] == TLSOptions(
        min_version="VersionTLS12",
        max_version="VersionTLS13",
        cipher_suites=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",),
        curve_preferences=("CurveP256",),
        sni_strict=True,
        alpn_protocols=("http/1.1", "acme-tls/1"),
        client_auth=ClientAuth((str(ca_file), ca_pem), "VerifyClientCertIfGiven"),
        disable_session_tickets=True,
    )
    assert got["default"] == TLSOptions()
    # the TLS 1.3 suite is ignored, as Go does, and said so
    assert warnings == [
        "tls.options.mtls.cipherSuites[1]: TLS_AES_128_GCM_SHA256 is not a TLS 1.2 suite; ignored, as Go does"
    ]


def test_ca_files_alone_mean_require_and_verify(ca_pem):
    got, _ = options({"m": {"clientAuth": {"caFiles": [ca_pem]}}})
    assert got["m"].client_auth.client_auth_type == "RequireAndVerifyClientCert"


@pytest.mark.parametrize(
    ("opts", "key", "value"),
    [
        ({"minVersion": "VersionTLS31"}, "minVersion", "VersionTLS31"),
        ({"maxVersion": "1.3"}, "maxVersion", "1.3"),
        ({"minVersion": "VersionTLS13", "maxVersion": "VersionTLS12"}, "maxVersion", "VersionTLS12"),
        ({"cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA257"]}, "cipherSuites[0]", "SHA257"),
        ({"cipherSuites": ["TLS_RSA_WITH_RC4_128_SHA"]}, "cipherSuites[0]", "RC4"),  # not in OpenSSL 3
        ({"cipherSuites": ["TLS_AES_128_GCM_SHA256"]}, "cipherSuites", "no TLS 1.2 suite"),
        ({"curvePreferences": ["CurveP255"]}, "curvePreferences[0]", "CurveP255"),
        ({"alpnProtocols": ["h2"]}, "alpnProtocols", "http/1.1"),
        (
            {"clientAuth": {"clientAuthType": "RequireAndVerify"}},
            "clientAuth.clientAuthType",
            "RequireAndVerify",
        ),
        (
            {"clientAuth": {"clientAuthType": "RequireAndVerifyClientCert"}},
            "clientAuth.clientAuthType",
            "caFiles",
        ),
        (
            {"clientAuth": {"clientAuthType": "VerifyClientCertIfGiven"}},
            "clientAuth.clientAuthType",
            "caFiles",
        ),
        (
            {"clientAuth": {"caFiles": ["/nonexistent/ca.pem"]}},
            "clientAuth.caFiles[0]",
            "/nonexistent/ca.pem",
        ),
        (
            {"clientAuth": {"caFiles": ["-----BEGIN CERTIFICATE-----\nnope"]}},
            "clientAuth.caFiles[0]",
            "inline",
        ),
        ({"sniStrict": "maybe"}, "sniStrict", "maybe"),
        ({"minversion": "VersionTLS12", "cipherSuite": ["x"]}, "cipherSuite", "cipherSuite"),
    ],
)
def test_a_bad_value_leaves_out_its_set_only(opts, key, value):
    got, warnings = options({"bad": opts, "good": {"minVersion": "VersionTLS13"}})
    assert set(got) == {"good"}
    (line,) = warnings
    assert line.startswith(f"tls.options.bad.{key}: ") and value in line
    assert "'bad' are left out (routers using them are not routed)" in line


@pytest.mark.parametrize("kind", ["RequestClientCert", "RequireAnyClientCert"])
def test_unverified_client_certificates_are_refused_by_name(kind, ca_pem):
    """Python's ssl cannot accept a client certificate without verifying it (see test_tls_options):
    serving these as NoClientCert or as a verified type would weaken or strengthen them silently."""
    got, (line,) = options({"x": {"clientAuth": {"caFiles": [ca_pem], "clientAuthType": kind}}})
    assert got == {}
    assert line.startswith("tls.options.x.clientAuth.clientAuthType: ") and kind in line
    assert "without verifying" in line


def test_warned_but_kept():
    got, warnings = options(
        {
            "o": {
                "preferServerCipherSuites": True,
                "alpnProtocols": ["h2", "http/1.1"],
                "curvePreferences": ["X25519", "CurveP256"],
            }
        }
    )
    assert got["o"].alpn_protocols == ("h2", "http/1.1")
    assert any(w.startswith("tls.options.o.preferServerCipherSuites: deprecated") for w in warnings)
    assert any(w.startswith("tls.options.o.alpnProtocols: h2 not served") for w in warnings)
    # Python 3.11 sets one curve: the others are named (with set_groups, no warning)
    import ssl

    several = hasattr(ssl.SSLContext, "set_groups")
    assert several or any("CurveP256 not offered" in w for w in warnings)


def test_tables_map_to_what_openssl_has():
    assert all(name in CURVES for name in ("CurveP256", "secp384r1", "X25519"))
    # every suite Traefik's own default list holds (Go's secure suites) is available here
    for go in (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
    ):
        assert cipher_available(CIPHER_SUITES[go]), go


def test_labels_reference_file_options():
    labels = {
        "traefik.http.routers.x.rule": "Host(`x.test`)",
        "traefik.http.routers.x.tls.options": "mtls@file",
    }
    box = ContainerInfo(
        id="x-id", name="x", labels=labels, ports=(PortBinding(80),), networks={"net": "10.0.0.2"}
    )
    cfg, _ = build_docker_config([box], DockerSettings(), frozenset())
    assert cfg.routers["x"].tls.options == "mtls@file"


def test_a_bad_default_set_is_kept_unusable_never_replaced_by_the_built_in_defaults(ca_pem):
    got, (line,) = options({"default": {"clientAuth": {"caFiles": [ca_pem]}, "minVersion": "TLS13"}})
    assert line.startswith("tls.options.default.minVersion: ") and "HTTPS handshakes are refused" in line
    assert got["default"].client_auth.client_auth_type == REFUSED_DEFAULT
