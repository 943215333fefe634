import dataclasses

import pytest
from multidict import CIMultiDict

from router.rules import RequestInfo, Rule, parse_rule
from router.table import Route, RoutingTable


def req(host="a.test", path="/", method="GET"):
    return RequestInfo(method, host, path, "", CIMultiDict(), "10.0.0.1")


def route(name, rule, priority=None):
    return Route(
        name=name, priority=len(rule) if priority is None else priority, rule=parse_rule(rule), target=name
    )


def counting(rule_text, calls, name):
    """A rule that behaves like ``rule_text`` and records each call of its match in ``calls``."""
    inner = parse_rule(rule_text)

    def match(r):
        calls.append(name)
        return inner.match(r)

    return Rule(rule_text, match, inner.hosts, inner.host_only)


def lookup_name(table, **kw):
    found = table.lookup(req(**kw))
    return None if found is None else found.name


@pytest.mark.parametrize(
    ("routes", "request_", "expected"),
    [
        # highest priority wins, whatever the input order
        (
            [("low", "PathPrefix(`/`)", 1), ("high", "PathPrefix(`/a`)", 10)],
            {"path": "/a/b"},
            "high",
        ),
        (
            [("high", "PathPrefix(`/a`)", 10), ("low", "PathPrefix(`/`)", 1)],
            {"path": "/a/b"},
            "high",
        ),
        # a higher priority that does not match falls through to the next one
        (
            [("high", "PathPrefix(`/a`)", 10), ("low", "PathPrefix(`/`)", 1)],
            {"path": "/b"},
            "low",
        ),
        # host-less and host routes are merged in priority order for a known host
        (
            [("host", "Host(`a.test`)", 5), ("catchall", "PathPrefix(`/`)", 50)],
            {"host": "a.test"},
            "catchall",
        ),
        (
            [("host", "Host(`a.test`)", 50), ("catchall", "PathPrefix(`/`)", 5)],
            {"host": "a.test"},
            "host",
        ),
        (
            [("host", "Host(`a.test`)", 50), ("catchall", "PathPrefix(`/`)", 5)],
            {"host": "b.test"},
            "catchall",
        ),
        # ties: router name ascending
        (
            [("b@file", "PathPrefix(`/`)", 7), ("a@file", "Path(`/`)", 7), ("c@file", "Path(`/`)", 7)],
            {},
            "a@file",
        ),
        (
            [("b@file", "Host(`a.test`)", 7), ("a@file", "PathPrefix(`/`)", 7)],
            {},
            "a@file",
        ),
        # default priority is the rule's length: the longer (more specific) rule first
        (
            [("short", "Host(`a.test`)", None), ("long", "Host(`a.test`) && Path(`/x`)", None)],
            {"path": "/x"},
            "long",
        ),
        (
            [("short", "Host(`a.test`)", None), ("long", "Host(`a.test`) && Path(`/x`)", None)],
            {"path": "/y"},
            "short",
        ),
        # a rule with several hosts is filed under each
        ([("multi", "Host(`a.test`) || Host(`b.test`)", 1)], {"host": "b.test"}, "multi"),
        ([("multi", "Host(`a.test`, `b.test`)", 1)], {"host": "a.test"}, "multi"),
        ([("multi", "Host(`a.test`, `b.test`)", 1)], {"host": "c.test"}, None),
        # a host rule with more conditions is still checked in full
        ([("hp", "Host(`a.test`) && Path(`/x`)", 1)], {"path": "/y"}, None),
        # negation and wildcards are host-less: tried for every host
        ([("not", "!Host(`b.test`)", 1)], {"host": "a.test"}, "not"),
        ([("not", "!Host(`a.test`)", 1)], {"host": "a.test"}, None),
        ([("wild", "Host(`*.a.test`)", 1)], {"host": "x.a.test"}, "wild"),
        # a rule whose hosts are contradictory can never match
        ([("never", "Host(`a.test`) && Host(`b.test`)", 1)], {"host": "a.test"}, None),
        # unknown host: None without host-less routes
        ([("a", "Host(`a.test`)", 1), ("b", "Host(`b.test`)", 1)], {"host": "zz.test"}, None),
        ([("a", "Host(`a.test`)", 1)], {"host": ""}, None),
        # empty table
        ([], {}, None),
    ],
)
def test_lookup(routes, request_, expected):
    table = RoutingTable(route(n, r, p) for n, r, p in routes)
    assert lookup_name(table, **request_) == expected


def test_route_for_other_host_is_never_tried():
    calls = []
    routes = [
        Route("a", 10, counting("Host(`a.test`) && PathPrefix(`/`)", calls, "a"), "a"),
        Route("b", 100, counting("Host(`b.test`) && PathPrefix(`/`)", calls, "b"), "b"),
        Route("b2", 50, counting("Host(`b.test`) || Host(`c.test`)", calls, "b2"), "b2"),
    ]
    table = RoutingTable(routes)
    assert table.lookup(req(host="a.test")).name == "a"
    assert calls == ["a"]
    calls.clear()
    assert table.lookup(req(host="zz.test")) is None
    assert calls == []


def test_unknown_host_tries_only_host_less_routes():
    calls = []
    routes = [
        Route("a", 100, counting("Host(`a.test`) && PathPrefix(`/`)", calls, "a"), "a"),
        Route("any", 1, counting("PathPrefix(`/`)", calls, "any"), "any"),
    ]
    table = RoutingTable(routes)
    assert table.lookup(req(host="zz.test")).name == "any"
    assert calls == ["any"]
    calls.clear()
    assert table.lookup(req(host="a.test")).name == "a"
    assert calls == ["a"]


def test_host_only_rule_is_not_called_once_its_host_is_selected():
    def boom(r):
        raise AssertionError("a Host-only rule was evaluated after the host index selected it")

    table = RoutingTable([Route("a", 1, Rule("Host(`a.test`)", boom, frozenset({"a.test"}), True), "a")])
    assert table.lookup(req(host="a.test")).name == "a"
    assert table.lookup(req(host="b.test")) is None


def test_thousand_routes():
    calls = []
    routes = []
    for i in range(1000):
        rule = f"Host(`h{i}.test`) && PathPrefix(`/`)" if i % 2 else f"Host(`h{i}.test`)"
        r = counting(rule, calls, f"r{i}") if i % 2 else parse_rule(rule)
        routes.append(Route(f"r{i}", i, r, i))
    # one host-less route of low priority, one of high priority for a single path
    routes.append(Route("fallback", -1, parse_rule("PathPrefix(`/`)"), "fallback"))
    routes.append(Route("health", 10_000, parse_rule("Path(`/health`)"), "health"))
    table = RoutingTable(reversed(routes))
    assert len(table) == 1002
    for i in range(1000):
        calls.clear()
        assert table.lookup(req(host=f"h{i}.test")).target == i
        assert calls == ([f"r{i}"] if i % 2 else [])  # only this host's route was tried
        assert table.lookup(req(host=f"h{i}.test", path="/health")).name == "health"
    assert table.lookup(req(host="nope.test")).name == "fallback"
    assert table.lookup(req(host="H1.TEST")).name == "fallback"  # the proxy lowercases hosts first


def test_len_and_routes_order():
    table = RoutingTable([route("b", "Path(`/`)", 1), route("a", "Path(`/`)", 1), route("c", "Path(`/`)", 9)])
    assert len(table) == 3
    assert [r.name for r in table.routes] == ["c", "a", "b"]


def test_route_is_frozen():
    r = route("a", "Host(`a.test`)", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.priority = 2  # type: ignore[misc]
