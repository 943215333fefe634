"""acme.json in a Kubernetes Secret (acme_client.kubernetes): the store's optimistic concurrency and the
``storage`` value that turns it on, against tests/kube_fake_api.py (a fake API server: see its docstring
for what it implements)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acme_client.kubernetes.api import KubeApi
from acme_client.kubernetes.secret_store import KEY, SecretStorage
from acme_client.kubernetes.settings import KubernetesStore, is_kubernetes_storage, parse_storage
from acme_client.storage import AcmeStorage, StorageError, StoredCertificate
from tests.kube_fake_api import FakeKubeApi, require_client
from tests.unit.test_acme_storage import make_cert

ROOT = Path(__file__).resolve().parents[2]
STORE = KubernetesStore("edge", "dockroute-acme", lease_duration=2)


def _cert(name: str) -> StoredCertificate:
    return StoredCertificate(name, (), *make_cert(name))


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    require_client()
    with FakeKubeApi() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield api


def _store(identity: str = "pod-a_1") -> SecretStorage:
    return SecretStorage(KubeApi(), STORE, identity)


def _secret_json(fake: FakeKubeApi) -> dict:
    secret = fake.get("secrets", "edge", "dockroute-acme")
    assert secret is not None
    return json.loads(base64.b64decode(secret["data"][KEY]))


def test_a_certificate_goes_into_the_secret_as_traefiks_acme_json(fake, tmp_path):
    store = _store()
    assert store.load() == {}  # no Secret yet: an empty store
    cert = _cert("a.example.com")
    store.put_certificate("le", cert)
    secret = fake.get("secrets", "edge", "dockroute-acme")
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "dockroute"}
    # The same JSON the file store writes: a Traefik acme.json, readable by AcmeStorage as it is.
    path = tmp_path / "acme.json"
    path.write_bytes(base64.b64decode(secret["data"][KEY]))
    path.chmod(0o600)
    assert AcmeStorage(str(path)).load()["le"].certificates == (cert,)
    assert store.load()["le"].certificates == (cert,)
    assert store.path == "kubernetes://edge/dockroute-acme"


def _other_replica_stores(fake: FakeKubeApi, tmp_path: Path, cert: StoredCertificate) -> None:
    """What another replica's write does to the Secret (made here without HTTP: this process's stores
    share one lock per store, as threads of one replica do)."""
    side = AcmeStorage(str(tmp_path / "side.json"))
    side.put_certificate("le", cert)
    entry = json.loads((tmp_path / "side.json").read_text())["le"]["Certificates"][0]
    secret = fake.get("secrets", "edge", "dockroute-acme")
    raw = json.loads(base64.b64decode(secret["data"][KEY]))
    raw["le"]["Certificates"].append(entry)
    secret["data"][KEY] = base64.b64encode(json.dumps(raw).encode()).decode()
    fake.put("secrets", "edge", secret)


def test_a_write_refused_for_a_newer_version_is_made_again_on_a_fresh_read(fake, tmp_path):
    """Another replica stores b.example.com between this replica's read and its write: the API server
    answers 409 and the change is made again on what the other stored, so both certificates are kept."""
    mine = _store("pod-a_1")
    mine.put_certificate("le", _cert("first.example.com"))  # the Secret exists: the next write is a PUT

    def another_writer(method: str, kind: str, ns: str, name: str) -> None:
        fake.before_write = None
        _other_replica_stores(fake, tmp_path, _cert("b.example.com"))

    fake.before_write = another_writer
    mine.put_certificate("le", _cert("a.example.com"))
    assert mine.conflicts == 1 and fake.count("PUT", "secrets", 409) == 1
    mains = sorted(c["domain"]["main"] for c in _secret_json(fake)["le"]["Certificates"])
    assert mains == ["a.example.com", "b.example.com", "first.example.com"]


_WRITER = """
import sys
from acme_client.kubernetes.api import KubeApi
from acme_client.kubernetes.secret_store import SecretStorage
from tests.unit.test_acme_kubernetes_store import STORE, _cert
store = SecretStorage(KubeApi(), STORE, "writer")
print("ready", flush=True)
sys.stdin.readline()
for j in range(5):
    store.put_certificate("le", _cert(f"r{sys.argv[1]}-{j}.example.com"))
