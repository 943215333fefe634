"""The runner the example tests share (tests/e2e/compose.py): the examples run their own image line, and a
``down`` that times out still removes the run's containers (with their anonymous volumes), networks and
volumes, without hiding the test's own error."""

from __future__ import annotations

import subprocess

import docker
import pytest
import yaml

from tests.e2e import compose


def test_no_override_swaps_dockroutes_image_the_examples_own_line_runs():
    for example in compose.EXAMPLES.iterdir():
        # a compose file, or the swarm example's stack file (docker stack deploy)
        (file,) = [f for f in (example / "docker-compose.yml", example / "docker-stack.yml") if f.is_file()]
        services = yaml.safe_load(file.read_text())["services"]
        ours = {name for name, svc in services.items() if svc.get("image") == compose.PUBLISHED}
        assert ours, example.name
        for override in compose.OVERRIDES.glob(f"{example.name}*.yml"):
            swapped = yaml.safe_load(override.read_text())["services"]
            for name in ours & set(swapped):
                assert "image" not in swapped[name], (override.name, name)


def test_the_published_name_is_the_local_build(engine):
    assert engine.images.get(compose.PUBLISHED).id == engine.images.get(compose.IMAGE).id


def test_a_down_that_times_out_removes_the_runs_leftovers_and_keeps_the_tests_error(engine, monkeypatch):
    project = compose.Project("quickstart")
    label = {"com.docker.compose.project": project.name}
    network = engine.networks.create(f"{project.name}_default", labels=label)
    volume = engine.volumes.create(f"{project.name}_data", labels=label)
    container = engine.containers.create(compose.STANDIN, labels=label, volumes=["/data"])
    container.reload()
    anonymous = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]

    def hung(*args, **kwargs):
        raise subprocess.TimeoutExpired(["docker-compose", *args], 180)

    monkeypatch.setattr(compose.Project, "up", lambda self: None)
    monkeypatch.setattr(compose.Project, "compose", hung)
    monkeypatch.setattr(compose, "Project", lambda *a, **k: project)
    try:
        with pytest.raises(ValueError, match="the test's own error"), compose.running("quickstart"):
            raise ValueError("the test's own error")
    finally:
        gone = []
        for get, ident in [
            (engine.containers.get, container.id),
            (engine.networks.get, network.id),
            (engine.volumes.get, volume.name),
            *[(engine.volumes.get, name) for name in anonymous],
        ]:
            try:
                leftover = get(ident)
            except docker.errors.NotFound:
                gone.append(ident)
                continue
            leftover.remove(**({"force": True} if get != engine.networks.get else {}))
    assert len(gone) == 3 + len(anonymous) and anonymous
