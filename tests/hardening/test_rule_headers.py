"""Routing rules on X-Forwarded-* and X-Real-Ip see what Traefik's routers see, against the real process.

In Traefik the entry point's forwardedheaders handler runs before the router: a peer outside
``forwardedHeaders.trustedIPs`` has its X-Forwarded-*/X-Real-Ip deleted (every ``_`` spelling), then
X-Real-Ip, X-Forwarded-Proto/Port/Host/Server are set by the proxy; a trusted peer keeps its values. A
router guarded by ``HeaderRegexp(`X-Real-Ip`, `^10\\.`)`` ("internal only") must not be reachable by a
client that merely sends ``X-Real-Ip: 10.0.0.1``: the header-spoofing family of Traefik CVE-2024-45410
(GHSA-62c8-mh53-4cqv) and traefik/traefik#12984 (underscore spellings), here on the routing side.
"""

from __future__ import annotations

import socket

import pytest

from tests.hardening.backends import RecordingBackend, recording  # noqa: F401  (a fixture)
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers

pytestmark = pytest.mark.integration

INTERNAL = "10.0.0.1"  # what a client claims to be: an internal address

# host → rule; each router answers 200 (the recording backend) when its rule matches, else 404.
RULES = {
    "real.test": "HeaderRegexp(`X-Real-Ip`, `^10\\.`)",
    "xff.test": "HeaderRegexp(`X-Forwarded-For`, `^10\\.`)",
    "under.test": "HeaderRegexp(`X_Real_Ip`, `^10\\.`)",
    "v2.test": "HeadersRegexp(`x-real-ip`, `^10\\.`)",
    "peer.test": "Header(`X-Real-Ip`, `127.0.0.1`)",
    "https.test": "HeaderRegexp(`X-Forwarded-Proto`, `https`)",
    "http.test": "Header(`X-Forwarded-Proto`, `http`) && Header(`X-Role`, `admin`)",
    "fwhost.test": "Header(`X-Forwarded-Host`, `fwhost.test`)",
    "port.test": "Header(`X-Forwarded-Port`, `80`)",
    "server.test": f"Header(`X-Forwarded-Server`, `{socket.gethostname()}`)",
}


def _static(tmp_path, **forwarded) -> dict:
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }
    if forwarded:
        static["entryPoints"]["web"]["forwardedHeaders"] = forwarded
    return static


def _config(url: str) -> dict:
    specs = [(host.split(".")[0], f"Host(`{host}`) && ({rule})", "s") for host, rule in RULES.items()]
    return routers(*specs, services={"s": [url]})


async def _status(port: int, host: str, *lines: str) -> int | None:
    extra = "".join(line + "\r\n" for line in lines)
    raw = f"GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()
    return (await exchange(port, raw)).status


async def test_untrusted_client_cannot_reach_an_internal_only_router(proxy, recording, tmp_path):  # noqa: F811
    """CVE-2024-45410 family (spoofed X-Forwarded-*/X-Real-Ip), routing side: a peer outside trustedIPs
    that sends an internal address in X-Real-Ip, X-Forwarded-For or the ``X_Real_Ip`` spelling
    (traefik/traefik#12984) does not reach a router whose rule requires it: Traefik deletes them before
    routing, then X-Real-Ip is the peer's address and X-Forwarded-For is absent."""
    dr = await proxy(_config(recording.url), static=_static(tmp_path))
    spoof = (f"X-Real-Ip: {INTERNAL}", f"X-Forwarded-For: {INTERNAL}", f"X_Real_Ip: {INTERNAL}")
    for host in ("real.test", "xff.test", "under.test", "v2.test"):
        assert await _status(dr.port, host, *spoof) == 404, host
    # What the rule sees instead: the peer's own address.
    assert await _status(dr.port, "peer.test", f"X-Real-Ip: {INTERNAL}") == 200
    assert recording.connections == 1


async def test_trusted_peer_reaches_the_internal_only_router(proxy, recording, tmp_path):  # noqa: F811
    """The other side of the CVE-2024-45410 strip: a peer in ``trustedIPs`` (a load balancer in front)
    keeps its X-Real-Ip / X-Forwarded-For / underscore spellings, so its internal clients reach the
    router; only an empty X-Real-Ip is filled with the peer's address."""
    static = _static(tmp_path, trustedIPs=["127.0.0.1/32"])
    dr = await proxy(_config(recording.url), static=static)
    spoof = (f"X-Real-Ip: {INTERNAL}", f"X-Forwarded-For: {INTERNAL}, 192.0.2.7", f"X_Real_Ip: {INTERNAL}")
    for host in ("real.test", "xff.test", "under.test", "v2.test"):
        assert await _status(dr.port, host, *spoof) == 200, host
    assert await _status(dr.port, "peer.test", f"X-Real-Ip: {INTERNAL}") == 404
    assert await _status(dr.port, "peer.test") == 200
    # Its X-Forwarded-Proto is kept too, while the host name in X-Forwarded-Server is always the proxy's.
    assert await _status(dr.port, "https.test", "X-Forwarded-Proto: https") == 200
    assert await _status(dr.port, "server.test", "X-Forwarded-Server: elsewhere") == 200


async def test_rules_see_the_proxys_forwarded_values(proxy, recording, tmp_path):  # noqa: F811
    """Traefik's forwardedheaders sets X-Forwarded-Proto (the entry point's scheme), X-Forwarded-Host (the
    Host), X-Forwarded-Port (the Host's port, else 80/443) and X-Forwarded-Server (its host name) before
    routing: an untrusted client's own values
    (CVE-2024-45410 family) are never what a rule sees. A rule on an ordinary header (X-Role) reads the
    client's header as before."""
    dr = await proxy(_config(recording.url), static=_static(tmp_path))
    assert await _status(dr.port, "https.test", "X-Forwarded-Proto: https") == 404
    assert await _status(dr.port, "https.test", "X_Forwarded_Proto: https") == 404
    assert await _status(dr.port, "http.test", "X-Forwarded-Proto: https", "X-Role: admin") == 200
    assert await _status(dr.port, "http.test", "X-Role: user") == 404
    assert await _status(dr.port, "fwhost.test", "X-Forwarded-Host: evil.test") == 200
    assert await _status(dr.port, "port.test", "X-Forwarded-Port: 8443") == 200
    assert await _status(dr.port, "server.test", "X-Forwarded-Server: elsewhere") == 200
