"""Run a compose example for real: docker-compose 1.29 (what CI can install), the example's own file plus
a test-only override that swaps the images no registry here can give, a unique project name and free
host ports; everything is torn down afterwards.

Containers are found by their compose labels, never by name: Compose v1 names them ``project_service_1``,
v2 ``project-service-1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import docker

from tests.unavailable import require_tools

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "compose-examples"
OVERRIDES = Path(__file__).resolve().parent / "overrides"
IMAGE = "dockroute:local"
# The name the examples' image lines give: not on a registry yet, so the tests tag the local build with it
# (what the READMEs tell users to do with `docker build -t`), and the examples run their own image line.
PUBLISHED = "ghcr.io/dockroute/dockroute:latest"
STANDIN = "dockroute-e2e-standin:local"
_LOCK = Path("/tmp/dockroute-e2e-images.lock")


def build_images() -> None:
    """``scripts/build-image`` (dockroute:local from the unchanged Dockerfile), then the stand-ins on the
    same runtime base (Python, nothing of dockroute's image: no EXPOSE 80/443, no VOLUME, no health check
    for them to inherit). Under a lock: parallel test workers each ask, the first builds, the others find
    everything cached and return in a second."""
    require_tools("docker", "debootstrap")
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run([str(ROOT / "scripts" / "build-image")])
        _run(["docker", "tag", IMAGE, PUBLISHED])
        base = _run([str(ROOT / "scripts" / "build-image"), "--base-only"]).strip().splitlines()[-1]
        standin = str(Path(__file__).resolve().parent / "standin")
        _run(["docker", "build", "-q", "--build-arg", f"FROM_IMAGE={base}", "-t", STANDIN, standin])


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Project:
    """One example brought up under a unique project name."""

    def __init__(
        self,
        example: str,
        env: Mapping[str, str] | None = None,
        override: str | None = None,
        env_file: Path | None = None,
    ):
        """``env_file``: given to ``--env-file`` instead of the example's ``.env`` (Compose 1.25+), so its
        quoting is Compose's to read, as a user's ``.env`` is."""
        self.example = example
        self.env_file = env_file
        self.dir = EXAMPLES / example
        self.name = f"e2e{uuid.uuid4().hex[:10]}"
        # COMPOSE_PROJECT_NAME too, for overrides that name the project (v1 interpolates only variables)
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": self.name, **dict(env or {})}
        self.files = [self.dir / "docker-compose.yml"]
        extra = OVERRIDES / f"{override or example}.yml"
        if extra.exists():
            self.files.append(extra)

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        cmd = ["docker-compose", "--project-directory", str(self.dir), "-p", self.name]
        for f in self.files:
            cmd += ["-f", str(f)]
        if self.env_file:
            cmd += ["--env-file", str(self.env_file)]
        done = subprocess.run([*cmd, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and done.returncode:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")

    def down(self, client=None) -> None:
        """``down -v``; when it times out, the project's leftovers (containers with their anonymous
        volumes, networks, named volumes) are removed by its label."""
        try:
            self.compose("down", "-v", "--remove-orphans", "-t", "3", check=False)
        except subprocess.TimeoutExpired:
            self.remove_leftovers(client)

    def remove_leftovers(self, client=None) -> None:
        """What ``down`` left of this project, found by its label: only this project's resources."""
        client = client or docker.from_env()
        label = {"label": [f"com.docker.compose.project={self.name}"]}
        # NotFound: compose, timed out but still running, may have removed it meanwhile
        for container in client.containers.list(all=True, filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        for network in client.networks.list(filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
        for volume in client.volumes.list(filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)

    def assert_still_up(self, client, service: str) -> None:
        """``service``'s container still running and never restarted: ``restart: unless-stopped`` would
        otherwise hide a crash loop behind answers from the next start."""
        (container,) = self.containers(client, service)
        container.reload()
        assert container.attrs["State"]["Running"], container.attrs["State"]
        assert container.attrs["RestartCount"] == 0, (service, container.attrs["RestartCount"])

    def logs(self, service: str | None = None) -> str:
        try:
            done = self.compose("logs", "--no-color", *([service] if service else []), check=False)
        except subprocess.TimeoutExpired as e:  # printed on a failure: must not replace the test's error
            return f"(no logs: {e})"
        return done.stdout + done.stderr

    def containers(self, client, service: str | None = None) -> list:
        labels = [f"com.docker.compose.project={self.name}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return client.containers.list(all=True, filters={"label": labels})


@contextlib.contextmanager
def running(
    example: str,
    env: Mapping[str, str] | None = None,
    override: str | None = None,
    env_file: Path | None = None,
) -> Iterator[Project]:
    """The example up (``docker-compose up -d``), torn down (``down -v``) whatever the test did; its logs are
    printed when the test fails (pytest shows captured output then)."""
    project = Project(example, env, override, env_file)
    try:
        project.up()
        yield project
    except BaseException:
        print(project.logs())
        raise
    finally:
        project.down()
