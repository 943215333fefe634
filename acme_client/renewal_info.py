"""ACME Renewal Information (RFC 9773) for one resolver: when each certificate falls due.

Where the CA publishes ARI (``renewalInfo`` in its directory), its suggested window decides; otherwise, or
when ARI fails, a certificate is renewed once less than a third of its lifetime is left. ARI is asked in a
worker thread (:meth:`RenewalInfo.ask`), never on the event loop, at most as often as the CA's Retry-After
allows; its answers are taken in on the event loop (:meth:`RenewalInfo.take`), the only writer of
:attr:`RenewalInfo.answers`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from acme_client.issuer import AcmeError, AriError, Issuer
from acme_client.storage import StoredCertificate

log = logging.getLogger("dockroute.acme")

__all__ = ["Ari", "RenewalInfo", "clamp_recheck"]

Names = tuple[str, ...]
Question = tuple[Names, StoredCertificate]

_BACKOFF_MIN, _BACKOFF_MAX = 60.0, 6 * 3600.0
# RFC 9773 section 4.3.3 suggests clamping the CA's Retry-After to between a minute and a day.
_ARI_RECHECK_MIN, _ARI_RECHECK_MAX = 60.0, 86400.0


@dataclass(frozen=True, slots=True)
class Ari:
    """The last ARI answer for one name set's certificate (``renew_at`` None: ARI failed, use the
    one-third rule) and when ARI may be asked again (``time.monotonic()`` seconds)."""

    certificate_pem: bytes
    renew_at: _dt.datetime | None
    next_check: float


def clamp_recheck(seconds: float) -> float:
    """The CA's Retry-After for ARI, kept between a minute and a day (RFC 9773 section 4.3.3)."""
    return min(max(seconds, _ARI_RECHECK_MIN), _ARI_RECHECK_MAX)


class RenewalInfo:
    """The ARI answers of resolver ``name`` per wanted name set, and the renewal rule that reads them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answers: dict[Names, Ari] = {}  # written on the event loop only
        self.ca_without_ari = False  # set once the CA's directory showed no renewalInfo
        self._delay = 0.0  # worker thread only: backoff while the CA's directory cannot be fetched

    def renewal_time(self, names: Names, cert: StoredCertificate) -> tuple[float, str]:
        """When ``cert`` falls due for ``names`` (UNIX seconds), and by which rule.

        The CA answered ARI for that very certificate: the time it picked in its window, but never later
        than a tenth of the lifetime left (a wrong or stale window must not run the certificate out).
        Otherwise: a third of its lifetime left. The one rule both the loop and the reports read."""
        facts = cert.facts
        day = 86400.0
        ari = self.answers.get(names)
        if ari is not None and ari.renew_at is not None and ari.certificate_pem == cert.certificate_pem:
            tenth, ari_at = facts.not_after - facts.lifetime / 10, ari.renew_at.timestamp()
            if tenth < ari_at:
                return tenth, f"renewal with a tenth of the lifetime left, before ARI's {ari.renew_at}"
            return ari_at, f"the CA's renewal information says renew at {ari.renew_at}"
        left = facts.not_after - time.time()
        why = f"{left / day:.1f} of {facts.lifetime / day:.1f} days left (renewal with a third left)"
        return facts.not_after - facts.lifetime / 3, why

    def questions(
        self,
        wanted: Iterable[Names],
        covering: Callable[[Names], StoredCertificate | None],
        backing_off: Callable[[Names], bool],
    ) -> list[Question]:
        """Wanted name sets with a stored certificate whose ARI answer is missing, for another
        certificate, or past its next check; name sets backing off after a failed order wait. Nothing
        at all once the CA is known to have no ARI."""
        if self.ca_without_ari:
            return []
        now = time.monotonic()
        out = []
        for names in wanted:
            cert = covering(names)
            if cert is None or backing_off(names):
                continue
            ari = self.answers.get(names)
            if ari is None or ari.certificate_pem != cert.certificate_pem or now >= ari.next_check:
                out.append((names, cert))
        return out

    def take(self, answers: dict[Names, Ari] | None, wanted: Iterable[Names]) -> None:
        """Event loop: keep what :meth:`ask` answered (None: the CA has no ARI, never ask again), and
        forget answers for name sets no longer wanted."""
        if answers is None:
            self.ca_without_ari = True
            return
        self.answers.update(answers)
        for stale in set(self.answers) - set(wanted):
            del self.answers[stale]

    def ask(self, issuer: Issuer, questions: list[Question]) -> dict[Names, Ari] | None:
        """Worker thread: one ARI request per certificate. None when the CA's directory has no
        ``renewalInfo`` (the directory is the only request made then, and the issuer keeps it)."""
        try:
            if not issuer.offers_renewal_info():
                log.info("resolver %s: the CA offers no renewal information (ARI)", self.name)
                return None
        except AcmeError as exc:
            # The directory itself failed: the certificates asked about wait, on the same growing
            # schedule as orders, so that config changes (each one kicks the loop) never hammer a CA
            # that is down.
            self._delay = min(max(self._delay * 2, _BACKOFF_MIN), _BACKOFF_MAX)
            log.warning(
                "resolver %s: cannot check renewal information: %s; renewing with a third of the "
                "lifetime left, asking again in %ds",
                self.name,
                exc,
                self._delay,
            )
            retry_at = time.monotonic() + self._delay
            return {names: Ari(cert.certificate_pem, None, retry_at) for names, cert in questions}
        self._delay = 0.0
        answers: dict[Names, Ari] = {}
        for names, cert in questions:
            answer, unreachable = self._ask_one(issuer, names, cert)
            answers[names] = answer
            if unreachable:
                # No answer at all (timeout, refused): the next would wait as long. The others keep the
                # one-third rule until the same recheck time, and the orders of this pass go ahead.
                for rest, rest_cert in questions[len(answers) :]:
                    answers[rest] = Ari(rest_cert.certificate_pem, None, answer.next_check)
                break
        return answers

    def _ask_one(self, issuer: Issuer, names: Names, cert: StoredCertificate) -> tuple[Ari, bool]:
        """The answer for one certificate, and whether the CA could not be reached at all."""
        try:
            advice = issuer.renewal_advice(cert.certificate_pem)
        except AriError as exc:
            log.warning(
                "resolver %s: %s: %s; falling back to renewal with a third of the lifetime left",
                self.name,
                ", ".join(names),
                exc,
            )
            next_check = time.monotonic() + clamp_recheck(exc.recheck_in)
            return Ari(cert.certificate_pem, None, next_check), exc.unreachable
        log.debug(
            "resolver %s: renewal information for %s: renew at %s, next check in %ds",
            self.name,
            ", ".join(names),
            advice.renew_at,
            clamp_recheck(advice.recheck_in),
        )
        next_check = time.monotonic() + clamp_recheck(advice.recheck_in)
        return Ari(cert.certificate_pem, advice.renew_at, next_check), False
