"""The Ingress builder, table by table, against Traefik v3's ingress provider: which Ingresses (class),
rules from pathType, names, services by port name or number, servers from EndpointSlices, TLS from
Secrets, the default backend, status.loadBalancer; each problem a line naming the Ingress."""

import base64
import logging

import pytest

from discover.kubernetes.builder import Cluster, build_ingress_config, normalize
from discover.kubernetes.records import (
    LoadBalancerIngress,
    ingress_class_from_api,
    ingress_from_api,
    secret_from_api,
    service_from_api,
    slice_from_api,
)
from discover.kubernetes.settings import IngressEndpoint, KubernetesIngressSettings
from discover.model import CertificateFile, RouterTLS, Server

T = "traefik.ingress.kubernetes.io/"


def ingress(
    name="web", ns="shop", *, cls="dockroute", paths=None, host="shop.test", annotations=None, **spec
):
    paths = paths if paths is not None else [path("/", "Prefix")]
    body = {"rules": [{"host": host, "http": {"paths": paths}}], **spec}
    if cls is not None:
        body["ingressClassName"] = cls
    return {"metadata": {"name": name, "namespace": ns, "annotations": annotations or {}}, "spec": body}


def path(p, path_type="Prefix", svc="web", port=None):
    return {
        "path": p,
        "pathType": path_type,
        "backend": {"service": {"name": svc, "port": port or {"name": "http"}}},
    }


def service(name="web", ns="shop", ports=None, annotations=None, **spec):
    return {
        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
        "spec": {"ports": ports or [{"name": "http", "port": 80}], "clusterIP": "10.0.0.9", **spec},
    }


