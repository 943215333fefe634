"""The cache's options and freshness rules (RFC 9111, shared cache), and its store bounded in bytes."""

from __future__ import annotations

import email.utils
import time

import pytest
from multidict import CIMultiDict

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.middlewares.cache import MIB, Cache
from discover.middlewares.registry import read_middleware_options
from discover.readers import At, ConfigError
from router.middlewares.cache import (
    Ask,
    CacheStore,
    Entry,
    delta_seconds,
    directives,
    freshness,
    http_date,
    vary_names,
)

NOW = 1_800_000_000.0


def _h(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


def _date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


# -- options ----------------------------------------------------------------------------------------------


def test_options_defaults_and_label_strings() -> None:
    assert read_middleware_options("cache", None, At()) == Cache(64 * MIB, MIB, 0.0)
    got = read_middleware_options(
        "cache", {"maxsizebytes": "1000", "MaxEntryBytes": "10", "defaultTtl": "1m"}, At()
    )
    assert got == Cache(1000, 10, 60.0)
    # a maxSizeBytes below the default maxEntryBytes is fine (the middleware stores at most maxSizeBytes)
    assert read_middleware_options("cache", {"maxSizeBytes": 1000}, At()).max_size_bytes == 1000


def test_docker_labels_give_the_typed_options() -> None:
    labels = {
        "traefik.http.routers.app.middlewares": "c",
        "traefik.http.middlewares.c.cache.maxsizebytes": "2000000",
        "traefik.http.middlewares.c.cache.defaultttl": "30s",
        "traefik.http.middlewares.on.cache": "true",
    }
    box = ContainerInfo(
        id="x", name="app", labels=labels, ports=(PortBinding(80),), networks={"n": "10.0.0.2"}
    )
    cfg, _ = build_docker_config([box], DockerSettings(), frozenset())
    mws = {m.name.split("@")[0]: m for m in cfg.middlewares.values()}
    assert mws["c"].options == Cache(2_000_000, MIB, 30.0)
    assert mws["on"].options == Cache()


@pytest.mark.parametrize(
    "value, culprit",
    [
        ({"maxEntryBytes": 2, "maxSizeBytes": 1}, "maxEntryBytes"),
        ({"maxSizeBytes": 0}, "maxSizeBytes"),
        ({"defaultTtl": "-1s"}, "defaultTtl"),
        ({"ttl": "1s"}, "ttl"),
    ],
)
def test_bad_options_are_refused_by_name(value: dict, culprit: str) -> None:
    with pytest.raises(ConfigError) as exc:
        read_middleware_options("cache", value, At("http.middlewares.c.cache"))
    assert culprit in str(exc.value)


# -- freshness --------------------------------------------------------------------------------------------


def test_directives_are_case_insensitive_with_quoted_arguments() -> None:
    assert directives('Max-Age=60, PUBLIC, s-maxage="30"') == {
        "max-age": "60",
        "public": None,
        "s-maxage": "30",
    }
    assert directives(None) == {}


def test_max_age_gives_the_lifetime_and_s_maxage_wins() -> None:
    assert freshness(200, _h(("Cache-Control", "max-age=60")), NOW, 0) == (60.0, 0.0, False)
    assert freshness(200, _h(("Cache-Control", "max-age=60, s-maxage=5")), NOW, 0)[0] == 5.0
    assert freshness(200, _h(("Cache-Control", "max-age=0, s-maxage=5")), NOW, 0)[0] == 5.0
    assert freshness(200, _h(("Cache-Control", "s-maxage=0, max-age=60")), NOW, 0) is None
    assert freshness(200, _h(("Cache-Control", "public, max-age=9")), NOW, 0) == (9.0, 0.0, True)
    # two header lines are one list
    two = _h(("Cache-Control", "public"), ("Cache-Control", "max-age=7"))
    assert freshness(200, two, NOW, 0) == (7.0, 0.0, True)


@pytest.mark.parametrize(
    "cc", ["no-store, max-age=60", "private, max-age=60", "no-cache, max-age=60", 'no-cache="x", max-age=60']
)
def test_no_store_private_and_no_cache_are_never_stored(cc: str) -> None:
    assert freshness(200, _h(("Cache-Control", cc)), NOW, 60) is None


def test_only_200_301_404_without_set_cookie_or_vary_star() -> None:
    cc = ("Cache-Control", "max-age=60")
    for status in (200, 301, 404):
        assert freshness(status, _h(cc), NOW, 0) is not None
    for status in (201, 206, 302, 304, 500, 503):
        assert freshness(status, _h(cc), NOW, 0) is None
    assert freshness(200, _h(cc, ("Set-Cookie", "a=b")), NOW, 0) is None
    assert freshness(200, _h(cc, ("Vary", "Accept-Encoding, *")), NOW, 0) is None


def test_expires_counts_from_date() -> None:
    h = _h(("Date", _date(NOW - 10)), ("Expires", _date(NOW + 50)))
    assert freshness(200, h, NOW, 0) == (60.0, 10.0, False)
    assert freshness(200, _h(("Expires", _date(NOW + 30))), NOW, 0)[0] == pytest.approx(30.0)
    assert freshness(200, _h(("Expires", "0")), NOW, 60) is None  # invalid: already expired
    assert freshness(200, _h(("Expires", _date(NOW - 1))), NOW, 60) is None
    # max-age wins over Expires
    h = _h(("Cache-Control", "max-age=5"), ("Expires", _date(NOW + 500)))
    assert freshness(200, h, NOW, 0)[0] == 5.0


def test_lifetimes_that_do_not_parse_store_nothing() -> None:
    for cc in ("max-age=1e3", "max-age=-5", "max-age=\u00b2", "max-age", "s-maxage=x, max-age=60"):
        assert freshness(200, _h(("Cache-Control", cc)), NOW, 60) is None, cc
    assert freshness(200, _h(("Cache-Control", "max-age=60"), ("Age", "\u00b2")), NOW, 0) == (
        60.0,
        0.0,
        False,
    )


def test_age_and_date_make_an_answer_older() -> None:
    assert freshness(200, _h(("Cache-Control", "max-age=60"), ("Age", "20")), NOW, 0)[1] == 20.0
    h = _h(("Cache-Control", "max-age=60"), ("Date", _date(NOW - 30)), ("Age", "5"))
    assert freshness(200, h, NOW, 0)[1] == 30.0
    assert freshness(200, _h(("Cache-Control", "max-age=60"), ("Age", "60")), NOW, 0) is None


def test_default_ttl_only_when_the_answer_states_no_lifetime() -> None:
    assert freshness(200, _h(), NOW, 0) is None
    assert freshness(200, _h(), NOW, 30) == (30.0, 0.0, False)
    assert freshness(200, _h(("Cache-Control", "max-age=0")), NOW, 30) is None


def test_http_dates_in_the_three_forms() -> None:
    want = 784111777.0
    for value in (
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ):
        assert http_date(value) == want, value
    assert http_date("soon") is None


def test_vary_names() -> None:
    assert vary_names(_h(("Vary", "Accept-Encoding, accept-language"), ("Vary", "Accept-Encoding"))) == (
        "accept-encoding",
        "accept-language",
    )
    assert vary_names(_h()) == ()
    assert vary_names(_h(("Vary", "*"))) is None


def test_what_the_request_asks() -> None:
    assert Ask("no-cache", None).lookup is False
    assert Ask("max-age=0", None).lookup is False
    assert Ask(None, "no-cache").lookup is False
    assert Ask("max-age=5", "no-cache").lookup is True  # Pragma only counts without Cache-Control
    assert Ask("no-store", None).store is False and Ask("no-store", None).lookup is True
    assert Ask("only-if-cached", None).only_if_cached
    ask = Ask("max-age=10, min-fresh=5", None)
    assert ask.accepts(age=10, remaining=5) and not ask.accepts(age=11, remaining=50)
    assert not ask.accepts(age=1, remaining=4)


# -- the store --------------------------------------------------------------------------------------------


def _entry(size: int, lifetime: float = 60, age: float = 0) -> Entry:
    return Entry(
        200,
        "",
        [("Content-Type", "text/plain"), ("Age", "3"), ("X-Cache", "MISS")],
        b"x" * size,
        lifetime,
        age,
        False,
    )


def test_an_entry_head_is_built_once_with_its_length_and_no_stale_markers() -> None:
    e = _entry(5, lifetime=60, age=10)
    assert (
        e.head == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Cache: HIT\r\nAge: "
    )
    assert e.expires - e.born == 60 and time.monotonic() - e.born == pytest.approx(10, abs=1)


def test_the_store_is_bounded_in_bytes_and_drops_the_least_recently_used() -> None:
    store = CacheStore(10_000)
    for name in ("a", "b", "c"):
        store.put(("http", "h", f"/{name}", ""), (), (), _entry(3000))
        store.lru.get(("http", "h", "/a", ""))  # keep a in use
    assert ("http", "h", "/b", "") not in store.lru and ("http", "h", "/a", "") in store.lru
    assert store.lru.currsize <= 10_000
    store.put(("http", "h", "/huge", ""), (), (), _entry(20_000))  # larger than the cache: not stored
    assert ("http", "h", "/huge", "") not in store.lru


def test_delta_seconds_with_thousands_of_digits_clamp_to_2_31() -> None:
    """int() refuses more than 4300 digits: a client's ``Cache-Control: max-age=999...`` gave a 500 and a
    traceback per request. RFC 9111 reads a delta-seconds too large to hold as 2^31."""
    huge = "9" * 5000
    ask = Ask(f"max-age={huge}, min-fresh={huge}", None)
    assert ask.max_age == ask.min_fresh == 2**31 and ask.lookup
    assert Ask(f'max-age="{huge}"', None).max_age == 2**31
    assert delta_seconds("9" * 19) == 2**31 and delta_seconds("0" * 5000 + "7") == 7
    assert delta_seconds(str(2**31 + 5)) == 2**31
    assert freshness(200, _h(("Cache-Control", f"s-maxage={huge}")), time.time(), 0)[0] == 2**31
    assert freshness(200, _h(("Cache-Control", "max-age=60"), ("Age", huge)), time.time(), 0) is None


@pytest.mark.parametrize(
    ("method", "size", "counted"), [("GET", 5, 5), ("GET", 100_000, 100_000), ("HEAD", 5, 0)]
)
def test_a_hit_written_straight_to_the_client_counts_its_body_bytes_only(method, size, counted) -> None:
    """The access log and metrics count body bytes (Traefik's DownstreamContentSize), a HIT as any other
    answer: the head is not counted, and a HEAD has no body."""
    from router.middlewares.cache import _write_hit
    from tests.exchange_fakes import fake_exchange

    ex = fake_exchange(method)
    _write_hit(ex, _entry(size), 0)
    assert ex.client_sink.sent == counted
    assert ex.transport.data.endswith(b"Age: 0\r\n\r\n" + (b"x" * size if method == "GET" else b""))
