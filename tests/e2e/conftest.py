from __future__ import annotations

import os

import pytest

from tests.e2e import compose
from tests.integration import docker_env


@pytest.fixture(scope="session")
def engine():
    """The Docker engine, docker-compose, and the images (dockroute:local and the stand-ins) built."""
    client = docker_env.engine()
    if client is None:
        if os.environ.get("CI"):
            pytest.fail("no Docker engine answers; .ci/run should have started dockerd")
        pytest.skip("no Docker engine on this machine")
    compose.require("docker-compose")
    compose.build_images()
    return client
