"""router.static: path safety, what a path resolves to, the HTTP rules (conditional requests, ranges,
precompressed siblings, methods), the options checked at compile time, and the cache that lets a hot
small file skip the executor."""

from __future__ import annotations

import asyncio
import gzip
import os
from pathlib import Path

import pytest

from discover.model import StaticFiles
from router.static import StaticError, build_static, files_for
from router.static.http import byte_range, choose, plan
from router.static.resolve import Bad, BadPath, File, Listing, Missing, Redirect, split_path
from router.static.target import FileCache


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "sub" / "a.txt").write_text("alpha")
    (root / "app.js").write_text("console.log(1)\n" * 50)
    (root / "app.js.gz").write_bytes(gzip.compress((root / "app.js").read_bytes()))
    (root / "app.js.br").write_bytes(b"pretend-brotli")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "out")  # leads out of the root
    os.symlink(root / "sub" / "a.txt", root / "inside")  # stays inside
    return root


def files(root: Path, **kw):
    return files_for(StaticFiles(root=str(root), **kw))


def get_from(headers: dict[str, str]):
    lowered = {k.lower(): v for k, v in headers.items()}
    return lambda name: lowered.get(name.lower())


# -- paths ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/a%2Fb", "/a%2fb", "/..%2F..%2Fetc/passwd", "/a%5Cb", "/a\\b", "/..\\..\\etc", "/a%00b",
     "/%2e%2e/x", "/a/%2E%2E", "/a/./b", "/a/../b", "/bad%zz", "/bad%2"],
)  # fmt: skip
def test_paths_that_could_leave_the_root_are_refused(path):
    with pytest.raises(BadPath):
        split_path(path)


def test_ordinary_paths_are_decoded_per_segment():
    assert split_path("/a%20b/c%C3%A9/") == ([b"a b", "cé".encode()], True)
    assert split_path("//x") == ([b"x"], False)


def test_a_symlink_out_of_the_root_is_not_followed_one_inside_is(site):
    f = files(site)
    assert isinstance(f.resolve("/out"), Missing)
    found = f.resolve("/inside")
    assert isinstance(found, File) and found.variants[0].content == b"alpha"
    assert isinstance(f.resolve("/secret.txt"), Missing)  # what the router makes of /../secret.txt
    assert isinstance(f.resolve("/../secret.txt"), Bad)  # dots left in (by a middleware): refused
    assert isinstance(f.resolve("/%2e%2e/secret.txt"), Bad)


def test_a_fifo_is_never_opened(site):
    os.mkfifo(site / "pipe")
    assert isinstance(files(site).resolve("/pipe"), Missing)  # returns at once: no open() blocking


def test_directories_redirect_to_their_slash_then_serve_the_index(site):
    f = files(site)
    assert f.resolve("/sub") == Redirect("sub/")
    assert isinstance(f.resolve("/sub/"), Missing)  # no index, no browse
    home = f.resolve("/")
    assert isinstance(home, File) and home.variants[0].content == b"<h1>home</h1>"
    assert isinstance(f.resolve("/index.html/"), Missing)
    custom = files(site, index=("a.txt",)).resolve("/sub/")
    assert isinstance(custom, File) and custom.variants[0].content == b"alpha"


def test_browse_lists_with_names_escaped_and_links_encoded(site):
    (site / "empty" / '<img src=x onerror=alert("x")>').write_text("x")
    (site / "empty" / "javascript:alert(1)").write_text("x")
    os.symlink(site.parent / "secret.txt", site / "empty" / "leak")
    listing = files(site, browse=True).resolve("/empty/")
    assert isinstance(listing, Listing)
    text = listing.html.decode()
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(&quot;x&quot;)&gt;" in text
    assert 'href="./javascript%3Aalert%281%29"' in text
    assert "leak" not in text  # leads out of the root: not listed
    assert isinstance(files(site).resolve("/empty/"), Missing)  # browse is off by default


