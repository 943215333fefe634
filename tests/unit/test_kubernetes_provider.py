"""The provider's list + watch against the replayed API conversation (tests/kube_replay), in process:
it publishes once everything is listed, follows watch events, relists after 410 Gone (as an ERROR event
and as an HTTP status), reconnects after a dropped connection from the last version seen, refreshes TLS
certificates when their Secret changes, patches Ingress status once, and keeps the last routes (one log
line) while the API cannot be reached."""

import asyncio
import base64
import logging

import pytest
import trustme

from discover.kubernetes.client import KubeApi
from discover.kubernetes.provider import KubernetesIngressProvider
from discover.kubernetes.settings import IngressEndpoint, KubernetesIngressSettings
from tests.kube_replay.server import ReplayServer, go_true, wait_open
from tests.polling import wait_for


@pytest.fixture
async def running(replay):
    settings = KubernetesIngressSettings(
        endpoint=replay.url,
        token="replay-token",
        ingress_endpoint=IngressEndpoint(published_service="dockroute/dockroute"),
    )
    provider = KubernetesIngressProvider(settings, backoff=(0.05, 0.2))
    published = []
    task = asyncio.get_running_loop().create_task(provider.run(published.append))
    await wait_for(lambda: published, timeout=30)
    yield provider, published
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _servers(cfg, service):
    return [s.url for s in cfg.services[service].load_balancer.servers if s.weight]


async def test_first_configuration_after_every_kind_is_listed(replay, running):
    provider, published = running
    assert len(published) == 1
    cfg = published[0]
    assert sorted(cfg.routers) == ["shop-legacy-legacy-example-test-exact", "shop-web-shop-example-test"]
    assert _servers(cfg, "shop-web-http") == ["http://127.0.0.2:18080", "http://127.0.0.3:18080"]
    assert len(cfg.tls.certificates) == 1
    for kind in ("ingresses", "ingressclasses", "services", "endpointslices", "secrets"):
        (listed,) = replay.calls(kind, watch=False)
        assert "watch" not in listed.query
    await wait_open(replay, "secrets")
    assert replay.problems == []
    (watch,) = replay.calls("secrets", watch=True)
    assert watch.query["resourceVersion"] == "1042" and go_true(watch.query["allowWatchBookmarks"])
    assert watch.query["labelSelector"] == "owner!=helm"


async def test_watch_events_update_and_410_relists(replay, running):
    provider, published = running
    await wait_open(replay, "ingresses")
    replay.play("modify-ingress")
    await wait_for(lambda: "shop-web-shop-example-test-v2" in published[-1].routers)
    assert _servers(published[-1], "shop-api-80") == ["http://127.0.0.5:18081"]
    replay.play("expire-ingresses")  # ERROR event, 410 Expired
    await wait_for(lambda: "shop-late-late-example-test" in published[-1].routers)
    assert "shop-legacy-legacy-example-test-exact" not in published[-1].routers  # not in the new list
    assert len(replay.calls("ingresses", watch=False)) == 2
    await wait_open(replay, "ingresses", 2)
    # the watch after the relist starts at the new list's version, the one before at the bookmark's
    versions = [w.query["resourceVersion"] for w in replay.calls("ingresses", watch=True)]
    assert versions == ["1042", "2000"]


async def test_dropped_connection_reconnects_from_the_last_version(replay, running, caplog):
    provider, published = running
    await wait_open(replay, "endpointslices")
    with caplog.at_level(logging.INFO, "dockroute.kubernetes"):
        replay.play("drop-endpointslices")
        await wait_open(replay, "endpointslices", 2)
    assert [w.query["resourceVersion"] for w in replay.calls("endpointslices", watch=True)] == [
        "1042",
        "1042",
    ]
    assert len(replay.calls("endpointslices", watch=False)) == 1  # no relist for a drop
    replay.play("pod-terminating")
    await wait_for(lambda: _servers(published[-1], "shop-web-http") == ["http://127.0.0.2:18080"])
    assert sum("cannot reach the API" in r.getMessage() for r in caplog.records) <= 1


