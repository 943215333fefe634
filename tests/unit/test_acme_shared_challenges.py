"""Challenge answers shared between replicas (acme_client.shared_challenges) and the proxy's HTTP-01
lookup over them (dockroute.certificates.HttpChallenges): a replica that did not order answers from the
file the orderer published beside the store, read off the event loop; a token that is no token never
becomes a path."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

from acme_client import shared_challenges
from acme_client.resolver import AcmeResolver
from acme_client.settings import ResolverSettings
from acme_client.storage import AcmeStorage
from dockroute.certificates import HttpChallenges

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def test_published_answer_is_read_by_another_storage_object_and_withdrawn(tmp_path):
    store = str(tmp_path / "acme.json")
    AcmeStorage(store).publish_answer("http-01", TOKEN, TOKEN + ".thumb")
    other = AcmeStorage(store)  # another process
    assert other.read_answer("http-01", TOKEN) == TOKEN + ".thumb"
    assert os.stat(tmp_path / f".acme.json.challenge.http-01.{TOKEN}").st_mode & 0o077 == 0
    AcmeStorage(store).withdraw_answer("http-01", TOKEN)
    assert other.read_answer("http-01", TOKEN) is None
    assert os.listdir(tmp_path) == []


def test_a_token_that_is_no_token_never_becomes_a_path(tmp_path):
    store = str(tmp_path / "sub" / "acme.json")
    (tmp_path / "sub").mkdir()
    (tmp_path / "secret").write_text("private")
    for bad in ("../../secret", "a/b", "", "x" * 300, "tok\x00en", "..", "a.b"):
        assert shared_challenges.answer_path(store, "http-01", bad) is None, bad
        assert AcmeStorage(store).read_answer("http-01", bad) is None
    assert shared_challenges.answer_path(store, "tls-alpn-01", "Upper.example") is None
    assert shared_challenges.answer_path(store, "dns-01", TOKEN) is None


def test_stale_answers_of_a_dead_orderer_are_removed_at_the_next_write(tmp_path):
    store = str(tmp_path / "acme.json")
    AcmeStorage(store).publish_answer("http-01", "old", "old.thumb")
    stale = tmp_path / ".acme.json.challenge.http-01.old"
    past = time.time() - 2 * 3600
    os.utime(stale, (past, past))
    AcmeStorage(store).publish_answer("http-01", TOKEN, "new.thumb")
    assert not stale.exists()
    assert AcmeStorage(store).read_answer("http-01", TOKEN) == "new.thumb"


def test_a_folder_not_ours_is_said_once_and_the_answer_stays_in_memory(tmp_path, caplog, monkeypatch):
    store = str(tmp_path / "missing" / "acme.json")  # mkstemp fails there, as in a folder not ours
    monkeypatch.setattr(shared_challenges, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="dockroute.acme"):
        AcmeStorage(store).publish_answer("http-01", TOKEN, "a")
        AcmeStorage(store).publish_answer("http-01", TOKEN + "2", "b")
    said = [r.getMessage() for r in caplog.records if "challenge answers" in r.getMessage()]
    assert len(said) == 1 and store in said[0]


class _Clock:
    """A clock the test moves: the lookup's snapshot ages by what the test says, not by sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _resolver(store: str) -> AcmeResolver:
    settings = ResolverSettings(
        ca_server="https://ca.invalid/directory", storage=store, http_entry_point="web"
    )
    return AcmeResolver("le", settings, lambda: None)


async def test_http_lookup_answers_from_memory_then_from_the_store_off_the_loop(tmp_path):
    resolver, clock = _resolver(str(tmp_path / "acme.json")), _Clock()
    lookup = HttpChallenges({"le": resolver}, clock=clock)
    http = next(s for s in resolver._solvers if s.typ == "http-01")
    http.publish("a.test", TOKEN, "mine.thumb")  # this process ordered: in memory (and published)
    assert lookup(TOKEN) == "mine.thumb"  # at once, no thread
    resolver.tokens.clear()  # as in the replica that did not order
    pending = lookup(TOKEN)
    assert not isinstance(pending, str) and await pending == "mine.thumb"
    http.unpublish("a.test", TOKEN)
    clock.now += 1.0  # the snapshot's lifetime is over: read again
    assert await lookup(TOKEN) is None
    assert lookup("../acme.json") is None  # refused before any thread or path


class _CountingStorage(AcmeStorage):
    """A file store that counts its reads of the published answers (each a Secret GET for that store)."""

    reads = 0
    single_reads = 0

    def read_answers(self, kind: str) -> dict[str, str]:
        self.reads += 1
        return super().read_answers(kind)

    def read_answer(self, kind: str, key: str) -> str | None:
        self.single_reads += 1
        return super().read_answer(kind, key)


async def test_a_flood_of_unknown_tokens_costs_one_store_read_and_a_published_answer_is_still_found(tmp_path):
    store = str(tmp_path / "acme.json")
    resolver, clock = _resolver(store), _Clock()
    storage = resolver.storage = _CountingStorage(store)
    lookup = HttpChallenges({"le": resolver}, clock=clock)
    AcmeStorage(store).publish_answer("http-01", TOKEN, "other.thumb")  # another replica ordered
    flood = [secrets.token_urlsafe(32) for _ in range(200)]
    asked = [lookup(token) for token in [*flood, TOKEN]]
    answers = await asyncio.gather(*[a for a in asked if a is not None and not isinstance(a, str)])
    assert storage.reads == 1 and storage.single_reads == 0
    assert answers.count("other.thumb") == 1 and answers.count(None) == len(answers) - 1
    # within the interval: misses are answered at once, hits from the snapshot, and nothing is read
    assert [lookup(t) for t in flood[:50]] == [None] * 50 and lookup(TOKEN) == "other.thumb"
    assert storage.reads == 1
    # a token published after the snapshot was read is found once the snapshot is REFRESH_AFTER old,
    # by one read that all lookups then share
    late = secrets.token_urlsafe(32)
    AcmeStorage(store).publish_answer("http-01", late, "late.thumb")
    clock.now += 0.6
    asked = [lookup(token) for token in [*flood, late]]
    assert all(not isinstance(a, str) and a is not None for a in asked)
    answers = await asyncio.gather(*asked)
    assert storage.reads == 2 and answers[-1] == "late.thumb" and answers[:-1] == [None] * len(flood)


async def test_a_failing_store_read_answers_none_and_is_tried_again_later(tmp_path):
    store = str(tmp_path / "acme.json")
    resolver, clock = _resolver(store), _Clock()

    class Broken(AcmeStorage):
        def read_answers(self, kind: str) -> dict[str, str]:
            raise OSError("the volume went away")

    resolver.storage = Broken(store)
    lookup = HttpChallenges({"le": resolver}, clock=clock)
    assert await lookup(TOKEN) is None
    assert lookup(TOKEN) is None  # within the interval: no second read
    clock.now += 0.6
    again = lookup(TOKEN)
    assert not isinstance(again, str | None) and await again is None  # read again
