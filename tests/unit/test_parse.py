"""discover.parse: Traefik dynamic configuration dicts → the model."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

from discover.model import (
    CertificateFile,
    Domain,
    DynamicConfig,
    HealthCheck,
    RouterTLS,
    Server,
    ServersTransport,
    StickyCookie,
    WeightedRef,
)
from discover.parse import (
    ConfigError,
    check_references,
    parse_duration,
    parse_dynamic,
    parse_dynamic_with_warnings,
)


def lb(*urls: str, **extra):
    return {"loadBalancer": {"servers": [{"url": u} for u in urls], **extra}}


def cfg_with(routers=None, services=None, middlewares=None, **top):
    http = {}
    if routers is not None:
        http["routers"] = routers
    if services is not None:
        http["services"] = services
    if middlewares is not None:
        http["middlewares"] = middlewares
    return {"http": http, **top}


def error(data) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_dynamic(data)
    return info.value


# -- empty --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, {}, {"http": None}, {"http": {}}, {"http": {"routers": None}}])
def test_empty_documents_give_an_empty_config(data):
    assert parse_dynamic(data) == DynamicConfig()


def test_a_document_that_is_not_a_mapping_is_an_error():
    err = error(["http"])
    assert err.path == ""
    assert "mapping" in err.message


# -- routers ------------------------------------------------------------------------------------------


def test_router_every_field():
    data = cfg_with(
        routers={
            "app": {
                "rule": "Host(`a.example`)",
                "service": "svc",
                "entryPoints": ["web", "websecure"],
                "middlewares": ["auth", "ratelimit@docker"],
                "priority": 42,
                "ruleSyntax": "V2",
                "tls": {
                    "certResolver": "le",
                    "options": "modern",
                    "domains": [{"main": "example.com", "sans": ["*.example.com", "x.example.org"]}],
                },
            }
        },
        services={"svc": lb("http://10.0.0.1:80")},
        middlewares={"auth": {"basicAuth": {"users": ["u:p"]}}},
    )
    r = parse_dynamic(data).routers["app"]
    assert r.name == "app"
    assert r.rule == "Host(`a.example`)"
    assert r.service == "svc"
    assert r.entry_points == ("web", "websecure")
    assert r.middlewares == ("auth", "ratelimit@docker")
    assert r.priority == 42
    assert r.rule_syntax == "v2"
    assert r.tls == RouterTLS(
        cert_resolver="le",
        options="modern",
        domains=(Domain("example.com", ("*.example.com", "x.example.org")),),
    )


def test_router_defaults():
    r = parse_dynamic(cfg_with(routers={"a": {"rule": "PathPrefix(`/`)", "service": "s"}})).routers["a"]
    assert (r.entry_points, r.middlewares, r.priority, r.tls, r.rule_syntax) == ((), (), 0, None, None)


@pytest.mark.parametrize("tls", [True, "true", {}, None])
def test_router_tls_forms_that_enable_tls(tls):
    r = parse_dynamic(cfg_with(routers={"a": {"rule": "r", "service": "s", "tls": tls}})).routers["a"]
    assert r.tls == RouterTLS()


@pytest.mark.parametrize("tls", [False, "false"])
def test_router_tls_false_is_off(tls):
    r = parse_dynamic(cfg_with(routers={"a": {"rule": "r", "service": "s", "tls": tls}})).routers["a"]
    assert r.tls is None


def test_label_style_strings_are_accepted():
    """What Docker labels carry: every scalar a string, lists comma-separated."""
    data = cfg_with(
        routers={
            "a": {
                "rule": "r",
                "service": "s",
                "entryPoints": "web, websecure",
                "priority": "7",
                "tls": "true",
            }
        },
        services={"s": lb("http://b", passHostHeader="false")},
    )
    cfg = parse_dynamic(data)
    assert cfg.routers["a"].entry_points == ("web", "websecure")
    assert cfg.routers["a"].priority == 7
    assert cfg.routers["a"].tls == RouterTLS()
    assert cfg.services["s"].load_balancer.pass_host_header is False


def test_keys_are_case_insensitive():
    data = {
        "HTTP": {
            "Routers": {
                "App": {"RULE": "r", "Service": "S", "entrypoints": ["web"], "TLS": {"certresolver": "le"}}
            },
            "SERVICES": {
                "S": {
                    "LoadBalancer": {
                        "Servers": [{"URL": "http://b", "Weight": 2}],
                        "passhostheader": False,
                        "HealthCheck": {"Path": "/h", "INTERVAL": "3s"},
                        "Sticky": {"Cookie": {"HTTPOnly": True}},
                    }
                }
            },
            "Middlewares": {"M": {"RedirectScheme": {"scheme": "https"}}},
        },
        "TLS": {"Certificates": [{"CertFile": "c", "KEYFILE": "k"}]},
    }
    cfg = parse_dynamic(data)
    # names are kept exactly as written, only keys are case-insensitive
    r = cfg.routers["App"]
    assert (r.rule, r.service, r.entry_points, r.tls.cert_resolver) == ("r", "S", ("web",), "le")
    s = cfg.services["S"].load_balancer
    assert s.servers == (Server("http://b", 2),)
    assert s.pass_host_header is False
    assert s.health_check.path == "/h" and s.health_check.interval == 3.0
    assert s.sticky.http_only is True
    assert cfg.middlewares["M"].type == "redirectScheme"
    assert cfg.tls.certificates == (CertificateFile("c", "k"),)


def test_the_same_key_twice_in_different_case_is_an_error():
    err = error(cfg_with(routers={"a": {"rule": "r", "Rule": "r2", "service": "s"}}))
    assert err.path == "http.routers.a.rule"
    assert "twice" in err.message


@pytest.mark.parametrize(
    ("router", "path"),
    [
        ({"service": "s"}, "http.routers.a.rule"),
        ({"rule": "r"}, "http.routers.a.service"),
        ({"rule": "  ", "service": "s"}, "http.routers.a.rule"),
        ({"rule": "r", "service": ""}, "http.routers.a.service"),
        ({"rule": ["r"], "service": "s"}, "http.routers.a.rule"),
        ({"rule": "r", "service": "s", "priority": "high"}, "http.routers.a.priority"),
        ({"rule": "r", "service": "s", "priority": -1}, "http.routers.a.priority"),
        ({"rule": "r", "service": "s", "priority": True}, "http.routers.a.priority"),
        ({"rule": "r", "service": "s", "entryPoints": {"web": 1}}, "http.routers.a.entryPoints"),
        ({"rule": "r", "service": "s", "entryPoints": ["web", 3.5, None]}, "http.routers.a.entryPoints[2]"),
        ({"rule": "r", "service": "s", "middlewares": 5}, "http.routers.a.middlewares"),
        ({"rule": "r", "service": "s", "ruleSyntax": "v9"}, "http.routers.a.ruleSyntax"),
        ({"rule": "r", "service": "s", "tls": "maybe"}, "http.routers.a.tls"),
        ({"rule": "r", "service": "s", "tls": {"resolver": "le"}}, "http.routers.a.tls.resolver"),
        (
            {"rule": "r", "service": "s", "tls": {"domains": [{"sans": ["x"]}]}},
            "http.routers.a.tls.domains[0].main",
        ),
        ({"rule": "r", "service": "s", "tls": {"domains": {"main": "x"}}}, "http.routers.a.tls.domains"),
        ({"rule": "r", "service": "s", "entrypoint": ["web"]}, "http.routers.a.entrypoint"),
        (None, "http.routers.a"),
        ("Host(`x`)", "http.routers.a"),
    ],
)
def test_router_errors_name_the_path(router, path):
    err = error(cfg_with(routers={"a": router}))
    assert err.path == path
    assert str(err).startswith(path + ": ")


def test_error_keys_keep_the_spelling_of_the_source():
    err = error({"Http": {"ROUTERS": {"a": {"Rule": "r", "service": "s", "Priority": "x"}}}})
    assert err.path == "http.routers.a.priority"
    assert err.keys == ("Http", "ROUTERS", "a", "Priority")


def test_names_with_at_are_rejected():
    err = error(cfg_with(routers={"a@docker": {"rule": "r", "service": "s"}}))
    assert err.path == "http.routers.a@docker"
    assert "@" in err.message


def test_numeric_names_become_strings():
    cfg = parse_dynamic(cfg_with(services={1: lb("http://b")}))
    assert list(cfg.services) == ["1"]


def test_sections_must_be_mappings():
    assert error(cfg_with(routers=["a"])).path == "http.routers"
    assert error({"http": "yes"}).path == "http"


# -- services -----------------------------------------------------------------------------------------


def test_load_balancer_every_field():
    data = cfg_with(
        services={
            "s": {
                "loadBalancer": {
                    "servers": [
                        {"url": "http://10.0.0.1:8080"},
                        {"url": "https://b.internal/base", "weight": 3},
                    ],
                    "passHostHeader": False,
                    "serversTransport": "insecure",
                    "healthCheck": {
                        "path": "/health",
                        "interval": "10s",
                        "timeout": "500ms",
                        "hostname": "probe.local",
                        "scheme": "HTTPS",
                        "port": 8443,
                        "method": "head",
                        "status": 204,
                        "headers": {"X-Probe": "1", "X-Empty": ""},
                        "followRedirects": False,
                    },
                    "sticky": {
                        "cookie": {
                            "name": "srv",
                            "secure": True,
                            "httpOnly": True,
                            "sameSite": "Lax",
                            "maxAge": 3600,
                            "path": "/app",
                        }
                    },
                }
            }
        }
    )
    s = parse_dynamic(data).services["s"]
    assert s.weighted is None
    b = s.load_balancer
    assert b.servers == (Server("http://10.0.0.1:8080", 1), Server("https://b.internal/base", 3))
    assert b.pass_host_header is False
    assert b.servers_transport == "insecure"
    hc = b.health_check
    assert hc == HealthCheck(
        path="/health",
        interval=10.0,
        timeout=0.5,
        hostname="probe.local",
        scheme="https",
        port=8443,
        method="HEAD",
        status=204,
        headers=hc.headers,
        follow_redirects=False,
    )
    assert dict(hc.headers) == {"X-Probe": "1", "X-Empty": ""}
    assert isinstance(hc.headers, MappingProxyType)
    assert b.sticky == StickyCookie(
        name="srv", secure=True, http_only=True, same_site="lax", max_age=3600, path="/app"
    )


def test_load_balancer_defaults():
    b = parse_dynamic(cfg_with(services={"s": lb("http://b")})).services["s"].load_balancer
    assert b.pass_host_header is True
    assert b.health_check is None and b.sticky is None and b.servers_transport is None
    assert b.servers[0].weight == 1


def test_health_check_and_sticky_defaults():
    data = cfg_with(services={"s": lb("http://b", healthCheck={}, sticky={"cookie": {}})})
    b = parse_dynamic(data).services["s"].load_balancer
    assert b.health_check == HealthCheck()
    assert b.sticky == StickyCookie()


def test_sticky_without_cookie_is_not_sticky():
    b = parse_dynamic(cfg_with(services={"s": lb("http://b", sticky={})})).services["s"].load_balancer
    assert b.sticky is None


def test_a_load_balancer_without_servers_is_allowed():
    s = parse_dynamic(cfg_with(services={"s": {"loadBalancer": {}}})).services["s"]
    assert s.load_balancer.servers == ()


def test_weighted_service():
    data = cfg_with(
        services={
            "split": {
                "weighted": {
                    "services": [{"name": "v1", "weight": 3}, {"name": "v2@docker"}],
                    "sticky": {"cookie": {"name": "lvl"}},
                }
            },
            "v1": lb("http://b"),
        }
    )
    s = parse_dynamic(data).services["split"]
    assert s.load_balancer is None
    assert s.weighted.services == (WeightedRef("v1", 3), WeightedRef("v2@docker", 1))
    assert s.weighted.sticky == StickyCookie(name="lvl")


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ({}, "http.services.s"),
        (None, "http.services.s"),
        ({**lb("http://b"), "weighted": {"services": []}}, "http.services.s"),
        ({"mirroring": {"mirrors": []}}, "http.services.s.mirroring.service"),
        (
            {"mirroring": {"service": "x", "mirrors": [{"name": "m", "percent": 101}]}},
            "http.services.s.mirroring.mirrors[0].percent",
        ),
        ({"failover": {"service": "x"}}, "http.services.s.failover.fallback"),
        ({"failover": {"service": "x", "fallback": "y", "errors": {}}}, "http.services.s.failover.errors"),
        ({"loadbalancer": {"server": {"url": "http://b"}}}, "http.services.s.loadBalancer.server"),
        ({"loadBalancer": {"servers": {"url": "http://b"}}}, "http.services.s.loadBalancer.servers"),
        ({"loadBalancer": {"servers": [{"weight": 1}]}}, "http.services.s.loadBalancer.servers[0].url"),
        ({"loadBalancer": {"servers": ["http://b"]}}, "http.services.s.loadBalancer.servers[0]"),
        (lb("http://b", "b:80"), "http.services.s.loadBalancer.servers[1].url"),
        (lb("/relative"), "http.services.s.loadBalancer.servers[0].url"),
        (lb("ftp://b"), "http.services.s.loadBalancer.servers[0].url"),
        (lb("http://"), "http.services.s.loadBalancer.servers[0].url"),
        (lb("http://:80"), "http.services.s.loadBalancer.servers[0].url"),
        (lb("http://b:99999"), "http.services.s.loadBalancer.servers[0].url"),
        (lb("http://b:port"), "http.services.s.loadBalancer.servers[0].url"),
        (
            {"loadBalancer": {"servers": [{"url": "http://b", "weight": -1}]}},
            "http.services.s.loadBalancer.servers[0].weight",
        ),
        (lb("http://b", passHostHeader="yes please"), "http.services.s.loadBalancer.passHostHeader"),
        (
            lb("http://b", healthCheck={"interval": "soon"}),
            "http.services.s.loadBalancer.healthCheck.interval",
        ),
        (lb("http://b", healthCheck={"interval": "0s"}), "http.services.s.loadBalancer.healthCheck.interval"),
        (lb("http://b", healthCheck={"timeout": "-1s"}), "http.services.s.loadBalancer.healthCheck.timeout"),
        (lb("http://b", healthCheck={"port": 70000}), "http.services.s.loadBalancer.healthCheck.port"),
        (lb("http://b", healthCheck={"status": 42}), "http.services.s.loadBalancer.healthCheck.status"),
        (lb("http://b", healthCheck={"scheme": "ftp"}), "http.services.s.loadBalancer.healthCheck.scheme"),
        (
            lb("http://b", healthCheck={"headers": ["X: 1"]}),
            "http.services.s.loadBalancer.healthCheck.headers",
        ),
        (lb("http://b", healthCheck={"mode": "grpc"}), "http.services.s.loadBalancer.healthCheck.mode"),
        (
            lb("http://b", sticky={"cookie": {"sameSite": "sometimes"}}),
            "http.services.s.loadBalancer.sticky.cookie.sameSite",
        ),
        (
            lb("http://b", sticky={"cookie": {"maxAge": "long"}}),
            "http.services.s.loadBalancer.sticky.cookie.maxAge",
        ),
        (lb("http://b", sticky={"session": {}}), "http.services.s.loadBalancer.sticky.session"),
        ({"weighted": {"services": [{"weight": 1}]}}, "http.services.s.weighted.services[0].name"),
        (
            {"weighted": {"services": [{"name": "a", "weight": "x"}]}},
            "http.services.s.weighted.services[0].weight",
        ),
        ({"weighted": {"services": "a"}}, "http.services.s.weighted.services"),
    ],
)
def test_service_errors_name_the_path(service, path):
    err = error(cfg_with(services={"s": service}))
    assert err.path == path


# -- durations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10s", 10.0), ("500ms", 0.5), ("1m", 60.0), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5),
     ("250us", 0.00025), (10, 10.0), (2.5, 2.5), ("10", 10.0), ("0", 0.0), (" 3s ", 3.0)],
)  # fmt: skip
def test_durations(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "10x", "10 s", "1m-3s", "ten", True, None, [], "nan", "infs"])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


# -- middlewares --------------------------------------------------------------------------------------


def test_middlewares_keep_type_and_options_frozen():
    data = cfg_with(
        middlewares={
            "hdr": {
                "Headers": {
                    "customRequestHeaders": {"X-A": "1"},
                    "accessControlAllowMethods": ["GET", "POST"],
                }
            },
            "gw": {"grpcWeb": {"allowOrigins": ["*"], "nested": [{"k": ["v"]}]}},
            "gz": {"compress": None},
            "gz2": {"compress": {}},
        }
    )
    mws = parse_dynamic(data).middlewares
    m = mws["hdr"]
    assert m.type == "headers"  # the type's canonical spelling
    # an implemented type's options are its frozen dataclass, with read-only maps
    assert m.options.custom_request_headers == {"X-A": "1"}
    assert m.options.access_control_allow_methods == ("GET", "POST")
    with pytest.raises(TypeError):
        m.options.custom_request_headers["X-B"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        m.options.frame_deny = True  # type: ignore[misc]
    # a type dockroute does not implement keeps its options as given, read-only all the way down
    g = mws["gw"].options
    assert isinstance(g["nested"][0], MappingProxyType) and g["nested"][0]["k"] == ("v",)
    assert mws["gz"].type == "compress" and mws["gz2"].options == mws["gz"].options


def test_middleware_options_are_a_copy():
    opts = {"scheme": "https"}
    cfg = parse_dynamic(cfg_with(middlewares={"r": {"redirectScheme": opts}}))
    opts["scheme"] = "http"
    assert cfg.middlewares["r"].options.scheme == "https"


@pytest.mark.parametrize(
    ("mw", "path", "needle"),
    [
        ({}, "http.middlewares.m", "exactly one"),
        (
            {"stripPrefix": {"prefixes": ["/a"]}, "addPrefix": {"prefix": "/b"}},
            "http.middlewares.m",
            "exactly one",
        ),
        (None, "http.middlewares.m", "exactly one"),
        ({"teleport": {}}, "http.middlewares.m.teleport", "unknown middleware type"),
        ({"grpcWeb": "x"}, "http.middlewares.m.grpcWeb", "mapping"),
    ],
)
def test_middleware_errors(mw, path, needle):
    err = error(cfg_with(middlewares={"m": mw}))
    assert err.path == path
    assert needle in err.message


@pytest.mark.parametrize(
    ("mw", "why"),
    [
        (
            {"redirectScheme": "https"},
            "http.middlewares.m.redirectScheme: expected sub-options or true or false",
        ),
        ({"stripPrefix": ["/a"]}, "http.middlewares.m.stripPrefix: expected a mapping"),
        (
            {"stripPrefix": {"prefixs": ["/a"]}},
            "http.middlewares.m.stripPrefix.prefixs: unknown key 'prefixs'",
        ),
    ],
)
def test_bad_options_of_a_middleware_keep_it_with_its_error_and_the_file_reads(mw, why):
    """Only the routers using it are refused (router.compile); the rest of the file is served."""
    cfg, warnings = parse_dynamic_with_warnings(
        cfg_with(middlewares={"m": mw, "ok": {"addPrefix": {"prefix": "/a"}}})
    )
    assert cfg.middlewares["m"].error.startswith(why) and cfg.middlewares["m"].options is None
    assert warnings == [cfg.middlewares["m"].error]
    assert not cfg.middlewares["ok"].error


# -- tls ----------------------------------------------------------------------------------------------


def test_tls_certificates_and_default_certificate():
    data = {
        "tls": {
            "certificates": [
                {"certFile": "/certs/a.crt", "keyFile": "/certs/a.key"},
                {"certFile": "/certs/b.crt", "keyFile": "/certs/b.key", "stores": ["default"]},
            ],
            "stores": {
                "default": {"defaultCertificate": {"certFile": "/certs/d.crt", "keyFile": "/certs/d.key"}}
            },
        }
    }
    tls = parse_dynamic(data).tls
    assert tls.certificates == (
        CertificateFile("/certs/a.crt", "/certs/a.key"),
        CertificateFile("/certs/b.crt", "/certs/b.key", ("default",)),
    )
    assert tls.default_certificate == CertificateFile("/certs/d.crt", "/certs/d.key")


@pytest.mark.parametrize(
    ("tls", "path"),
    [
        ({"certificates": [{"certFile": "c"}]}, "tls.certificates[0].keyFile"),
        ({"certificates": [{"keyFile": "k"}]}, "tls.certificates[0].certFile"),
        ({"certificates": {"certFile": "c", "keyFile": "k"}}, "tls.certificates"),
        (
            {"certificates": [{"certFile": "c", "keyFile": "k", "password": "x"}]},
            "tls.certificates[0].password",
        ),
        (
            {"stores": {"default": {"defaultCertificate": {"certFile": "c"}}}},
            "tls.stores.default.defaultCertificate.keyFile",
        ),
        (
            {
                "stores": {
                    "default": {"defaultCertificate": {"certFile": "c", "keyFile": "k", "stores": ["x"]}}
                }
            },
            "tls.stores.default.defaultCertificate.stores",
        ),
        ({"stores": {"default": {"other": 1}}}, "tls.stores.default.other"),
        ({"cipherSuites": []}, "tls.cipherSuites"),
    ],
)
def test_tls_errors(tls, path):
    assert error({"tls": tls}).path == path


def test_unsupported_tls_parts_are_warnings():
    data = {
        "tls": {
            "stores": {
                "other": {"defaultCertificate": {"certFile": "c", "keyFile": "k"}},
                "default": {"defaultGeneratedCert": {"resolver": "le"}},
            },
        }
    }
    cfg, warnings = parse_dynamic_with_warnings(data)
    assert cfg.tls.default_certificate is None
    assert any(w.startswith("tls.stores.other:") for w in warnings)
    assert any("defaultGeneratedCert" in w for w in warnings)


# -- booleans -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "value"),
    [(w, True) for w in ("1", "t", "T", "TRUE", "true", "True", True, 1)]
    + [(w, False) for w in ("0", "f", "F", "FALSE", "false", "False", False, 0)],
)
def test_booleans_are_gos_parsebool_words(word, value):
    """Traefik reads booleans with Go's strconv.ParseBool, in files as in labels."""
    data = cfg_with(
        routers={"a": {"rule": "r", "service": "s", "tls": word}},
        services={"s": lb("http://b", passHostHeader=word, healthCheck={"followRedirects": word})},
    )
    cfg = parse_dynamic(data)
    assert (cfg.routers["a"].tls is not None) is value
    assert cfg.services["s"].load_balancer.pass_host_header is value
    assert cfg.services["s"].load_balancer.health_check.follow_redirects is value