print(store.conflicts, flush=True)
"""


def test_concurrent_writers_in_four_processes_keep_every_certificate(fake):
    """Four replicas (processes) store five certificates each, started at once."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(i)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    conflicts = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    mains = {c["domain"]["main"] for c in _secret_json(fake)["le"]["Certificates"]}
    assert mains == {f"r{i}-{j}.example.com" for i in range(4) for j in range(5)}
    refused = fake.count("PUT", "secrets", 409) + fake.count("POST", "secrets", 409)
    assert sum(conflicts) == refused


def test_other_resolvers_and_keys_of_the_secret_are_kept(fake):
    store = _store()
    store.put_certificate("le", _cert("a.example.com"))
    secret = fake.get("secrets", "edge", "dockroute-acme")
    raw = json.loads(base64.b64decode(secret["data"][KEY]))
    raw["other"] = {"Account": None, "Certificates": None, "Unknown": 1}
    secret["data"][KEY] = base64.b64encode(json.dumps(raw).encode()).decode()
    secret["data"]["note"] = base64.b64encode(b"kept").decode()
    secret["metadata"]["annotations"] = {"team": "edge"}
    fake.put("secrets", "edge", secret)
    store.put_certificate("le", _cert("b.example.com"))
    after = fake.get("secrets", "edge", "dockroute-acme")
    assert after["data"]["note"] == base64.b64encode(b"kept").decode()
    assert after["metadata"]["annotations"] == {"team": "edge"}
    assert _secret_json(fake)["other"] == {"Account": None, "Certificates": None, "Unknown": 1}


def test_a_secret_that_holds_no_json_is_never_written_over(fake):
    fake.put(
        "secrets",
        "edge",
        {"metadata": {"name": "dockroute-acme"}, "data": {KEY: base64.b64encode(b"{broken").decode()}},
    )
    store = _store()
    with pytest.raises(StorageError, match=r"secret edge/dockroute-acme, key acme.json: not JSON"):
        store.load()
    with pytest.raises(StorageError, match="not JSON"):
        store.put_certificate("le", _cert("a.example.com"))
    assert base64.b64decode(fake.get("secrets", "edge", "dockroute-acme")["data"][KEY]) == b"{broken"


def test_an_unreachable_api_server_is_a_storage_error(fake, tmp_path, monkeypatch):
    kubeconfig = (tmp_path / "kubeconfig").read_text().replace(fake.url, "http://127.0.0.1:9")
    (tmp_path / "kubeconfig").write_text(kubeconfig)
    with pytest.raises(StorageError, match="get secret edge/dockroute-acme"):
        _store().load()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kubernetes://edge/dockroute-acme", KubernetesStore("edge", "dockroute-acme", 15)),
        ("kubernetes://edge/acme.certs?leaseDuration=5s", KubernetesStore("edge", "acme.certs", 5)),
        ("kubernetes://edge/acme?leaseDuration=2m", KubernetesStore("edge", "acme", 120)),
        ("  kubernetes://edge/acme?leaseDuration=30  ", KubernetesStore("edge", "acme", 30)),
    ],
)
def test_storage_values_that_name_a_secret(value, expected):
    assert is_kubernetes_storage(value)
    assert parse_storage(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("kubernetes:edge/acme", "expected kubernetes://<namespace>/<secret>"),
        ("kubernetes://edge", "both named"),
        ("kubernetes:///acme", "both named"),
        ("kubernetes://Edge/acme", "namespace 'Edge'"),
        ("kubernetes://edge/acme/x", "secret 'acme/x'"),
        ("kubernetes://edge/ACME", "secret 'ACME'"),
        ("kubernetes://edge/acme?lease=5", "unknown option 'lease'"),
        ("kubernetes://edge/acme?leaseDuration=1", "between 2 seconds and an hour"),
        ("kubernetes://edge/acme?leaseDuration=soon", "not a number of seconds"),
    ],
)
def test_storage_values_refused_say_why(value, why):
    assert is_kubernetes_storage(value)
    with pytest.raises(ValueError, match=why):
        parse_storage(value)


def test_file_paths_are_not_kubernetes_storage():
    assert not is_kubernetes_storage("/data/acme.json")
    assert not is_kubernetes_storage("acme.json")


