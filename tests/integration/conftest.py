from __future__ import annotations

import pytest

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
