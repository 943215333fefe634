"""router.selection: the four loadBalancer.strategy policies, as Traefik's (wrr, p2c, hrw, leasttime), and
sticky cookies winning over each of them."""

import collections
import random

import pytest

from discover.model import LoadBalancer, Server, StickyCookie
from router.balancer import ServiceBalancer
from router.selection import POLICIES
from router.selection.hrw import hash64, node_score


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bal(strategy, *urls, weights=None, sticky=None, clock=None):
    weights = weights or [1] * len(urls)
    spec = LoadBalancer(
        servers=tuple(Server(u, w) for u, w in zip(urls, weights, strict=True)),
        strategy=strategy,
        sticky=sticky,
    )
    return ServiceBalancer("s", spec, clock=clock or Clock())


URLS = ("http://a:1", "http://b:1", "http://c:1")


# -- the interface --------------------------------------------------------------------------------------


def test_every_strategy_has_a_policy_and_only_counting_ones_track():
    assert set(POLICIES) == {"wrr", "p2c", "hrw", "leasttime"}
    tracks = {name: bal(name, *URLS).tracks for name in POLICIES}
    assert tracks == {"wrr": False, "p2c": True, "hrw": False, "leasttime": True}


@pytest.mark.parametrize("strategy", ["wrr", "p2c", "hrw", "leasttime"])
def test_every_strategy_skips_unavailable_and_excluded_servers(strategy):
    b = bal(strategy, *URLS)
    a, bb, c = b.servers
    a.healthy = False
    bb.down_until = b._clock() + 5
    assert {b.pick(client=f"10.0.0.{i}") for i in range(50)} == {c}
    # only c is available and it is excluded: the passively-down b, which recovers first, is tried
    assert b.pick(exclude={c}, client="10.0.0.1") is bb


@pytest.mark.parametrize("strategy", ["wrr", "p2c", "hrw", "leasttime"])
def test_sticky_cookie_wins_with_every_strategy(strategy):
    b = bal(strategy, *URLS, sticky=StickyCookie(name="s"))
    target = b.servers[2]
    cookies = {"s": target.cookie_value}
    assert all(b.pick(cookies, client=f"10.1.0.{i}") is target for i in range(30))
    target.healthy = False  # the cookie's server is down: the strategy chooses among the others
    assert target not in {b.pick(cookies, client=f"10.1.0.{i}") for i in range(30)}


# -- p2c ------------------------------------------------------------------------------------------------


def test_p2c_fewer_in_flight_wins_between_two_distinct_draws():
    b = bal("p2c", *URLS)
    a, bb, c = b.servers
    a.inflight, bb.inflight, c.inflight = 5, 0, 3
    picks = collections.Counter(b.pick().url for _ in range(3000))
    # two distinct servers are drawn: b wins every pair it is in (2 of 3), c the pair (a, c)
    assert picks["http://a:1"] == 0
    assert 0.55 < picks["http://b:1"] / 3000 < 0.78
    assert 0.22 < picks["http://c:1"] / 3000 < 0.45


def test_p2c_tie_goes_to_the_first_draw_and_draws_are_distinct():
    class Fixed(random.Random):
        def randrange(self, n):  # always index 1: the second draw is moved on to 2
            return 1

    b = bal("p2c", *URLS)
    b.policy._randrange = Fixed().randrange
    assert b.pick() is b.servers[1]
    b.servers[2].inflight = -1  # fewer in flight than the first draw: the second wins
    assert b.pick() is b.servers[2]


def test_p2c_draws_from_the_pool_without_listing_it_while_servers_are_available():
    """O(1) a pick: two draws from the pool when both land on distinct available servers; unavailable
    or repeated ones are drawn again, and only after DRAWS misses are the available ones listed."""
    draws = []

    class Seq(random.Random):
        def __init__(self, seq):
            super().__init__(0)
            self.seq = list(seq)

        def randrange(self, n):
            draws.append(n)
            return self.seq.pop(0) if self.seq else 0

    b = bal("p2c", *(f"http://s{i}:1" for i in range(100)))
    b.policy._randrange = Seq([7, 42]).randrange
    b.servers[42].inflight = 1
    assert b.pick() is b.servers[7] and draws == [100, 100]
    draws.clear()
    b.servers[7].healthy = False  # unavailable: drawn again; 42 repeated: drawn again
    b.policy._randrange = Seq([7, 42, 42, 7, 3]).randrange
    assert b.pick() is b.servers[3] and draws == [100] * 5
    draws.clear()
    b.policy._randrange = Seq([]).randrange  # always server 0: after DRAWS draws, the list (99 available)
    assert b.pick() is not None and draws[-2:] == [99, 99]