@pytest.mark.parametrize("word", ["yes", "on", "tRUE", "2", "", 2, 1.0])
def test_a_non_boolean_names_the_key_and_the_accepted_words(word):
    err = error(cfg_with(services={"s": lb("http://b", passHostHeader=word)}))
    assert err.path == "http.services.s.loadBalancer.passHostHeader"
    assert "true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)" in err.message


# -- serversTransports --------------------------------------------------------------------------------


def transports(**named):
    return {"http": {"serversTransports": named}}


@pytest.mark.parametrize(("given", "limit"), [(0, 2), (-1, 0), (5, 5)])
def test_servers_transport_idle_limit_means_what_go_makes_of_it(given: int, limit: int) -> None:
    """0 is Go's DefaultMaxIdleConnsPerHost (2), a negative number disables reuse: the static reader and
    the named transports agree, so one transport value means one thing wherever it is written."""
    cfg, _ = parse_dynamic_with_warnings(transports(t={"maxIdleConnsPerHost": given}))
    assert cfg.servers_transports["t"].max_idle_conns_per_host == limit


def test_servers_transport_every_field():
    data = transports(
        tls={
            "serverName": "backend.internal",
            "insecureSkipVerify": "true",
            "rootCAs": ["/ca/a.pem", "/ca/b.pem"],
            "certificates": [{"certFile": "/c/client.pem", "keyFile": "/c/client.key"}],
            "maxIdleConnsPerHost": 7,
            "forwardingTimeouts": {"dialTimeout": "3s", "responseHeaderTimeout": "1m", "idleConnTimeout": 0},
            "peerCertURI": "spiffe://example.org/backend",
            "disableHTTP2": True,
        }
    )
    cfg, warnings = parse_dynamic_with_warnings(data)
    assert warnings == []  # disableHTTP2: true is what dockroute does anyway
    assert dict(cfg.servers_transports) == {
        "tls": ServersTransport(
            dial_timeout=3.0,
            response_header_timeout=60.0,
            idle_conn_timeout=0.0,
            max_idle_conns_per_host=7,
            insecure_skip_verify=True,
            root_cas=("/ca/a.pem", "/ca/b.pem"),
            server_name="backend.internal",
            certificates=(CertificateFile("/c/client.pem", "/c/client.key"),),
            peer_cert_uri="spiffe://example.org/backend",
        )
    }


