"""The API's query parameters, paging and paths as Traefik's (``pkg/api/criterion.go``, ``sort.go``,
``handler.go``'s routes): filters, sorting, ``per_page``/``page`` and their errors, unknown paths, the
base path, methods, and the TCP and UDP paths (empty: dockroute routes HTTP only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from router.api.handler import api_handler
from router.api.state import ApiState
from router.settings import ApiSettings
from tests.api_fakes import (
    get,
    lb,
    r,
    state,
    traefik_http_conf,
)

NOT_FOUND = b"404 page not found\n"  # gorilla/mux's answer to a path it does not route


def many_routers(n: int) -> ApiState:
    routers = {f"bar{i:2d}": r(f"bar{i:2d}", f"Host(`foo.bar{i}`)") for i in range(n)}
    return state({"myprovider": {"routers": routers, "services": {"foo-service": lb("http://127.0.0.1")}}})


async def test_pagination_as_traefik():
    _, headers, body = await get(many_routers(19), "/api/http/routers?page=3&per_page=7")
    assert headers["X-Next-Page"] == "1" and [b["name"] for b in body] == [
        f"bar{i}@myprovider" for i in range(14, 19)
    ]
    _, headers, body = await get(many_routers(3), "/api/http/routers?page=2&per_page=1")
    assert headers["X-Next-Page"] == "3" and [b["name"] for b in body] == ["bar 1@myprovider"]
    for n in (5, 10):
        status, _, body = await get(many_routers(n), "/api/http/routers?page=2&per_page=10")
        assert (status, body) == (400, {"message": "invalid request: page: 2, per_page: 10"})
    status, _, body = await get(many_routers(3), "/api/http/routers?per_page=abc")
    assert (status, body) == (400, {"message": "invalid request: per_page: 0"})
    status, _, body = await get(many_routers(3), "/api/http/routers?page=-1")
    assert (status, body) == (400, {"message": "invalid request: page: -1"})
    status, headers, body = await get(state({}), "/api/http/routers")
    assert (status, headers["X-Next-Page"], body) == (200, "1", [])  # routers-empty.json
    status, _, body = await get(many_routers(3), "/api/http/services?page=2&per_page=1")
    assert (status, body) == (400, {"message": "invalid request: page: 2, per_page: 1"})
    _, headers, body = await get(
        state(traefik_http_conf(), entry_points=("a", "b", "c")), "/api/entrypoints?per_page=2"
    )
    assert headers["X-Next-Page"] == "2" and [e["name"] for e in body] == ["a", "b"]


def filter_conf(bar_broken: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """handler_http_test.go's "routers filtered by ..." configuration: bar@myprovider is disabled."""
    conf = traefik_http_conf()
    conf["myprovider"]["routers"] = {
        "test": r("test", "Host(`fii.bar.other`)", "fii-service", ("addPrefixTest", "auth")),
        "bar": r("bar", "Host(`foo.bar`)", "foo-service", ("auth", "addPrefixTest@anotherprovider")),
    }
    conf["myprovider"]["services"]["fii-service"] = lb("http://127.0.0.2")
    conf["otherprovider"] = {"routers": {"foo": r("foo", "Host(`fii.foo.other`)", "fii-service")}}
    conf["otherprovider"]["services"] = {"fii-service": lb("http://127.0.0.3")}
    return conf, ({"bar@myprovider": "refused"} if bar_broken else {})


async def test_router_filters_as_traefik():
    conf, errors = filter_conf()
    st = state(conf, errors=errors)

    async def names(q: str) -> list[str]:
        status, _, body = await get(st, "/api/http/routers?" + q)
        assert status == 200
        return [b["name"] for b in body]

    assert await names("status=enabled") == ["foo@otherprovider", "test@myprovider"]
    assert await names("status=DISABLED") == ["bar@myprovider"]
    assert await names("search=fii") == ["foo@otherprovider", "test@myprovider"]  # rule or name
    assert await names("search=BAR@my") == ["bar@myprovider"]
    # routers-filtered-serviceName.json: the same two, whichever provider the bare name is in
    assert await names("serviceName=fii-service@myprovider") == ["foo@otherprovider", "test@myprovider"]
    # routers-filtered-middlewareName.json: the name as the router wrote it
    assert await names("middlewareName=auth") == ["bar@myprovider", "test@myprovider"]
    assert await names("middlewareName=auth&status=enabled") == ["test@myprovider"]
    assert await names("provider=otherprovider") == ["foo@otherprovider"]  # dockroute's own filter
    assert await names("provider=myprovider&status=enabled") == ["test@myprovider"]
    assert await names("sortBy=rule") == ["test@myprovider", "foo@otherprovider", "bar@myprovider"]
    assert await names("sortBy=name&direction=desc") == [
        "test@myprovider",
        "foo@otherprovider",
        "bar@myprovider",
    ]


async def test_service_and_middleware_filters():
    conf, errors = filter_conf()
    conf["myprovider"]["services"]["bad"] = lb("http://x:bad")
    st = state(conf, errors=errors)
    _, _, body = await get(st, "/api/http/services?search=fii")
    assert [b["name"] for b in body] == ["fii-service@myprovider", "fii-service@otherprovider"]
    _, _, body = await get(st, "/api/http/services?provider=otherprovider")
    assert [b["name"] for b in body] == ["fii-service@otherprovider"]
    _, _, body = await get(st, "/api/http/services?status=disabled")
    assert [b["name"] for b in body] == ["bad@myprovider"]
    _, _, body = await get(st, "/api/http/middlewares?search=addprefix")
    assert [b["name"] for b in body] == ["addPrefixTest@anotherprovider", "addPrefixTest@myprovider"]
    _, _, body = await get(st, "/api/http/middlewares?sortBy=type&direction=desc")
    assert [b["type"] for b in body] == ["basicauth", "addprefix", "addprefix"]


