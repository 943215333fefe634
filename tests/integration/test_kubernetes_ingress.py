"""providers.kubernetesIngress in a real dockroute process, against the replayed API conversation
(tests/kube_replay: no API server can run here). The recorded pods' IPs are loopback addresses
(127.0.0.2, .3, .5) where this test runs the backends; the recorded TLS Secret holds a trustme certificate.

It checks what the issue's acceptance asks: a recorded Ingress with TLS and a middleware annotation becomes
the same dynamic-config model as its file-provider equivalent, and is served over HTTPS with the Secret's
certificate, the middleware applied, routed to the recorded pod IPs; then that a watch MODIFIED event
updates the routes, a 410 Gone leads to a relist (the server sees the second list) while the proxy keeps
serving, a dropped watch connection reconnects, a rotated Secret is served, and the status PATCH was sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from dataclasses import replace

import pytest
import trustme
import yaml
from aiohttp import web

from discover.kubernetes.builder import Cluster, build_ingress_config
from discover.kubernetes.records import (
    ingress_class_from_api,
    ingress_from_api,
    secret_from_api,
    service_from_api,
    slice_from_api,
)
from discover.kubernetes.settings import IngressEndpoint, KubernetesIngressSettings
from discover.parse import parse_dynamic
from tests.integration.harness import Dockroute
from tests.kube_replay.server import ReplayServer, load, wait_open
from tests.polling import wait_for

pytestmark = pytest.mark.integration

HOST = "shop.example.test"


class PodBackend:
    """A backend on one loopback address, as a pod IP: answers with that address and the headers it got."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.runner: web.AppRunner | None = None

    async def start(self, port: int) -> PodBackend:
        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"pod": self.ip, "path": request.path, "headers": dict(request.headers)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.ip, port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _free_port_on(*ips: str) -> int:
    """A port free on every address (the slice's one port serves every pod): the kernel picks one on the
    first, the others are bound to it to check, then released for the backends."""
    for _ in range(20):
        socks = []
        try:
            first = socket.socket()
            socks.append(first)
            first.bind((ips[0], 0))
            port = first.getsockname()[1]
            for ip in ips[1:]:
                s = socket.socket()
                socks.append(s)
                s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no port free on every address")


