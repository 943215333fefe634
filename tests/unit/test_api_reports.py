"""dockroute's own API documents (``/api/certificates``, ``/api/discovery``) and ``/api/version``,
``/debug/vars``, as docs/api.md describes them."""

from __future__ import annotations

import time

from discover.model import Discovered
from router.api.state import CertificateReport
from router.settings import ApiSettings
from tests.api_fakes import (
    get,
    lb,
    r,
    state,
)


async def test_version_and_debug_vars():
    _, _, body = await get(state({}), "/api/version")
    assert set(body) == {"Version", "Codename", "startDate"} and body["Version"] == "3.0.0-test"
    assert body["startDate"].endswith("Z")
    status, _, _ = await get(state({}), "/debug/vars")
    assert status == 404  # api.debug off
    status, _, body = await get(state({}, settings=ApiSettings(debug=True)), "/debug/vars")
    assert status == 200 and "cmdline" in body


async def test_discovery_lists_containers_and_routers_left_out():
    seen = (
        Discovered(
            "docker", "container", "web-1", "abc", routed=True, routers=("web@docker",), networks=("n",)
        ),
        Discovered(
            "docker",
            "container",
            "far-1",
            "def",
            reason="unreachable-network",
            detail="on network other only",
            fix="docker network connect other dockroute",
            networks=("other",),
        ),
    )
    conf = {
        "docker": {
            "routers": {"web": r("web", "Host(`w`)", "web")},
            "services": {"web": lb("http://1.2.3.4")},
            "discovered": seen,
        },
        "file": {"routers": {"left": r("left", "Host(`l`)", "nope")}},
    }
    st = state(conf, errors={"left@file": "service nope@file does not exist"})
    status, _, body = await get(st, "/api/discovery")
    assert status == 200 and set(body) == {"containers", "routers"}
    assert [c["name"] for c in body["containers"]] == ["far-1", "web-1"]
    far = body["containers"][0]
    assert far == {
        "provider": "docker",
        "name": "far-1",
        "id": "def",
        "routed": False,
        "reason": "unreachable-network",
        "detail": "on network other only",
        "fix": "docker network connect other dockroute",
        "routers": [],
        "services": [],
        "networks": ["other"],
    }
    assert body["routers"] == [
        {
            "name": "left@file",
            "provider": "file",
            "status": "disabled",
            "error": ["service nope@file does not exist"],
        }
    ]


async def test_certificates():
    now = time.time()
    reports = (
        CertificateReport(
            ("b.test", "www.b.test"), "le", "acme", "Pebble", now + 10 * 86400, now - 86400, now + 86400
        ),
        CertificateReport(("a.test",), "", "file", "Self", now - 60, last_error="boom", last_error_at=now),
    )
    st = state({}, certificates=lambda: reports)
    _, headers, body = await get(st, "/api/certificates")
    assert headers["X-Next-Page"] == "1"
    assert [c["commonName"] for c in body] == ["a.test", "b.test"]
    b = body[1]
    assert set(b) >= {
        "domains",
        "resolver",
        "source",
        "issuer",
        "notAfter",
        "notBefore",
        "daysLeft",
        "nextRenewal",
    }
    assert (b["daysLeft"], b["status"], b["resolver"], b["sans"]) == (
        9,
        "warning",
        "le",
        ["b.test", "www.b.test"],
    )
    assert b["notAfter"].endswith("Z") and b["lastError"] == "" and b["lastErrorAt"] is None
    assert (body[0]["status"], body[0]["lastError"], body[0]["nextRenewal"]) == ("expired", "boom", None)
    _, _, body = await get(st, "/api/certificates?status=expired")
    assert [c["commonName"] for c in body] == ["a.test"]
    _, _, overview = await get(st, "/api/overview")
    assert overview["certificates"] == {"total": 2, "warnings": 1, "errors": 1}