def test_servers_transport_defaults_and_case_insensitive_keys():
    cfg = parse_dynamic(
        {"HTTP": {"serverstransports": {"plain": {}, "none": None, "v": {"INSECURESKIPVERIFY": 1}}}}
    )
    assert cfg.servers_transports["plain"] == ServersTransport()
    assert cfg.servers_transports["none"] == ServersTransport()
    assert cfg.servers_transports["v"].insecure_skip_verify is True


def test_servers_transport_referenced_by_a_service_is_not_reported_missing():
    data = cfg_with(services={"s": lb("http://b", serversTransport="tls")})
    data["http"]["serversTransports"] = {"tls": {"insecureSkipVerify": True}}
    cfg, warnings = parse_dynamic_with_warnings(data)
    assert warnings == []
    assert cfg.services["s"].load_balancer.servers_transport == "tls"
    _, warnings = parse_dynamic_with_warnings(
        cfg_with(services={"s": lb("http://b", serversTransport="gone")})
    )
    assert len(warnings) == 1
    assert "http.services.s.loadBalancer.serversTransport" in warnings[0] and "'gone'" in warnings[0]
    _, warnings = parse_dynamic_with_warnings(
        cfg_with(services={"s": lb("http://b", serversTransport="x@file")})
    )
    assert warnings == []  # another provider's: merge() resolves it