async def test_secret_refreshed_after_http_410(replay, running, values):
    provider, published = running
    await wait_open(replay, "secrets")
    replay.play("rotate-secret")  # the connection drops; the next watch is answered 410 Gone
    second = base64.b64decode(values["__TLS_CRT_2__"]).decode()
    await wait_for(lambda: published[-1].tls.certificates[0].cert_file == second)
    assert len(replay.calls("secrets", watch=False)) == 2


async def test_status_patched_once_per_change(replay, running):
    provider, published = running
    await wait_for(lambda: len(replay.patches()) == 2)
    paths = sorted(p.path for p in replay.patches())
    assert paths == [
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/legacy/status",
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status",
    ]
    assert replay.patches()[0].body == {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}}
    # a rebuild for another reason patches nothing again
    await wait_open(replay, "endpointslices")
    replay.play("pod-terminating")
    await wait_for(lambda: _servers(published[-1], "shop-web-http") == ["http://127.0.0.2:18080"])
    assert len(replay.patches()) == 2


async def test_nothing_published_without_a_change(replay, running):
    provider, published = running
    await wait_open(replay, "ingresses")
    rebuilds = provider.rebuilds
    replay.play("drop-endpointslices")
    await wait_open(replay, "endpointslices", 2)
    await wait_for(
        lambda: provider.rebuilds > rebuilds or len(replay.calls("endpointslices", watch=True)) == 2
    )
    assert len(published) == 1


