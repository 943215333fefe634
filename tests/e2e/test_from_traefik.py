"""compose-examples/from-traefik: Traefik's basic compose example (a verbatim copy of Traefik v3.7.9's
docs/content/user-guides/docker-compose/basic-example/docker-compose.yml is kept beside this test) with only
the image line changed works as it does with Traefik: whoami.localhost on port 80, the dashboard and API on
port 8080.

The file publishes the literal host ports 80 and 8080 and fixes the container names (changing them would
make it something other than Traefik's file), so this test holds a machine-wide lock while it runs
(parallel runs of it, from other checkouts too, wait their turn) and is skipped, outside CI, when
something else holds those ports.

The test override keeps this dockroute to its own compose project's containers: parallel tests run the
other examples, with routers of the same names, on the same engine."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import re
import socket
from pathlib import Path

from tests.e2e import compose
from tests.e2e.client import get
from tests.polling import wait_for
from tests.unavailable import unavailable

PORTS = (80, 8080)
LOCK = Path("/tmp/dockroute-e2e-from-traefik.lock")
# Traefik's file as published (https://github.com/traefik/traefik/blob/v3.7.9/docs/content/user-guides/
# docker-compose/basic-example/docker-compose.yml), byte for byte.
TRAEFIKS = Path(__file__).resolve().parent / "traefik-basic-example.yml"
EXAMPLE = compose.EXAMPLES / "from-traefik" / "docker-compose.yml"


def taken(port: int) -> bool:
    """Whether something already listens on ``port`` (the engine publishes on every address). Only
    EADDRINUSE means taken: any other error (no permission for a low port, say) is raised, not skipped."""
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def test_the_example_is_traefiks_file_with_only_the_image_line_changed():
    ours, theirs = EXAMPLE.read_text().splitlines(), TRAEFIKS.read_text().splitlines()
    assert len(ours) == len(theirs)
    changed = [(a, b) for a, b in zip(theirs, ours, strict=True) if a != b]
    assert changed == [('    image: "traefik:v3.7"', '    image: "ghcr.io/dockroute/dockroute:latest"')]
    assert EXAMPLE.read_text().endswith("\n") == TRAEFIKS.read_text().endswith("\n")


@contextlib.asynccontextmanager
async def ports_to_ourselves():
    """The machine-wide lock of this test, then ports 80 and 8080 checked free (skipped if not, outside
    CI: a web server or another proxy on a workstation is not a failure of dockroute)."""
    with open(LOCK, "w") as lock:

        def locked() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        await wait_for(locked, timeout=600, interval=0.5)
        busy = [p for p in PORTS if taken(p)]
        if busy:
            unavailable(
                f"from-traefik publishes host ports 80 and 8080 as Traefik's file does; taken here: {busy}"
            )
        yield


async def test_traefiks_quick_start_file_works_with_only_the_image_changed(engine):
    async with ports_to_ourselves():
        with compose.running("from-traefik") as project:
            (whoami,) = project.containers(engine, "whoami")

            async def routed() -> str | None:
                got = await get(80, "whoami.localhost")
                return got[1] if got and got[0] == 200 else None

            body = await wait_for(routed, timeout=60, interval=0.2)
            assert re.search(r"^Hostname: (\S+)$", body, re.M).group(1) == whoami.id[:12]

            status, body = await get(8080, path="/api/http/routers")
            assert status == 200
            (router,) = [r for r in json.loads(body) if r["name"] == "whoami@docker"]
            assert router["rule"] == "Host(`whoami.localhost`)"
            assert router["entryPoints"] == ["web"]
            assert router["status"] == "enabled"

            status, body = await get(8080, path="/dashboard/")
            assert status == 200 and "<html" in body.lower()
            project.assert_still_up(engine, "traefik")
