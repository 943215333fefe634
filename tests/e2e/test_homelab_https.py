"""compose-examples/homelab-https, run as its README says, with Pebble standing in for Let's Encrypt
through the documented ``caServer`` setting (``ACME_CA_SERVER`` in .env): dockroute, inside its
container, orders a certificate for every app on another container, over HTTP-01 on the published port;
HTTP redirects to HTTPS; the dashboard asks for a login; and the engine is reached only through the
read-only socket proxy, on an internal network, with the socket never mounted into dockroute."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
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
# admin / secret (openssl passwd -apr1 secret): the form .env holds, each $ written once.
USERS = "admin:$apr1$xjEvSaZr$mV5myxiF3HXwMsjzpYmhO0"
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


def test_compose_reads_the_example_alone_and_with_its_override():
    compose.require("docker-compose")
    for override in ("none", None):
        project = compose.Project("homelab-https", override=override)
        assert len(project.files) == (1 if override else 2)
        project.compose("config", "-q")


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
        env = {
            "DOMAIN": DOMAIN,
            "ACME_EMAIL": "admin@homelab.test",
            "ACME_CA_SERVER": f"https://host.docker.internal:{api_port}/dir",
            "DASHBOARD_USERS": USERS,
            "HTTP_PORT": str(http_port),
            "HTTPS_PORT": str(https_port),
            "PEBBLE_CA_FILE": pebble.ca_bundle,
            "E2E_HOMEPAGE_ROOT": str(homepage),
            "E2E_RUN": uuid.uuid4().hex,  # the override's constraint: only this run's containers
        }
        with compose.running("homelab-https", env=env) as project:
            await check_certificates_and_routes(project, engine, http_port, https_port, root)
            check_socket_proxy(project, engine)


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

    # The dashboard: 401 without a login, 200 with it (its router is on dockroute's own container, routed
    # once that container is healthy).
    _, headers, _, cert = await wait_for(lambda: answer("dashboard", "/dashboard/", status=401), timeout=90)
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
    probe = (
        "import urllib.request as u, urllib.error as e\n"
        "print(u.urlopen('http://socket-proxy:2375/_ping', timeout=5).read().decode())\n"
        "try:\n"
        "    r = u.Request('http://socket-proxy:2375/containers/create', b'{}', method='POST')\n"
        "    u.urlopen(r, timeout=5)\n"
        "except e.HTTPError as x:\n"
        "    print(x.code)\n"
    )
    done = proxy.exec_run(["python3", "-c", probe])
    assert done.exit_code == 0, done.output
    assert done.output.decode().split() == ["OK", "403"], done.output
    (network,) = socket_proxy.attrs["NetworkSettings"]["Networks"].values()
    assert engine.api.inspect_network(network["NetworkID"])["Internal"] is True
    assert on_network(engine, network["NetworkID"]) == {"dockroute", "socket-proxy"}
    for app in ("whoami", "homepage"):
        (container,) = project.containers(engine, app)
        assert network["NetworkID"] not in {
            n["NetworkID"] for n in container.attrs["NetworkSettings"]["Networks"].values()
        }
