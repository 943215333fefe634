"""``certificatesResolvers.<name>.acme.storage: kubernetes://<namespace>/<secret>`` in the static
configuration: accepted, handed to the resolver as a Secret store, or refused at start naming the key."""

from __future__ import annotations

import importlib.util

import pytest

from acme_client.kubernetes.secret_store import SecretStorage
from acme_client.storage import AcmeStorage
from dockroute.certificates import build_resolvers
from dockroute.static import load_static
from dockroute.static.settings import StaticConfigError

KEY = "--certificatesResolvers.le.acme.storage"


def _static(storage: str):
    return load_static(
        [
            "--entryPoints.web.address=:8000",
            "--certificatesResolvers.le.acme.email=ops@example.com",
            "--certificatesResolvers.le.acme.httpChallenge.entryPoint=web",
            f"{KEY}={storage}",
        ],
        {},
        search_dirs=[],
    )


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


async def test_a_secret_store_is_accepted_and_given_to_the_resolver(kubeconfig, caplog):
    """Made on the event loop, as the app makes its resolvers: the Secret is not read there (the kubeconfig
    names no cluster: a read would fail and be logged)."""
    static = _static("kubernetes://edge/dockroute-acme?leaseDuration=20s")
    storage = static.resolvers["le"].storage
    assert storage == "kubernetes://edge/dockroute-acme?leaseDuration=20s"
    resolver = build_resolvers(static.resolvers, lambda: None)["le"]
    assert isinstance(resolver.storage, SecretStorage)
    assert resolver.storage.path == "kubernetes://edge/dockroute-acme"
    assert resolver.storage.store.lease_duration == 20
    assert not resolver.certificates()
    assert "starting without stored certificates" not in caplog.text


def test_a_file_store_stays_a_file_store(tmp_path):
    static = _static(str(tmp_path / "acme.json"))
    resolver = build_resolvers(static.resolvers, lambda: None)["le"]
    assert type(resolver.storage) is AcmeStorage


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("kubernetes://edge", "both named"),
        ("kubernetes://edge/acme?leaseDuration=1s", "between 2 seconds and an hour"),
        ("kubernetes://Edge/acme", "namespace 'Edge'"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_key(value, why, kubeconfig):
    with pytest.raises(StaticConfigError, match=why) as err:
        _static(value)
    assert "certificatesResolvers.le.acme.storage" in str(err.value)


def test_without_credentials_start_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(StaticConfigError, match="no Kubernetes credentials") as err:
        _static("kubernetes://edge/acme")
    assert "certificatesResolvers.le.acme.storage" in str(err.value)


def test_without_the_kubernetes_client_start_is_refused_naming_the_extra(kubeconfig, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "kubernetes" else real(name, *a)
    )
    with pytest.raises(StaticConfigError, match=r"pip install 'dockroute\[kubernetes\]'") as err:
        _static("kubernetes://edge/acme")
    assert "certificatesResolvers.le.acme.storage" in str(err.value)