@pytest.mark.parametrize(
    ("transport", "key"),
    [
        ({"disableHTTP2": "false"}, "http.serversTransports.t.disableHTTP2"),
        (
            {"forwardingTimeouts": {"readIdleTimeout": "10s"}},
            "http.serversTransports.t.forwardingTimeouts.readIdleTimeout",
        ),
        (
            {"forwardingTimeouts": {"pingTimeout": "15s"}},
            "http.serversTransports.t.forwardingTimeouts.pingTimeout",
        ),
    ],
)
def test_http2_only_keys_are_accepted_with_one_warning_naming_them(transport, key):
    cfg, warnings = parse_dynamic_with_warnings(transports(t=transport))
    assert cfg.servers_transports["t"] == ServersTransport()
    assert len(warnings) == 1
    assert warnings[0].startswith(key + ":") and "HTTP/1.1" in warnings[0]


def test_spiffe_refuses_the_transport_with_a_warning_naming_it():
    data = cfg_with(services={"s": lb("http://b", serversTransport="id")})
    data["http"]["serversTransports"] = {"id": {"spiffe": {"ids": ["spiffe://x/y"]}}, "ok": {}}
    cfg, warnings = parse_dynamic_with_warnings(data)
    assert set(cfg.servers_transports) == {"ok"}  # never used without the identity check it asks for
    assert warnings[0].startswith("http.serversTransports.id.spiffe:") and "not supported" in warnings[0]
    assert any("serversTransport 'id' is not defined" in w for w in warnings[1:])