async def https_get(port: int, ctx: ssl.SSLContext, path: str = "/", host: str = HOST):
    """GET over HTTPS with SNI and Host ``host``: (status, JSON body or None, DER certificate served)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body), der
    except ValueError:
        return status, None, der


async def http_get(port: int, path: str, host: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    return int(raw.split(b" ", 2)[1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def cluster(tmp_path):
    """The replay server, the pod backends and the certificates (two: the Secret before and after)."""
    ca = trustme.CA()
    first, second = ca.issue_cert(HOST), ca.issue_cert(HOST)
    web_port, api_port = _free_port_on("127.0.0.2", "127.0.0.3"), _free_port_on("127.0.0.5")
    values = {
        "__PORT_WEB__": web_port,
        "__PORT_API__": api_port,
        "__TLS_CRT__": _b64(first.cert_chain_pems[0].bytes()),
        "__TLS_KEY__": _b64(first.private_key_pem.bytes()),
        "__TLS_CRT_2__": _b64(second.cert_chain_pems[0].bytes()),
        "__TLS_KEY_2__": _b64(second.private_key_pem.bytes()),
    }
    pods = [await PodBackend(ip).start(web_port) for ip in ("127.0.0.2", "127.0.0.3")]
    pods.append(await PodBackend("127.0.0.5").start(api_port))
    replay = await ReplayServer(values).start()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    yield replay, ctx, (first, second), values
    await replay.stop()
    for p in pods:
        await p.stop()


FILE_PROVIDER = {
    "http": {
        "middlewares": {"add-header": {"headers": {"customRequestHeaders": {"X-Middleware": "applied"}}}},
    }
}


def _der(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


async def test_recorded_ingress_served_and_followed(tmp_path, cluster):
    replay, ctx, (first, second), _ = cluster
    d = Dockroute(
        tmp_path,
        static={
            "entryPoints": {"web": {"address": "127.0.0.1:0"}, "websecure": {"address": "127.0.0.1:0"}},
            "providers": {
                "file": {"filename": str(tmp_path / "dynamic.yml")},
                "kubernetesIngress": {
                    "endpoint": replay.url,
                    "token": "replay-token",
                    "ingressEndpoint": {"publishedService": "dockroute/dockroute"},
                },
            },
            "log": {"level": "DEBUG"},
        },
        dynamic=FILE_PROVIDER,
    )
    await d.start()
    try:
        assert "provider kubernetes: Ingresses of class 'dockroute' in every namespace" in d.log()
        port = d.ports["websecure"]

        async def served():
            try:
                status, body, der = await https_get(port, ctx)
            except (ssl.SSLError, OSError):
                return None
            return (status, body, der) if status == 200 else None

        # HTTPS with the Secret's certificate, the middleware applied, on the recorded pod IPs only
        status, body, der = await wait_for(served, timeout=20)
        assert der == _der(first)
        assert body["headers"]["X-Middleware"] == "applied"
        pods = {(await https_get(port, ctx))[1]["pod"] for _ in range(12)}
        assert pods == {"127.0.0.2", "127.0.0.3"}  # 127.0.0.4 is recorded not ready
        assert await http_get(d.ports["web"], "/exact", "legacy.example.test") == 200  # the legacy annotation

        # the status PATCH: the published Service's address into each routed Ingress
        await wait_for(lambda: {p.path.split("/")[-2] for p in replay.patches()} == {"web", "legacy"})
        assert replay.patches()[0].body == {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}}

        # a watch MODIFIED event: the Ingress gains /v2 → the api Service's pod
        await wait_open(replay, "ingresses")
        replay.play("modify-ingress")

        async def v2_pod():
            status, body, _ = await https_get(port, ctx, "/v2/x")
            return body and body.get("pod") == "127.0.0.5" and body["path"] == "/v2/x"

        await wait_for(v2_pod, timeout=10)

        # ERROR 410 on the watch → a second list; the proxy serves meanwhile and after
        replay.play("expire-ingresses")
        await wait_for(lambda: len(replay.calls("ingresses", watch=False)) == 2, timeout=10)
        assert (await https_get(port, ctx))[0] == 200

        async def late_routed():  # late.example.test is only in the second list
            return await http_get(d.ports["web"], "/", "late.example.test") == 200

        await wait_for(late_routed, timeout=10)
        assert d.proc is not None and d.proc.poll() is None

        # a dropped watch connection reconnects (same resourceVersion, no relist) and follows events again
        await wait_open(replay, "endpointslices")
        replay.play("drop-endpointslices")
        await wait_open(replay, "endpointslices", 2)
        assert len(replay.calls("endpointslices", watch=False)) == 1
        replay.play("pod-terminating")

        async def only_pod_2():
            return {(await https_get(port, ctx))[1]["pod"] for _ in range(8)} == {"127.0.0.2"}

        await wait_for(only_pod_2, timeout=10)

        # the Secret rotated (its watch dropped, then 410 Gone: relisted): the new certificate is served
        replay.play("rotate-secret")

        async def new_cert():
            return (await https_get(port, ctx))[2] == _der(second)

        await wait_for(new_cert, timeout=10)
        assert replay.problems == []
    finally:
        await d.stop()


def test_same_model_as_the_file_provider_equivalent(cluster):
    """The recorded Ingress, Service, EndpointSlice and Secret build the dynamic-config model a file
    provider builds from the equivalent Traefik file (routers, services, TLS certificates)."""
    _, _, (first, _), values = cluster
    items = {
        kind: load(f"{kind}.list.1.json", values)["items"]
        for kind in ("ingresses", "ingressclasses", "services", "endpointslices", "secrets")
    }
    records = Cluster(
        ingresses={f"{i.namespace}/{i.name}": i for i in map(ingress_from_api, items["ingresses"])},
        classes={c.name: c for c in map(ingress_class_from_api, items["ingressclasses"])},
        services={s.key: s for s in map(service_from_api, items["services"])},
        slices={s.key: s for s in map(slice_from_api, items["endpointslices"])},
        secrets={s.key: s for s in map(secret_from_api, items["secrets"])},
    )
    settings = KubernetesIngressSettings(
        ingress_endpoint=IngressEndpoint(published_service="dockroute/dockroute")
    )
    built = build_ingress_config(records, settings).config
    port = values["__PORT_WEB__"]
    servers = [{"url": f"http://127.0.0.2:{port}"}, {"url": f"http://127.0.0.3:{port}"}]
    equivalent = parse_dynamic(
        yaml.safe_load(
            yaml.safe_dump(
                {
                    "http": {
                        "routers": {
                            "shop-web-shop-example-test": {
                                "rule": 'Host("shop.example.test") && PathPrefix("/")',
                                "service": "shop-web-http",
                                "entryPoints": ["websecure"],
                                "middlewares": ["add-header@file"],
                                "tls": {},
                            },
                            "shop-legacy-legacy-example-test-exact": {
                                "rule": 'Host("legacy.example.test") && Path("/exact")',
                                "service": "shop-web-80",
                                "entryPoints": ["web"],
                            },
                        },
                        "services": {
                            "shop-web-http": {"loadBalancer": {"servers": servers, "passHostHeader": True}},
                            "shop-web-80": {"loadBalancer": {"servers": servers}},
                        },
                    },
                    "tls": {
                        "certificates": [
                            {
                                "certFile": first.cert_chain_pems[0].bytes().decode(),
                                "keyFile": first.private_key_pem.bytes().decode(),
                            }
                        ]
                    },
                }
            )
        )
    )
    unorigin = {name: replace(r, origin="") for name, r in built.routers.items()}
    assert unorigin == {name: replace(r, origin="") for name, r in equivalent.routers.items()}
    assert dict(built.services) == dict(equivalent.services)
    assert built.tls == equivalent.tls
