"""``mirroring`` services: parsing with Traefik's defaults, qualified references, Traefik's counting, the
compile's checks (missing children, cycles) and the API's rendering."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

import router.mirroring as mirroring
from discover.model import LoadBalancer, Mirroring, MirrorRef, Router, Server, Service, StaticFiles, merge
from discover.parse import check_references, parse_dynamic_with_warnings
from discover.readers import ConfigError
from router.compile import compile_config
from router.exchange import Exchange, Headers
from router.mirroring import MAX_PENDING, MAX_PENDING_BYTES, InFlight, MirroringTarget, Mirrors, _Copy
from router.proxy import ServiceTarget
from router.rules import RequestInfo
from router.settings import EntryPoint
from tests.api_fakes import get, state
from tests.exchange_fakes import fake_exchange
from tests.unit.test_model import cfg

EPS = (EntryPoint("web", ":80"),)


def _lb(name: str) -> Service:
    return Service(name, load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:1"),)))


def _mirroring(name: str, main: str, *mirrors: tuple[str, int]) -> Service:
    refs = tuple(MirrorRef(n, p) for n, p in mirrors)
    return Service(name, mirroring=Mirroring(service=main, mirrors=refs))


def _parse(services: dict) -> dict[str, Service]:
    parsed, _ = parse_dynamic_with_warnings({"http": {"services": services}}, references=False)
    return dict(parsed.services)


def test_parsed_with_traefiks_defaults_and_options():
    got = _parse(
        {
            "a": {
                "mirroring": {"service": "main", "mirrors": [{"name": "m1", "percent": 10}, {"name": "m2"}]}
            },
            "b": {
                "mirroring": {
                    "service": "main",
                    "mirrorBody": "false",
                    "maxBodySize": 1024,
                    "healthCheck": {},
                }
            },
        }
    )
    assert got["a"].mirroring == Mirroring("main", (MirrorRef("m1", 10), MirrorRef("m2", 0)), -1, True, False)
    assert got["b"].mirroring == Mirroring("main", (), 1024, False, True)


@pytest.mark.parametrize(
    ("mirroring", "where"),
    [
        ({"mirrors": []}, "mirroring.service"),
        ({"service": "x", "mirrors": [{"name": "m", "percent": -1}]}, "mirrors[0].percent"),
        ({"service": "x", "mirrors": [{"percent": 5}]}, "mirrors[0].name"),
        ({"service": "x", "healthCheck": {"path": "/"}}, "mirroring.healthCheck"),
        ({"service": "x", "mirrorbody": "sometimes"}, "mirroring.mirrorBody"),
        ({"service": "x", "percent": 5}, "mirroring.percent"),
    ],
)
def test_bad_options_are_refused_naming_them(mirroring, where):
    with pytest.raises(ConfigError) as err:
        _parse({"s": {"mirroring": mirroring}})
    assert where in str(err.value)


def test_references_are_qualified_in_their_provider_and_missing_ones_are_warned():
    file = cfg(services=[_mirroring("m", "main", ("copy", 5), ("other@docker", 5)), _lb("main")])
    assert check_references(file) == ["http.services.m.mirroring: service 'copy' is not defined"]
    merged = merge({"file": file})
    spec = merged.services["m@file"].mirroring
    assert spec.service == "main@file"
    assert [r.name for r in spec.mirrors] == ["copy@file", "other@docker"]


def test_traefiks_counting_copies_exactly_the_share_asked():
    state_ = Mirrors(
        "m", Mirroring("main", (MirrorRef("half", 50), MirrorRef("tenth", 10), MirrorRef("none", 0)))
    )
    got = [state_.active() or [] for _ in range(200)]
    assert sum("half" in g for g in got) == 100
    assert sum("tenth" in g for g in got) == 20
    assert not any("none" in g for g in got)
    assert [i for i, g in enumerate(got[:6]) if "half" in g] == [0, 2, 4]  # requests 1, 3, 5
    assert got[0] == ["half", "tenth"]  # the first request goes to every mirror with a share


def _compile(*services: Service, router_service: str = "m"):
    routers = [Router("r", "PathPrefix(`/`)", router_service), Router("ok", "Path(`/ok`)", "main")]
    return compile_config(merge({"file": cfg(routers=routers, services=services)}), EPS)


def _target(compiled, path: str = "/x"):
    return compiled.tables["web"].lookup(RequestInfo("GET", "h", path, "", {}, "127.0.0.1")).target


def test_a_router_to_a_mirroring_service_gets_its_main_and_mirror_targets():
    compiled = _compile(_mirroring("m", "main", ("copy", 50)), _lb("main"), _lb("copy"))
    target = _target(compiled)
    assert type(target) is MirroringTarget
    assert type(target.main) is ServiceTarget and target.main.service == "main@file"
    assert list(target.mirrors) == ["copy@file"]
    assert not compiled.errors and not compiled.service_errors


def test_nested_mirroring_services_share_no_state_but_build():
    compiled = _compile(
        _mirroring("m", "inner", ("copy", 10)),
        _mirroring("inner", "main", ("copy", 20)),
        _lb("main"),
        _lb("copy"),
    )
    target = _target(compiled)
    assert type(target.main) is MirroringTarget and target.main.service == "inner@file"


@pytest.mark.parametrize(
    ("services", "why"),
    [
        ((_mirroring("m", "main", ("ghost", 5)),), {"m@file": "its mirror ghost@file does not exist"}),
        ((_mirroring("m", "ghost"),), {"m@file": "its service ghost@file does not exist"}),
        (
            (_mirroring("m", "n"), _mirroring("n", "m")),
            {
                "n@file": "services form a cycle: m@file -> n@file -> m@file",
                "m@file": "its service n@file is left out",
            },
        ),
    ],
)
def test_missing_children_and_cycles_leave_it_out_with_one_error_line(caplog, services, why):
    caplog.set_level(logging.ERROR)
    compiled = _compile(*services, _lb("main"))
    assert {n: compiled.service_errors[n] for n in why} == why
    assert "r@file" in compiled.errors  # the router to it is refused by name...
    assert _target(compiled, "/ok") is not None  # ...and the others are served
    lines = [r.getMessage() for r in caplog.records if " is left out: " in r.getMessage()]
    assert sorted(lines) == sorted(f"service {n} is left out: {w}" for n, w in why.items())


async def test_copies_in_flight_are_bounded_and_said_once_per_episode(caplog):
    flight = InFlight("m")
    gate = asyncio.Event()
    releases: list[asyncio.Event] = []

    async def hang() -> None:
        await gate.wait()

    async def one() -> None:
        ev = asyncio.Event()
        releases.append(ev)
        await ev.wait()

    for _ in range(MAX_PENDING):
        flight.launch(one, 0)
    for _ in range(50):
        flight.launch(hang, 0)
    await asyncio.sleep(0)
    assert flight.count == MAX_PENDING  # the rest were dropped, with one warning
    # A slow mirror keeps it saturated: one copy finishes, two more come, 50 times: still one line.
    for i in range(50):
        releases[i].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        flight.launch(hang, 0)
        flight.launch(hang, 0)
    lines = [r.getMessage() for r in caplog.records if r.name == "dockroute.mirroring"]
    assert sum("copies are dropped" in line for line in lines) == 1
    assert not any("caught up" in line for line in lines)
    # Back to half the bound: the episode ends with one line counting what was dropped.
    for ev in releases[50:]:
        ev.set()
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert flight.count == 0 and flight.bytes == 0 and not flight.tasks
    lines = [r.getMessage() for r in caplog.records if r.name == "dockroute.mirroring"]
    assert lines[-1] == "service m: mirrors caught up; 100 copies were dropped meanwhile"
    assert sum("caught up" in line for line in lines) == 1


async def test_copies_hold_at_most_the_byte_budget_of_bodies(caplog):
    flight = InFlight("m")
    gate = asyncio.Event()

    async def hang() -> None:
        await gate.wait()

    big = MAX_PENDING_BYTES // 4
    for _ in range(6):
        flight.launch(hang, big)
    flight.launch(hang, 10)  # no room left for even a small body
    assert flight.count == 4 and flight.bytes == MAX_PENDING_BYTES
    assert "copies are dropped" in caplog.text
    gate.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert flight.count == 0 and flight.bytes == 0
    assert "3 copies were dropped" in caplog.text


async def test_a_copy_is_given_up_after_its_deadline(monkeypatch):
    monkeypatch.setattr(mirroring, "COPY_DEADLINE", 0.05)

    class Hanging:
        async def serve(self, copy: Exchange) -> None:
            await asyncio.Event().wait()

    state_ = Mirrors("m", Mirroring("main", (MirrorRef("copy", 100),)))
    target = MirroringTarget("r", "m", None, {"copy": Hanging()}, state_)
    state_.flight.launch(lambda: target._copies(["copy"], _Copy(fake_exchange("GET", "/"), True)), 0)
    assert state_.flight.count == 1
    for _ in range(100):
        if not state_.flight.count:
            break
        await asyncio.sleep(0.01)
    assert state_.flight.count == 0


async def test_a_mirror_that_raises_is_logged_and_the_next_mirror_still_gets_its_copy(caplog):
    caplog.set_level(logging.DEBUG, "dockroute.mirroring")
    seen: list[str] = []

    class Broken:
        async def serve(self, copy: Exchange) -> None:
            raise RuntimeError("boom")

    class Fine:
        async def serve(self, copy: Exchange) -> None:
            seen.append(copy.target)

    ex = fake_exchange("GET", "/p")
    state_ = Mirrors("m", Mirroring("main", (MirrorRef("a", 100), MirrorRef("b", 100))))
    target = MirroringTarget("r", "m", None, {"a": Broken(), "b": Fine()}, state_)
    await target._copies(["a", "b"], _Copy(ex, True))
    assert "service m: mirror a failed: boom" in caplog.text
    assert seen == ["/p"]
    assert ex.transport.data == b""  # the client got nothing from either


def test_the_copies_in_flight_are_carried_over_a_reload_by_service_name():
    services = (_mirroring("m", "main", ("copy", 50)), _lb("main"), _lb("copy"))
    first = _compile(*services)
    flight = _target(first).state.flight
    flight.count = 17  # copies of the first configuration still waiting on the mirror
    conf = merge({"file": cfg(routers=[Router("r", "PathPrefix(`/`)", "m")], services=services)})
    second = compile_config(conf, EPS, previous=first.balancers, previous_middlewares=first.middlewares)
    assert _target(second).state.flight is flight  # the new configuration counts them too
    assert _target(second).state is not _target(first).state  # Traefik's counters start again
    third = compile_config(conf, EPS, previous=second.balancers, previous_middlewares=second.middlewares)
    assert _target(third).state.flight is flight


async def test_the_api_shows_a_mirroring_service_as_traefik_does():
    conf = {
        "myprovider": {
            "services": {
                "mirror": _mirroring("", "one", ("two", 10), ("three@other", 15)),
                "one": _lb("http://127.0.0.1:1"),
                "two": _lb("http://127.0.0.1:2"),
            },
            "routers": {"foo": Router("foo", "Path(`/`)", "mirror")},
        }
    }
    _, _, body = await get(state(conf), "/api/http/services/mirror@myprovider")
    assert body["type"] == "mirroring"
    assert body["status"] == "enabled"
    assert body["mirroring"] == {
        "service": "one",
        "mirrorBody": True,
        "maxBodySize": -1,
        "mirrors": [{"name": "two", "percent": 10}, {"name": "three@other", "percent": 15}],
    }
    conf["myprovider"]["services"]["mirror"] = Service(
        "", mirroring=Mirroring("one", (MirrorRef("two", 0),), health_check=True)
    )
    _, _, body = await get(state(conf), "/api/http/services/mirror@myprovider")
    assert body["mirroring"] == {  # percent 0 omitted, as Traefik's omitempty; healthCheck: {} shown
        "service": "one",
        "mirrorBody": True,
        "maxBodySize": -1,
        "mirrors": [{"name": "two"}],
        "healthCheck": {},
    }
    assert "serverStatus" not in body
    st = state(conf, service_errors={"mirror@myprovider": "its mirror three@other does not exist"})
    _, _, body = await get(st, "/api/http/services/mirror@myprovider")
    assert body["status"] == "disabled"
    assert body["error"] == ["its mirror three@other does not exist"]


def test_a_mirror_naming_a_missing_servers_transport_leaves_the_mirroring_service_out():
    copy = Service(
        "copy", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:2"),), servers_transport="t")
    )
    compiled = _compile(_mirroring("m", "main", ("copy", 5)), _lb("main"), copy)
    assert compiled.service_errors["m@file"].startswith("its mirror copy@file is not usable")
    assert "r@file" in compiled.errors


def test_static_files_can_be_the_main_service_but_not_a_mirror():
    files = Service("files", static=StaticFiles(root="/nonexistent-but-checked-later"))
    compiled = _compile(_mirroring("m", "files"), _mirroring("n", "main", ("files", 5)), _lb("main"), files)
    assert "m@file" not in compiled.service_errors
    assert compiled.service_errors["n@file"].startswith("its mirror files@file is a static service")


async def test_a_copy_reaches_its_mirror_as_the_main_request_left_and_is_freed_without_the_cyclic_gc():
    ex = fake_exchange("POST", "/p?q=1", headers={"X-Client": "c"})
    ex.body = b"data"
    ex.set_header("X-Edit", "e")
    seen: list[tuple] = []

    class Mirror:
        async def serve(self, copy: Exchange) -> None:
            seen.append((copy.method, copy.target, copy.header("X-Edit"), copy.header("X-Client"), copy.body))
            await copy.sink.start(200, Headers())  # the answer goes nowhere
            await copy.sink.write(b"dropped")
            await copy.sink.end()

    state_ = Mirrors("m", Mirroring("main", (MirrorRef("copy", 100),)))
    target = MirroringTarget("r", "m", None, {"copy": Mirror()}, state_)
    gc.collect()
    gc.disable()
    try:
        await target._copies(["copy"], _Copy(ex, True))
        await target._copies(["copy"], _Copy(ex, False))
        assert gc.collect() == 0  # nothing made a reference cycle
    finally:
        gc.enable()
    assert seen == [("POST", "/p?q=1", "e", "c", b"data"), ("POST", "/p?q=1", "e", "c", b"")]
    assert ex.transport.data == b""  # the client got nothing from the mirror
