"""Traefik's Ingress and Service annotations, table by table: each acted on, warned about by name, or (a
value that does not read, an unknown key) refused with the annotation named."""

import pytest

from discover.kubernetes.annotations import (
    AnnotationError,
    RouterAnnotations,
    ServiceAnnotations,
    router_annotations,
    service_annotations,
)
from discover.model import Domain, RouterTLS, StickyCookie

T = "traefik.ingress.kubernetes.io/"
D = "dockroute.ingress.kubernetes.io/"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, RouterAnnotations()),
        ({T + "router.entrypoints": "web, websecure"}, RouterAnnotations(entry_points=("web", "websecure"))),
        (
            {T + "router.middlewares": "auth@file,strip@file"},
            RouterAnnotations(middlewares=("auth@file", "strip@file")),
        ),
        ({T + "router.priority": "42"}, RouterAnnotations(priority=42)),
        ({T + "router.rulesyntax": "v2"}, RouterAnnotations(rule_syntax="v2")),
        ({T + "router.pathmatcher": "Path"}, RouterAnnotations(path_matcher="Path")),
        ({T + "router.tls": "true"}, RouterAnnotations(tls=RouterTLS())),
        ({T + "router.tls": "false"}, RouterAnnotations()),
        # any router.tls.* key turns TLS on, as Traefik's decoder does
        ({T + "router.tls.certresolver": "le"}, RouterAnnotations(tls=RouterTLS(cert_resolver="le"))),
        ({T + "router.tls.options": "modern@file"}, RouterAnnotations(tls=RouterTLS(options="modern@file"))),
        (
            {
                T + "router.tls.domains.0.main": "example.org",
                T + "router.tls.domains.0.sans": "a.example.org,b",
            },
            RouterAnnotations(tls=RouterTLS(domains=(Domain("example.org", ("a.example.org", "b")),))),
        ),
        ({T + "router.observability.accesslogs": "false"}, RouterAnnotations(access_logs=False)),
        ({T + "router.observability.metrics": "false"}, RouterAnnotations(metrics=False)),
        # dockroute's own prefix, and it wins over Traefik's for one key
        ({D + "router.priority": "7"}, RouterAnnotations(priority=7)),
        ({T + "router.priority": "1", D + "router.priority": "2"}, RouterAnnotations(priority=2)),
        # names are case-insensitive after the prefix
        ({T + "router.EntryPoints": "web"}, RouterAnnotations(entry_points=("web",))),
        # other annotations are not ours
        ({"kubernetes.io/ingress.class": "dockroute", "other/x": "y"}, RouterAnnotations()),
    ],
)
def test_router_annotations_acted_on(annotations, expected):
    got, warnings = router_annotations(annotations)
    assert got == expected
    assert warnings == []


@pytest.mark.parametrize(
    "key",
    ["router.observability.tracing", "router.observability.traceVerbosity", "service.passhostheader"],
)
def test_router_annotations_not_acted_on_are_named(key):
    got, warnings = router_annotations({T + key: "true"})
    assert got == RouterAnnotations()
    assert len(warnings) == 1 and T + key in warnings[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("router.priority", "high"),
        ("router.tls", "maybe"),
        ("router.pathmatcher", "Prefix"),
        ("router.rulesyntax", "v4"),
        ("router.unknown", "x"),
        ("router.observability.metrics", "nope"),
    ],
)
def test_router_annotation_that_does_not_read_is_refused_by_name(key, value):
    with pytest.raises(AnnotationError, match=key.replace(".", r"\.")):
        router_annotations({T + key: value})


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, ServiceAnnotations()),
        ({T + "service.serversscheme": "https"}, ServiceAnnotations(servers_scheme="https")),
        ({T + "service.serverstransport": "mtls@file"}, ServiceAnnotations(servers_transport="mtls@file")),
        ({T + "service.passhostheader": "false"}, ServiceAnnotations(pass_host_header=False)),
        ({T + "service.nativelb": "true"}, ServiceAnnotations(native_lb=True)),
        ({T + "service.sticky.cookie": "true"}, ServiceAnnotations(sticky=StickyCookie())),
        (
            {
                T + "service.sticky.cookie.name": "sid",
                T + "service.sticky.cookie.secure": "true",
                T + "service.sticky.cookie.httponly": "true",
                T + "service.sticky.cookie.samesite": "Strict",
                T + "service.sticky.cookie.maxage": "60",
                T + "service.sticky.cookie.path": "/app",
            },
            ServiceAnnotations(
                sticky=StickyCookie(
                    name="sid", secure=True, http_only=True, same_site="strict", max_age=60, path="/app"
                )
            ),
        ),
    ],
)
def test_service_annotations_acted_on(annotations, expected):
    got, warnings = service_annotations(annotations)
    assert got == expected
    assert warnings == []


@pytest.mark.parametrize(
    "key", ["service.sticky.cookie.domain", "service.middlewares", "service.nodeportlb", "router.priority"]
)
def test_service_annotations_not_acted_on_are_named(key):
    got, warnings = service_annotations({T + key: "1"})
    assert got.sticky is None and got.servers_scheme == ""
    assert len(warnings) == 1 and T + key in warnings[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("service.passhostheader", "yes"),
        ("service.sticky.cookie.samesite", "sometimes"),
        ("service.what", "1"),
    ],
)
def test_service_annotation_that_does_not_read_is_refused_by_name(key, value):
    with pytest.raises(AnnotationError, match=key.replace(".", r"\.")):
        service_annotations({T + key: value})


@pytest.mark.parametrize("key", ["preserve-host", "foo", "frontend-entry-points"])
def test_keys_outside_router_and_service_are_warned_not_refused(key):
    # Traefik's label decoder reads only router.* on an Ingress (its annotations_test.go passes
    # traefik.ingress.kubernetes.io/foo without an error): an old v1 annotation must not drop the Ingress
    got, warnings = router_annotations({T + key: "true", T + "router.priority": "5"})
    assert got == RouterAnnotations(priority=5)
    assert len(warnings) == 1 and T + key in warnings[0] and "ignored" in warnings[0]
    got, warnings = service_annotations({T + key: "true"})
    assert got == ServiceAnnotations()
    assert len(warnings) == 1 and T + key in warnings[0] and "ignored" in warnings[0]
