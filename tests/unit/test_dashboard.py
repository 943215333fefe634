"""``dashboard@internal``'s handler: the page's files with their types, validators and security headers,
read once; the paths it answers (stripped by Traefik's internal middlewares or not), the redirect that
makes relative addresses work, 404 and 405; and the page's files themselves: shipped by the package,
no inline script or style (the CSP forbids them), no markup built from strings."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from router.api import dashboard
from router.api.dashboard import ASSETS, CSP, dashboard_handler
from tests.exchange_fakes import Recorder, fake_exchange

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "router" / "api" / "dashboard"


async def get(target: str, method: str = "GET", base: str = "/", **headers: str) -> Recorder:
    ex = fake_exchange(method, target, headers=headers)
    ex.sink = rec = Recorder()
    await dashboard_handler(base)(ex)
    return rec


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/", "index.html"),  # what dashboard_stripprefix@internal leaves of /dashboard/
        ("/index.html", "index.html"),
        ("/app.js", "app.js"),
        ("/style.css", "style.css"),
        ("/dashboard/", "index.html"),  # unstripped: api@internal or a user's router
        ("/dashboard/app.js", "app.js"),
    ],
)
async def test_each_file_is_served_with_its_type_and_headers(target: str, name: str) -> None:
    rec = await get(target)
    assert rec.status == 200
    assert rec.body == (FOLDER / name).read_bytes()
    assert rec.headers["Content-Type"] == ASSETS[name]
    assert rec.headers["Content-Length"] == str(len(rec.body))
    assert rec.headers["Content-Security-Policy"] == CSP
    assert rec.headers["X-Content-Type-Options"] == "nosniff"
    assert rec.headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', rec.headers["ETag"])


async def test_under_a_base_path_the_unstripped_path_is_understood() -> None:
    rec = await get("/traefik/dashboard/style.css", base="/traefik/")
    assert rec.status == 200 and rec.headers["Content-Type"] == ASSETS["style.css"]


async def test_a_known_etag_gets_304_without_a_body() -> None:
    etag = (await get("/app.js")).headers["ETag"]
    rec = await get("/app.js", **{"If-None-Match": f'W/"x", {etag}'})
    assert rec.status == 304 and rec.body == b"" and rec.headers["ETag"] == etag
    assert "Content-Length" not in rec.headers
    assert (await get("/app.js", **{"If-None-Match": '"other"'})).status == 200


async def test_dashboard_without_its_slash_is_redirected_relatively() -> None:
    rec = await get("/dashboard")
    assert rec.status == 301 and rec.headers["Location"] == "dashboard/"
    rec = await get("/traefik/dashboard?x=1", base="/traefik/")
    assert rec.status == 301 and rec.headers["Location"] == "dashboard/?x=1"


@pytest.mark.parametrize("target", ["/nope.js", "/dashboard/../etc/passwd", "/dashboard/app.js/x", "/api"])
async def test_unknown_paths_are_404(target: str) -> None:
    assert (await get(target)).status == 404


async def test_other_methods_are_405_and_head_has_no_body() -> None:
    rec = await get("/", method="POST")
    assert rec.status == 405 and rec.headers["Allow"] == "GET, HEAD"
    ex = fake_exchange("HEAD", "/app.js")
    await dashboard_handler()(ex)
    head, _, body = ex.transport.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b""


async def test_files_are_read_once_not_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = dashboard_handler()
    dashboard_handler("/other/")

    def no_io(*_: object) -> None:
        raise AssertionError("file I/O while serving")

    monkeypatch.setattr(dashboard.resources, "files", no_io)
    monkeypatch.setattr(Path, "read_bytes", no_io)
    ex = fake_exchange("GET", "/style.css")
    ex.sink = rec = Recorder()
    await handler(ex)
    assert rec.status == 200 and rec.body
    assert dashboard.load_assets.cache_info().misses <= 1


def test_every_file_of_the_page_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = config["package-data"]["router.api"]
    files = sorted(p.relative_to(FOLDER.parent).as_posix() for p in FOLDER.iterdir())
    assert set(files) == {f"dashboard/{name}" for name in ASSETS}
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f


class _Inline(HTMLParser):
    """Collects what a strict CSP would block in a page: inline scripts, event handlers, style
    attributes and blocks, and anything loaded from another origin."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.in_script = tag == "script"
        if tag == "script" and not names.get("src"):
            self.found.append("inline script")
        if tag == "style":
            self.found.append("style block")
        for key, value in attrs:
            if key.startswith("on") or key == "style":
                self.found.append(f"{key} attribute on {tag}")
            if key in ("src", "href") and value and re.match(r"(https?:)?//", value):
                self.found.append(f"remote {key} {value}")

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.found.append("inline script body")


def test_the_page_has_nothing_a_strict_csp_blocks() -> None:
    parser = _Inline()
    parser.feed((FOLDER / "index.html").read_text())
    assert parser.found == []
    assert "url(http" not in (FOLDER / "style.css").read_text()


def test_the_script_builds_no_markup_from_strings() -> None:
    js = (FOLDER / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "textContent" in js
