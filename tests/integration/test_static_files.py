"""Static files through the real process: a ``static`` service behind a router (the fast path), behind a
middleware (``serve`` through the sink), and over TLS; every way of climbing out of the root, sent as raw
request bytes; a 1 GiB sparse file sent with sendfile and flat memory."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import ssl
from pathlib import Path

import aiohttp
import pytest

from tests.integration.harness import raw_exchange, routers, wait_for

pytestmark = pytest.mark.integration

GIB = 1 << 30
TAIL = b"the very end of the big file\n"


def site(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "docs").mkdir(parents=True)
    (root / "spa").mkdir()
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "docs" / "guide.txt").write_text("0123456789" * 10)
    (root / "style.css").write_text("body { color: red }\n" * 100)
    (root / "style.css.gz").write_bytes(gzip.compress((root / "style.css").read_bytes()))
    (root / "spa" / "index.html").write_text("<div id=app></div>\n")
    (tmp_path / "secret.txt").write_text("root:x:0:0:secret\n")
    os.symlink(tmp_path / "secret.txt", root / "leak")
    os.symlink("/etc", root / "etc-link")
    return root


def config(root: Path, **more_routers: dict) -> dict:
    cfg = routers(("files", "Host(`files.test`)", "files"))
    cfg["http"]["services"] = {
        "files": {"static": {"root": str(root)}},
        "spa": {"static": {"root": str(root / "spa"), "tryFiles": ["{path}", "/index.html"]}},
        "listed": {"static": {"root": str(root), "browse": True}},
    }
    cfg["http"]["routers"]["spa"] = {"rule": "Host(`spa.test`)", "service": "spa"}
    cfg["http"]["routers"]["listed"] = {"rule": "Host(`listed.test`)", "service": "listed"}
    cfg["http"]["routers"].update(more_routers)
    return cfg


async def get(port: int, target: str, host: str = "files.test", extra: str = "", method: str = "GET"):
    """One raw request: (status, headers lower-cased, body)."""
    data = await raw_exchange(
        port, f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n".encode()
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def test_files_with_validators_ranges_encodings_and_methods(proxy, tmp_path):
    root = site(tmp_path)
    dr = await proxy(config(root))
    status, h, body = await get(dr.port, "/docs/guide.txt")
    assert (status, body) == (200, b"0123456789" * 10)
    assert h["content-type"] == "text/plain; charset=utf-8" and h["accept-ranges"] == "bytes"
    etag, modified = h["etag"], h["last-modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    assert (await get(dr.port, "/docs/guide.txt", extra=f"If-None-Match: {etag}\r\n"))[0] == 304
    assert (await get(dr.port, "/docs/guide.txt", extra=f"If-Modified-Since: {modified}\r\n"))[0] == 304
    assert (await get(dr.port, "/docs/guide.txt", extra='If-None-Match: "x"\r\n'))[0] == 200
    status, h, body = await get(dr.port, "/docs/guide.txt", extra="Range: bytes=95-\r\n")
    assert (status, body, h["content-range"]) == (206, b"56789", "bytes 95-99/100")
    status, h, _ = await get(dr.port, "/docs/guide.txt", extra="Range: bytes=100-\r\n")
    assert (status, h["content-range"]) == (416, "bytes */100")
    status, _, body = await get(dr.port, "/docs/guide.txt", extra="Range: bytes=0-1,5-6\r\n")
    assert (status, len(body)) == (200, 100)  # several ranges: the whole file
    status, h, body = await get(dr.port, "/docs/guide.txt", method="HEAD")
    assert (status, h["content-length"], body) == (200, "100", b"")
    status, h, _ = await get(dr.port, "/docs/guide.txt", method="POST", extra="Content-Length: 0\r\n")
    assert (status, h["allow"]) == (405, "GET, HEAD")
    status, h, body = await get(dr.port, "/style.css", extra="Accept-Encoding: gzip, deflate\r\n")
    assert (h["content-encoding"], h["vary"]) == ("gzip", "Accept-Encoding")
    assert gzip.decompress(body) == (root / "style.css").read_bytes()
    status, h, body = await get(dr.port, "/style.css")
    assert "content-encoding" not in h and h["vary"] == "Accept-Encoding" and body.startswith(b"body")
    assert h["content-type"] == "text/css; charset=utf-8"
    assert (await get(dr.port, "/"))[2] == b"<h1>home</h1>\n"
    status, h, _ = await get(dr.port, "/docs?x=1")
    assert (status, h["location"]) == (301, "docs/?x=1")
    assert (await get(dr.port, "/docs/"))[0] == 404  # no index, browse off by default
    status, h, body = await get(dr.port, "/docs/", host="listed.test")
    assert (status, h["content-type"]) == (200, "text/html; charset=utf-8")
    assert b'<a href="./guide.txt">guide.txt</a>' in body
    assert (await get(dr.port, "/some/client/route", host="spa.test"))[2] == b"<div id=app></div>\n"
    http10 = b"GET /docs/guide.txt HTTP/1.0\r\nHost: files.test\r\nConnection: keep-alive\r\n\r\n"
    data = await raw_exchange(dr.port, http10, until_close=False)
    assert data.startswith(b"HTTP/1.1 200") and b"\r\nConnection: keep-alive\r\n" in data


TRAVERSALS = [
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/.%2e/.%2e/etc/passwd",
    "/..%2f..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/..%5c..%5cetc%5cpasswd",
    "/..\\..\\etc\\passwd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/docs/../../../etc/passwd",
    "/etc/passwd%00.html",
    "/leak",
    "/etc-link/passwd",
    "http://files.test/../../etc/passwd",
]


async def test_no_path_escapes_the_root_in_any_encoding(proxy, tmp_path):
    root = site(tmp_path)
    cfg = config(root, strip={"rule": "Host(`strip.test`)", "service": "files", "middlewares": ["strip"]})
    cfg["http"]["middlewares"] = {"strip": {"stripPrefix": {"prefixes": ["/x"]}}}
    dr = await proxy(cfg)
    for host in ("files.test", "strip.test"):
        prefix = "/x" if host == "strip.test" else ""
        assert (await get(dr.port, prefix + "/docs/guide.txt", host=host))[0] == 200  # reached the files
        assert (await get(dr.port, prefix + "/..%2f..%2fetc%2fpasswd", host=host))[0] == 400
        for target in TRAVERSALS:
            if host == "strip.test" and target.startswith("/"):
                target = "/x" + target
            status, _, body = await get(dr.port, target, host=host)
            assert status in (400, 404), (host, target, status)
            assert b"root:" not in body and b"secret" not in body, (host, target)


async def test_a_one_gib_sparse_file_goes_with_sendfile_and_flat_memory(proxy, tmp_path):
    root = site(tmp_path)
    big = root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(GIB)
        f.seek(GIB - len(TAIL))
        f.write(TAIL)
    cfg = config(root, strip={"rule": "Host(`strip.test`)", "service": "files", "middlewares": ["strip"]})
    cfg["http"]["middlewares"] = {"strip": {"stripPrefix": {"prefixes": ["/x"]}}}
    dr = await proxy(cfg)
    status, h, body = await get(dr.port, "/big.bin", extra=f"Range: bytes=-{len(TAIL)}\r\n")
    assert (status, body) == (206, TAIL)
    assert h["content-range"] == f"bytes {GIB - len(TAIL)}-{GIB - 1}/{GIB}"
    status, _, body = await get(dr.port, "/big.bin", extra="Range: bytes=1000-1009\r\n")
    assert (status, body) == (206, b"\0" * 10)

    pid = dr.proc.pid
    io_before = _io(pid)
    hwm_before = dr.rss_kib("VmHWM")
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(b"GET /big.bin HTTP/1.1\r\nHost: files.test\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {GIB}".encode() in head
    got, last = 0, b""
    while got < GIB:
        chunk = await reader.read(1 << 20)
        assert chunk, f"connection closed after {got} bytes"
        got += len(chunk)
        last = (last + chunk)[-len(TAIL) :]
    writer.close()
    assert got == GIB and last == TAIL
    assert dr.rss_kib("VmHWM") - hwm_before < 32 * 1024  # nothing of the file went through Python
    # sendfile: a few hundred calls for the whole GiB, where reading 256 KiB at a time would take 4096
    # reads and 4096 writes
    assert _io(pid)["syscw"] - io_before["syscw"] < 4096

    # clients that leave mid-file: nothing logged as an error, no descriptor of the file left open
    for host in ("files.test", "strip.test") * 3:
        reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
        writer.write(f"GET /big.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await reader.readexactly(1 << 20)
        writer.transport.abort()
    await wait_for(lambda: not any(os.path.basename(p) == "big.bin" for p in _open_files(pid)))
    assert (await get(dr.port, "/docs/guide.txt"))[0] == 200
    assert " ERROR " not in dr.log() and "Traceback" not in dr.log()


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def _io(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = int(v)
    return out


async def test_behind_a_middleware_and_over_tls(proxy, tmp_path):
    root = site(tmp_path)
    payload = os.urandom(3 * 1024 * 1024 + 5)  # above the in-memory size: read from the file in chunks
    (root / "blob.bin").write_bytes(payload)
    cfg = config(
        root,
        strip={"rule": "Host(`strip.test`)", "service": "files", "middlewares": ["strip"]},
        secure={"rule": "Host(`files.test`)", "service": "files", "tls": {}},
    )
    cfg["http"]["middlewares"] = {"strip": {"stripPrefix": {"prefixes": ["/static"]}}}
    dr = await proxy(cfg)
    status, h, body = await get(dr.port, "/static/blob.bin", host="strip.test")
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    status, _, body = await get(dr.port, "/static/blob.bin", host="strip.test", extra="Range: bytes=-3\r\n")
    assert (status, body) == (206, payload[-3:])
    etag = h["etag"]
    assert (await get(dr.port, "/static/blob.bin", host="strip.test", extra=f"If-None-Match: {etag}\r\n"))[
        0
    ] == 304
    status, h, _ = await get(dr.port, "/static/docs", host="strip.test")
    assert (status, h["location"]) == (301, "docs/")  # relative: right under the stripped prefix too

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as http:
        url = f"https://127.0.0.1:{dr.port}/blob.bin"
        async with http.get(url, ssl=ctx, headers={"Host": "files.test"}) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).digest() == hashlib.sha256(payload).digest()
        async with http.get(url, ssl=ctx, headers={"Host": "files.test", "Range": "bytes=10-19"}) as resp:
            assert resp.status == 206 and await resp.read() == payload[10:20]


async def test_an_unusable_static_service_refuses_its_router_by_name(proxy, tmp_path):
    root = site(tmp_path)
    cfg = config(root)
    cfg["http"]["services"]["gone"] = {"static": {"root": str(tmp_path / "nowhere")}}
    cfg["http"]["services"]["typo"] = {"static": {"root": str(root), "tryFiles": ["{uri}"]}}
    cfg["http"]["routers"]["gone"] = {"rule": "Host(`gone.test`)", "service": "gone"}
    cfg["http"]["routers"]["typo"] = {"rule": "Host(`typo.test`)", "service": "typo"}
    dr = await proxy(cfg)
    assert (await get(dr.port, "/", host="gone.test"))[0] == 404
    assert (await get(dr.port, "/", host="typo.test"))[0] == 404
    assert (await get(dr.port, "/"))[0] == 200  # the others are served
    log = dr.log()
    assert f"router gone@file is not routed: service gone@file: root '{tmp_path / 'nowhere'}'" in log
    assert "router typo@file is not routed: service typo@file: tryFiles '{uri}': unknown placeholder" in log


async def test_ranges_with_thousands_of_digits_are_answered_not_a_500(proxy, tmp_path):
    """Python's int() refuses more than 4300 digits: such a Range used to give a 500 and a traceback per
    request. A first byte past every file is unsatisfiable; a huge last byte or suffix means the end."""
    dr = await proxy(config(site(tmp_path)))
    huge = "9" * 5000
    status, h, _ = await get(dr.port, "/docs/guide.txt", extra=f"Range: bytes={huge}-\r\n")
    assert (status, h["content-range"]) == (416, "bytes */100")
    status, h, body = await get(dr.port, "/docs/guide.txt", extra=f"Range: bytes=90-{huge}\r\n")
    assert (status, body, h["content-range"]) == (206, b"0123456789", "bytes 90-99/100")
    status, h, body = await get(dr.port, "/docs/guide.txt", extra=f"Range: bytes=-{huge}\r\n")
    assert (status, len(body), h["content-range"]) == (206, 100, "bytes 0-99/100")
    assert "Traceback" not in dr.log()
