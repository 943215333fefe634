"""The engine-facing parts of the Docker provider that need no engine (the real one is in integration)."""

from discover.docker_model import DockerSettings, PortBinding
from discover.docker_provider import DockerProvider, container_from_list

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