@pytest.mark.parametrize(
    ("transport", "path"),
    [
        ({"insecureSkipVerfy": True}, "http.serversTransports.t.insecureSkipVerfy"),
        ({"insecureSkipVerify": "yes"}, "http.serversTransports.t.insecureSkipVerify"),
        ({"maxIdleConnsPerHost": "many"}, "http.serversTransports.t.maxIdleConnsPerHost"),
        (
            {"forwardingTimeouts": {"dialTimeout": "soon"}},
            "http.serversTransports.t.forwardingTimeouts.dialTimeout",
        ),
        (
            {"forwardingTimeouts": {"dialTimeout": "-1s"}},
            "http.serversTransports.t.forwardingTimeouts.dialTimeout",
        ),
        (
            {"forwardingTimeouts": {"readTimeout": "1s"}},
            "http.serversTransports.t.forwardingTimeouts.readTimeout",
        ),
        ({"certificates": [{"certFile": "c.pem"}]}, "http.serversTransports.t.certificates[0].keyFile"),
        (
            {"certificates": [{"certFile": "c", "keyFile": "k", "stores": ["x"]}]},
            "http.serversTransports.t.certificates[0].stores",
        ),
        ({"rootCAs": [3.5, {}]}, "http.serversTransports.t.rootCAs[1]"),
        ("fast", "http.serversTransports.t"),
    ],
)
def test_servers_transport_errors_name_the_path(transport, path):
    assert error(transports(t=transport)).path == path