def eps(svc="web", ns="shop", port=8080, endpoints=None, name=None, port_name="http"):
    return {
        "metadata": {
            "name": name or f"{svc}-abc",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "ports": [{"name": port_name, "port": port}],
        "endpoints": endpoints if endpoints is not None else [{"addresses": ["10.1.0.1"], "conditions": {}}],
    }


def cluster(ingresses=(), services=(), slices=(), secrets=(), classes=None):
    classes = (
        [{"metadata": {"name": "dockroute"}, "spec": {"controller": "dockroute.io/ingress-controller"}}]
        if classes is None
        else classes
    )
    return Cluster(
        ingresses={f"{i.namespace}/{i.name}": i for i in map(ingress_from_api, ingresses)},
        classes={c.name: c for c in map(ingress_class_from_api, classes)},
        services={s.key: s for s in map(service_from_api, services)},
        slices={s.key: s for s in map(slice_from_api, slices)},
        secrets={s.key: s for s in map(secret_from_api, secrets)},
    )


def build(c, **settings):
    return build_ingress_config(c, KubernetesIngressSettings(**settings))


def test_normalize_is_traefiks():
    assert normalize("shop-web-shop.example.com/api/v1") == "shop-web-shop-example-com-api-v1"
    assert normalize("-/") == ""


@pytest.mark.parametrize(
    ("path_type", "annotation", "rule"),
    [
        ("Prefix", None, 'Host("shop.test") && PathPrefix("/api")'),
        ("Exact", None, 'Host("shop.test") && Path("/api")'),
        ("ImplementationSpecific", None, 'Host("shop.test") && PathPrefix("/api")'),
        ("", None, 'Host("shop.test") && PathPrefix("/api")'),
        ("ImplementationSpecific", "PathRegexp", 'Host("shop.test") && PathRegexp("/api")'),
        (
            "Prefix",
            "Path",
            'Host("shop.test") && PathPrefix("/api")',
        ),  # the matcher is for the unset type only
    ],
)
def test_rule_from_path_type(path_type, annotation, rule):
    ann = {T + "router.pathmatcher": annotation} if annotation else {}
    cfg = build(
        cluster([ingress(paths=[path("/api", path_type)], annotations=ann)], [service()], [eps()])
    ).config
    (router,) = cfg.routers.values()
    assert router.rule == rule
    assert router.name == "shop-web-shop-test-api"
    assert router.service == "shop-web-http"


def test_strict_prefix_matching():
    c = cluster([ingress(paths=[path("/v1/", "Prefix")])], [service()], [eps()])
    (router,) = build(c, strict_prefix_matching=True).config.routers.values()
    assert router.rule == 'Host("shop.test") && (Path("/v1") || PathPrefix("/v1/"))'


def test_no_host_and_v2_wildcard():
    c = cluster([ingress(host="", paths=[path("/x")])], [service()], [eps()])
    assert [r.rule for r in build(c).config.routers.values()] == ['PathPrefix("/x")']
    c = cluster(
        [ingress(host="*.shop.test", annotations={T + "router.rulesyntax": "v2"})], [service()], [eps()]
    )
    (router,) = build(c).config.routers.values()
    assert router.rule.startswith('HostRegexp("{subdomain:[a-zA-Z0-9-]+}.shop.test")')
    assert router.rule_syntax == "v2"


@pytest.mark.parametrize(
    ("ing", "classes", "settings", "routed"),
    [
        (ingress(cls="dockroute"), None, {}, True),
        (ingress(cls="nginx"), None, {}, False),
        # the class exists but belongs to another controller
        (
            ingress(cls="dockroute"),
            [{"metadata": {"name": "dockroute"}, "spec": {"controller": "x/y"}}],
            {},
            False,
        ),
        # Traefik's controller name is served too
        (
            ingress(cls="traefik"),
            [{"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}],
            {"ingress_class": ""},
            True,
        ),
        # ingressClass set: only the class of that name
        (
            ingress(cls="traefik"),
            [{"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}],
            {},
            False,
        ),
        # legacy annotation
        (ingress(cls=None, annotations={"kubernetes.io/ingress.class": "dockroute"}), None, {}, True),
        (ingress(cls=None, annotations={"kubernetes.io/ingress.class": "nginx"}), None, {}, False),
        # no class at all: only when ingressClass is empty (Traefik's default)
        (ingress(cls=None), None, {}, False),
        (ingress(cls=None), None, {"ingress_class": ""}, True),
        (
            ingress(cls=None, annotations={"kubernetes.io/ingress.class": "traefik"}),
            None,
            {"ingress_class": ""},
            True,
        ),
        # the IngressClass lookup off: ingressClassName never matches (as in Traefik)
        (ingress(cls="dockroute"), None, {"disable_ingress_class_lookup": True}, False),
        (ingress(cls="dockroute"), None, {"disable_cluster_scope_resources": True}, False),
    ],
)
def test_which_ingresses(ing, classes, settings, routed):
    cfg = build(cluster([ing], [service()], [eps()], classes=classes), **settings).config
    assert bool(cfg.routers) == routed


def test_servers_from_endpoint_slices():
    endpoints = [
        {"addresses": ["10.1.0.1"], "conditions": {"ready": True, "serving": True, "terminating": False}},
        {"addresses": ["10.1.0.2"], "conditions": {"ready": False, "serving": False}},  # not serving: out
        {"addresses": ["10.1.0.3"], "conditions": {"ready": False, "serving": True, "terminating": True}},
        {"addresses": ["10.1.0.4"]},  # conditions unknown: serving
        {"addresses": ["10.1.0.1"], "conditions": {}},  # an address once
        {"addresses": ["fd00::5"], "conditions": {"ready": True}},
    ]
    slices = [eps(endpoints=endpoints), eps(name="web-other-port", port_name="metrics", port=9100)]
    cfg = build(cluster([ingress()], [service()], slices)).config
    assert cfg.services["shop-web-http"].load_balancer.servers == (
        Server("http://10.1.0.1:8080"),
        Server("http://10.1.0.3:8080", weight=0),  # terminating: fenced, no new traffic
        Server("http://10.1.0.4:8080"),
        Server("http://[fd00::5]:8080"),
    )


@pytest.mark.parametrize(
    ("port", "svc_ports", "service_name", "scheme"),
    [
        ({"number": 80}, [{"name": "http", "port": 80}], "shop-web-80", "http"),
        ({"name": "http"}, [{"name": "http", "port": 80}], "shop-web-http", "http"),
        ({"number": 443}, [{"name": "http", "port": 443}], "shop-web-443", "https"),
        ({"name": "https-app"}, [{"name": "https-app", "port": 8443}], "shop-web-https-app", "https"),
    ],
)
def test_service_port_by_number_or_name(port, svc_ports, service_name, scheme):
    port_name = svc_ports[0]["name"]
    c = cluster(
        [ingress(paths=[path("/", port=port)])], [service(ports=svc_ports)], [eps(port_name=port_name)]
    )
    cfg = build(c).config
    assert cfg.services[service_name].load_balancer.servers == (Server(f"{scheme}://10.1.0.1:8080"),)


def test_service_annotations_apply():
    ann = {
        T + "service.serversscheme": "https",
        T + "service.passhostheader": "false",
        T + "service.sticky.cookie": "true",
    }
    cfg = build(cluster([ingress()], [service(annotations=ann)], [eps()])).config
    lb = cfg.services["shop-web-http"].load_balancer
    assert lb.servers == (Server("https://10.1.0.1:8080"),)
    assert lb.pass_host_header is False and lb.sticky is not None


def test_native_lb_and_external_name():
    cfg = build(cluster([ingress()], [service()], [eps()]), native_lb_by_default=True).config
    assert cfg.services["shop-web-http"].load_balancer.servers == (Server("http://10.0.0.9:80"),)
    ext = service(type="ExternalName", externalName="db.example.net")
    result = build(cluster([ingress()], [ext], []))
    assert not result.config.routers
    assert any("allowExternalNameServices" in line for _, line in result.lines)
    cfg = build(cluster([ingress()], [ext], []), allow_external_name_services=True).config
    assert cfg.services["shop-web-http"].load_balancer.servers == (Server("http://db.example.net:80"),)


def test_empty_and_missing_services():
    result = build(cluster([ingress()], [service()], [eps(endpoints=[])]))
    assert not result.config.routers
    assert (
        logging.WARNING,
        "ingress shop/web: service web port http: no ready endpoints; skipped (allowEmptyServices)",
    ) in result.lines
    cfg = build(cluster([ingress()], [service()], [eps(endpoints=[])]), allow_empty_services=True).config
    assert cfg.services["shop-web-http"].load_balancer.servers == ()
    result = build(cluster([ingress()], [], []))
    assert not result.config.routers
    assert any("service web port http: service not found" in line for _, line in result.lines)


def test_router_annotations_reach_the_router():
    ann = {
        T + "router.entrypoints": "websecure",
        T + "router.middlewares": "auth@file",
        T + "router.priority": "9",
        T + "router.tls.certresolver": "le",
    }
    cfg = build(cluster([ingress(annotations=ann)], [service()], [eps()])).config
    (r,) = cfg.routers.values()
    assert (r.entry_points, r.middlewares, r.priority, r.tls) == (
        ("websecure",),
        ("auth@file",),
        9,
        RouterTLS(cert_resolver="le"),
    )
    assert r.origin == "ingress shop/web"


def test_bad_annotation_leaves_the_ingress_out_with_its_name():
    bad = ingress(name="bad", annotations={T + "router.priority": "high"})
    result = build(cluster([bad, ingress(name="good", host="good.test")], [service()], [eps()]))
    assert list(result.config.routers) == ["shop-good-good-test"]
    assert any(
        line.startswith("ingress shop/bad: left out: annotation") and "router.priority" in line
        for _, line in result.lines
    )


def test_kubernetescrd_middleware_is_explained():
    ann = {T + "router.middlewares": "shop-auth@kubernetescrd"}
    result = build(cluster([ingress(annotations=ann)], [service()], [eps()]))
    assert any("shop-auth@kubernetescrd" in line and "@file" in line for _, line in result.lines)


def test_cross_provider_namespaces():
    ann = {T + "router.middlewares": "auth@file"}
    c = cluster([ingress(annotations=ann)], [service()], [eps()])
    assert not build(c, cross_provider_namespaces=("other",)).config.routers
    assert build(c, cross_provider_namespaces=("shop",)).config.routers


def test_tls_certificates_from_secrets():
    pem_crt, pem_key = b"-----BEGIN CERTIFICATE-----\nx\n", b"-----BEGIN PRIVATE KEY-----\ny\n"
    secret = {
        "metadata": {"name": "shop-tls", "namespace": "shop"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(pem_crt).decode(),
            "tls.key": base64.b64encode(pem_key).decode(),
        },
    }
    tls = [{"hosts": ["shop.test"], "secretName": "shop-tls"}]
    cfg = build(cluster([ingress(tls=tls)], [service()], [eps()], [secret])).config
    assert cfg.tls.certificates == (CertificateFile(cert_file=pem_crt.decode(), key_file=pem_key.decode()),)
    # an Ingress's spec.tls carries certificates, not HTTPS (as in Traefik: router.tls or the entry point)
    assert next(iter(cfg.routers.values())).tls is None
    missing = build(cluster([ingress(tls=[{"secretName": "nope"}])], [service()], [eps()]))
    assert missing.config.routers  # still routed
    assert any("secret shop/nope does not exist" in line for _, line in missing.lines)
    empty = dict(secret, data={"tls.crt": base64.b64encode(pem_crt).decode()})
    result = build(cluster([ingress(tls=tls)], [service()], [eps()], [empty]))
    assert any("tls.key" in line for _, line in result.lines) and not result.config.tls.certificates


def test_default_backend():
    ing = {
        "metadata": {"name": "fallback", "namespace": "shop"},
        "spec": {
            "ingressClassName": "dockroute",
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
        },
    }
    cfg = build(cluster([ing], [service()], [eps()])).config
    r = cfg.routers["default-router"]
    assert (r.rule, r.service, r.priority) == ('PathPrefix("/")', "default-backend", -(2**31))
    assert "default-backend" in cfg.services


def test_same_router_key_gets_hashes():
    # Traefik's fixture Ingress-with-conflicting-routers-on-host: hosts "*.bar" and "bar", path /bar, an
    # Ingress named "": both normalize to "testing-bar-bar"; each gets Go's "%.10x" of the rule's SHA-256
    # (10 bytes, 20 hex characters), names Traefik's kubernetes_test.go expects
    ing = {
        "metadata": {"name": "", "namespace": "testing"},
        "spec": {
            "ingressClassName": "dockroute",
            "rules": [
                {"host": "*.bar", "http": {"paths": [path("/bar", svc="web")]}},
                {"host": "bar", "http": {"paths": [path("/bar", svc="web")]}},
            ],
        },
    }
    cfg = build(cluster([ing], [service(ns="testing")], [eps(ns="testing")])).config
    assert set(cfg.routers) == {
        "testing-bar-bar-41871576e140babe40bd",
        "testing-bar-bar-605945111a3c9f84dc65",
    }
    assert cfg.routers["testing-bar-bar-605945111a3c9f84dc65"].rule == 'Host("bar") && PathPrefix("/bar")'


@pytest.mark.parametrize(
    ("endpoint", "published", "status"),
    [
        (IngressEndpoint(ip="203.0.113.1"), None, (LoadBalancerIngress(ip="203.0.113.1"),)),
        (IngressEndpoint(hostname="lb.example"), None, (LoadBalancerIngress(hostname="lb.example"),)),
        (
            IngressEndpoint(published_service="dr/dockroute"),
            {"type": "LoadBalancer", "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}},
            (LoadBalancerIngress(ip="198.51.100.7"),),
        ),
        (
            IngressEndpoint(published_service="dr/dockroute"),
            {"type": "ClusterIP", "externalIPs": ["192.0.2.4"]},
            (LoadBalancerIngress(ip="192.0.2.4", ports=((80, "TCP"),)),),
        ),
    ],
)
def test_wanted_status(endpoint, published, status):
    services = [service()]
    if published:
        extra = {k: v for k, v in published.items() if k != "status"}
        pub = service(name="dockroute", ns="dr", **extra)
        if "status" in published:
            pub["status"] = published["status"]
        services.append(pub)
    result = build(cluster([ingress()], services, [eps()]), ingress_endpoint=endpoint)
    assert result.statuses == {"shop/web": status}
    # already the Ingress's status: nothing to write
    ing = ingress()
    ing["status"] = {"loadBalancer": {"ingress": [s.to_api() for s in status]}}
    assert build(cluster([ing], services, [eps()]), ingress_endpoint=endpoint).statuses == {}


def test_old_annotation_keeps_the_ingress_and_is_named():
    # traefik.ingress.kubernetes.io/preserve-host is Traefik v1's: v3 skips it, and the Ingress is routed
    ann = {T + "preserve-host": "true"}
    result = build(cluster([ingress(annotations=ann)], [service(annotations=ann)], [eps()]))
    assert list(result.config.routers) == ["shop-web-shop-test"]
    assert list(result.config.services) == ["shop-web-http"]
    named = [line for level, line in result.lines if level == logging.WARNING and T + "preserve-host" in line]
    assert len(named) == 2  # once for the Ingress, once for the Service


def test_unknown_router_annotation_leaves_the_ingress_out():
    result = build(cluster([ingress(annotations={T + "router.nope": "1"})], [service()], [eps()]))
    assert not result.config.routers
    assert any(level == logging.ERROR and T + "router.nope" in line for level, line in result.lines)


@pytest.mark.parametrize(("allowed", "routed"), [(None, True), (("shop",), True), (("other",), False)])
def test_servers_transport_obeys_cross_provider_namespaces(allowed, routed):
    # Traefik's loadService refuses a Service whose serversTransport annotation comes from a namespace
    # not in crossProviderNamespaces (unset: every namespace may)
    svc = service(annotations={T + "service.serverstransport": "mtls@file"})
    result = build(cluster([ingress()], [svc], [eps()]), cross_provider_namespaces=allowed)
    assert bool(result.config.routers) is routed
    if routed:
        assert result.config.services["shop-web-http"].load_balancer.servers_transport == "mtls@file"
    else:
        assert not result.config.services
        assert any(
            level == logging.ERROR and "serversTransport" in line and "'shop'" in line
            for level, line in result.lines
        )
