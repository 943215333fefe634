"""The access middlewares on their own: options as read from files and labels (and what is refused by
name), the client-address strategies, ``ipAllowList``, ``inFlightReq`` counters on every exit path, and
``rateLimit``'s token-bucket arithmetic and bounded store (with a fake clock)."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from discover.middlewares.access import IPAllowList, IPStrategy, RateLimit, SourceCriterion
from discover.readers import ConfigError
from router.headers import TrustedNetworks
from router.middlewares import MiddlewareError, in_flight_req, ip_allow_list, rate_limit
from router.middlewares.rate_limit import MAX_SOURCES, Limiter, go_duration
from router.middlewares.source import Checker, ip_strategy, source_extractor
from tests.exchange_fakes import Recorder, fake_exchange
from tests.exchange_fakes import ctx as _ctx
from tests.exchange_fakes import read_options as _read
from tests.exchange_fakes import refusal as _refusal


def _exchange(client="10.0.0.9", trusted=(), host="app.test", **headers):
    hdrs = CIMultiDict()
    for k, v in headers.items():
        for one in v if isinstance(v, list) else [v]:
            hdrs.add(k.replace("_", "-"), one)
    ex = fake_exchange(host=host, headers=hdrs, client=client, trusted=TrustedNetworks(trusted))
    ex.sink = Recorder()
    return ex


async def _served(ex):
    await ex.sink.start(200, CIMultiDict())
    await ex.sink.end()


# -- options ------------------------------------------------------------------------------------------------


def test_options_read_from_label_strings_and_typed_values():
    o = _read(
        "ipAllowList",
        {"sourceRange": "10.0.0.0/8, ::1", "ipStrategy": {"depth": "2"}, "rejectStatusCode": "404"},
    )
    assert o == IPAllowList(("10.0.0.0/8", "::1"), IPStrategy(depth=2), 404)
    r = _read(
        "rateLimit",
        {"average": 10, "burst": "20", "period": "2s", "sourceCriterion": {"requestHost": "true"}},
    )
    assert (r.average, r.burst, r.period) == (10, 20, 2.0)
    assert r.source_criterion == SourceCriterion(request_host=True)
    assert _read("rateLimit", {}) == RateLimit()  # burst 1, period default, no limit
    # ipStrategy given empty (a label "...ipStrategy=true") is present with its defaults
    assert (
        _read("ipWhiteList", {"sourceRange": ["1.2.3.4"], "ipStrategy": "true"}).ip_strategy == IPStrategy()
    )
    assert _read("inFlightReq", {"amount": 3}).source_criterion is None


@pytest.mark.parametrize(
    ("mtype", "value", "expected"),
    [
        ("ipAllowList", {"sourceRange": ["10.0.0.0/33"]}, "sourceRange: '10.0.0.0/33' is neither"),
        ("ipAllowList", {"sourceRange": ["10.0.0.0/255.0.0.0"]}, "is neither an IP address nor a CIDR"),
        ("ipAllowList", {"sourceRange": ["example.com"]}, "'example.com' is neither"),
        ("ipAllowList", {}, "ipAllowList.sourceRange: is empty"),
        ("ipAllowList", {"sourceRange": ["::1"], "rejectStatusCode": 999}, "invalid HTTP status code 999"),
        ("ipWhiteList", {"sourceRange": ["::1"], "rejectStatusCode": 404}, "unknown key 'rejectStatusCode'"),
        ("ipAllowList", {"sourceRange": ["::1"], "ipStrategy": {"depth": -1}}, "depth: must be at least 0"),
        (
            "ipAllowList",
            {"sourceRange": ["::1"], "ipStrategy": {"ipv6Subnet": 0}},
            "ipv6Subnet: must be within",
        ),
        ("ipAllowList", {"sourceRange": ["::1"], "ipStrategy": {"excludedIPs": ["x"]}}, "excludedIPs: 'x'"),
        (
            "rateLimit",
            {"sourceCriterion": {"requestHost": True, "requestHeaderName": "X-Key"}},
            "sourceCriterion.requestHost: requestHeaderName and requestHost are mutually exclusive",
        ),
        (
            "inFlightReq",
            {"sourceCriterion": {"ipStrategy": {"depth": 1}, "requestHost": True}},
            "ipStrategy and requestHost are mutually exclusive",
        ),
        ("rateLimit", {"average": 5, "redis": {"endpoints": ["r:6379"]}}, "rateLimit.redis: not supported"),
        ("rateLimit", {"period": "-1s"}, "period: must be at least 0"),
        ("rateLimit", {"average": -1}, "average: must be at least 0"),
        ("inFlightReq", {"amount": 2, "nosuch": 1}, "unknown key 'nosuch'"),
    ],
)
def test_bad_options_are_refused_by_name(mtype, value, expected):
    assert expected in _refusal(mtype, value)


def test_every_traefik_option_is_declared():
    from tests.traefik_options import TRAEFIK_OPTIONS

    def keys(schema, prefix=""):
        for k, v in schema.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from keys(v, prefix + k + ".")

    samples = {
        "ipAllowList": {"sourceRange": ["::1"], "rejectStatusCode": 403},
        "ipWhiteList": {"sourceRange": ["::1"]},
        "inFlightReq": {"amount": 1},
        "rateLimit": {},
    }
    for mtype, base in samples.items():
        for key in keys(TRAEFIK_OPTIONS[mtype]):
            # every option name is known: setting it is either accepted or refused for its value, never
            # as an unknown key
            value: dict = dict(base)
            node = value
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = "1"
            try:
                _read(mtype, value)
            except ConfigError as exc:
                assert "unknown key" not in str(exc), (mtype, key, exc)


# -- choosing the client address ---------------------------------------------------------------------------


def test_checker_matches_addresses_ranges_v6_and_mapped_v4():
    c = Checker(["10.1.0.0/16", "192.168.1.7", "2001:db8::/32", "10.9.9.9/8"])
    assert c.authorized("10.1.200.3") and c.authorized("192.168.1.7") and c.authorized("10.200.0.1")
    assert c.authorized("2001:db8:1::5") and c.authorized("::ffff:10.1.2.3") and c.authorized("10.1.0.1:5555")
    assert c.authorized("[2001:db8::1]:443")
    assert (
        not c.authorized("192.168.1.8") and not c.authorized("2001:db9::1") and not c.authorized("11.0.0.1")
    )
    assert not c.authorized("") and not c.authorized("garbage") and not c.authorized("unknown")


def test_depth_counts_from_the_right_of_a_trusted_forwarded_for():
    pick = ip_strategy(IPStrategy(depth=2))
    ex = _exchange(trusted=["10.0.0.0/8"], X_Forwarded_For="1.1.1.1, 2.2.2.2 , 3.3.3.3")
    assert pick(ex) == "2.2.2.2"
    assert ip_strategy(IPStrategy(depth=3))(ex) == "1.1.1.1"
    assert ip_strategy(IPStrategy(depth=4))(ex) == ""  # deeper than the list: no address
    # several header lines are one list, in order
    ex = _exchange(trusted=["10.0.0.0/8"], X_Forwarded_For=["1.1.1.1", "2.2.2.2, 3.3.3.3"])
    assert pick(ex) == "2.2.2.2"
    # an untrusted peer's header was dropped by the entry point: nothing to pick
    assert pick(_exchange(X_Forwarded_For="1.1.1.1, 2.2.2.2, 3.3.3.3")) == ""
    # a value set by an earlier headers middleware is what Traefik's next middleware reads
    ex = _exchange(X_Forwarded_For="9.9.9.9")
    ex.set_header("X-Forwarded-For", "5.5.5.5, 6.6.6.6")
    assert pick(ex) == "5.5.5.5"


def test_excluded_ips_walk_from_the_right_and_depth_wins():
    ex = _exchange(trusted=["10.0.0.0/8"], X_Forwarded_For="1.1.1.1, 2.2.2.2, 172.16.0.1, 172.16.0.2")
    assert ip_strategy(IPStrategy(excluded_ips=("172.16.0.0/12",)))(ex) == "2.2.2.2"
    assert ip_strategy(IPStrategy(excluded_ips=("0.0.0.0/0",)))(ex) == ""
    assert ip_strategy(IPStrategy(depth=1, excluded_ips=("172.16.0.0/12",)))(ex) == "172.16.0.2"


def test_remote_address_and_ipv6_subnet():
    assert ip_strategy(None)(_exchange(client="10.0.0.9", X_Forwarded_For="1.1.1.1")) == "10.0.0.9"
    assert ip_strategy(IPStrategy())(_exchange(client="10.0.0.9")) == "10.0.0.9"
    grouped = ip_strategy(IPStrategy(ipv6_subnet=64))
    assert grouped(_exchange(client="2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::"
    assert grouped(_exchange(client="10.0.0.9")) == "10.0.0.9"


def test_source_criteria_and_defaults():
    ex = _exchange(client="10.0.0.9", host="a.test:8080", X_Key="k1")
    ex.host_header = "a.test:8080"
    assert source_extractor(None, False, "m")(ex) == "10.0.0.9"  # rateLimit's default
    assert source_extractor(None, True, "m")(ex) == "a.test:8080"  # inFlightReq's default: the Host
    assert source_extractor(SourceCriterion(request_header_name="X-Key"), True, "m")(ex) == "k1"
    assert source_extractor(SourceCriterion(request_host=True), False, "m")(ex) == "a.test:8080"
    assert source_extractor(SourceCriterion(ip_strategy=IPStrategy()), True, "m")(ex) == "10.0.0.9"


# -- ipAllowList --------------------------------------------------------------------------------------------


def _run(handler, ex):
    asyncio.run(handler(ex))
    return ex.sink


def test_ip_allow_list_passes_the_allowed_and_answers_the_others():
    wrap = ip_allow_list.build(IPAllowList(("10.0.0.0/24",)), _ctx())
    assert _run(wrap(_served), _exchange(client="10.0.0.5")).status == 200
    rec = _run(wrap(_served), _exchange(client="10.0.1.5"))
    assert (rec.status, rec.body) == (403, b"Forbidden")
    wrap = ip_allow_list.build(IPAllowList(("10.0.0.0/24",), IPStrategy(depth=1), 404), _ctx())
    rec = _run(wrap(_served), _exchange(client="10.0.0.5", trusted=["10.0.0.0/8"], X_Forwarded_For="8.8.8.8"))
    assert (rec.status, rec.body) == (404, b"Not Found")
    rec = _run(
        wrap(_served), _exchange(client="10.0.0.5", trusted=["10.0.0.0/8"], X_Forwarded_For="10.0.0.7")
    )
    assert rec.status == 200
    with pytest.raises(MiddlewareError, match="sourceRange"):
        ip_allow_list.build(IPAllowList(("nope",)), _ctx())


# -- inFlightReq --------------------------------------------------------------------------------------------


def test_in_flight_limit_and_release_on_every_exit():
    obj = in_flight_req.build(_read("inFlightReq", {"amount": 2}), _ctx())

    async def scenario():
        gate = asyncio.Event()

        async def held(ex):
            await gate.wait()
            await _served(ex)

        async def boom(ex):
            raise RuntimeError("backend bug")

        handler = obj(held)
        first = asyncio.create_task(handler(_exchange()))
        second = asyncio.create_task(handler(_exchange()))
        await asyncio.sleep(0)
        assert obj.counts == {"app.test": 2}
        third = _exchange()
        await handler(third)
        assert (third.sink.status, third.sink.body) == (429, b"max connections reached: 2")
        other = _exchange(host="b.test")
        other.host_header = "b.test"
        gate_other = asyncio.create_task(handler(other))  # another Host is another source
        await asyncio.sleep(0)
        assert obj.counts == {"app.test": 2, "b.test": 1}
        second.cancel()  # the client went away while its request was in progress
        await asyncio.gather(second, return_exceptions=True)
        assert obj.counts["app.test"] == 1
        with pytest.raises(RuntimeError):
            await obj(boom)(_exchange())
        assert obj.counts["app.test"] == 1
        gate.set()
        await asyncio.gather(first, gate_other)
        assert obj.counts == {}

    asyncio.run(scenario())


# -- rateLimit ----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_token_bucket_as_traefik_average_10_burst_20():
    clock = Clock()
    lim = Limiter(10.0, 20, 50_000_000, 2, clock=clock)
    assert [lim.reserve("a") for _ in range(20)] == [0] * 20  # a new source starts with a full bucket
    assert lim.reserve("a") == 100_000_000  # next token in 100 ms > 1/(2·rate): refused, nothing taken
    assert lim.reserve("a") == 100_000_000
    assert lim.reserve("b") == 0  # sources are independent
    clock.now += 0.06  # 0.6 token filled: a 40 ms wait is short enough to take
    assert lim.reserve("a") == 40_000_000
    assert lim.reserve("a") == 140_000_000  # the token is promised: the next one waits longer
    clock.now += 10
    assert [lim.reserve("a") for _ in range(20)] == [0] * 20  # refilled to burst, no more
    assert lim.reserve("a") > 0


def test_build_uses_traefik_rate_delay_and_ttl():
    lim = rate_limit.build(_read("rateLimit", {"average": 10, "burst": 20}), _ctx()).limiter
    assert (lim.rate, lim.burst, lim.max_delay, lim.ttl) == (10.0, 20, 50_000_000, 2)
    assert lim.buckets.maxsize == MAX_SOURCES == 65536
    lim = rate_limit.build(_read("rateLimit", {"average": 1, "period": "4s", "burst": 0}), _ctx()).limiter
    assert (lim.rate, lim.burst, lim.max_delay, lim.ttl) == (0.25, 1, 500_000_000, 5)
    lim = rate_limit.build(_read("rateLimit", {"average": 3, "period": "2s"}), _ctx()).limiter
    assert (lim.rate, lim.max_delay) == (1.5, 500_000_000)  # Go: 1s / (Duration(1.5)·2)
    unlimited = rate_limit.build(_read("rateLimit", {"average": 0, "burst": 1}), _ctx())
    assert unlimited(_served) is _served


def test_rate_limited_answer_has_retry_after_and_x_retry_in():
    wrap = rate_limit.build(_read("rateLimit", {"average": 1, "period": "3s", "burst": 1}), _ctx())
    handler = wrap(_served)
    assert _run(handler, _exchange()).status == 200
    rec = _run(handler, _exchange())
    assert (rec.status, rec.body) == (429, b"Too Many Requests")
    retry_in = rec.headers["X-Retry-In"]
    assert retry_in.endswith("s") and 2.9 < float(retry_in[:-1]) <= 3.0
    assert rec.headers["Retry-After"] == "3"
    assert _run(handler, _exchange(client="10.0.0.10")).status == 200  # another client, its own bucket


def test_short_waits_are_taken_then_served():
    wrap = rate_limit.build(_read("rateLimit", {"average": 10, "burst": 1}), _ctx())
    handler = wrap(_served)
    assert _run(handler, _exchange()).status == 200
    wrap.limiter.buckets["10.0.0.9"].tokens = 0.9  # the next token is 10 ms away: within 1/(2·rate)

    async def timed():
        ex = _exchange()
        t0 = asyncio.get_running_loop().time()
        await handler(ex)
        return ex.sink.status, asyncio.get_running_loop().time() - t0

    status, took = asyncio.run(timed())
    assert status == 200 and took >= 0.009
    assert _run(handler, _exchange()).status == 429  # now 100 ms away: refused


def test_bucket_store_is_bounded_by_count_and_by_idle_time():
    clock = Clock()
    lim = Limiter(10.0, 5, 50_000_000, 2, max_sources=1000, clock=clock)
    for i in range(20_000):
        lim.reserve(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert len(lim.buckets) == 1000  # the least recently used went first
    assert "10.0.78.31" in lim.buckets and "10.0.0.0" not in lim.buckets
    clock.now += 2.5
    lim.reserve("late")
    assert len(lim.buckets) == 1  # idle buckets expired
    # a bucket in use keeps living; the time to live restarts on requests (at most every ttl/8)
    kept = lim.buckets["late"]
    for _ in range(10):
        clock.now += 0.5
        lim.reserve("late")
    assert lim.buckets["late"] is kept


def test_go_duration_strings():
    cases = {0: "0s", 999: "999ns", 1500: "1.5µs", 100_000_000: "100ms", 99_999_999: "99.999999ms"}
    cases |= {1_500_000_000: "1.5s", 3_600_000_000_000: "1h0m0s", 61_250_000_000: "1m1.25s"}
    for ns, text in cases.items():
        assert go_duration(ns).encode("latin-1").decode() == text


def test_container_labels_give_the_same_options():
    from discover.docker_labels import build_docker_config
    from discover.docker_model import ContainerInfo, DockerSettings, PortBinding

    t = "traefik.http.middlewares."
    labels = {
        t + "rl.ratelimit.average": "10",
        t + "rl.ratelimit.burst": "20",
        t + "rl.ratelimit.period": "2s",
        t + "rl.ratelimit.sourcecriterion.ipstrategy.depth": "1",
        t + "allow.ipallowlist.sourcerange": "10.0.0.0/8,::1",
        t + "allow.ipallowlist.ipstrategy.excludedips": "192.168.0.0/16",
        t + "inflight.inflightreq.amount": "4",
    }
    box = ContainerInfo(
        id="app-id", name="app", labels=labels, ports=(PortBinding(80),), networks={"net": "10.0.0.2"}
    )
    redis = {t + "shared.ratelimit.redis.endpoints": "redis:6379"}
    other = ContainerInfo(
        id="other-id", name="other", labels=redis, ports=(PortBinding(80),), networks={"net": "10.0.0.3"}
    )
    cfg, records = build_docker_config([box, other], DockerSettings(), frozenset())
    mws = cfg.middlewares
    assert mws["rl"].options == RateLimit(10, 2.0, 20, SourceCriterion(ip_strategy=IPStrategy(depth=1)))
    assert mws["allow"].options == IPAllowList(
        ("10.0.0.0/8", "::1"), IPStrategy(excluded_ips=("192.168.0.0/16",))
    )
    assert mws["inflight"].options.amount == 4 and not mws["inflight"].error
    # a bad middleware label leaves its container out, naming the label (as every bad label does)
    assert "shared" not in mws and not records["other"].routed
    (reason,) = records["other"].reasons
    assert (
        reason.startswith("label traefik.http.middlewares.shared.ratelimit.redis")
        and "not supported" in reason
    )


def test_long_client_chosen_keys_are_kept_as_short_digests():
    """A header value or Host picked by the client (up to 8 KB) used as a whole bucket key let 65536
    buckets hold ~730 MiB; a key over 64 characters is kept as a 16-byte BLAKE2b digest instead, one
    bucket per distinct value still."""
    wrap = rate_limit.build(
        _read("rateLimit", {"average": 1, "burst": 1, "sourceCriterion": {"requestHeaderName": "X-Key"}}),
        _ctx(),
    )
    handler = wrap(_served)
    long_a, long_b = "a" * 8000, "a" * 7999 + "b"
    assert _run(handler, _exchange(X_Key=long_a)).status == 200
    assert _run(handler, _exchange(X_Key=long_a)).status == 429  # the same value, the same bucket
    assert _run(handler, _exchange(X_Key=long_b)).status == 200  # another value, its own bucket
    assert _run(handler, _exchange(X_Key="short")).status == 200
    keys = list(wrap.limiter.buckets)
    assert len(keys) == 3 and "short" in keys and max(len(k) for k in keys) <= 64
    host = source_extractor(None, True, "m")  # inFlightReq's default key: the Host as sent
    ex = _exchange(host="h" * 8000 + ".test")
    assert len(host(ex)) <= 64 and host(ex) == host(_exchange(host="h" * 8000 + ".test"))
    xff = source_extractor(SourceCriterion(ip_strategy=IPStrategy(depth=1)), False, "m")
    assert len(xff(_exchange(trusted=("10.0.0.0/8",), X_Forwarded_For="x" * 8000))) <= 64
    assert source_extractor(None, True, "m")(_exchange(host="a" * 64)) == "a" * 64  # short: as it is