def test_servers_transport_names_cannot_carry_a_provider():
    assert "'@'" in error(transports(**{"t@file": {}})).message


# -- top level, warnings ------------------------------------------------------------------------------


def test_unknown_top_level_and_http_keys_are_errors():
    assert error({"grpc": {}}).path == "grpc"
    assert error({"http": {"routes": {}}}).path == "http.routes"


def test_missing_bare_references_are_warnings_not_errors():
    data = cfg_with(
        routers={
            "ok": {"rule": "r", "service": "s", "middlewares": ["m", "other@docker"]},
            "noservice": {"rule": "r", "service": "missing"},
            "nomw": {"rule": "r", "service": "s", "middlewares": ["gone"]},
            "elsewhere": {"rule": "r", "service": "api@internal"},
        },
        services={"s": lb("http://b"), "w": {"weighted": {"services": [{"name": "s"}, {"name": "ghost"}]}}},
        middlewares={"m": {"compress": {}}},
    )
    cfg, warnings = parse_dynamic_with_warnings(data)
    assert set(cfg.routers) == {"ok", "noservice", "nomw", "elsewhere"}  # kept: the router compile skips them
    assert len(warnings) == 3
    assert any("http.routers.noservice.service" in w and "'missing'" in w for w in warnings)
    assert any("http.routers.nomw.middlewares" in w and "'gone'" in w for w in warnings)
    assert any("http.services.w.weighted" in w and "'ghost'" in w for w in warnings)
    assert parse_dynamic(data) == cfg
    _, without = parse_dynamic_with_warnings(data, references=False)
    assert without == []
    assert check_references(cfg) == warnings


