"""The swarm provider's loop without an engine: polling, events, publishing only changes, engine down."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from discover.docker_model import DockerSettings, Reach
from discover.docker_provider import DockerProvider
from discover.swarm_model import SwarmSettings
from discover.swarm_provider import SwarmProvider, _is_task_event
from tests.polling import wait_for
from tests.unit.test_swarm_tasks import NETWORKS, PORT, service, task


class FakeSwarm:
    """What the three list calls return; ``error`` makes them fail (the engine is down)."""

    def __init__(self) -> None:
        self.services = [service("web", {PORT: "80"})]
        self.tasks = [task("svcweb", 1, "10.0.1.2")]
        self.error: Exception | None = None
        self.calls = 0

    def list(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return list(self.services), list(self.tasks), NETWORKS, Reach()


def provider(settings: SwarmSettings, fake: FakeSwarm) -> SwarmProvider:
    p = SwarmProvider(settings, debounce=0.01, backoff=(0.05, 0.2))
    p._list = fake.list  # noqa: SLF001
    return p


def servers(cfg):
    return sorted(s.url for s in cfg.services["web"].load_balancer.servers)


async def until(cond, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_polls_every_refresh_seconds_and_publishes_only_changes():
    async def main():
        fake = FakeSwarm()
        published = []
        p = provider(SwarmSettings(refresh_seconds=0.05, watch=True), fake)
        p._events_thread = lambda: None  # noqa: SLF001 - no engine to stream from
        run = asyncio.create_task(p.run(published.append))
        await until(lambda: len(published) == 1)
        calls = fake.calls
        await until(lambda: fake.calls >= calls + 3)  # polled again, nothing changed: nothing published
        assert len(published) == 1
        fake.tasks.append(task("svcweb", 2, "10.0.1.3"))
        await until(lambda: len(published) == 2)
        assert servers(published[-1]) == ["http://10.0.1.2:80", "http://10.0.1.3:80"]
        run.cancel()

    asyncio.run(main())


def test_an_event_rebuilds_at_once_and_follows_up():
    async def main():
        fake = FakeSwarm()
        published = []
        p = provider(SwarmSettings(refresh_seconds=60, watch=True), fake)
        p._events_thread = lambda: None  # noqa: SLF001
        run = asyncio.create_task(p.run(published.append))
        await until(lambda: len(published) == 1)
        fake.tasks = []  # scaled to zero
        t0 = asyncio.get_running_loop().time()
        p._trigger()  # noqa: SLF001 - what the events thread does on a service event
        await until(lambda: len(published) == 2, timeout=1.0)
        assert asyncio.get_running_loop().time() - t0 < 1.0  # not the 60 s poll
        calls = fake.calls
        await until(lambda: fake.calls >= calls + 1, timeout=2.0)  # the follow-up a second later
        run.cancel()

    asyncio.run(main())


def test_engine_down_keeps_the_last_routes_logs_once_and_backs_off(caplog):
    async def main():
        fake = FakeSwarm()
        published = []
        p = provider(SwarmSettings(refresh_seconds=0.05, watch=False), fake)
        fake.error = ConnectionError("connection refused")
        run = asyncio.create_task(p.run(published.append))
        await until(lambda: fake.calls >= 4)
        assert published == []
        fake.error = None
        await run  # watch off: one successful list, then done
        assert len(published) == 1

    with caplog.at_level(logging.INFO, logger="dockroute.swarm"):
        asyncio.run(main())
    down = [r for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(down) == 1 and "last routes keep serving" in down[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_not_a_swarm_manager_says_so(caplog):
    fake = FakeSwarm()
    fake.error = RuntimeError(
        '503 Server Error: Service Unavailable ("This node is not a swarm manager. Use "docker swarm init"")'
    )
    p = provider(SwarmSettings(), fake)
    with caplog.at_level(logging.WARNING, logger="dockroute.swarm"):
        assert p._list_and_build() is None  # noqa: SLF001
        assert p._list_and_build() is None  # noqa: SLF001
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "is not a swarm manager" in lines[0]


def test_records_and_notes_reach_the_api_and_the_log(caplog):
    fake = FakeSwarm()
    fake.services.append(service("vip", {"traefik.swarm.lbswarm": "yes please"}))
    p = provider(SwarmSettings(), fake)
    with caplog.at_level(logging.INFO, logger="dockroute.swarm"):
        _, cfg = p._list_and_build()  # noqa: SLF001
        p._list_and_build()  # noqa: SLF001 - the same lines are not logged twice
    kinds = {(d.name, d.kind, d.routed) for d in cfg.discovered}
    assert kinds == {("web.1", "task", True), ("vip", "service", False)}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "swarm service vip is not routed: label traefik.swarm.lbswarm: expected "
        + lines[0].split("expected ", 1)[1]
    ]


def test_which_events_wake_the_provider():
    task_start = {
        "Type": "container",
        "Action": "start",
        "Actor": {"Attributes": {"com.docker.swarm.service.id": "x", "com.docker.swarm.service.name": "web"}},
    }
    assert _is_task_event(task_start)
    assert _is_task_event({"Type": "service", "Action": "update", "Actor": {"Attributes": {"name": "web"}}})
    assert _is_task_event({"Type": "node", "Action": "update"})
    assert not _is_task_event({"Type": "container", "Action": "start", "Actor": {"Attributes": {}}})
    assert not _is_task_event({**task_start, "Action": "exec_start: sh"})


class OneEventStream:
    """An engine event stream: once ``go`` is set it yields one container event of a swarm task, then
    stays open (as the engine's does) until closed."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.closed = threading.Event()

    def __iter__(self):
        self.go.wait(5)
        yield {
            "Type": "container",
            "Action": "start",
            "Actor": {
                "Attributes": {
                    "com.docker.swarm.service.id": "svcweb",
                    "com.docker.swarm.service.name": "web",
                }
            },
        }
        self.closed.wait(5)

    def close(self) -> None:
        self.closed.set()


def test_a_task_containers_engine_event_rebuilds_well_before_refresh_seconds():
    stream = OneEventStream()

    class Client:
        def events(self, **_kw):
            return stream

    async def main():
        fake = FakeSwarm()
        published = []
        p = provider(SwarmSettings(refresh_seconds=60, watch=True), fake)
        p._client = lambda timeout=None: Client()  # noqa: SLF001 - the events thread's engine
        run = asyncio.create_task(p.run(published.append))
        await until(lambda: len(published) == 1)
        fake.tasks.append(task("svcweb", 2, "10.0.1.3"))  # a task started on this node
        t0 = asyncio.get_running_loop().time()
        stream.go.set()
        await until(lambda: len(published) == 2, timeout=2.0)
        assert asyncio.get_running_loop().time() - t0 < 2.0  # the event, not the 60 s poll
        assert servers(published[-1]) == ["http://10.0.1.2:80", "http://10.0.1.3:80"]
        assert p.events_seen == 1
        run.cancel()
        await until(stream.closed.is_set)  # stop closes the stream under the thread

    asyncio.run(main())


@pytest.mark.parametrize(
    "make",
    [
        lambda url: SwarmProvider(SwarmSettings(endpoint=url), backoff=(0.05, 0.1)),
        lambda url: DockerProvider(DockerSettings(endpoint=url), backoff=(0.05, 0.1)),
    ],
    ids=["swarm", "docker"],
)
def test_an_engine_that_accepts_and_never_answers_does_not_hang_the_events_thread(make):
    """The events thread's first calls (``/version``, the ping) are bounded: it gives up, tries again,
    and stops when asked; it used to wait forever, before its stream was set for stop to close."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])  # kept open, never answered
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    p = make(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    p.call_timeout = 0.3
    thread = threading.Thread(target=p._events_thread, daemon=True)  # noqa: SLF001
    try:
        thread.start()
        asyncio.run(wait_for(lambda: len(accepted) >= 2, timeout=5.0))  # gave up on the first, retried
        p._shut()  # noqa: SLF001
        thread.join(3.0)
        assert not thread.is_alive()
    finally:
        p._stop.set()  # noqa: SLF001
        listener.close()
        for conn in accepted:
            conn.close()
