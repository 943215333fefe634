"""Thirty routers at a fresh start: the real dockroute orders their certificates from a real Pebble, a few
at a time, and Pebble's deliberate ``badNonce`` answers (its default 5% of good nonces) cost no order.

How the test sees what is in flight from outside the process: dockroute talks to Pebble through
:class:`CountingShim`, the HTTPS proxy of tests/integration/acme_shim.py (every request forwarded to
Pebble unchanged, nothing added here: no profiles, no ARI). For each newOrder that Pebble accepts (201)
it notes the time the request came in and the identifiers in its JWS payload (the payload is signed, not
encrypted); the order is over when its certificate is downloaded (a POST-as-GET answered with a PEM chain,
whose SANs name the order). Between the two, the order is in flight: at no moment may more than
PARALLEL_ORDERS be, nor a second order for a name set in flight. (Two orders of different sets sharing a
host are never in flight together: tests/unit/test_acme_concurrent_orders.py shows it; the thirty sets
here share no host, see ``_config``.) It also counts the ``badNonce`` problems Pebble answered, which
shows the rejection was really on."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from cryptography import x509

from acme_client.resolver import PARALLEL_ORDERS
from tests.integration import pebble_env
from tests.integration.acme_shim import AcmeShim, _jws_payload
from tests.integration.harness import routers, wait_for

pytestmark = pytest.mark.integration

ROUTERS = 30


class CountingShim(AcmeShim):
    def __init__(self, pebble: pebble_env.Pebble) -> None:
        self.lock = threading.Lock()
        self.started: dict[tuple[str, ...], float] = {}  # name set (sorted) → when its newOrder came in
        self.spans: list[tuple[float, float, tuple[str, ...]]] = []  # (start, end, names) of done orders
        self.bad_nonces = 0
        self.again: list[tuple[str, ...]] = []  # name sets ordered while an order for them was in flight
        super().__init__(pebble, profiles=None, renewal_info=False)

    def _forward(self, req: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        arrived = time.monotonic()
        status, headers, answer = super()._forward(req, body)
        with self.lock:
            if req.command == "POST" and req.path == self._new_order_path and status == 201:
                names = tuple(sorted(i["value"] for i in _jws_payload(body)["identifiers"]))
                if names in self.started:
                    self.again.append(names)
                self.started[names] = arrived
            elif status == 200 and answer.startswith(b"-----BEGIN CERTIFICATE-----"):
                leaf = x509.load_pem_x509_certificate(answer)
                san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                names = tuple(sorted(san.get_values_for_type(x509.DNSName)))
                if names in self.started:
                    self.spans.append((self.started.pop(names), time.monotonic(), names))
            elif status == 400 and b"urn:ietf:params:acme:error:badNonce" in answer:
                self.bad_nonces += 1
        return status, headers, answer

    def most_in_flight(self) -> int:
        """The largest number of orders in flight at one moment (an order ending at the moment another
        starts is over first: dockroute's thread got the certificate before it could order again)."""
        events = sorted([(start, 1) for start, _, _ in self.spans] + [(end, -1) for _, end, _ in self.spans])
        most = now = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most


def _config(backend_url: str) -> tuple[dict, list[tuple[str, ...]]]:
    """Thirty routers of one host each, as in a homelab's compose files. (Name sets sharing a host are
    the unit tests' matter, tests/unit/test_acme_concurrent_orders.py: here acme.json, keyed by main
    domain as Traefik's, would keep one of two such certificates, and a set another covers is never
    ordered, so "thirty stored" would not be the measure.)"""
    cfg = routers(services={"s": [backend_url]})
    sets = []
    for i in range(ROUTERS):
        cfg["http"]["routers"][f"r{i}"] = {
            "rule": f"Host(`n{i}.example.com`)",
            "service": "s",
            "entryPoints": ["websecure"],
            "tls": {"certResolver": "le"},
        }
        sets.append((f"n{i}.example.com",))
    return cfg, sets


def _stored(path) -> set[tuple[str, ...]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    certs = (data.get("le") or {}).get("Certificates") or []
    return {tuple(sorted([c["domain"]["main"], *(c["domain"].get("sans") or [])])) for c in certs}


async def _thirty_routers(backends, proxy, tmp_path) -> tuple[float, CountingShim, str]:
    """Start dockroute with the thirty routers against Pebble (nonce rejection at its default); the time
    from the start of the process until acme.json holds all thirty certificates, the shim, the log."""
    pebble_env.require_pebble()
    (b,) = await backends("site")
    web_port = pebble_env.free_port()  # Pebble validates HTTP-01 here: dockroute's `web`
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=web_port, nonce_reject=5) as pebble:
        shim = CountingShim(pebble)
        try:
            static = pebble_env.acme_static(tmp_path, shim.directory_url, pebble.ca_bundle, web_port)
            static["log"] = {"level": "INFO"}
            cfg, sets = _config(b.url)
            store = tmp_path / "acme.json"
            started = time.monotonic()
            dr = await proxy(cfg, static=static)
            await wait_for(lambda: _stored(store) >= set(sets), timeout=120, interval=0.1)
            took = time.monotonic() - started
        finally:
            shim.close()
    print(f"{ROUTERS} certificates stored in {took:.1f}s; Pebble answered {shim.bad_nonces} badNonce")
    return took, shim, dr.log()


async def test_thirty_routers_get_certificates_a_few_orders_at_a_time_despite_bad_nonces(
    backends, proxy, tmp_path
):
    took, shim, log = await _thirty_routers(backends, proxy, tmp_path)
    assert len(shim.spans) == ROUTERS  # one order per name set, each seen from newOrder to certificate
    assert shim.most_in_flight() <= PARALLEL_ORDERS
    assert shim.most_in_flight() > 1  # concurrent indeed
    assert shim.again == []  # no name set ordered again while its order was in flight
    # Pebble did reject nonces (5% of ~300 POSTs: none at all has a chance below 1 in a million), and not
    # one order failed for it: each badNonce was retried with the nonce it carried.
    assert shim.bad_nonces > 0
    failures = [line for line in log.splitlines() if "failed" in line or "next try" in line]
    assert not [line for line in failures if "badNonce" in line], failures
    assert "order for" not in "\n".join(failures)


@pytest.mark.timing  # a bound on time: run alone, the way .ci/test runs timing tests
async def test_thirty_routers_at_first_start_are_certified_within_30_seconds(backends, proxy, tmp_path):
    took, _, _ = await _thirty_routers(backends, proxy, tmp_path)
    assert took < 30.0, f"{ROUTERS} certificates took {took:.1f}s"