async def test_router_names_with_a_slash_are_escaped_in_the_path():
    conf = traefik_http_conf()
    conf["myprovider"]["routers"] = {"foo / bar": r("foo / bar", "Host(`foo.bar`)", mws=("auth",))}
    st = state(conf)
    status, _, body = await get(st, "/api/http/routers/" + quote("foo / bar@myprovider", safe="@"))
    assert status == 200 and body["name"] == "foo / bar@myprovider"
    status, _, body = await get(st, "/api/http/routers/nope@myprovider")
    assert (status, body) == (404, {"message": "router not found: nope@myprovider"})
    for path in ("/api/http/routers/", "/api/http/routers/a/b", "/api/entrypoints/", "/api/nothing"):
        status, headers, body = await get(st, path)
        assert (status, body) == (404, NOT_FOUND), path
        assert headers["Content-Type"] == "text/plain; charset=utf-8", path  # Go's http.NotFound


async def test_paths_methods_base_path_and_dashboard():
    st = state(traefik_http_conf(), settings=ApiSettings(base_path="/traefik/"))
    seen: list[str] = []

    async def dashboard(ex):
        seen.append(ex.path)
        from router.exchange import answer

        await answer(ex, 200, "page")

    handler = api_handler(lambda: st, dashboard)
    status, _, body = await get(st, "/traefik/api/http/routers", handler=handler)
    assert status == 200 and len(body) == 2
    status, _, body = await get(st, "/api/http/routers", handler=handler)
    assert (status, body) == (404, NOT_FOUND)
    status, _, body = await get(st, "/traefik/api/nothing", handler=handler)
    assert (status, body) == (404, NOT_FOUND)
    status, _, body = await get(st, "/traefik/dashboard/app.js", handler=handler)
    assert (status, body, seen) == (200, b"page", ["/traefik/dashboard/app.js"])
    status, _, _ = await get(st, "/traefik/api/http/routers", "POST", handler=handler)
    assert status == 405
    status, _, body = await get(st, "/traefik/dashboard/", handler=api_handler(lambda: st))
    assert status == 404  # no dashboard handler given: api.dashboard is off
    status, _, body = await get(None, "/api/overview")
    assert status == 503  # before the first configuration


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("per_page=" + "9" * 5000, "invalid request: per_page: 9223372036854775807"),  # Atoi clamps
        ("per_page=-" + "9" * 30, "invalid request: per_page: -9223372036854775808"),
        ("page=99999999999999999999", "invalid request: page: 9223372036854775807"),
        ("per_page=1_0", "invalid request: per_page: 0"),  # not a Go integer
        ("per_page=%EF%BC%95", "invalid request: per_page: 0"),  # a full-width digit: not ASCII
    ],
    ids=["5000-digits", "negative-30-digits", "20-digits", "underscore", "full-width"],
)
async def test_page_numbers_as_go_reads_them(query, message):
    """Go's strconv.Atoi: a number out of int's range is an error printed clamped, never Python's
    ValueError (a 500) for thousands of digits."""
    status, _, body = await get(many_routers(3), "/api/http/routers?" + query)
    assert (status, body) == (400, {"message": message})
    _, headers, body = await get(many_routers(3), "/api/http/routers?per_page=" + "0" * 5000 + "2")
    assert headers["X-Next-Page"] == "2" and len(body) == 2  # leading zeros are still 2


@pytest.mark.parametrize(
    "kind", ["tcp/routers", "tcp/services", "tcp/middlewares", "udp/routers", "udp/services"]
)
async def test_tcp_and_udp_paths_answer_as_traefik_without_such_routers(kind):
    """Without TCP or UDP routers, Traefik's TCP and UDP lists are empty (its *-empty.json), a named one
    is Traefik's not-found, so Traefik's dashboard and tools read them."""
    st = state(traefik_http_conf())
    status, headers, body = await get(st, f"/api/{kind}")
    assert (status, headers["X-Next-Page"], body) == (200, "1", [])
    status, _, body = await get(st, f"/api/{kind}?page=2")
    assert (status, body) == (400, {"message": "invalid request: page: 2, per_page: 100"})
    noun = kind.partition("/")[2].removesuffix("s")
    status, _, body = await get(st, f"/api/{kind}/x%2Fy@file")
    assert (status, body) == (404, {"message": f"{noun} not found: x/y@file"})


async def test_other_methods_are_405_on_the_apis_paths_only():
    """gorilla/mux, which Traefik's API uses: a path it routes for GET answers another method 405 (no
    body); a path it does not route is 404 whatever the method."""
    st = state(traefik_http_conf(), settings=ApiSettings(debug=True))
    for path in (
        "/api/rawdata",
        "/api/http/routers/x@file",
        "/api/tcp/routers",
        "/api/certificates/ab",
        "/debug/vars",
    ):
        status, _, body = await get(st, path, "POST")
        assert (status, body) == (405, b""), path
    for path in ("/api/nothing", "/api/http/routers/", "/api/http/routers/a/b", "/metrics"):
        status, _, body = await get(st, path, "POST")
        assert (status, body) == (404, NOT_FOUND), path
    status, _, _ = await get(state(traefik_http_conf()), "/debug/vars", "POST")
    assert status == 404  # api.debug off: not routed
