"""The image itself (dockroute:local, built by scripts/build-image from the unchanged Dockerfile), run as
users run it with the real engine: its metadata and size, the entry point's command forms, who the proxy
runs as (uid 65532 with the socket's group and only NET_BIND_SERVICE, or exactly the ``--user`` given),
the ACME storage handed to that user, the HEALTHCHECK with and without ping, and a clean ``docker stop``.

Every container is named after the test run and removed afterwards with its anonymous /data volume; no host
port is published.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dockroute import __version__
from tests.e2e import compose
from tests.polling import wait_for

IMAGE = compose.IMAGE
SOCKET = "/var/run/docker.sock"
UID = 65532
NET_BIND_SERVICE = 1 << 10  # capability 10
SECOND = 1_000_000_000  # the engine's durations are nanoseconds
# docker run --health-interval=1s --health-start-period=1s: the image's check, polled quickly
FAST_HEALTH = {"interval": SECOND, "timeout": 5 * SECOND, "start_period": SECOND, "retries": 3}


class Runner:
    """Starts containers of the image under unique names; removes them all at the end."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.prefix = f"e2e-image-{uuid.uuid4().hex[:8]}"
        self.started: list[Any] = []

    def start(self, command: list[str], **kwargs: Any) -> Any:
        name = f"{self.prefix}-{len(self.started)}"
        container = self.client.containers.run(IMAGE, command, name=name, detach=True, **kwargs)
        self.started.append(container)
        return container

    def close(self) -> None:
        for container in self.started:
            try:
                container.remove(force=True, v=True)  # and its anonymous /data volume
            except Exception as exc:  # noqa: BLE001 - removal is best effort; report, go on
                print(f"could not remove {container.name}: {exc}")


@pytest.fixture
def runner(engine) -> Iterator[Runner]:
    r = Runner(engine)
    try:
        yield r
    finally:
        r.close()


def _docker_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "run", "--rm", *args], capture_output=True, text=True, timeout=60)


def _status(container: Any) -> dict[str, str]:
    """PID 1's /proc status (the proxy, once the entry point has exec'd it), as fields."""
    done = container.exec_run(["cat", "/proc/1/status"])
    if done.exit_code:
        return {}
    lines = done.output.decode().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _cmdline(container: Any) -> list[str]:
    done = container.exec_run(["cat", "/proc/1/cmdline"])
    return done.output.decode().split("\0")[:-1] if done.exit_code == 0 else []


def _owner(container: Any, path: str) -> str:
    return container.exec_run(["stat", "-c", "%u", path]).output.decode().strip()


def _api(container: Any, path: str) -> str:
    """GET on the API entry point (:8080) from inside the container ("" until it answers)."""
    url = f"http://127.0.0.1:8080{path}"
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).read().decode())"
    done = container.exec_run(["python3", "-c", code])
    return done.output.decode() if done.exit_code == 0 else ""


async def _proxy_status(container: Any, timeout: float = 20) -> dict[str, str]:
    """PID 1's status once it is the proxy (python running the dockroute script)."""

    def ready() -> dict[str, str] | None:
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode()
        argv = _cmdline(container)
        return _status(container) if argv[1:2] == ["/opt/dockroute/bin/dockroute"] else None

    return await wait_for(ready, timeout=timeout, interval=0.1)


async def _healthy(container: Any, timeout: float = 30) -> dict[str, Any]:
    def health() -> dict[str, Any] | None:
        container.reload()
        state = container.attrs["State"]
        assert state["Status"] in ("created", "running"), container.logs().decode()
        return state["Health"] if state.get("Health", {}).get("Status") == "healthy" else None

    return await wait_for(health, timeout=timeout, interval=0.2)


