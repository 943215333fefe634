from __future__ import annotations

import pytest

from tests.e2e import compose
from tests.integration import docker_env
from tests.unavailable import require_tools


@pytest.fixture(scope="session")
def engine():
    """The Docker engine, docker-compose, and the images (dockroute:local and the stand-ins) built."""
    client = docker_env.engine_for_tests()
    require_tools("docker-compose")
    compose.build_images()
    return client
