"""What a process sharing ``acme.json`` with others finds there once it holds the order lock."""

from __future__ import annotations

import time

from acme_client.covering import covering
from acme_client.storage import AcmeStorage, StoredAccount, StoredCertificate

__all__ = ["newer_in_store", "stored_account"]


def newer_in_store(
    storage: AcmeStorage, resolver: str, names: tuple[str, ...], current: StoredCertificate | None
) -> StoredCertificate | None:
    """A certificate for ``names`` that another process wrote to ``storage``: unexpired and expiring later
    than ``current`` (the one this process judged missing or due). Blocks: worker thread only."""
    state = storage.load().get(resolver)
    if state is None:
        return None
    stored = covering(names, state.certificates)
    if stored is None or stored.facts.not_after <= time.time():
        return None
    if current is not None and stored.facts.not_after <= current.facts.not_after:
        return None
    stored.names  # noqa: B018 - parsed here, in the worker thread, not on the event loop
    return stored


def stored_account(storage: AcmeStorage, resolver: str) -> StoredAccount | None:
    """The account another process registered and stored for ``resolver``, if any (worker thread)."""
    state = storage.load().get(resolver)
    return state.account if state is not None else None