async def test_api_down_keeps_the_last_routes_with_one_line(values, caplog):
    server = await ReplayServer(values).start()
    settings = KubernetesIngressSettings(endpoint=server.url, token="replay-token")
    provider = KubernetesIngressProvider(settings, backoff=(0.02, 0.05))
    published = []
    task = asyncio.get_running_loop().create_task(provider.run(published.append))
    try:
        await wait_for(lambda: published, timeout=30)
        with caplog.at_level(logging.WARNING):
            await server.stop()  # every watch ends, every reconnect is refused
            await wait_for(lambda: any("cannot reach the API" in r.getMessage() for r in caplog.records))
            await asyncio.sleep(0.3)  # several retries of every kind happen meanwhile (backoff 20-50 ms)
        lines = [r for r in caplog.records if "cannot reach the API" in r.getMessage()]
        assert len(lines) == 1 and "the last routes keep serving" in lines[0].getMessage()
        loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert loud == [lines[0].getMessage()]  # nothing else: no urllib3 retry warnings either
        assert len(published) == 1 and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_kubeconfig_credentials(replay, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: replay
  cluster: {{server: "{replay.url}"}}
users:
- name: dockroute
  user: {{token: replay-token}}
contexts:
- name: replay
  context: {{cluster: replay, user: dockroute}}
current-context: replay
"""
    )
    api = await asyncio.to_thread(KubeApi, KubernetesIngressSettings(), {"KUBECONFIG": str(kubeconfig)})
    assert api.source == f"kubeconfig {kubeconfig}"
    from discover.kubernetes.client import RESOURCES

    listed = await asyncio.to_thread(api.list, RESOURCES["ingressclasses"], "")
    assert listed["metadata"]["resourceVersion"] == "1042"
    assert replay.requests[-1].headers["Authorization"] == "Bearer replay-token"


async def test_in_cluster_credentials_with_endpoint_override(replay, tmp_path, monkeypatch):
    """In a pod: the service-account token (the client's in-cluster loader, which re-reads it as it
    rotates) and the KUBERNETES_SERVICE_* address, which ``endpoint`` overrides (as in Traefik)."""
    import kubernetes.config.incluster_config as incluster

    from discover.kubernetes.client import RESOURCES

    (tmp_path / "token").write_text("replay-token")  # as the kubelet writes it: no newline
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    api = await asyncio.to_thread(KubeApi, KubernetesIngressSettings(endpoint=replay.url), env)
    assert api.source == f"in-cluster with endpoint {replay.url}"
    listed = await asyncio.to_thread(api.list, RESOURCES["ingresses"], "")
    assert listed["metadata"]["resourceVersion"] == "1042"
    assert replay.requests[-1].headers["Authorization"].lower() == "bearer replay-token"


async def test_token_from_a_file(replay, tmp_path):
    """``token`` is Traefik's FileOrContent: a path to a file holding the token works as the token."""
    from discover.kubernetes.client import RESOURCES

    (tmp_path / "token").write_text("replay-token\n")
    settings = KubernetesIngressSettings(endpoint=replay.url, token=str(tmp_path / "token"))
    api = await asyncio.to_thread(KubeApi, settings, {})
    await asyncio.to_thread(api.list, RESOURCES["secrets"], "shop")
    assert replay.requests[-1].headers["Authorization"] == "Bearer replay-token"
    assert replay.requests[-1].path == "/api/v1/namespaces/shop/secrets"


async def test_namespaces_are_watched_one_by_one(replay):
    """``namespaces``: each kind is listed and watched in each namespace (not cluster-wide); the
    IngressClasses, cluster-scoped, stay cluster-wide. Objects elsewhere are not seen."""
    settings = KubernetesIngressSettings(endpoint=replay.url, token="replay-token", namespaces=("shop",))
    provider = KubernetesIngressProvider(settings, backoff=(0.05, 0.2))
    published = []
    task = asyncio.get_running_loop().create_task(provider.run(published.append))
    try:
        await wait_for(lambda: published, timeout=30)
        assert sorted(published[0].routers) == [
            "shop-legacy-legacy-example-test-exact",
            "shop-web-shop-example-test",
        ]
        for kind in ("ingresses", "services", "endpointslices", "secrets"):
            assert len(replay.calls(kind, watch=False, namespace="shop")) == 1
            assert not replay.calls(kind, watch=False)
        assert len(replay.calls("ingressclasses", watch=False)) == 1
        assert "dockroute/dockroute" not in provider._stores["services"]  # another namespace
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_watch_that_ends_at_once_does_not_spin():
    """A proxy that ends every watch stream at once (or a version expired again right after the list) is
    retried after the backoff, not in a tight loop."""
    from discover.kubernetes.client import Gone

    class Api:
        host, source = "http://fake", "fake"
        watches = 0

        def list(self, res, namespace, selector=""):
            return {"metadata": {"resourceVersion": "1"}, "items": []}

        def watch(self, res, namespace, version, selector="", timeout=300, opened=None):
            Api.watches += 1
            if res.kind == "secrets":
                raise Gone(410, "too old resource version")
            return iter(())

    settings = KubernetesIngressSettings(endpoint="http://fake")
    provider = KubernetesIngressProvider(settings, api_factory=lambda s: Api(), backoff=(0.05, 0.1))
    task = asyncio.get_running_loop().create_task(provider.run(lambda cfg: None))
    try:
        await wait_for(lambda: Api.watches >= 5)
        await asyncio.sleep(0.5)  # what is measured: how many watches 0.5 s of this makes
        start = Api.watches
        await asyncio.sleep(0.5)
        # five kinds, each waiting 25-100 ms between attempts: at most ~100 in 0.5 s; a spin makes thousands
        assert Api.watches - start < 150
        assert provider.lists["secrets"] < 30  # relisted after each 410, but at the backoff's pace
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_credentials_that_cannot_load_are_said_once_and_retried(caplog):
    attempts = []

    def factory(settings):
        attempts.append(1)
        raise RuntimeError("Invalid kube-config file. No configuration found.")

    provider = KubernetesIngressProvider(
        KubernetesIngressSettings(), api_factory=factory, backoff=(0.01, 0.02)
    )
    with caplog.at_level(logging.ERROR, "dockroute.kubernetes"):
        task = asyncio.get_running_loop().create_task(provider.run(lambda cfg: None))
        try:
            await wait_for(lambda: len(attempts) >= 5)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "cannot load the API credentials" in line and "No configuration found" in line
