"""Every compose example is a file both Compose versions read: Compose v1 (1.29, what CI can install)
parses it with ``docker-compose config``, and it is valid against the Compose Specification's JSON schema,
which Compose v2 validates against (tests/e2e/compose-spec.json: compose-spec/compose-spec's
schema/compose-spec.json, commit 170098b, June 2026). The test-only overrides are checked the same way
with v1, merged onto their example."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.e2e.compose import EXAMPLES, OVERRIDES
from tests.unavailable import require_tools

# Every folder of compose-examples/ but swarm, whose docker-stack.yml is for `docker stack deploy`
# (test_compose_runner checks its published image the same way).
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "docker-compose.yml").is_file())
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())


def test_every_example_has_a_readme():
    assert {"quickstart", "homelab-https", "dns-wildcard", "from-traefik"} <= set(EXAMPLE_NAMES)
    for name in EXAMPLE_NAMES:
        assert (EXAMPLES / name / "docker-compose.yml").is_file(), name
        assert (EXAMPLES / name / "README.md").is_file(), name


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_valid_for_compose_v2_schema(name):
    jsonschema.Draft7Validator(SCHEMA).validate(
        yaml.safe_load((EXAMPLES / name / "docker-compose.yml").read_text())
    )


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_compose_v1_reads_it_alone_and_with_its_override(name):
    require_tools("docker-compose")
    folder = EXAMPLES / name
    files = [["-f", str(folder / "docker-compose.yml")]]
    if (OVERRIDES / f"{name}.yml").exists():
        files.append([*files[0], "-f", str(OVERRIDES / f"{name}.yml")])
    for args in files:
        done = subprocess.run(
            ["docker-compose", "--project-directory", str(folder), *args, "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_name_published_images_only(name):
    """The examples are what users copy: no image only this machine has (the overrides swap those in)."""
    services = yaml.safe_load((EXAMPLES / name / "docker-compose.yml").read_text())["services"]
    for service, spec in services.items():
        image = spec.get("image", "")
        assert image and not image.endswith(":local") and "e2e" not in image, (service, image)


def test_readme_run_it_with_docker_is_the_quickstart():
    """The README's "Run it with Docker" block is the quickstart file, byte for byte: what CI runs is what
    a reader copies."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("## Run it with Docker", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == (EXAMPLES / "quickstart" / "docker-compose.yml").read_text()