def test_challenge_answers_are_shared_through_the_secret_and_withdrawn(fake):
    """The orderer publishes the HTTP-01 answer before the CA is told; another replica (its own store)
    reads it there; certificates written meanwhile keep it; withdrawing removes it."""
    orderer, other = _store("pod-a_1"), _store("pod-b_2")
    orderer.put_certificate("le", _cert("a.example.com"))
    orderer.publish_answer("http-01", "tok_en-1", "tok_en-1.thumbprint")
    assert other.read_answer("http-01", "tok_en-1") == "tok_en-1.thumbprint"
    assert other.read_answer("http-01", "unknown") is None
    orderer.put_certificate("le", _cert("b.example.com"))  # a certificate write keeps the answer
    assert other.read_answer("http-01", "tok_en-1") == "tok_en-1.thumbprint"
    orderer.withdraw_answer("http-01", "tok_en-1")
    assert other.read_answer("http-01", "tok_en-1") is None
    secret = fake.get("secrets", "edge", "dockroute-acme")
    assert set(secret["data"]) == {KEY}
    assert len(_secret_json(fake)["le"]["Certificates"]) == 2


def test_every_published_answer_is_read_from_one_get_of_the_secret(fake):
    """What the proxy's HTTP-01 lookup snapshots: all http-01 answers at once, whatever the token asked."""
    orderer, other = _store("pod-a_1"), _store("pod-b_2")
    orderer.put_certificate("le", _cert("a.example.com"))
    orderer.publish_answer("http-01", "tok-1", "tok-1.thumb")
    orderer.publish_answer("http-01", "tok-2", "tok-2.thumb")
    orderer.publish_answer("tls-alpn-01", "a.example.com", "alpn.thumb")
    gets = []
    get_secret = other.api.get_secret
    other.api.get_secret = lambda *a: gets.append(a) or get_secret(*a)
    assert other.read_answers("http-01") == {"tok-1": "tok-1.thumb", "tok-2": "tok-2.thumb"}
    assert len(gets) == 1


def test_answers_of_a_dead_orderer_are_dropped_an_hour_on_and_strange_keys_never_written(fake):
    store = _store()
    old = base64.b64encode(b"old.thumbprint\n1000").decode()
    fake.put(
        "secrets", "edge", {"metadata": {"name": "dockroute-acme"}, "data": {"challenge.http-01.old": old}}
    )
    store.publish_answer("http-01", "new", "new.thumbprint")
    assert set(fake.get("secrets", "edge", "dockroute-acme")["data"]) == {"challenge.http-01.new"}
    for kind, key in (("http-01", "../acme.json"), ("http-01", "a/b"), ("dns-01", "x"), ("http-01", "")):
        store.publish_answer(kind, key, "x")
        assert store.read_answer(kind, key) is None
    assert set(fake.get("secrets", "edge", "dockroute-acme")["data"]) == {"challenge.http-01.new"}


async def test_a_write_on_the_event_loop_is_refused_not_made_over_an_empty_read(fake):
    """load() answers {} on the loop (it never blocks it): a write there would store this one change over
    every other certificate and the account. It raises instead, and the Secret keeps what it had."""
    store = _store()
    await asyncio.to_thread(store.put_certificate, "le", _cert("kept.example.com"))  # a worker: written
    before = _secret_json(fake)
    with pytest.raises(RuntimeError, match="worker threads only"):
        store.put_certificate("le", _cert("b.example.com"))
    with pytest.raises(RuntimeError, match="worker threads only"):
        store.save({})
    assert _secret_json(fake) == before


def test_the_client_makes_no_retries_of_its_own(fake):
    """urllib3's retries would log a warning per attempt and stretch each call while the API is down; the
    resolver's own backoff retries, as the Ingress provider's does."""
    api = KubeApi()
    core, _ = api._clients()
    assert core.api_client.configuration.retries is False


def test_in_cluster_needs_the_service_port_as_the_ingress_provider_does(monkeypatch, tmp_path):
    from acme_client.kubernetes import api as api_module

    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr(api_module, "_SERVICE_ACCOUNT", str(token))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    assert not api_module.in_cluster()
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert api_module.in_cluster()
