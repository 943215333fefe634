"""compose-examples/homelab-https, run as its README says, with Pebble standing in for Let's Encrypt
through the documented ``caServer`` setting (``ACME_CA_SERVER`` in .env): dockroute, inside its
container, orders a certificate for every app on another container, over HTTP-01 on the published port;
HTTP redirects to HTTPS; the dashboard asks for a login; and the engine is reached only through the
read-only socket proxy, on an internal network, with the socket never mounted into dockroute.

The example's variables come from an env file (``--env-file``, read as Compose reads ``.env``) holding
the single-quoted bcrypt htpasswd line the README recommends, each ``$`` written once: never from the
process environment, where Compose's own quoting would not be exercised."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import uuid
from pathlib import Path

from tests.e2e import compose
from tests.integration.pebble_env import free_port, run_pebble
from tests.polling import wait_for

DOMAIN = "homelab.test"
APPS = ("whoami", "www", "dashboard")
# admin / secret, as `htpasswd -nbB admin secret` writes it (bcrypt, $2y$): the line .env holds, in single
# quotes, each $ written once, as the README says.
USERS = "admin:$2y$05$cIDBbchBOeshRe0g3Z8rU..yZKfiyBPjVcJvlFLn0akn.QAm/IY.."
LOGIN = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}


def bridge_gateway() -> str:
    """The default bridge's gateway: the host address ``host-gateway`` names inside a container."""
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def request(
    port: int, host: str, path: str = "/", tls: ssl.SSLContext | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], str, dict | None]:
    """GET ``path`` from 127.0.0.1:``port`` as ``host`` (Host header and, over TLS, SNI and the name
    verified): status, headers, body and the peer's certificate."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read().decode(errors="replace")
        cert = sock.getpeercert() if tls else None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, cert


async def fetch(*args, **kwargs) -> tuple[int, dict[str, str], str, dict | None] | None:
    """:func:`request` off the event loop; None while it fails (nothing listening yet, or the default
    certificate served until Pebble's arrives, which the verification refuses)."""
    try:
        return await asyncio.to_thread(request, *args, **kwargs)
    except (OSError, http.client.HTTPException):
        return None


def on_network(engine, network_id: str) -> set[str]:
    """The compose services of the containers attached to a network."""
    attached = engine.api.inspect_network(network_id)["Containers"]
    return {engine.containers.get(cid).labels["com.docker.compose.service"] for cid in attached}


async def test_pebble_certificates_redirect_dashboard_login_and_socket_proxy(engine, tmp_path: Path):
    http_port, https_port = free_port(), free_port()
    homepage = tmp_path / "homepage"
    homepage.mkdir()
    (homepage / "index.html").write_text("<h1>homelab</h1>\n")
    with run_pebble(
        tmp_path / "pebble", http_port, listen=bridge_gateway(), names=["host.docker.internal"]
    ) as pebble:
        root = pebble.root_pem().decode()
        api_port = pebble.directory_url.rsplit(":", 1)[1].split("/", 1)[0]
        env_file = tmp_path / "homelab.env"
        env_file.write_text(
            f"DOMAIN={DOMAIN}\n"
            "ACME_EMAIL=admin@homelab.test\n"
            f"ACME_CA_SERVER=https://host.docker.internal:{api_port}/dir\n"
            f"DASHBOARD_USERS='{USERS}'\n"
            f"HTTP_PORT={http_port}\n"
            f"HTTPS_PORT={https_port}\n"
        )
        # Test-only variables of the override, in the environment.
        env = {
            "PEBBLE_CA_FILE": pebble.ca_bundle,
            "E2E_HOMEPAGE_ROOT": str(homepage),
            "E2E_RUN": uuid.uuid4().hex,  # the override's constraint: only this run's containers
        }
        assert "DASHBOARD_USERS" not in os.environ
        with compose.running("homelab-https", env=env, env_file=env_file) as project:
            await check_certificates_and_routes(project, engine, http_port, https_port, root)
            check_socket_proxy(project, engine)
            project.assert_still_up(engine, "dockroute")
            await check_restart_orders_nothing_new(project, engine, https_port, root)


async def check_restart_orders_nothing_new(project, engine, https_port: int, root: str) -> None:
    """The README: the certificates are kept in the volume, "so a restart orders nothing new": the same
    certificate (serial) after ``docker-compose restart dockroute``, and no new "obtained" line."""
    trusted = ssl.create_default_context(cadata=root)
    name = f"whoami.{DOMAIN}"
    before = (await fetch(https_port, name, "/", trusted))[3]["serialNumber"]
    obtained = f"certificate for {name} obtained"
    assert project.logs("dockroute").count(obtained) == 1
    (proxy,) = project.containers(engine, "dockroute")
    started = proxy.attrs["State"]["StartedAt"]
    project.compose("restart", "-t", "10", "dockroute")
    proxy.reload()
    assert proxy.attrs["State"]["StartedAt"] != started  # really restarted (the same container)
    # The first answer with a certificate Pebble's root verifies: the kept one, or a new order's.
    _, _, _, cert = await wait_for(lambda: fetch(https_port, name, "/", trusted), timeout=60, interval=0.5)
    assert cert["serialNumber"] == before
    assert project.logs("dockroute").count(obtained) == 1


async def test_no_dashboard_users_no_dashboard(engine, tmp_path: Path):
    """The README and .env: with DASHBOARD_USERS empty (as the example's .env ships) the dashboard is not
    served at all, and dockroute says why. The example's own .env is read; the environment only moves the
    ports and points the CA at an address that refuses (no certificate is needed here: the answer over
    TLS, unverified, is dockroute's 404)."""
    http_port, https_port = free_port(), free_port()
    env = {
        "DOMAIN": DOMAIN,
        "ACME_CA_SERVER": "https://127.0.0.1:9/dir",
        "PEBBLE_CA_FILE": ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt",
        "HTTP_PORT": str(http_port),
        "HTTPS_PORT": str(https_port),
        "E2E_RUN": uuid.uuid4().hex,
    }
    assert "DASHBOARD_USERS=\n" in (compose.EXAMPLES / "homelab-https" / ".env").read_text()
    assert "DASHBOARD_USERS" not in os.environ
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    with compose.running("homelab-https", env=env) as project:
        # whoami is served (over TLS, with the default certificate): routing works, the dashboard is not
        await wait_for(
            lambda: _status(https_port, f"whoami.{DOMAIN}", "/", unverified, 200), timeout=60, interval=0.5
        )
        for path in ("/dashboard/", "/api/http/routers"):
            status, _, body, _ = await fetch(https_port, f"dashboard.{DOMAIN}", path, unverified)
            assert (status, body) == (404, "404 page not found\n"), (path, status, body)
        assert "no users: set users or usersFile" in project.logs("dockroute")
        project.assert_still_up(engine, "dockroute")


async def _status(port: int, host: str, path: str, tls: ssl.SSLContext, status: int) -> bool:
    got = await fetch(port, host, path, tls)
    return bool(got) and got[0] == status


async def check_certificates_and_routes(project, engine, http_port: int, https_port: int, root: str) -> None:
    trusted = ssl.create_default_context(cadata=root)  # Pebble's root only: its certificates, nothing else
    (whoami,) = project.containers(engine, "whoami")

    async def answer(name: str, path: str = "/", headers: dict | None = None, status: int = 200):
        got = await fetch(https_port, f"{name}.{DOMAIN}", path, trusted, headers)
        return got if got and got[0] == status else None

    # Each app over HTTPS with a certificate Pebble issued for its name (verified against Pebble's root).
    status, _, body, cert = await wait_for(lambda: answer("whoami"), timeout=90, interval=0.5)
    assert f"Hostname: {whoami.id[:12]}" in body
    assert ("DNS", f"whoami.{DOMAIN}") in cert["subjectAltName"]
    _, _, body, cert = await wait_for(lambda: answer("www"), timeout=60, interval=0.5)
    assert body == "<h1>homelab</h1>\n"
    assert ("DNS", f"www.{DOMAIN}") in cert["subjectAltName"]

    # The dashboard: 401 without a login, 200 with it (its router is on dockroute's own container).
    _, headers, _, cert = await wait_for(
        lambda: answer("dashboard", "/dashboard/", status=401), timeout=90, interval=0.5
    )
    assert headers["www-authenticate"].startswith("Basic ")
    assert ("DNS", f"dashboard.{DOMAIN}") in cert["subjectAltName"]
    status, _, page, _ = await fetch(https_port, f"dashboard.{DOMAIN}", "/dashboard/", trusted, LOGIN)
    assert status == 200 and "<html" in page.lower()
    status, _, routers, _ = await fetch(
        https_port, f"dashboard.{DOMAIN}", "/api/http/routers", trusted, LOGIN
    )
    assert status == 200
    assert {"whoami@docker", "homepage@docker", "dashboard@docker"} <= {
        r["name"] for r in json.loads(routers)
    }
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
    assert (await fetch(https_port, f"dashboard.{DOMAIN}", "/api/http/routers", trusted, wrong))[0] == 401

    # Plain HTTP is redirected to HTTPS, for every app.
    for name in APPS:
        status, headers, _, _ = await fetch(http_port, f"{name}.{DOMAIN}", "/some/page?x=1")
        assert status == 301, (name, status)  # permanent, as Traefik's entry point redirection
        assert headers["location"] == f"https://{name}.{DOMAIN}/some/page?x=1", headers


def check_socket_proxy(project, engine) -> None:
    """No socket in dockroute's container; the engine only through the proxy, which refuses writes, on an
    internal network only dockroute and the proxy are on."""
    (proxy,) = project.containers(engine, "dockroute")
    (socket_proxy,) = project.containers(engine, "socket-proxy")
    assert not [m for m in proxy.attrs["Mounts"] if "docker.sock" in (m["Source"] + m["Destination"])]
    assert proxy.exec_run(["test", "-e", "/var/run/docker.sock"]).exit_code != 0
    assert "provider docker: connected to tcp://socket-proxy:2375" in project.logs("dockroute")
    # What the example's environment enables (containers, networks, events, ping, version) is relayed; any
    # other section, and any write, is refused, as tecnativa/docker-socket-proxy does.
    probe = (
        "import sys, urllib.request as u, urllib.error as e\n"
        "for method, path in (a.split(' ') for a in sys.argv[1:]):\n"
        "    body = b'{}' if method == 'POST' else None\n"
        "    r = u.Request('http://socket-proxy:2375' + path, body, method=method)\n"
        "    try:\n"
        "        print(u.urlopen(r, timeout=5).status)\n"
        "    except e.HTTPError as x:\n"
        "        print(x.code)\n"
    )
    asked = {
        "GET /_ping": 200,
        "GET /v1.41/containers/json": 200,
        "GET /networks": 200,
        "GET /version": 200,
        "GET /info": 403,
        "GET /v1.41/images/json": 403,
        "GET /volumes": 403,
        "POST /containers/create": 403,
    }
    done = proxy.exec_run(["python3", "-c", probe, *asked])
    assert done.exit_code == 0, done.output
    assert dict(zip(asked, map(int, done.output.decode().split()), strict=True)) == asked, done.output
    (network,) = socket_proxy.attrs["NetworkSettings"]["Networks"].values()
    assert engine.api.inspect_network(network["NetworkID"])["Internal"] is True
    assert on_network(engine, network["NetworkID"]) == {"dockroute", "socket-proxy"}
    for app in ("whoami", "homepage"):
        (container,) = project.containers(engine, app)
        assert network["NetworkID"] not in {
            n["NetworkID"] for n in container.attrs["NetworkSettings"]["Networks"].values()
        }
