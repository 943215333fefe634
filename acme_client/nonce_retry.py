"""A ``ClientNetwork`` that survives ``badNonce`` the way RFC 8555 section 6.5 asks.

A CA may reject any nonce (Let's Encrypt does when a nonce outlives its backend; Pebble rejects 5% of good
ones on purpose), and answers with a ``badNonce`` problem carrying a fresh nonce in ``Replay-Nonce``: the
client "SHOULD retry the request using the new nonce". certbot's ``acme`` (5.9) retries once, after
throwing that fresh nonce away (``_check_response`` raises before the nonce is kept) and asking
``newNonce`` for another; two rejections in a row, one POST in 400 at Pebble's rate, fail the whole order,
and the resolver parks the names for its backoff (a minute at least). Thirty names at first start are
about 300 POSTs: a run without such a failure was luck.

Here the nonce of every failed POST is kept (any response's ``Replay-Nonce`` is good for the next request),
and a ``badNonce`` is retried at once with it, up to :data:`BAD_NONCE_RETRIES` times: at a 5% rejection
rate, six rejections in a row happen once in 64 million POSTs. Any other problem is raised at once as
before: only ``badNonce`` says the request itself was never looked at.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from acme import client, errors, messages

log = logging.getLogger("dockroute.acme")

__all__ = ["BAD_NONCE_RETRIES", "NonceRetryNetwork"]

BAD_NONCE_RETRIES = 5


class NonceRetryNetwork(client.ClientNetwork):
    """``ClientNetwork`` whose ``post`` retries ``badNonce`` at once with the nonce the error carries."""

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for retry in range(BAD_NONCE_RETRIES + 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or retry == BAD_NONCE_RETRIES:
                    raise
                url = args[0] if args else kwargs.get("url")
                log.debug("badNonce from %s; retrying with the nonce it carries (retry %d)", url, retry + 1)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        if method == "POST" and not response.ok and self.REPLAY_NONCE_HEADER in response.headers:
            # The caller's _check_response raises on this answer before its nonce is kept: keep it now.
            try:
                self._add_nonce(response)
            except errors.BadNonce:  # malformed: the next POST asks newNonce, as without one
                pass
        return response
