"""compose-examples/load-balanced, run as its README says: app.localhost is served by three replicas in
turn; a replica that stops leaves the rotation, and comes back when it starts again; with
STICKY_SESSIONS=true a client's cookie keeps it on one replica, and moves it to another when that one
stops.

The test override keeps this dockroute to its own compose project's containers: parallel tests run the
other examples, with routers of the same names, on the same engine."""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping

import aiohttp

from tests.e2e import compose
from tests.integration.pebble_env import free_port
from tests.polling import wait_for

HOST = "app.localhost"


class Answer:
    """One answer: status, which replica (whoami's ``Hostname:``, the container's short id), Set-Cookie."""

    def __init__(self, status: int, body: str, set_cookie: str | None):
        self.status = status
        found = re.search(r"^Hostname: (\S+)$", body, re.M)
        self.replica = found.group(1) if found and status == 200 else None
        self.set_cookie = set_cookie

    @property
    def cookie(self) -> str:
        """The cookie to send back (``name=value``)."""
        assert self.set_cookie, "no Set-Cookie in the answer"
        return self.set_cookie.split(";", 1)[0]


async def get(port: int, cookie: str | None = None) -> Answer | None:
    """One request on a new connection, cookie sent by hand (aiohttp's jar keeps none for an IP address);
    None when nothing answers (dockroute not listening yet, or a request caught by a replica stopping)."""
    headers = {"Host": HOST, **({"Cookie": cookie} if cookie else {})}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s,
            s.get(f"http://127.0.0.1:{port}/", headers=headers) as r,
        ):
            return Answer(r.status, await r.text(), r.headers.get("Set-Cookie"))
    except (TimeoutError, aiohttp.ClientError):
        return None


async def replicas_seen(port: int, n: int, cookie: str | None = None) -> list[str | None]:
    """Which replica answered each of ``n`` requests in a row (None: not a 200 from a replica)."""
    answers = [await get(port, cookie) for _ in range(n)]
    return [a.replica if a else None for a in answers]


def up(env: Mapping[str, str]) -> tuple[int, compose.Project]:
    port = free_port()
    return port, compose.running("load-balanced", env={"HTTP_PORT": str(port), **env})


async def all_in_rotation(port: int, replicas: set[str]) -> None:
    """Until dockroute balances over every replica (they start one after the other)."""

    async def every_one() -> bool:
        return set(await replicas_seen(port, 2 * len(replicas))) == replicas

    await wait_for(every_one, timeout=60, interval=0.2)


async def test_requests_go_round_the_three_replicas_a_stopped_one_leaves_the_rotation_till_restarted(engine):
    port, running = up({})
    with running as project:
        containers = project.containers(engine, "app")
        replicas = {c.id[:12] for c in containers}
        assert len(replicas) == 3, "deploy.replicas: 3 gives three containers"
        await all_in_rotation(port, replicas)

        first = await get(port)
        assert first.set_cookie is None, "sticky sessions are off by default"
        counts = collections.Counter(await replicas_seen(port, 9))
        assert counts == {r: 3 for r in replicas}, counts  # round robin: each in turn

        stopped = containers[0]
        stopped.stop(timeout=3)
        left = replicas - {stopped.id[:12]}

        async def out_of_rotation() -> bool:
            return set(await replicas_seen(port, 6)) == left

        await wait_for(out_of_rotation, timeout=30, interval=0.2)
        counts = collections.Counter(await replicas_seen(port, 10))
        assert counts == {r: 5 for r in left}, counts  # every request answered, by the two left

        stopped.start()  # and back in the rotation once it runs again, with nothing reloaded
        await all_in_rotation(port, replicas)
        project.assert_still_up(engine, "dockroute")


async def test_sticky_sessions_keep_a_client_on_its_replica_until_that_one_stops(engine):
    port, running = up({"STICKY_SESSIONS": "true"})
    with running as project:
        containers = {c.id[:12]: c for c in project.containers(engine, "app")}
        await all_in_rotation(port, set(containers))

        first = await get(port)
        assert first.replica in containers
        cookie = first.cookie
        assert set(await replicas_seen(port, 9, cookie)) == {first.replica}
        # Without the cookie, clients are still spread over the three.
        assert set(await replicas_seen(port, 6)) == set(containers)

        containers[first.replica].stop(timeout=3)

        async def moved() -> Answer | None:
            a = await get(port, cookie)
            return a if a and a.replica and a.replica != first.replica else None

        moved_to = await wait_for(moved, timeout=30, interval=0.2)
        # The new replica sets its own cookie, and the client stays there from then on.
        assert set(await replicas_seen(port, 6, moved_to.cookie)) == {moved_to.replica}
        project.assert_still_up(engine, "dockroute")
