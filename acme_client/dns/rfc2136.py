"""``rfc2136``: TXT records written by RFC 2136 dynamic updates, signed with TSIG (BIND, Knot, PowerDNS,
Technitium, Windows DNS...), through ``dnspython``.

lego's variables (https://go-acme.github.io/lego/dns/rfc2136/): ``RFC2136_NAMESERVER`` (``host[:port]``,
port 53 by default), ``RFC2136_TSIG_KEY``/``_SECRET``/``_ALGORITHM`` (lego's ``hmac-sha256.`` form, with
or without the dot, any case; hmac-sha1 by default as in lego) or ``RFC2136_TSIG_FILE`` (a BIND key file
as ``tsig-keygen`` writes it, which then wins, as in lego), ``RFC2136_TTL``, ``RFC2136_DNS_TIMEOUT``
(one update's wait, 10 s), ``RFC2136_PROPAGATION_TIMEOUT`` (older name ``RFC2136_TIMEOUT``),
``RFC2136_POLLING_INTERVAL``. ``RFC2136_SEQUENCE_INTERVAL`` is not read: lego presents this provider's
records one at a time, dockroute adds every value of an order beside the others at once (a DNS server
holds several TXT values at one name), so there is nothing to space out; start warns that it is ignored.

Unlike lego, which replaces the whole TXT set at the name before inserting, ``present`` adds only its
value and ``cleanup`` deletes only its value: a wildcard and its apex share ``_acme-challenge.<name>``,
and two orders may be in flight at once.
"""

from __future__ import annotations

import binascii
import re

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.update

from acme_client.dns.base import DnsConfigError, DnsError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import seconds
from acme_client.dns.zone import address_of, parse_server

__all__ = ["SPEC", "Rfc2136Provider", "parse_nameserver", "read_tsig_file", "tsig_algorithm"]

NAMESERVER = "RFC2136_NAMESERVER"
TSIG_KEY = "RFC2136_TSIG_KEY"
TSIG_SECRET = "RFC2136_TSIG_SECRET"
TSIG_ALGORITHM = "RFC2136_TSIG_ALGORITHM"
TSIG_FILE = "RFC2136_TSIG_FILE"
_KEY_FILE = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.S)
DNS_TIMEOUT = "RFC2136_DNS_TIMEOUT"
DEFAULT_DNS_TIMEOUT = 10.0  # lego's

# lego's names (miekg/dns constants: "hmac-sha256.", "hmac-md5.sig-alg.reg.int.") → dnspython's
_ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-md5.sig-alg.reg.int": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}


def tsig_algorithm(text: str) -> dns.name.Name:
    """The TSIG algorithm named ``text`` in any of lego's or BIND's spellings."""
    key = text.strip().lower().rstrip(".")
    try:
        return _ALGORITHMS[key]
    except KeyError:
        known = ", ".join(sorted(f"{a}." for a in _ALGORITHMS if "." not in a))
        raise DnsConfigError(
            f"{TSIG_ALGORITHM}={text!r} is not a TSIG algorithm dockroute knows ({known})", TSIG_ALGORITHM
        ) from None