def test_version(engine):
    done = _docker_run(IMAGE, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"dockroute {__version__}\n"


@pytest.mark.parametrize("form", [["traefik", "--version"], ["dockroute", "--version"]])
def test_traefiks_command_forms_run_dockroute(engine, form):
    done = _docker_run(IMAGE, *form)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"dockroute {__version__}\n"


def test_size_and_metadata(engine):
    attrs = engine.images.get(IMAGE).attrs
    # 121 MB without the Kubernetes client, ~191 MB with it (the kubernetes extra, for the Helm chart's
    # providers.kubernetesIngress; its unused asyncio copy removed): one image for compose and Kubernetes.
    assert attrs["Size"] < 200e6, f"{attrs['Size'] / 1e6:.1f} MB"
    config = attrs["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "dockroute"
    assert labels["org.opencontainers.image.version"] == __version__
    for key in ("description", "licenses", "source", "documentation"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert set(config["ExposedPorts"]) == {"80/tcp", "443/tcp"}
    assert set(config["Volumes"]) == {"/data"}
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"] == ["CMD", "dockroute", "healthcheck", "--container"]


async def test_with_the_socket_it_drops_to_65532_with_the_sockets_group_and_only_net_bind_service(runner):
    gid = os.stat(SOCKET).st_gid
    flags = ["--providers.docker", "--api.insecure", "--entrypoints.web.address=:80"]
    c = runner.start(["traefik", *flags], volumes={SOCKET: {"bind": SOCKET, "mode": "ro"}})
    status = await _proxy_status(c)
    assert status["Uid"].split() == [str(UID)] * 4
    assert status["Gid"].split() == [str(UID)] * 4
    assert str(gid) in status["Groups"].split()
    for caps in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == NET_BIND_SERVICE, (caps, status[caps])
    assert status["NoNewPrivs"] == "1"
    assert _cmdline(c)[2:] == flags
    # it reads the engine through that group: its own container (exposed by default) gets a router
    await wait_for(lambda: "@docker" in _api(c, "/api/http/routers"), timeout=20, interval=0.2)


# A resolver whose CA never answers: the entry point's storage handling is what these tests look at
ACME_FLAGS = [
    "--entrypoints.web.address=:80",
    "--certificatesresolvers.le.acme.email=admin@example.test",
    "--certificatesresolvers.le.acme.caserver=https://127.0.0.1:1/directory",
    "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web",
]


@pytest.mark.parametrize("form", ["key=value", "key value"])
async def test_an_acme_storage_folder_given_by_flag_is_handed_to_the_user(runner, tmp_path, form):
    certs = tmp_path / "certs"
    certs.mkdir()
    acme = certs / "acme.json"  # brought from Traefik: root's, mode 600
    acme.write_text("{}")
    acme.chmod(0o600)
    os.chown(certs, 0, 0)
    os.chown(acme, 0, 0)
    key, value = "--certificatesresolvers.le.acme.storage", "/certs/acme.json"
    storage = [f"{key}={value}"] if form == "key=value" else [key, value]
    c = runner.start(
        [*ACME_FLAGS, *storage],
        volumes={str(certs): {"bind": "/certs", "mode": "rw"}},
    )
    await _proxy_status(c)
    assert certs.stat().st_uid == UID
    assert acme.stat().st_uid == UID


async def test_a_storage_at_the_root_never_hands_the_root_folder_over(runner):
    c = runner.start([*ACME_FLAGS, "--certificatesresolvers.le.acme.storage=/acme.json"])
    await _proxy_status(c)
    assert c.exec_run(["stat", "-c", "%u", "/"]).output.decode().strip() == "0"
    assert "a storage file at / cannot be written by uid 65532" in c.logs().decode()


async def test_an_acme_json_mounted_on_its_own_is_handed_over_not_the_root_folder(runner, tmp_path):
    """Traefik's ``-v ./acme.json:/acme.json``: the file (root's, mode 600) is handed to 65532, ``/`` is not;
    dockroute then rewrites that file in place (tests/unit/test_acme_storage.py, with a real bind mount)."""
    acme = tmp_path / "acme.json"
    acme.write_text("{}")
    acme.chmod(0o600)
    os.chown(acme, 0, 0)
    c = runner.start(
        [*ACME_FLAGS, "--certificatesresolvers.le.acme.storage=/acme.json"],
        volumes={str(acme): {"bind": "/acme.json", "mode": "rw"}},
    )
    await _proxy_status(c)
    assert acme.stat().st_uid == UID
    assert c.exec_run(["stat", "-c", "%u", "/"]).output.decode().strip() == "0"
    assert "cannot be written" not in c.logs().decode()


async def test_a_given_user_runs_unchanged_and_becomes_healthy(runner):
    gid = os.stat(SOCKET).st_gid
    c = runner.start(
        ["--providers.docker", "--entrypoints.web.address=:80"],
        user=f"{UID}:{UID}",
        group_add=[str(gid)],
        volumes={SOCKET: {"bind": SOCKET, "mode": "ro"}},
        healthcheck=FAST_HEALTH,
    )
    status = await _proxy_status(c)
    assert status["Uid"].split() == [str(UID)] * 4
    assert str(gid) in status["Groups"].split()
    # never root: no setpriv in between, and no capability but what the engine gives a non-root user
    assert int(status["CapEff"], 16) == 0
    health = await _healthy(c)
    assert "web (:80) accept TCP connections" in health["Log"][-1]["Output"]


async def test_healthy_with_ping(runner):
    c = runner.start(["--ping", "--entrypoints.web.address=:80"], healthcheck=FAST_HEALTH)
    health = await _healthy(c)
    assert health["Log"][-1]["Output"] == "OK: http://:8080/ping\n"


@pytest.mark.parametrize("init", [False, True], ids=["", "docker-run-init"])
async def test_healthy_without_ping_by_tcp(runner, init):
    # with --init PID 1 is docker-init, which runs the entry point: the flags are still found after it
    c = runner.start(
        ["--entrypoints.web.address=:80", "--entrypoints.websecure.address=:443"],
        healthcheck=FAST_HEALTH,
        init=init,
    )
    health = await _healthy(c)
    assert health["Log"][-1]["Output"] == (
        "OK: entry points web (:80), websecure (:443) accept TCP connections "
        "(no ping configured: enable --ping for an HTTP check)\n"
    )


async def _unhealthy(container: Any, timeout: float = 30) -> dict[str, Any]:
    def health() -> dict[str, Any] | None:
        container.reload()
        state = container.attrs["State"]
        assert state["Status"] in ("created", "running"), container.logs().decode()
        return state["Health"] if state.get("Health", {}).get("Status") == "unhealthy" else None

    return await wait_for(health, timeout=timeout, interval=0.2)


async def test_the_container_becomes_unhealthy_when_ping_is_not_answered(runner):
    # ping on web with manualRouting: no router serves /ping, so HEAD /ping gets 404 on every check
    flags = ["--ping", "--ping.entrypoint=web", "--ping.manualrouting=true", "--entrypoints.web.address=:80"]
    c = runner.start(flags, healthcheck=FAST_HEALTH)
    health = await _unhealthy(c)
    assert health["FailingStreak"] >= 3
    assert health["Log"][-1]["Output"] == "Bad healthcheck status: 404 Not Found\n"
    assert health["Log"][-1]["ExitCode"] == 1


async def test_unhealthy_when_an_entry_point_is_not_listening(runner):
    # the entry point traefik (:8080) is only opened with ping/api/metrics: a check naming a port
    # nothing listens on must fail, or the healthy results above prove nothing
    c = runner.start(["--entrypoints.web.address=:80"], healthcheck=FAST_HEALTH)
    await _healthy(c)
    done = c.exec_run(["dockroute", "healthcheck", "--container", "--entrypoints.extra.address=:9"])
    assert done.exit_code == 1
    assert done.output.decode().startswith("Error calling healthcheck: entry point extra (:9): ")


async def test_docker_stop_ends_it_quickly_with_status_0(runner):
    c = runner.start(["--ping", "--entrypoints.web.address=:80"], healthcheck=FAST_HEALTH)
    await _healthy(c)
    started = time.monotonic()
    c.stop(timeout=20)
    took = time.monotonic() - started
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 0, c.logs().decode()
    assert took < 5, f"docker stop took {took:.1f}s"


async def test_a_storage_path_climbing_out_of_data_is_not_taken_for_data(runner):
    """``/data/../acme.json`` is ``/acme.json`` and ``/data/../etc`` is ``/etc``: neither ``/`` nor
    ``/etc`` is handed to uid 65532 (read as text, both start with /data/)."""
    c = runner.start(
        [
            *ACME_FLAGS,
            "--certificatesresolvers.le.acme.storage=/data/../acme.json",
            "--certificatesresolvers.ca.internalca.storage=/data/../etc",
        ]
    )
    await _proxy_status(c)
    assert _owner(c, "/") == "0"
    assert _owner(c, "/etc") == "0"
    logs = c.logs().decode()
    assert "a storage file at / cannot be written by uid 65532" in logs
    assert "/etc is neither a volume nor under /data: not handing it to uid 65532" in logs


def _root_folder(tmp_path: Any, name: str) -> Any:
    """A folder with an acme.json as Traefik leaves them: root's, the file mode 600."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "acme.json").write_text("{}")
    (folder / "acme.json").chmod(0o600)
    os.chown(folder, 0, 0)
    os.chown(folder / "acme.json", 0, 0)
    return folder


@pytest.mark.parametrize("prefix", ["TRAEFIK_", "DOCKROUTE_"])
async def test_an_acme_storage_given_by_variable_is_handed_to_the_user(runner, tmp_path, prefix):
    certs = _root_folder(tmp_path, "certs")
    environment = {
        f"{prefix}CERTIFICATESRESOLVERS_LE_ACME_STORAGE": "/certs/acme.json",
        # a multi-line value with a line that looks like a storage variable: no such variable is set,
        # and the entry point must not stop on it
        "NOTE": "first line\nTRAEFIK_CERTIFICATESRESOLVERS_Q_ACME_STORAGE=/q/acme.json",
    }
    c = runner.start(
        ACME_FLAGS, environment=environment, volumes={str(certs): {"bind": "/certs", "mode": "rw"}}
    )
    await _proxy_status(c)
    assert certs.stat().st_uid == UID
    assert (certs / "acme.json").stat().st_uid == UID
    assert c.exec_run(["test", "-e", "/q"]).exit_code == 1


async def test_an_internal_ca_storage_folder_is_handed_to_the_user(runner, tmp_path):
    ca = _root_folder(tmp_path, "ca")
    c = runner.start(
        ["--entrypoints.web.address=:80", "--certificatesresolvers.ca.internalca.storage=/ca"],
        volumes={str(ca): {"bind": "/ca", "mode": "rw"}},
    )
    await _proxy_status(c)
    assert ca.stat().st_uid == UID
    assert (ca / "acme.json").stat().st_uid == UID


async def test_dockroute_run_as_root_keeps_root(runner):
    c = runner.start(["--entrypoints.web.address=:80"], environment={"DOCKROUTE_RUN_AS_ROOT": "true"})
    status = await _proxy_status(c)
    assert status["Uid"].split() == ["0"] * 4


async def test_with_every_capability_dropped_but_net_bind_service_it_runs_as_root_and_says_why(runner):
    """compose ``cap_drop: [ALL]`` + ``cap_add: [NET_BIND_SERVICE]`` (a common Traefik hardening): setpriv
    cannot change the user there, so the proxy runs as root, serves, and the log names the fix."""
    c = runner.start(
        ["--ping", "--entrypoints.web.address=:80"], cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"]
    )
    status = await _proxy_status(c)
    assert status["Uid"].split() == ["0"] * 4
    assert int(status["CapEff"], 16) == NET_BIND_SERVICE
    await wait_for(lambda: "OK" in _http(c, "http://127.0.0.1:8080/ping"), timeout=20, interval=0.2)
    await wait_for(lambda: "web:" in _http(c, "http://127.0.0.1:80/"), timeout=20, interval=0.2)
    logs = c.logs().decode()
    assert "docker-entrypoint: running dockroute as root" in logs
    assert "this container lacks CHOWN SETGID SETUID" in logs
    assert "cap_add: [NET_BIND_SERVICE, CHOWN, SETGID, SETUID]" in logs
    assert "setresuid failed" not in logs


def _http(container: Any, url: str) -> str:
    """The body of a GET from inside the container, or "status N" / "" (nothing answers yet)."""
    code = (
        "import urllib.request as u, urllib.error as e\n"
        f"try: print(u.urlopen({url!r}, timeout=5).read().decode())\n"
        "except e.HTTPError as x: print(f'web: status {x.code}')\n"
    )
    done = container.exec_run(["python3", "-c", code])
    return done.output.decode() if done.exit_code == 0 else ""


@pytest.mark.parametrize(
    "form",
    [
        {"command": ["--providers.docker.endpoint=unix:///run/d.sock"]},
        {"command": ["--PROVIDERS.DOCKER.ENDPOINT", "unix:///run/d.sock"]},
        {"environment": {"TRAEFIK_PROVIDERS_DOCKER_ENDPOINT": "unix:///run/d.sock"}},
        {"environment": {"DOCKROUTE_PROVIDERS_DOCKER_ENDPOINT": "unix:///run/d.sock"}},
    ],
    ids=["flag", "flag-space-upper", "traefik-variable", "dockroute-variable"],
)
async def test_the_socket_named_by_providers_docker_endpoint_gives_its_group(runner, form):
    gid = os.stat(SOCKET).st_gid
    assert gid != UID
    c = runner.start(
        ["--providers.docker", "--entrypoints.web.address=:80", *form.get("command", [])],
        environment=form.get("environment", {}),
        volumes={SOCKET: {"bind": "/run/d.sock", "mode": "ro"}},
    )
    status = await _proxy_status(c)
    assert status["Groups"].split() == sorted({str(UID), str(gid)}, key=int)


async def test_a_traefik_compose_healthcheck_command_works(runner):
    """Traefik's compose files check health with ``["CMD", "traefik", "healthcheck", "--ping"]``."""
    traefik_check = {**FAST_HEALTH, "test": ["CMD", "traefik", "healthcheck", "--ping"]}
    c = runner.start(["--ping", "--entrypoints.web.address=:80"], healthcheck=traefik_check)
    health = await _healthy(c)
    assert health["Log"][-1]["Output"] == "OK: http://:8080/ping\n"


async def test_home_is_data_so_the_configuration_search_finds_its_config_folder(runner, tmp_path):
    """dockroute looks for its file in ``$HOME/.config`` too: there ``$HOME`` is /data, not root's /root."""
    config = tmp_path / "traefik.yml"
    config.write_text('entryPoints:\n  fromhome:\n    address: ":81"\n')
    c = runner.start(
        ["dockroute"], volumes={str(config): {"bind": "/data/.config/traefik.yml", "mode": "ro"}}
    )
    await _proxy_status(c)
    await wait_for(lambda: "entrypoint fromhome listening" in c.logs().decode(), timeout=20, interval=0.2)


async def test_a_json_symlink_in_a_storage_folder_is_not_followed(runner, tmp_path):
    """``chown -h``: a ``*.json`` link in a handed-over folder (here to the container's /etc/passwd) is not
    followed, or uid 65532 would own what it points at."""
    certs = _root_folder(tmp_path, "certs")
    (certs / "evil.json").symlink_to("/etc/passwd")
    c = runner.start(
        [*ACME_FLAGS, "--certificatesresolvers.le.acme.storage=/certs/acme.json"],
        volumes={str(certs): {"bind": "/certs", "mode": "rw"}},
    )
    await _proxy_status(c)
    assert certs.stat().st_uid == UID
    assert _owner(c, "/etc/passwd") == "0"
