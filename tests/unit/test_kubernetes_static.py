"""``providers.kubernetesIngress`` in the static configuration: every key of Traefik v3 acts or is refused
by name; the section is no longer refused as a whole; a missing client library stops the start naming the
pip command."""

from __future__ import annotations

import sys

import pytest

from discover.kubernetes.settings import IngressEndpoint, KubernetesIngressSettings
from dockroute.static import StaticConfigError
from dockroute.static.build import load_static
from dockroute.static.schema import OTHER_PROVIDERS, SCHEMA

P = "--providers.kubernetesIngress."


def load(*argv: str, environ=None):
    return load_static(list(argv), environ or {}, search_dirs=[])


def test_defaults_and_the_implicit_docker_provider_is_off():
    s = load("--providers.kubernetesIngress=true")
    assert s.kubernetes_ingress == KubernetesIngressSettings()
    assert s.kubernetes_ingress.ingress_class == "dockroute"  # Traefik's default is empty
    assert s.docker_provider is None
    assert s.ignored == ()
    assert load().kubernetes_ingress is None
    assert "kubernetesIngress" not in OTHER_PROVIDERS


def test_every_key_acts(tmp_path):
    s = load(
        P + "endpoint=https://10.0.0.1:6443",
        P + "token=abc",
        P + "certAuthFilePath=/ca.crt",
        P + "namespaces=shop,blog",
        P + "labelSelector=app=web",
        P + "ingressClass=edge",
        P + "ingressEndpoint.ip=203.0.113.1",
        P + "ingressEndpoint.hostname=lb.example",
        P + "throttleDuration=3s",
        P + "allowEmptyServices=true",
        P + "allowExternalNameServices=true",
        P + "crossProviderNamespaces=shop",
        P + "disableIngressClassLookup=true",
        P + "disableClusterScopeResources=true",
        P + "nativeLBByDefault=true",
        P + "strictPrefixMatching=true",
        P + "reportNodeInternalIPs=false",
    )
    assert s.kubernetes_ingress == KubernetesIngressSettings(
        endpoint="https://10.0.0.1:6443",
        token="abc",
        cert_auth_file_path="/ca.crt",
        namespaces=("shop", "blog"),
        label_selector="app=web",
        ingress_class="edge",
        ingress_endpoint=IngressEndpoint(ip="203.0.113.1", hostname="lb.example"),
        throttle_duration=3.0,
        allow_empty_services=True,
        allow_external_name_services=True,
        cross_provider_namespaces=("shop",),
        disable_ingress_class_lookup=True,
        disable_cluster_scope_resources=True,
        native_lb_by_default=True,
        strict_prefix_matching=True,
    )
    assert s.ignored == ()


def test_schema_has_every_traefik_key():
    assert set(SCHEMA["providers"]["kubernetesIngress"]) == {
        "endpoint",
        "token",
        "certAuthFilePath",
        "namespaces",
        "labelSelector",
        "ingressClass",
        "ingressEndpoint",
        "reportNodeInternalIPs",
        "throttleDuration",
        "allowEmptyServices",
        "allowExternalNameServices",
        "crossProviderNamespaces",
        "disableIngressClassLookup",
        "disableClusterScopeResources",
        "nativeLBByDefault",
        "strictPrefixMatching",
    }


def test_empty_ingress_class_is_traefiks_meaning(tmp_path):
    f = tmp_path / "t.yml"
    f.write_text("providers:\n  kubernetesIngress:\n    ingressClass: ''\n")
    s = load_static([], {}, config_file=str(f), search_dirs=[])
    assert s.kubernetes_ingress.ingress_class == ""


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ((P + "reportNodeInternalIPs=true",), "providers.kubernetesIngress.reportNodeInternalIPs"),
        (
            (P + "ingressEndpoint.publishedService=just-a-name",),
            "providers.kubernetesIngress.ingressEndpoint",
        ),
        ((P + "endpoint=10.0.0.1:6443",), "providers.kubernetesIngress.endpoint"),
        ((P + "throttleDuration=soon",), "providers.kubernetesIngress.throttleDuration"),
        ((P + "unknownKey=1",), "providers.kubernetesIngress"),
        # Traefik: labels.Parse at start ("invalid ingress label selector")
        ((P + "labelSelector=app in web",), "providers.kubernetesIngress.labelSelector"),
        ((P + "labelSelector=app==web==x",), "providers.kubernetesIngress.labelSelector"),
        ((P + "labelSelector=-app",), "providers.kubernetesIngress.labelSelector"),
    ],
)
def test_refused_by_name(args, key):
    with pytest.raises(StaticConfigError) as exc:
        load(*args)
    assert str(exc.value).startswith(key)


def test_missing_client_library_is_refused_naming_pip(monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # `import kubernetes` raises ImportError
    with pytest.raises(StaticConfigError) as exc:
        load("--providers.kubernetesIngress=true")
    assert "pip install 'dockroute[kubernetes]'" in str(exc.value)
    assert str(exc.value).startswith("providers.kubernetesIngress")


def test_reading_the_config_does_not_import_the_client():
    """``dockroute healthcheck`` reads the static configuration every few seconds: the client library
    (about a second to import) is found, not imported, until the provider starts."""
    import subprocess

    code = (
        "import sys; from dockroute.static.build import load_static; "
        "s = load_static(['--providers.kubernetesIngress=true'], {}, search_dirs=[]); "
        "assert s.kubernetes_ingress is not None; print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "selector",
    [
        "app",
        "!app",
        "app=web",
        "app==web",
        "app!=web",
        "app in (a, b)",
        "tier notin (x)",
        "n>1,example.com/n",
    ],
)
def test_label_selectors_the_api_reads_are_accepted(selector):
    assert load(P + "labelSelector=" + selector).kubernetes_ingress.label_selector == selector
