"""lego's ``httpreq``: an HTTP endpoint of yours writes the records, so any DNS host works without new code.

As lego: ``POST <HTTPREQ_ENDPOINT>/present`` and ``/cleanup`` with a JSON body, ``{"fqdn":
"_acme-challenge.example.com.", "value": "<TXT value>"}``, or with ``HTTPREQ_MODE=RAW`` the challenge
itself, ``{"domain": "example.com", "token": "...", "keyAuth": "..."}``; basic authentication when both
``HTTPREQ_USERNAME`` and ``HTTPREQ_PASSWORD`` are set; any 2xx answer is success. The endpoint must accept
a second present at one name beside the first (a wildcard and its apex in one order) and remove only
the value a cleanup names.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from acme_client.dns.base import DnsConfigError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import seconds
from acme_client.dns.http_api import DEFAULT_HTTP_TIMEOUT, call, refusal

__all__ = ["SPEC", "HttpReqProvider"]

NAME = "httpreq"


class HttpReqProvider:
    """Hands each record to the endpoint (blocking)."""

    def __init__(self, config: ProviderConfig) -> None:
        endpoint = (config.get("HTTPREQ_ENDPOINT") or "").strip()
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DnsConfigError(
                f"HTTPREQ_ENDPOINT: {endpoint!r} is not an http:// or https:// URL", "HTTPREQ_ENDPOINT"
            )
        self._endpoint = endpoint.rstrip("/")
        mode = config.get("HTTPREQ_MODE") or ""
        if mode not in ("", "RAW"):
            raise DnsConfigError(f"HTTPREQ_MODE: {mode!r} is neither RAW nor empty", "HTTPREQ_MODE")
        self._raw = mode == "RAW"
        username = config.get("HTTPREQ_USERNAME") or ""
        password = config.get("HTTPREQ_PASSWORD") or ""
        self._auth = (username, password) if username and password else None  # lego: both, or none
        self._secrets = (password,)
        self._timeout = seconds(config, "HTTPREQ_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT)

    def present(self, record: TxtRecord) -> None:
        self._post("/present", record)

    def cleanup(self, record: TxtRecord) -> None:
        self._post("/cleanup", record)

    def _post(self, path: str, record: TxtRecord) -> None:
        if self._raw:
            body = {"domain": record.domain, "token": record.token, "keyAuth": record.key_authorization}
        else:
            body = {"fqdn": record.fqdn, "value": record.value}
        api = f"POST {path}"
        answer = call(
            "POST", self._endpoint + path, provider=NAME, api=api, timeout=self._timeout, json=body,
            auth=self._auth, headers={"Accept": "application/json"}, secrets=self._secrets,
        )  # fmt: skip
        if answer.status_code // 100 != 2:
            raise refusal(answer, provider=NAME, api=api, secrets=self._secrets)


SPEC = ProviderSpec(
    name=NAME,
    required=(("HTTPREQ_ENDPOINT",),),
    optional=(
        "HTTPREQ_MODE",
        "HTTPREQ_USERNAME",
        "HTTPREQ_PASSWORD",
        "HTTPREQ_PROPAGATION_TIMEOUT",
        "HTTPREQ_POLLING_INTERVAL",
        "HTTPREQ_HTTP_TIMEOUT",
    ),
    prefixes=("HTTPREQ_",),
    build=HttpReqProvider,
)
