"""compose-examples/swarm/docker-stack.yml: a valid Compose file whose labels route as its comments say."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from discover.docker_labels import build_docker_config
from discover.swarm_tasks import swarm_containers
from dockroute.static.build import load_static
from tests.unit.test_swarm_tasks import NETWORKS, service, task

ROOT = Path(__file__).resolve().parents[2]
STACK = yaml.safe_load((ROOT / "compose-examples" / "swarm" / "docker-stack.yml").read_text())


def test_valid_for_the_compose_schema():
    schema = json.loads((ROOT / "tests" / "e2e" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(STACK)


def test_its_flags_and_labels_route_whoami_over_its_three_tasks():
    static = load_static(STACK["services"]["dockroute"]["command"], {}, search_dirs=[])
    settings = static.swarm_provider
    assert settings is not None and not settings.exposed_by_default
    labels = dict(item.split("=", 1) for item in STACK["services"]["whoami"]["deploy"]["labels"])
    proxy = {"Name": settings.network, "Id": "p" * 25, "Scope": "swarm", "Driver": "overlay"}
    tasks = [task("svcedge_whoami", n, f"10.0.9.{n + 1}", net=proxy) for n in (1, 2, 3)]
    view = swarm_containers([service("edge_whoami", labels)], tasks, [*NETWORKS, proxy], settings)
    cfg, _ = build_docker_config(view.containers, settings)
    assert cfg.routers["whoami"].rule == "Host(`whoami.localhost`)"
    assert len(cfg.services["whoami"].load_balancer.servers) == 3