def test_file_system_errors_are_a_404(site, monkeypatch):
    def refused(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", refused)  # what an unreadable directory does (tests run as root)
    assert files(site, browse=True).resolve("/empty/") == Missing("PermissionError: Permission denied")
    monkeypatch.undo()
    os.symlink("loop", site / "loop")
    assert isinstance(files(site).resolve("/loop"), Missing)
    assert isinstance(files(site).resolve("/" + "n" * 5000), Missing)


def test_try_files_serves_a_single_page_app(site):
    f = files(site, try_files=("{path}", "{path}/", "/index.html"))
    assert f.resolve("/sub/a.txt").variants[0].content == b"alpha"
    assert f.resolve("/some/client/route").variants[0].content == b"<h1>home</h1>"
    assert f.resolve("/").variants[0].content == b"<h1>home</h1>"
    only_html = files(site, try_files=("{path}.html", "$uri"))
    assert only_html.resolve("/index").variants[0].content == b"<h1>home</h1>"
    assert isinstance(files(site, try_files=("{path}",)).resolve("/nope"), Missing)
    # a placeholder never carries a smuggled placeholder or dot segment
    assert isinstance(f.resolve("/%7Bdir%7D"), File)  # falls back to /index.html, nothing else


def test_options_are_checked_at_compile_time(site, tmp_path):
    with pytest.raises(StaticError, match="is not a directory"):
        build_static("s", "r", StaticFiles(root=str(tmp_path / "none")))
    with pytest.raises(StaticError, match=r"tryFiles '\{uri\}': unknown placeholder"):
        build_static("s", "r", StaticFiles(root=str(site), try_files=("{uri}",)))
    with pytest.raises(StaticError, match="must start with /"):
        build_static("s", "r", StaticFiles(root=str(site), try_files=("index.html",)))
    with pytest.raises(StaticError, match="index '../x' must be a file name"):
        build_static("s", "r", StaticFiles(root=str(site), index=("../x",)))
    assert build_static("s", "r", StaticFiles(root=str(site))).router == "r"


# -- HTTP -------------------------------------------------------------------------------------------------


def test_precompressed_siblings_by_accept_encoding(site):
    found = files(site).resolve("/app.js")
    assert [v.encoding for v in found.variants] == [None, "br", "gzip"]
    assert choose(found, None).encoding is None
    assert choose(found, "gzip, deflate").encoding == "gzip"
    assert choose(found, "gzip, br").encoding == "br"
    assert choose(found, "br;q=0.5, gzip").encoding == "gzip"
    assert choose(found, "br;q=0, gzip;q=0").encoding is None
    reply = plan(found, "GET", get_from({"Accept-Encoding": "gzip"}), "")
    head = dict(reply.pairs())
    assert head["Content-Encoding"] == "gzip" and head["Vary"] == "Accept-Encoding"
    assert head["Content-Type"] == "text/javascript; charset=utf-8"
    assert gzip.decompress(reply.in_memory()) == (site / "app.js").read_bytes()
    plain = dict(plan(files(site).resolve("/sub/a.txt"), "GET", get_from({}), "").pairs())
    assert "Vary" not in plain and "Content-Encoding" not in plain


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=50-1000", 100, (50, 99)),
        ("bytes=100-", 100, False),
        ("bytes=-0", 100, False),
        ("bytes=0-0", 0, False),
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole file
        ("bytes=5-1", 100, None),
        ("items=0-1", 100, None),
        ("bytes=x-1", 100, None),
        ("bytes=²-", 100, None),
        # more than 18 digits (int() refuses over 4300): past the end, never a 500
        ("bytes=" + "9" * 5000 + "-", 100, False),
        ("bytes=" + "9" * 19 + "-", 100, False),
        ("bytes=0-" + "9" * 5000, 100, (0, 99)),
        ("bytes=-" + "9" * 5000, 100, (0, 99)),
        ("bytes=" + "0" * 5000 + "5-9", 100, (5, 9)),
        ("bytes=" + "9" * 5000 + "-1", 100, None),
    ],
)
def test_byte_ranges(value, size, expected):
    assert byte_range(value, size) == expected


def test_conditional_requests_and_ranges(site):
    found = files(site).resolve("/sub/a.txt")
    v = found.variants[0]

    def status(**headers: str) -> int:
        return plan(found, "GET", get_from({k.replace("_", "-"): x for k, x in headers.items()}), "").status

    assert status() == 200
    assert status(If_None_Match=v.etag) == 304
    assert status(If_None_Match=f'"other", W/{v.etag}') == 304
    assert status(If_None_Match='"other"') == 200
    assert status(If_Modified_Since=v.last_modified) == 304
    assert status(If_Modified_Since="Thu, 01 Jan 1970 00:00:00 GMT") == 200
    assert status(If_None_Match='"other"', If_Modified_Since=v.last_modified) == 200  # INM wins
    assert status(If_Match='"other"') == 412
    assert status(If_Match=v.etag) == 200
    assert status(If_Unmodified_Since="Thu, 01 Jan 1970 00:00:00 GMT") == 412
    ranged = plan(found, "GET", get_from({"Range": "bytes=1-2"}), "")
    assert ranged.status == 206 and ranged.in_memory() == b"lp"
    assert ("Content-Range", "bytes 1-2/5") in ranged.pairs()
    unsat = plan(found, "GET", get_from({"Range": "bytes=9-"}), "")
    assert unsat.status == 416 and ("Content-Range", "bytes */5") in unsat.pairs()
    assert status(Range="bytes=1-2", If_Range='"old"') == 200
    assert status(Range="bytes=1-2", If_Range=v.etag) == 206
    not_modified = plan(found, "GET", get_from({"If-None-Match": v.etag}), "")
    assert b"Content-Length" not in not_modified.head(False) and b"ETag: " in not_modified.head(False)


def test_only_get_and_head(site):
    found = files(site).resolve("/sub/a.txt")
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        reply = plan(found, method, get_from({}), "")
        assert reply.status == 405 and ("Allow", "GET, HEAD") in reply.pairs()
    head = plan(found, "HEAD", get_from({}), "")
    assert head.status == 200 and ("Content-Length", "5") in head.pairs()


def test_redirect_keeps_the_query(site):
    reply = plan(files(site).resolve("/sub"), "GET", get_from({}), "a=1")
    assert reply.status == 301 and ("Location", "sub/?a=1") in reply.pairs()
    assert plan(files(site).resolve("/a%2Fb"), "GET", get_from({}), "").status == 400


# -- the cache --------------------------------------------------------------------------------------------


async def test_a_hot_file_is_resolved_once_within_the_ttl(site):
    f = files(site)
    calls: list[str] = []
    real = f.resolve

    def counting(path: str):
        calls.append(path)
        return real(path)

    f.resolve = counting  # type: ignore[method-assign]
    cache = FileCache(f, ttl=0.5)
    for _ in range(5):
        assert (await cache.lookup("/sub/a.txt")).variants[0].content == b"alpha"
    assert calls == ["/sub/a.txt"]  # four answers without an executor hop
    (site / "sub" / "a.txt").write_text("beta")
    await asyncio.sleep(0.6)  # the TTL itself is what is under test
    assert (await cache.lookup("/sub/a.txt")).variants[0].content == b"beta"
    assert len(calls) == 2


def test_the_cache_is_bounded_in_bytes(site):
    f = files(site)
    cache = FileCache(f, budget=4096)
    for i in range(100):
        cache.entries[f"/p{i}"] = Missing("x")
    assert cache.entries.currsize <= 4096
