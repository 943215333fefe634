"""Traefik parity: ``TestDynConfBuilder_getIPPort_docker`` (``pkg/provider/docker/config_test.go``,
traefik/traefik at fd5a576df2), its 8 cases run through dockroute's label logic with
``providers.docker.network=testnet`` and ``useBindPortIP=true``, as Traefik's test sets them. A binding
whose host IP is empty or unspecified names no address: the container's own IP and port are used.

Not ported, by name: ``TestDynConfBuilder_build_allowNonRunning``: the ``traefik.docker.allowNonRunning``
label is warned about as not supported (dockroute lists running, paused and restarting containers; one
not running is reported ``not-running``, never routed with an empty service).
"""

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding

# (desc, [(container port, host IP, host port)], traefik.port label or "", expected ip, expected port).
# Traefik's PortMap keys are "<port>/tcp"; a key with no binding is an exposed, unpublished port.
IP_PORT_CASES = [
    (
        "label traefik.port not set, no binding, falling back on the container's IP/Port",
        [(8080, None, None)],
        "",
        "10.11.12.13",
        8080,
    ),
    (
        "label traefik.port not set, single binding with port only, falling back on the container's IP/Port",
        [(80, "", 8082)],
        "",
        "10.11.12.13",
        80,
    ),
    (
        "label traefik.port not set, binding with ip:port should create a route to the bound ip:port",
        [(80, "1.2.3.4", 8081)],
        "",
        "1.2.3.4",
        8081,
    ),
    (
        "label traefik.port set, no binding, falling back on the container's IP/traefik.port",
        [],
        "80",
        "10.11.12.13",
        80,
    ),
    (
        "label traefik.port set, single binding with ip:port for the label, creates the route",
        [(443, "5.6.7.8", 8082)],
        "443",
        "5.6.7.8",
        8082,
    ),
    (
        "label traefik.port set, no binding on the corresponding port, falling back on the container's "
        "IP/label.port",
        [(443, "5.6.7.8", 8082)],
        "80",
        "10.11.12.13",
        80,
    ),
    (
        "label traefik.port set, multiple bindings on different ports, uses the label to select the correct "
        "(first) binding",
        [(80, "1.2.3.4", 8081), (443, "5.6.7.8", 8082)],
        "80",
        "1.2.3.4",
        8081,
    ),
    (
        "label traefik.port set, multiple bindings on different ports, uses the label to select the correct "
        "(second) binding",
        [(80, "1.2.3.4", 8081), (443, "5.6.7.8", 8082)],
        "443",
        "5.6.7.8",
        8082,
    ),
]


@pytest.mark.parametrize(
    ("desc", "bindings", "port_label", "ip", "port"), IP_PORT_CASES, ids=[c[0] for c in IP_PORT_CASES]
)
def test_traefik_ip_port_case(desc, bindings, port_label, ip, port):
    labels = {"traefik.http.services.c.loadbalancer.server.port": port_label} if port_label else {}
    c = ContainerInfo(
        id="c",
        name="c",
        labels=labels,
        ports=tuple(PortBinding(p, "tcp", host_ip, host_port) for p, host_ip, host_port in bindings),
        networks={"testnet": "10.11.12.13"},
    )
    cfg, _ = build_docker_config([c], DockerSettings(network="testnet", use_bind_port_ip=True))
    assert [s.url for s in cfg.services["c"].load_balancer.servers] == [f"http://{ip}:{port}"]


def test_traefik_ip_port_cases_are_all_ported():
    assert len(IP_PORT_CASES) == 8


def test_allow_non_running_is_a_named_difference():
    """``TestDynConfBuilder_build_allowNonRunning`` is not ported: the label is warned about by name."""
    c = ContainerInfo(
        id="x",
        name="x",
        labels={"traefik.docker.allowNonRunning": "true"},
        ports=(PortBinding(80),),
        networks={"testnet": "10.0.0.2"},
        state="exited",
    )
    _, records = build_docker_config([c], DockerSettings())
    assert any("traefik.docker.allowNonRunning: not supported" in w for w in records["x"].warnings)
    assert (records["x"].routed, records["x"].reason) == (False, "not-running")
