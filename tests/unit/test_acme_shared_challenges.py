"""Challenge answers shared between replicas (acme_client.shared_challenges) and the proxy's HTTP-01
lookup over them (dockroute.certificates.HttpChallenges): a replica that did not order answers from the
file the orderer published beside the store, read off the event loop; a token that is no token never
becomes a path."""

from __future__ import annotations

import logging
import os
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


async def test_http_lookup_answers_from_memory_then_from_the_store_off_the_loop(tmp_path):
    store = str(tmp_path / "acme.json")
    settings = ResolverSettings(
        ca_server="https://ca.invalid/directory", storage=store, http_entry_point="web"
    )
    resolver = AcmeResolver("le", settings, lambda: None)
    lookup = HttpChallenges({"le": resolver})
    http = next(s for s in resolver._solvers if s.typ == "http-01")
    http.publish("a.test", TOKEN, "mine.thumb")  # this process ordered: in memory (and published)
    assert lookup(TOKEN) == "mine.thumb"  # at once, no thread
    resolver.tokens.clear()  # as in the replica that did not order
    pending = lookup(TOKEN)
    assert not isinstance(pending, str) and await pending == "mine.thumb"
    http.unpublish("a.test", TOKEN)
    assert await lookup(TOKEN) is None
    assert lookup("../acme.json") is None  # refused before any thread or path