def test_parsing_is_deterministic_and_comparable():
    data = cfg_with(
        routers={"a": {"rule": "r", "service": "s"}},
        services={"s": lb("http://b", healthCheck={"headers": {"a": "b"}})},
        middlewares={"m": {"headers": {"x": [1, {"y": 2}]}}},
    )
    assert parse_dynamic(data) == parse_dynamic(data)
    assert parse_dynamic(data) != parse_dynamic(cfg_with(routers={"a": {"rule": "r2", "service": "s"}}))


# -- the error type -----------------------------------------------------------------------------------


def test_config_error_rendering_and_location():
    e = ConfigError("http.routers.a.rule", "required", keys=("http", "routers", "a", "rule"))
    assert isinstance(e, ValueError)
    assert str(e) == "http.routers.a.rule: required"
    assert e.line is None and e.file is None
    placed = e.located("dyn.yml", 12)
    assert str(placed) == "dyn.yml:12: http.routers.a.rule: required"
    assert placed.keys == e.keys
    assert str(ConfigError("", "bad", file="f.toml")) == "f.toml: bad"
    assert str(ConfigError("", "bad", 3)) == "line 3: bad"
    again = pickle.loads(pickle.dumps(placed))
    assert (again.path, again.message, again.line, again.file, again.keys) == (
        placed.path,
        placed.message,
        placed.line,
        placed.file,
        placed.keys,
    )


