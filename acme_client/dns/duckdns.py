"""DuckDNS, with lego's variables (``DUCKDNS_TOKEN``).

DuckDNS's whole API is one GET (https://www.duckdns.org/spec.jsp): ``/update?domains=<name>&token=
<token>&txt=<value>`` sets the TXT value of a DuckDNS domain, ``&clear=true`` empties it; the answer is
the body ``OK`` or ``KO``. As lego does, the domain sent is the DuckDNS domain itself
(``home.duckdns.org`` for ``_acme-challenge.a.home.duckdns.org``): DuckDNS answers every name under a
domain with that domain's record.

The limit this brings: a DuckDNS domain holds ONE TXT value, shared by all names under it. Two
challenges at once under one domain (``*.home.duckdns.org`` and ``home.duckdns.org`` in one order, or
two orders at once for two names under it) would overwrite each other, and one would fail at the CA.
This provider refuses the second value with a DnsError that says so, instead of letting the CA fail it
later; and a cleanup clears the domain only when the value this process put there is the record's, so
it never removes another challenge's value.
"""

from __future__ import annotations

import threading

from acme_client.dns.base import DnsError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import seconds
from acme_client.dns.http_api import DEFAULT_HTTP_TIMEOUT, call, refusal

__all__ = ["SPEC", "DuckDnsProvider", "duckdns_domain"]

NAME = "duckdns"
DEFAULT_BASE_URL = "https://www.duckdns.org"
_SUFFIX = "duckdns.org"


def duckdns_domain(fqdn: str) -> str:
    """The DuckDNS domain holding ``fqdn``: its last three labels (lego's getMainDomain). A name outside
    duckdns.org (a CNAME pointing elsewhere) is refused here: DuckDNS writes only its own domains."""
    labels = fqdn.rstrip(".").lower().split(".")
    if len(labels) < 3 or ".".join(labels[-2:]) != _SUFFIX:
        raise DnsError(f"{NAME}: {fqdn} is not under a DuckDNS domain (<name>.duckdns.org)")
    return ".".join(labels[-3:])


class DuckDnsProvider:
    """Sets and clears a DuckDNS domain's TXT value (blocking). ``base_url`` is for tests: lego has no
    variable for it, so neither has dockroute."""

    def __init__(self, config: ProviderConfig, base_url: str = DEFAULT_BASE_URL) -> None:
        self._token = config.get("DUCKDNS_TOKEN") or ""
        self._url = base_url.rstrip("/") + "/update"
        self._timeout = seconds(config, "DUCKDNS_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT)
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # DuckDNS domain → the value this process put there

    def present(self, record: TxtRecord) -> None:
        domain = duckdns_domain(record.fqdn)
        with self._lock:
            held = self._held.get(domain)
            if held is not None and held != record.value:
                raise DnsError(
                    f"{NAME}: {domain} already holds the TXT value of another challenge, and a DuckDNS "
                    f"domain holds only one: {record.domain} cannot be validated at the same time "
                    "(a wildcard and its apex in one certificate, or two names under one DuckDNS domain "
                    "ordered at once, need separate certificates or another DNS provider)"
                )
            self._held[domain] = record.value
        try:
            self._update(domain, {"txt": record.value, "clear": "false"})
        except DnsError:
            with self._lock:
                if held is None:
                    self._held.pop(domain, None)
            raise

    def cleanup(self, record: TxtRecord) -> None:
        domain = duckdns_domain(record.fqdn)
        with self._lock:
            held = self._held.get(domain)
        if held is not None and held != record.value:
            return  # another challenge's value is there now: ours is already gone
        self._update(domain, {"txt": "", "clear": "true"})
        with self._lock:
            if self._held.get(domain) == record.value:
                del self._held[domain]

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


SPEC = ProviderSpec(
    name=NAME,
    required=(("DUCKDNS_TOKEN",),),
    optional=("DUCKDNS_PROPAGATION_TIMEOUT", "DUCKDNS_POLLING_INTERVAL", "DUCKDNS_HTTP_TIMEOUT"),
    prefixes=("DUCKDNS_",),
    build=DuckDnsProvider,
)