def read_tsig_file(path: str) -> tuple[str, str, str]:
    """``(key name, algorithm, secret)`` from a BIND key file (``tsig-keygen``'s output, lego's
    ``RFC2136_TSIG_FILE``): ``key "name" { algorithm hmac-sha256; secret "..."; };``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(64 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        raise DnsConfigError(f"{TSIG_FILE}: cannot read {path}: {exc}", TSIG_FILE) from exc
    text = re.sub(r"(#|//)[^\n]*", "", text)
    found = _KEY_FILE.search(text)
    if found is None:
        raise DnsConfigError(
            f'{TSIG_FILE}: {path} holds no key "name" {{ algorithm ...; secret "..."; }}; block', TSIG_FILE
        )
    body = found.group(2)
    algorithm = re.search(r'algorithm\s+"?([\w.-]+)"?\s*;', body)
    secret = re.search(r'secret\s+"([^"]+)"\s*;', body)
    if algorithm is None or secret is None:
        missing = "algorithm" if algorithm is None else "secret"
        raise DnsConfigError(f"{TSIG_FILE}: the key in {path} has no {missing}", TSIG_FILE)
    return found.group(1), algorithm.group(1), secret.group(1)


def parse_nameserver(text: str) -> tuple[str, int]:
    """``RFC2136_NAMESERVER`` → (host, port), as :func:`acme_client.dns.zone.parse_server` reads it."""
    try:
        return parse_server(text)
    except ValueError as exc:
        raise DnsConfigError(f"{NAMESERVER}: {exc}", NAMESERVER) from None


class Rfc2136Provider:
    """Sends one signed update per call to the configured server (blocking: worker threads only)."""

    def __init__(self, config: ProviderConfig) -> None:
        self._host, self._port = parse_nameserver(config.get(NAMESERVER) or "")
        self._ttl = config.ttl
        self._timeout = seconds(config, DNS_TIMEOUT, DEFAULT_DNS_TIMEOUT)
        key, secret = config.get(TSIG_KEY), config.get(TSIG_SECRET)
        algorithm_name = config.get(TSIG_ALGORITHM) or "hmac-sha1."
        if config.get(TSIG_FILE):  # as in lego, the key file wins over the three variables
            key, algorithm_name, secret = read_tsig_file(config.get(TSIG_FILE) or "")
        if bool(key) != bool(secret):  # lego would send unsigned updates, which any server refuses
            missing = TSIG_SECRET if key else TSIG_KEY
            raise DnsConfigError(f"{missing} is not set; a TSIG key needs both its name and secret", missing)
        self._key: dns.tsig.Key | None = None
        if key and secret:
            algorithm = tsig_algorithm(algorithm_name)
            try:
                self._key = dns.tsig.Key(dns.name.from_text(key), secret, algorithm)
            except (binascii.Error, ValueError, dns.exception.DNSException) as exc:
                raise DnsConfigError(f"{TSIG_SECRET}: not a base64 TSIG secret ({exc})", TSIG_SECRET) from exc

    @property
    def server(self) -> str:
        return f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"

    def present(self, record: TxtRecord) -> None:
        self._update(record, add=True)

    def cleanup(self, record: TxtRecord) -> None:
        """Deletes only this value; deleting a value that is not there is a successful no-op (RFC 2136
        section 3.4.2.4), so a second cleanup after a crash succeeds."""
        self._update(record, add=False)

    def _update(self, record: TxtRecord, add: bool) -> None:
        update = dns.update.UpdateMessage(record.zone)
        if self._key is not None:
            update.use_tsig(self._key)
        value = f'"{record.value}"'
        if add:
            update.add(record.fqdn, self._ttl, "TXT", value)
        else:
            update.delete(record.fqdn, "TXT", value)
        action = "adding" if add else "removing"
        what = f"rfc2136: {action} TXT {record.fqdn} (zone {record.zone}) at {self.server}"
        try:
            address = address_of(self._host, self._port)
            response, _ = dns.query.udp_with_fallback(update, address, timeout=self._timeout, port=self._port)
        except dns.exception.Timeout:
            raise DnsError(f"{what}: no answer within {self._timeout:g}s") from None
        except dns.tsig.PeerBadKey as exc:
            raise DnsError(f"{what}: the server answered NOTAUTH (BADKEY: check {TSIG_KEY})") from exc
        except (dns.tsig.PeerBadSignature, dns.tsig.PeerBadTime) as exc:
            why = "BADTIME: check this clock" if isinstance(exc, dns.tsig.PeerBadTime) else "BADSIG"
            raise DnsError(
                f"{what}: the server answered NOTAUTH ({why}: check {TSIG_SECRET} and {TSIG_ALGORITHM})"
            ) from exc
        except (OSError, dns.exception.DNSException) as exc:
            raise DnsError(f"{what}: {type(exc).__name__}: {exc}") from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise DnsError(f"{what}: the server answered {dns.rcode.to_text(rcode)}")


SPEC = ProviderSpec(
    name="rfc2136",
    required=((NAMESERVER,),),
    optional=(
        TSIG_KEY,
        TSIG_SECRET,
        TSIG_ALGORITHM,
        TSIG_FILE,
        "RFC2136_TTL",
        DNS_TIMEOUT,
        "RFC2136_PROPAGATION_TIMEOUT",
        "RFC2136_POLLING_INTERVAL",
    ),
    aliases={"RFC2136_TIMEOUT": "RFC2136_PROPAGATION_TIMEOUT"},
    prefixes=("RFC2136_",),
    build=Rfc2136Provider,
)