def test_h2c_servers_are_proxied_as_http1_and_preserve_path_is_read_as_the_labels_read_them():
    """As the Docker labels: a server URL with Traefik's h2c scheme is accepted (proxied as HTTP/1.1, one
    warning naming it) and preservePath is a known key: false is dockroute's behaviour, true is warned
    about by name. Anything else under a server is still refused."""
    servers = [{"url": "h2c://grpc:50051"}, {"url": "http://b/base", "preservePath": True}]
    data = cfg_with(
        routers={"a": {"rule": "r", "service": "s"}}, services={"s": {"loadBalancer": {"servers": servers}}}
    )
    cfg, warnings = parse_dynamic_with_warnings(data)
    assert [s.url for s in cfg.services["s"].load_balancer.servers] == ["http://grpc:50051", "http://b/base"]
    assert any("servers[0].url: scheme h2c is proxied as HTTP/1.1" in w for w in warnings)
    assert any("servers[1].preservePath: not supported" in w for w in warnings)
    quiet = cfg_with(
        services={"s": {"loadBalancer": {"servers": [{"url": "http://b", "preservePath": False}]}}}
    )
    assert parse_dynamic_with_warnings(quiet)[1] == []
    assert error(cfg_with(services={"s": {"loadBalancer": {"servers": [{"url": "http://b", "x": 1}]}}}))


def test_router_observability_is_read_tracing_warned_and_bad_values_refused():
    """Traefik v3.2+'s router ``observability``: accessLogs and metrics are read (acted on by the proxy),
    tracing and traceVerbosity checked and warned about by name (no tracing here); a Traefik file with
    it loads instead of being refused whole."""
    router = {"rule": "r", "service": "s", "observability": {"accessLogs": False, "metrics": "false"}}
    cfg, warnings = parse_dynamic_with_warnings(
        cfg_with(routers={"a": router}, services={"s": lb("http://b")})
    )
    assert (cfg.routers["a"].access_logs, cfg.routers["a"].metrics) == (False, False) and warnings == []
    traced = {"rule": "r", "service": "s", "observability": {"tracing": True, "traceVerbosity": "detailed"}}
    cfg, warnings = parse_dynamic_with_warnings(
        cfg_with(routers={"a": traced}, services={"s": lb("http://b")})
    )
    assert cfg.routers["a"].access_logs and len(warnings) == 2 and "no tracing" in warnings[0]
    bad = {"rule": "r", "service": "s", "observability": {"traceVerbosity": "loud"}}
    assert error(cfg_with(routers={"a": bad})).path == "http.routers.a.observability.traceVerbosity"
