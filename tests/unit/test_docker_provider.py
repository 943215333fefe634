"""The engine-facing parts of the Docker provider that need no engine (the real one is in integration)."""

import asyncio
import logging
import threading
from dataclasses import replace

import pytest
import requests

from discover import docker_labels, docker_provider
from discover.docker_model import DockerSettings, PortBinding
from discover.docker_provider import DockerProvider, container_from_list
from discover.engine_provider import engine_tls

LISTED = {
    "Id": "abc123" * 10,
    "Names": ["/blog-web-1"],
    "Labels": {"com.docker.compose.project": "blog", "traefik.enable": "true"},
    "State": "running",
    "Status": "Up 5 seconds (health: starting)",
    "Ports": [
        {"PrivatePort": 8080, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ],
    "HostConfig": {"NetworkMode": "blog_default"},
    "NetworkSettings": {
        "Networks": {"blog_default": {"IPAddress": "172.18.0.5"}, "empty": {"IPAddress": ""}}
    },
}


def test_container_from_list():
    c = container_from_list(LISTED)
    assert c.name == "blog-web-1"
    assert c.health == "starting"
    assert c.compose_project == "blog"
    assert c.networks == {"blog_default": "172.18.0.5"}
    assert c.network_mode == "blog_default"
    assert c.ports == (
        PortBinding(53, "udp"),
        PortBinding(80, "tcp", "0.0.0.0", 8000),
        PortBinding(8080, "tcp"),
    )


def test_health_states_from_status():
    for status, health in (
        ("Up 1 second (healthy)", "healthy"),
        ("Up 1 second (unhealthy)", "unhealthy"),
        ("Up 1 second (health: starting)", "starting"),
        ("Up 1 second", None),
    ):
        assert container_from_list({**LISTED, "Status": status}).health == health


def test_only_relevant_events_trigger_a_rebuild():
    p = DockerProvider(DockerSettings())
    triggered = []
    p._trigger = lambda urgent=False: triggered.append(urgent)  # noqa: SLF001
    for ev in (
        {"Type": "container", "Action": "start", "timeNano": 1_700_000_000_123_456_789},
        {"Type": "container", "Action": "health_status: healthy", "timeNano": 1},
        {"Type": "container", "Action": "exec_start: sh", "timeNano": 2},
        {"Type": "network", "Action": "connect", "timeNano": 3},
        {"Type": "container", "Action": "attach", "timeNano": 4},
    ):
        p._on_event(ev)  # noqa: SLF001
    assert triggered == [False, False, False]
    p._on_event({"Type": "container", "Action": "die", "timeNano": 5})  # noqa: SLF001
    assert triggered[-1] is True  # a backend going away bypasses the burst throttle
    assert p._since == "0.000000005"  # noqa: SLF001 - the cursor keeps the nanoseconds


def listed(name, labels=None):
    """A running container without a healthcheck, as the list call returns it."""
    return container_from_list(
        {
            **LISTED,
            "Names": [f"/{name}"],
            "Labels": labels or {},
            "Status": "Up 1 second",
            "Ports": [{"PrivatePort": 80, "Type": "tcp"}],
        }
    )


def provider(settings, lists):
    """A provider whose list call returns the given lists in turn (the last one repeats): no engine.

    Called from a running loop, which becomes the provider's as ``run`` would make it."""
    p = DockerProvider(settings)
    p._loop = asyncio.get_running_loop()  # noqa: SLF001
    queue = list(lists)
    p._list = lambda: queue.pop(0) if len(queue) > 1 else queue[0]  # noqa: SLF001
    return p


async def test_the_build_runs_off_the_loop_and_the_loop_keeps_running(monkeypatch):
    loop = asyncio.get_running_loop()
    threads, loop_ran = [], []
    real = docker_provider.build_docker_config

    def build_waiting_for_the_loop(*args, **kwargs):
        threads.append(threading.current_thread())
        # The build holds until the loop has run a callback: if the build ran on the loop, the loop could
        # not run it and the wait would time out.
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        loop_ran.append(ran.wait(timeout=2))
        return real(*args, **kwargs)

    monkeypatch.setattr(docker_provider, "build_docker_config", build_waiting_for_the_loop)
    p = provider(DockerSettings(), [[listed("web")]])
    published = []
    await p._rebuild(published.append)  # noqa: SLF001
    assert threads and threads[0] is not threading.current_thread()
    assert loop_ran == [True]
    assert [set(cfg.routers) for cfg in published] == [{"web"}]


async def test_an_unchanged_configuration_is_published_once_and_a_failed_build_keeps_the_last(
    monkeypatch, caplog
):
    p = provider(DockerSettings(), [[listed("web")], [listed("web")], [listed("web"), listed("api")]])
    published = []
    await p._rebuild(published.append)  # noqa: SLF001
    await p._rebuild(published.append)  # noqa: SLF001
    assert [set(cfg.routers) for cfg in published] == [{"web"}]

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(docker_provider, "build_docker_config", broken)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="dockroute.docker"):
        await p._rebuild(published.append)  # noqa: SLF001
    assert [r.getMessage() for r in caplog.records] == [
        "provider docker: could not build a configuration; keeping the last routes"
    ]
    assert len(published) == 1 and p.rebuilds == 2

    def unreachable():
        raise ConnectionError("engine gone")

    p._list = unreachable  # noqa: SLF001
    await p._rebuild(published.append)  # noqa: SLF001 - a failed list is only a debug line
    assert len(published) == 1 and p.rebuilds == 2 and set(p.records) == {"web"}