def test_in_flight_never_goes_below_zero():
    """A double release (two ways out both releasing) must not leave a server looking idler than idle:
    p2c and leasttime would then favour it forever."""
    for strategy in ("p2c", "leasttime"):
        b = bal(strategy, *URLS)
        up = b.servers[0]
        b.acquire(up)
        b.release(up)
        b.release(up)
        assert up.inflight == 0, strategy


def test_p2c_accounting_moves_in_flight_counts():
    b = bal("p2c", *URLS)
    up = b.servers[0]
    b.acquire(up)
    b.acquire(up)
    b.release(up)
    assert up.inflight == 1


# -- hrw ------------------------------------------------------------------------------------------------


def test_hrw_score_is_traefiks_formula():
    import math

    x = hash64(b"10.0.0.1http://a:1") / 2.0**64
    assert node_score("10.0.0.1", "http://a:1") == pytest.approx(1 / -math.log(x))


CLIENTS = [f"10.{i // 250}.{i % 250}.7" for i in range(2000)]


def test_hrw_keeps_each_client_on_one_server():
    b = bal("hrw", *URLS)
    first = {c: b.pick(client=c) for c in CLIENTS}
    assert all(b.pick(client=c) is first[c] for c in CLIENTS)
    share = collections.Counter(u.url for u in first.values())
    assert all(500 < n < 830 for n in share.values()), share


def test_hrw_adding_a_server_moves_about_one_in_n_clients_all_to_it():
    before = bal("hrw", *URLS)
    after = bal("hrw", *URLS, "http://d:1")
    moved = [c for c in CLIENTS if before.pick(client=c).url != after.pick(client=c).url]
    assert 0.18 < len(moved) / len(CLIENTS) < 0.32  # about 1/4
    assert all(after.pick(client=c).url == "http://d:1" for c in moved)


def test_hrw_a_server_going_down_moves_only_its_clients():
    b = bal("hrw", *URLS)
    first = {c: b.pick(client=c) for c in CLIENTS}
    b.servers[0].healthy = False
    for c in CLIENTS:
        if first[c] is not b.servers[0]:
            assert b.pick(client=c) is first[c]
        else:
            assert b.pick(client=c) is not b.servers[0]


def test_hrw_weights_are_respected():
    b = bal("hrw", *URLS, weights=[3, 1, 1])
    share = collections.Counter(b.pick(client=c).url for c in CLIENTS)
    assert 0.53 < share["http://a:1"] / len(CLIENTS) < 0.67, share


def test_hrw_retry_excludes_the_failed_server_and_stays_deterministic():
    b = bal("hrw", *URLS)
    first = b.pick(client="10.9.9.9")
    second = b.pick(exclude={first}, client="10.9.9.9")
    assert second is not first and b.pick(exclude={first}, client="10.9.9.9") is second


# -- leasttime ------------------------------------------------------------------------------------------


def test_leasttime_without_samples_takes_weighted_turns():
    b = bal("leasttime", *URLS, weights=[2, 1, 1])
    picks = collections.Counter(b.pick().url for _ in range(400))
    assert abs(picks["http://a:1"] - 200) <= 1 and abs(picks["http://b:1"] - 100) <= 1, picks


def test_leasttime_prefers_the_fastest_and_weighs_in_flight():
    b = bal("leasttime", *URLS)
    a, bb, c = b.servers
    for _ in range(10):
        a.times.add(50.0)
        bb.times.add(10.0)
        c.times.add(30.0)
    assert b.pick() is bb
    bb.inflight = 3  # 10 x (1 + 3) = 40 > 30 x 1
    assert b.pick() is c


def test_leasttime_times_the_answer_and_keeps_the_last_hundred():
    b = bal("leasttime", *URLS)
    up = b.servers[0]
    start = b.acquire(up)
    b.answered(up, start - 0.25)  # started 250 ms earlier
    b.release(up)
    assert up.inflight == 0 and up.times.average() == pytest.approx(250.0, abs=5.0)
    for _ in range(150):
        up.times.add(1.0)
    assert len(up.times.ring) == 100 and up.times.average() == pytest.approx(1.0)
