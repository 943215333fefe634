"""compose-examples/quickstart, run as its README says: ``docker-compose up -d``, then whoami.localhost
answers from the whoami container through dockroute, which runs as an unprivileged user.

The test override keeps this dockroute to its own compose project's containers: parallel tests run the
other examples, with routers of the same names, on the same engine."""

from __future__ import annotations

import ipaddress
import re
import uuid

from tests.e2e import compose
from tests.e2e.client import get
from tests.integration.pebble_env import free_port
from tests.polling import wait_for


def proc_status(container) -> dict[str, str]:
    """PID 1's /proc status lines (``Uid``, ``Gid``, ``CapEff``...) read inside ``container``."""
    done = container.exec_run(["cat", "/proc/1/status"])
    assert done.exit_code == 0, done.output
    return dict(line.split(":\t", 1) for line in done.output.decode().splitlines() if ":\t" in line)


async def test_whoami_localhost_answers_from_the_whoami_container_through_unprivileged_dockroute(engine):
    port = free_port()
    with compose.running("quickstart", env={"HTTP_PORT": str(port)}) as project:
        (whoami,) = project.containers(engine, "whoami")
        (proxy,) = project.containers(engine, "dockroute")

        async def routed() -> str | None:
            got = await get(port, "whoami.localhost")
            return got[1] if got and got[0] == 200 else None

        body = await wait_for(routed, timeout=60, interval=0.2)
        assert re.search(r"^Hostname: (\S+)$", body, re.M).group(1) == whoami.id[:12]
        assert re.search(r"^Host: whoami\.localhost$", body, re.M)
        # The client as Traefik names it: dockroute listens on :80 (dual stack), and an IPv4 client is
        # its IPv4 address, not ::ffff:a.b.c.d, in X-Forwarded-For and X-Real-Ip.
        forwarded = re.search(r"^X-Forwarded-For: (\S+)$", body, re.M).group(1)
        assert ipaddress.ip_address(forwarded).version == 4, forwarded
        assert re.search(r"^X-Real-Ip: (\S+)$", body, re.M).group(1) == forwarded
        # A name no container claims is dockroute's own 404, not some app's answer.
        assert await get(port, "nobody.localhost") == (404, "404 page not found\n")

        status = proc_status(proxy)
        assert "dockroute" in proxy.exec_run(["cat", "/proc/1/cmdline"]).output.decode()
        assert set(status["Uid"].split()) == {"65532"}, status["Uid"]
        assert set(status["Gid"].split()) == {"65532"}, status["Gid"]
        # Only NET_BIND_SERVICE (bit 10) is left, for port 80.
        assert int(status["CapEff"], 16) == 1 << 10, status["CapEff"]
        project.assert_still_up(engine, "dockroute")


async def test_nothing_else_to_configure_the_example_alone_routes_an_app(engine):
    """The README's "nothing else to configure": the example's dockroute service with no override of its
    own (no DOCKROUTE_* variable, no flag), so dockroute starts on its defaults: entry point web on :80,
    the Docker provider on the mounted socket. The app it routes is a test-only one whose router name is
    unique to this run (this dockroute sees the whole engine, where other tests' routers are named
    whoami too)."""
    port, router = free_port(), f"e2e{uuid.uuid4().hex[:12]}"
    env = {"HTTP_PORT": str(port), "E2E_ROUTER": router}
    with compose.running("quickstart", env=env, override="quickstart-zero-config") as project:
        (proxy,) = project.containers(engine, "dockroute")
        assert not [e for e in proxy.attrs["Config"]["Env"] if e.startswith(("DOCKROUTE_", "TRAEFIK_"))]
        (app,) = project.containers(engine, "e2e-app")

        async def routed() -> str | None:
            got = await get(port, f"{router}.localhost")
            return got[1] if got and got[0] == 200 else None

        body = await wait_for(routed, timeout=60, interval=0.2)
        assert re.search(r"^Hostname: (\S+)$", body, re.M).group(1) == app.id[:12]
        logs = project.logs("dockroute")
        # The zero-configuration start: no file, entry point web on :80, Docker on the mounted socket.
        assert "entrypoint web listening on :::80" in logs, logs
        assert "provider file: off" in logs, logs
        assert (
            "provider docker: unix:///var/run/docker.sock (watching events); only containers with "
            "traefik.enable=true or dockroute.enable=true are routed"
        ) in logs, logs
        project.assert_still_up(engine, "dockroute")
