from __future__ import annotations

import pytest

from tests.integration import docker_env
from tests.integration.bind_env import bind  # noqa: F401  (the fixture, for every integration test)
from tests.integration.harness import Backend, Dockroute


@pytest.fixture
async def backends():
    started: list[Backend] = []

    async def make(*names: str) -> list[Backend]:
        out = []
        for name in names:
            b = await Backend(name).start()
            started.append(b)
            out.append(b)
        return out

    yield make
    for b in started:
        await b.stop()


@pytest.fixture
async def proxy(tmp_path):
    """Factory: ``await proxy(dynamic, static=None)`` starts the real process; it is stopped afterwards."""
    procs: list[Dockroute] = []

    async def make(dynamic: dict | None = None, static: dict | None = None, **kw) -> Dockroute:
        d = Dockroute(tmp_path, static=static, dynamic=dynamic)
        procs.append(d)
        return await d.start(**kw)

    yield make
    for d in procs:
        await d.stop()


@pytest.fixture(scope="module")
def client():
    """The Docker engine the tests use (its image built offline); skipped without one, failed in CI."""
    c = docker_env.engine_for_tests()
    docker_env.ensure_image(c)
    return c


@pytest.fixture
def containers(client):
    """``track(name)``: containers removed when the test ends, whatever it did."""
    names: list[str] = []

    def track(name: str) -> str:
        names.append(name)
        return name

    yield track
    docker_env.remove(client, *names)
