"""Cloudflare (API v4), with lego's variables, so a Traefik user's ``.env`` works unchanged.

Credentials: an API token with Zone:Read and DNS:Edit (``CF_DNS_API_TOKEN``), optionally a second token
for the zone lookup only (``CF_ZONE_API_TOKEN``), or the older account email and Global API Key
(``CF_API_EMAIL`` + ``CF_API_KEY``); each also under its ``CLOUDFLARE_`` name. With both set, the email
and key win, as in lego's ``NewDNSProvider`` (a warning at start says so). The calls are lego's:
``GET /zones?name=<zone>`` for the zone's id (cached), ``POST /zones/{id}/dns_records`` with the value
quoted (Cloudflare wants TXT content as RFC 1035 character strings), ``DELETE
/zones/{id}/dns_records/{record}``. The record id comes from the create answer; after a restart (the
journal's cleanup) it is found again by name and value, so no record is left behind.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from acme_client.dns.base import DnsConfigError, DnsError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import seconds
from acme_client.dns.http_api import DEFAULT_HTTP_TIMEOUT, call, refusal

__all__ = ["SPEC", "CloudflareProvider"]

NAME = "cloudflare"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
MIN_TTL = 120  # lego refuses less; Cloudflare's own minimum for non-Enterprise zones
_IDENTICAL_RECORD = 81058  # Cloudflare's code for "An identical record already exists."


class CloudflareProvider:
    """Writes and removes TXT values through Cloudflare's API v4 (blocking; one instance per resolver,
    shared by its worker threads: the caches are locked)."""

    def __init__(self, config: ProviderConfig) -> None:
        self._email = config.get("CF_API_EMAIL") or ""
        self._key = config.get("CF_API_KEY") or ""
        # lego's NewDNSProvider tries the email and key first, the tokens only when those are missing
        # (a warning at start names both when both are set: :func:`_warnings`)
        email_and_key = bool(self._email and self._key)
        self._token = "" if email_and_key else config.get("CF_DNS_API_TOKEN") or ""
        self._zone_token = "" if email_and_key else config.get("CF_ZONE_API_TOKEN") or self._token
        if not self._token and not email_and_key:
            raise DnsConfigError(
                "cloudflare: set CF_DNS_API_TOKEN (or CF_API_EMAIL and CF_API_KEY)", "CF_DNS_API_TOKEN"
            )
        if config.ttl < MIN_TTL:
            raise DnsConfigError(
                f"CLOUDFLARE_TTL: {config.ttl} is below Cloudflare's minimum {MIN_TTL}", "CLOUDFLARE_TTL"
            )
        self._ttl = config.ttl
        self._base = (config.get("CLOUDFLARE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._timeout = seconds(config, "CLOUDFLARE_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT)
        names = ("CF_DNS_API_TOKEN", "CF_ZONE_API_TOKEN", "CF_API_KEY")  # an ignored one is still secret
        self._secrets = tuple(config.get(n) or "" for n in names)
        self._lock = threading.Lock()
        self._zones: dict[str, str] = {}  # zone name → id
        self._ids: dict[tuple[str, str], str] = {}  # (name, value) → record id

    def present(self, record: TxtRecord) -> None:
        zone_id = self._zone_id(record.zone)
        name = record.fqdn.rstrip(".")
        body = {"type": "TXT", "name": name, "content": f'"{record.value}"', "ttl": self._ttl}
        api = "POST /zones/{id}/dns_records"
        answer = self._call("POST", f"/zones/{zone_id}/dns_records", api, json=body)
        if answer.ok:
            created = _result(answer, api)
            record_id = created.get("id") if isinstance(created, dict) else None
            if not isinstance(record_id, str) or not record_id:
                raise DnsError(f"{NAME}: {api} answered {answer.status_code} without the new record's id")
        elif _IDENTICAL_RECORD in _codes(answer):  # presented before (a retry): find the one there
            record_id = self._find(zone_id, name, record.value)
            if record_id is None:
                raise self._refused(answer, api)
        else:
            raise self._refused(answer, api)
        with self._lock:
            self._ids[(name, record.value)] = record_id

    def cleanup(self, record: TxtRecord) -> None:
        name = record.fqdn.rstrip(".")
        with self._lock:
            record_id = self._ids.get((name, record.value))
        zone_id = self._zone_id(record.zone)
        if record_id is None:
            record_id = self._find(zone_id, name, record.value)
        if record_id is not None:
            api = "DELETE /zones/{id}/dns_records/{record}"
            answer = self._call("DELETE", f"/zones/{zone_id}/dns_records/{record_id}", api)
            if not answer.ok and answer.status_code != 404:  # 404: already gone, which is the goal
                raise self._refused(answer, api)
        with self._lock:
            self._ids.pop((name, record.value), None)

    # --- the API -----------------------------------------------------------------------------------

    def _zone_id(self, zone: str) -> str:
        """The id of ``zone`` (absolute name), asked once with the zone token (lego's ZoneIDByName)."""
        zone = zone.rstrip(".")
        with self._lock:
            known = self._zones.get(zone)
        if known is not None:
            return known
        api = f"GET /zones?name={zone}"
        answer = self._call("GET", "/zones", api, params={"name": zone, "per_page": "50"}, zone_read=True)
        if not answer.ok:
            raise self._refused(answer, api)
        zones = _result(answer, api)
        ids = [z.get("id") for z in zones if isinstance(z, dict)] if isinstance(zones, list) else []
        if not ids:
            raise DnsError(
                f"{NAME}: {api} answered no zone: {zone} is not a zone these credentials can read "
                "(the token needs Zone:Read on it)"
            )
        if len(ids) > 1 or not isinstance(ids[0], str):
            raise DnsError(f"{NAME}: {api} answered {len(ids)} zones named {zone}; cannot tell which")
        with self._lock:
            self._zones[zone] = ids[0]
        return ids[0]

    def _find(self, zone_id: str, name: str, value: str) -> str | None:
        """The id of the TXT record ``name`` holding ``value``, None when there is none (quoted or not:
        records made by other tools may be either)."""
        api = f"GET /zones/{{id}}/dns_records?type=TXT&name={name}"
        params = {"type": "TXT", "name": name, "per_page": "100"}
        answer = self._call("GET", f"/zones/{zone_id}/dns_records", api, params=params)
        if not answer.ok:
            raise self._refused(answer, api)
        records = _result(answer, api)
        for found in records if isinstance(records, list) else []:
            if isinstance(found, dict) and str(found.get("content", "")).strip('"') == value:
                return str(found.get("id"))
        return None

    def _call(
        self, method: str, path: str, api: str, *, zone_read: bool = False, **kwargs: Any
    ) -> requests.Response:
        if self._token:
            headers = {"Authorization": f"Bearer {self._zone_token if zone_read else self._token}"}
        else:
            headers = {"X-Auth-Email": self._email, "X-Auth-Key": self._key}
        headers["Accept"] = "application/json"
        return call(
            method, self._base + path, provider=NAME, api=api, timeout=self._timeout, headers=headers,
            secrets=self._secrets, **kwargs,
        )  # fmt: skip

    def _refused(self, answer: requests.Response, api: str) -> DnsError:
        return refusal(answer, provider=NAME, api=api, detail=_errors(answer), secrets=self._secrets)


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _result(answer: requests.Response, api: str) -> Any:
    body = _json(answer)
    if "result" not in body:
        raise DnsError(f"{NAME}: {api} answered {answer.status_code} without a JSON result")
    return body["result"]


def _codes(answer: requests.Response) -> list[int]:
    errors = _json(answer).get("errors")
    return [e.get("code") for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _errors(answer: requests.Response) -> str:
    """Cloudflare's ``errors`` list as lego words it: ``code: message`` (and each error_chain link)."""
    errors = _json(answer).get("errors")
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            parts.append(f"{error.get('code')}: {error.get('message')}")
            chain = error.get("error_chain")
            parts += [f"{c.get('code')}: {c.get('message')}" for c in chain or () if isinstance(c, dict)]
    return "; ".join(parts)


def _warnings(config: ProviderConfig) -> list[str]:
    """Both credentials set (a ``.env`` carried over): say at start which one is used, as lego chooses."""
    tokens = [n for n in ("CF_DNS_API_TOKEN", "CF_ZONE_API_TOKEN") if config.get(n)]
    if not (tokens and config.get("CF_API_EMAIL") and config.get("CF_API_KEY")):
        return []
    named = " + ".join(tokens)
    return [
        f"DNS provider {NAME}: both CF_API_EMAIL + CF_API_KEY and {named} are set; the email and key are "
        f"used, as lego (Traefik) does, and {named} ignored; unset the ones you do not mean"
    ]


SPEC = ProviderSpec(
    name=NAME,
    required=(("CF_DNS_API_TOKEN",), ("CF_API_EMAIL", "CF_API_KEY")),
    optional=(
        "CF_ZONE_API_TOKEN",
        "CLOUDFLARE_TTL",
        "CLOUDFLARE_PROPAGATION_TIMEOUT",
        "CLOUDFLARE_POLLING_INTERVAL",
        "CLOUDFLARE_HTTP_TIMEOUT",
        "CLOUDFLARE_BASE_URL",
    ),
    aliases={
        "CLOUDFLARE_DNS_API_TOKEN": "CF_DNS_API_TOKEN",
        "CLOUDFLARE_ZONE_API_TOKEN": "CF_ZONE_API_TOKEN",
        "CLOUDFLARE_EMAIL": "CF_API_EMAIL",
        "CLOUDFLARE_API_KEY": "CF_API_KEY",
        # lego reads these as fallbacks of the CLOUDFLARE_ ones
        "CF_TTL": "CLOUDFLARE_TTL",
        "CF_PROPAGATION_TIMEOUT": "CLOUDFLARE_PROPAGATION_TIMEOUT",
        "CF_POLLING_INTERVAL": "CLOUDFLARE_POLLING_INTERVAL",
        "CF_HTTP_TIMEOUT": "CLOUDFLARE_HTTP_TIMEOUT",
    },
    prefixes=("CF_", "CLOUDFLARE_"),
    defaults={"CLOUDFLARE_PROPAGATION_TIMEOUT": "120"},  # lego's for Cloudflare (others: 60 s)
    build=CloudflareProvider,
    warnings=_warnings,
)
