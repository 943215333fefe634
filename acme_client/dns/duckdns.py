"""DuckDNS, with lego's variables (``DUCKDNS_TOKEN``).

DuckDNS's whole API is one GET (https://www.duckdns.org/spec.jsp): ``/update?domains=<name>&token=
<token>&txt=<value>`` sets the TXT value of a DuckDNS domain, ``&clear=true`` empties it; the answer is
the body ``OK`` or ``KO``. As lego does, the domain sent is the DuckDNS domain itself
(``home.duckdns.org`` for ``_acme-challenge.a.home.duckdns.org``): DuckDNS answers every name under a
domain with that domain's record.

The limit this brings: a DuckDNS domain holds ONE TXT value, shared by all names under it, so two
challenges at once under one domain would overwrite each other. lego solves DuckDNS challenges one at a
time; dockroute presents an order's records together and runs up to four orders at once, so:
- within one order (one worker thread presents all of an order's records), a second value at a domain
  is refused at once with a DnsError saying why (``*.home.duckdns.org`` with ``home.duckdns.org``, or two
  names under one DuckDNS domain, in one certificate): it can never pass;
- another order's present for the same domain waits until the first order's cleanup frees it (bounded:
  the propagation timeout plus two minutes), so concurrent orders under one domain take turns instead of
  failing at the CA;
- a cleanup clears the domain only when the value this process put there is the record's, never another
  challenge's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from acme_client.dns.base import DnsError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import seconds
from acme_client.dns.http_api import DEFAULT_HTTP_TIMEOUT, call, refusal

__all__ = ["SPEC", "DuckDnsProvider", "duckdns_domain"]

NAME = "duckdns"
DEFAULT_BASE_URL = "https://www.duckdns.org"
_SUFFIX = "duckdns.org"
ORDER_ALLOWANCE = 120.0  # seconds an order takes beyond its propagation wait (the CA's validation, cleanup)


def duckdns_domain(fqdn: str) -> str:
    """The DuckDNS domain holding ``fqdn``: its last three labels (lego's getMainDomain). A name outside
    duckdns.org (a CNAME pointing elsewhere) is refused here: DuckDNS writes only its own domains."""
    labels = fqdn.rstrip(".").lower().split(".")
    if len(labels) < 3 or ".".join(labels[-2:]) != _SUFFIX:
        raise DnsError(f"{NAME}: {fqdn} is not under a DuckDNS domain (<name>.duckdns.org)")
    return ".".join(labels[-3:])


class DuckDnsProvider:
    """Sets and clears a DuckDNS domain's TXT value (blocking). ``base_url`` is for tests: lego has no
    variable for it, so neither has dockroute. ``wait``: how long a present waits for another order's
    value to go (default: the propagation timeout plus :data:`ORDER_ALLOWANCE`)."""

    def __init__(
        self, config: ProviderConfig, base_url: str = DEFAULT_BASE_URL, wait: float | None = None
    ) -> None:
        self._token = config.get("DUCKDNS_TOKEN") or ""
        self._url = base_url.rstrip("/") + "/update"
        self._timeout = seconds(config, "DUCKDNS_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT)
        self._wait = config.propagation_timeout + ORDER_ALLOWANCE if wait is None else wait
        self._changed = threading.Condition()
        self._held: dict[str, _Held] = {}  # DuckDNS domain → the value this process put there
        self.waiting = 0  # presents waiting for a domain (for tests)

    def present(self, record: TxtRecord) -> None:
        domain = duckdns_domain(record.fqdn)
        me = threading.get_ident()
        deadline = time.monotonic() + self._wait
        with self._changed:
            while (held := self._held.get(domain)) is not None and held.value != record.value:
                left = deadline - time.monotonic()
                if held.thread == me or left <= 0:  # the same order (its thread), or waited enough
                    raise _one_value(domain, record, waited=None if held.thread == me else self._wait)
                self.waiting += 1
                try:
                    self._changed.wait(left)
                finally:
                    self.waiting -= 1
            self._held[domain] = _Held(record.value, me)
        try:
            self._update(domain, {"txt": record.value, "clear": "false"})
        except DnsError:
            if held is None:
                self._release(domain, record.value)
            raise

    def cleanup(self, record: TxtRecord) -> None:
        domain = duckdns_domain(record.fqdn)
        with self._changed:
            held = self._held.get(domain)
        if held is not None and held.value != record.value:
            return  # another challenge's value is there now: ours is already gone
        try:
            self._update(domain, {"txt": "", "clear": "true"})
        finally:  # even when the clear failed: the next present overwrites whatever is left
            self._release(domain, record.value)

    def _release(self, domain: str, value: str) -> None:
        with self._changed:
            held = self._held.get(domain)
            if held is not None and held.value == value:
                del self._held[domain]
                self._changed.notify_all()

    def _update(self, domain: str, change: dict[str, str]) -> None:
        api = "GET /update"
        params = {"domains": domain, "token": self._token, **change}
        answer = call(
            "GET", self._url, provider=NAME, api=api, timeout=self._timeout, params=params,
            secrets=(self._token,),
        )  # fmt: skip
        first = answer.text.strip().split("\n", 1)[0].strip()
        if answer.status_code != 200 or first != "OK":
            detail = (
                f"{first} (DuckDNS answers KO for a wrong token or a domain the token does not own: {domain})"
                if first == "KO"
                else ""
            )
            raise refusal(answer, provider=NAME, api=api, detail=detail, secrets=(self._token,))


@dataclass(frozen=True, slots=True)
class _Held:
    value: str
    thread: int  # the worker thread whose order presented it: one order's presents share a thread


def _one_value(domain: str, record: TxtRecord, waited: float | None) -> DnsError:
    why = (
        f"another order's challenge held it for {waited:g} s"
        if waited is not None
        else "this order already presented another value there (a wildcard and its apex, or two names "
        "under one DuckDNS domain, in one certificate)"
    )
    return DnsError(
        f"{NAME}: {domain} holds one TXT value, and {why}: {record.domain} cannot be validated now; use one "
        "certificate per DuckDNS name (a wildcard alone covers every name under the domain) or another "
        "DNS provider"
    )


SPEC = ProviderSpec(
    name=NAME,
    required=(("DUCKDNS_TOKEN",),),
    optional=("DUCKDNS_PROPAGATION_TIMEOUT", "DUCKDNS_POLLING_INTERVAL", "DUCKDNS_HTTP_TIMEOUT"),
    prefixes=("DUCKDNS_",),
    build=DuckDnsProvider,
)