async def test_constraints_are_compiled_once_across_rebuilds(monkeypatch):
    calls = []
    real = docker_labels.parse_constraints

    def counting(expr):
        calls.append(expr)
        return real(expr)

    monkeypatch.setattr(docker_labels, "parse_constraints", counting)
    a, b = listed("a", {"team": "a"}), listed("b", {"team": "b"})
    p = provider(DockerSettings(constraints="LabelRegex(`team`, `^a$`)"), [[a], [a, b], [b]])
    published = []
    for _ in range(3):
        await p._rebuild(published.append)  # noqa: SLF001
    assert calls == ["LabelRegex(`team`, `^a$`)"]
    # the second list adds only a container left out: the routes are the same, its record is news
    assert [set(cfg.routers) for cfg in published] == [{"a"}, {"a"}, set()]
    assert [d.reason for d in published[1].discovered] == ["", "constraint"]
    assert p.records["b"].reasons == ("left out by the constraints 'LabelRegex(`team`, `^a$`)'",)


@pytest.mark.parametrize("expr", ["Label(`a`", "LabelRegex(`a`, `(`)", "Nope(`a`, `b`)"])
async def test_a_bad_constraint_is_reported_per_container_as_before(expr, caplog):
    settings = DockerSettings(constraints=expr)
    expected = docker_labels.build_docker_config([listed("a")], settings)[1]["a"].reasons
    assert expected[0].startswith("constraints: column ")
    p = provider(settings, [[listed("a")]])
    published = []
    with caplog.at_level(logging.WARNING, logger="dockroute.docker"):
        await p._rebuild(published.append)  # noqa: SLF001
        await p._rebuild(published.append)  # noqa: SLF001
    assert p.records["a"].reasons == expected
    assert [r.getMessage() for r in caplog.records] == [f"container a is not routed: {expected[0]}"]
    assert [set(cfg.routers) for cfg in published] == [set()]


def _pem(tmp_path, name):
    path = tmp_path / name
    path.write_text(
        "-----BEGIN PLACEHOLDER-----\n"
    )  # the SDK checks the files exist; the handshake reads them
    return str(path)


def test_engine_tls_checks_the_engines_certificate_like_traefiks_client_tls(tmp_path):
    """Traefik's ClientTLS.CreateTLSConfig: a nil RootCAs pool (the system's roots) without tls.ca, tls.ca
    when given, and no check only with tls.insecureSkipVerify."""
    cert, key, ca = _pem(tmp_path, "c.pem"), _pem(tmp_path, "k.pem"), _pem(tmp_path, "ca.pem")
    base = DockerSettings(endpoint="tcp://engine:2376")
    assert engine_tls(base) is False  # no tls section: plain HTTP
    client_only = engine_tls(replace(base, tls_cert=cert, tls_key=key))
    assert client_only.cert == (cert, key)
    assert client_only.verify is True and client_only.ca_cert is None  # the system's roots, not unchecked
    session = requests.Session()
    client_only.configure_client(session)
    assert session.verify is True and session.cert == (cert, key)
    with_ca = engine_tls(replace(base, tls_cert=cert, tls_key=key, tls_ca=ca))
    session = requests.Session()
    with_ca.configure_client(session)
    assert session.verify == ca
    for insecure in (
        replace(base, tls_cert=cert, tls_key=key, tls_ca=ca, tls_insecure_skip_verify=True),
        replace(base, tls_insecure_skip_verify=True),  # alone it still turns TLS on, unchecked
    ):
        session = requests.Session()
        engine_tls(insecure).configure_client(session)
        assert session.verify is False
