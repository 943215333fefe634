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


async def test_a_certificate_not_issued_yet_is_pending_without_dates():
    """A resolver asked for names it has no certificate for yet reports ``not_after`` 0: no 1970 date,
    no negative days, status ``pending``, which the overview does not count as an error."""
    now = time.time()
    reports = (
        CertificateReport(
            ("new.test",), "le", "acme", "", 0.0, next_renewal=now + 300, last_error="NXDOMAIN"
        ),
    )
    st = state({}, certificates=lambda: reports)
    _, _, (cert,) = await get(st, "/api/certificates")
    assert (cert["notAfter"], cert["notBefore"], cert["daysLeft"]) == (None, None, None)
    assert (cert["status"], cert["lastError"]) == ("pending", "NXDOMAIN")
    assert cert["nextRenewal"].endswith("Z")
    _, _, overview = await get(st, "/api/overview")
    assert overview["certificates"] == {"total": 1, "warnings": 0, "errors": 0}
    _, _, body = await get(st, "/api/certificates?status=pending")
    assert [c["commonName"] for c in body] == ["new.test"]


async def test_certificates_sorted_as_traefik():
    """Traefik 3.7's sortBy for certificates: name (cn), status, issuer, validUntil; ties by name."""
    now = time.time()
    reports = (
        CertificateReport(("b.test",), "le", "acme", "Zeta CA", now + 90 * 86400),
        CertificateReport(("a.test",), "le", "acme", "Alpha CA", now + 5 * 86400),
        CertificateReport(("c.test",), "le", "acme", "Alpha CA", now - 86400),
        CertificateReport(("d.test",), "le", "acme", "", 0.0),
    )
    st = state({}, certificates=lambda: reports)

    async def names(query: str) -> list[str]:
        status, _, body = await get(st, "/api/certificates?" + query)
        assert status == 200
        return [c["commonName"] for c in body]

    assert await names("") == ["a.test", "b.test", "c.test", "d.test"]
    assert await names("sortBy=cn&direction=desc") == ["d.test", "c.test", "b.test", "a.test"]
    assert await names("sortBy=validUntil") == ["d.test", "c.test", "a.test", "b.test"]
    assert await names("sortBy=validUntil&direction=desc") == ["b.test", "a.test", "c.test", "d.test"]
    assert await names("sortBy=issuer") == ["d.test", "a.test", "c.test", "b.test"]
    assert await names("sortBy=status") == ["b.test", "c.test", "d.test", "a.test"]


async def test_one_certificate_by_id_is_not_found_as_traefik_says():
    """Traefik's ``/api/certificates/{id}`` takes a SHA-256 fingerprint, which dockroute's reports do not
    carry: every id is Traefik's not-found answer, never the unknown-path one."""
    status, _, body = await get(state({}), "/api/certificates/ab12")
    assert (status, body) == (404, {"message": "certificate not found: ab12"})
