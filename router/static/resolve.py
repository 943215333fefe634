"""From a request path to what a static service serves: a file (with its precompressed siblings), a
directory listing, a redirect to the directory's canonical path, or nothing.

Everything here touches the file system and therefore runs in an executor thread, never on the event
loop (:meth:`Files.resolve`). The loop caches the results for a short while (:mod:`router.static.target`).

No path ever escapes ``root``:

- the path is split on ``/`` and each segment percent-decoded here (the router leaves ``%2F`` and other
  reserved escapes encoded); a segment that decodes to ``.`` or ``..``, or holds ``/`` (``%2F``), ``\\``
  (raw or ``%5C``) or NUL is refused (400): the router already removed dot segments, so one that is
  still here was smuggled in encoded or set by a middleware;
- the joined path is resolved with ``os.path.realpath`` and must stay under the root's real path, so a
  symlink pointing out of the root is not followed (404);
- a file is opened with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never blocks a thread), checked to be a
  regular file with ``fstat``, and where ``/proc`` exists the opened descriptor's own path is compared
  with the checked one, so a file swapped for a symlink between the check and the open is refused too.
"""

from __future__ import annotations

import email.utils
import html
import mimetypes
import os
import stat
from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = ["Bad", "File", "Files", "Found", "Listing", "Missing", "Redirect", "Variant", "split_path"]

MEMORY_MAX = 64 * 1024  # files up to this size are read whole and kept with their metadata
LISTING_MAX = 10_000  # entries shown in one directory listing
_HEX = frozenset(b"0123456789abcdefABCDEF")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_PROC_FD = os.path.isdir("/proc/self/fd")
_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml", "application/xml")
SIBLINGS = (("br", b".br"), ("gzip", b".gz"))  # precompressed siblings, in order of preference


Template = tuple[bytes | str, ...]  # literal bytes and placeholder names
PLACEHOLDERS = {"{path}": "path", "$uri": "path", "{dir}": "dir", "{file}": "file"}


def parse_template(text: str) -> Template:
    """A ``tryFiles`` entry as literal parts and placeholders (``{path}`` or nginx's ``$uri``: the
    request path, decoded; ``{dir}``: its directory, ending with ``/``; ``{file}``: its last segment).
    Raises ValueError naming an unknown ``{placeholder}`` or an entry that is not an absolute path."""
    parts: list[bytes | str] = []
    rest = text
    while rest:
        at = min((i for i in (rest.find("{"), rest.find("$uri")) if i >= 0), default=-1)
        if at < 0:
            parts.append(os.fsencode(rest))
            break
        if at:
            parts.append(os.fsencode(rest[:at]))
        rest = rest[at:]
        token = "$uri" if rest.startswith("$uri") else rest[: rest.find("}") + 1]
        if token not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {token or rest[:20]!r} (known: {{path}}, {{dir}}, {{file}}, $uri)"
            )
        parts.append(PLACEHOLDERS[token])
        rest = rest[len(token) :]
    if not parts or (isinstance(parts[0], bytes) and not parts[0].startswith(b"/")):
        raise ValueError(f"{text!r} must start with / or a placeholder")
    return tuple(parts)


class BadPath(ValueError):
    """The path cannot name a file under the root (an encoded slash, a dot segment, NUL ...)."""


def _unquote(seg: str) -> bytes:
    """Percent-decode one segment strictly (a bad escape is refused, not passed through)."""
    raw = seg.encode("utf-8", "surrogateescape")
    if b"%" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # %
            if i + 2 >= n or raw[i + 1] not in _HEX or raw[i + 2] not in _HEX:
                raise BadPath("invalid percent-escape")
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out)


def split_path(path: str) -> tuple[list[bytes], bool]:
    """(decoded segments, whether the path ends with ``/``); raises :class:`BadPath`."""
    segs: list[bytes] = []
    try:
        for raw in path.split("/"):
            if not raw:
                continue
            seg = _unquote(raw)
            if seg in (b".", b"..") or b"/" in seg or b"\\" in seg or b"\0" in seg:
                raise BadPath(f"segment {raw[:40]!r} is not a file name")
            segs.append(seg)
    except (UnicodeEncodeError, IndexError) as exc:
        raise BadPath("undecodable path") from exc
    return segs, path.endswith("/")


# -- what a path leads to ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """One representation of a file: itself, or a precompressed sibling (``encoding`` br or gzip)."""

    path: bytes  # the real path (checked under the root), opened again to send it
    size: int
    mtime_ns: int
    dev_ino: tuple[int, int]
    encoding: str | None
    content: bytes | None  # the whole file when it is small (MEMORY_MAX)
    etag: str
    last_modified: str
    mtime_s: int
    pairs: tuple[tuple[str, str], ...]  # response headers of a 200/206 (without Content-Length)
    lines: bytes  # the same, as header lines
    lines_304: bytes  # what a 304 repeats (ETag, Last-Modified, Vary)


@dataclass(frozen=True, slots=True)
class File:
    """A file to serve: ``variants[0]`` is the file itself, then its siblings found (br first)."""

    variants: tuple[Variant, ...]
    weight: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """A directory without an index, listed (``browse``)."""

    html: bytes
    weight: int = 0


@dataclass(frozen=True, slots=True)
class Redirect:
    """A directory asked for without its trailing slash: ``location`` is relative (``name/``), so that it
    is right whatever prefix a middleware stripped before."""

    location: str
    weight: int = 1024  # with its key (at most MAX_KEY characters) and the objects


@dataclass(frozen=True, slots=True)
class Missing:
    why: str
    weight: int = 1024  # with its key (at most MAX_KEY characters) and the objects


@dataclass(frozen=True, slots=True)
class Bad:
    why: str
    weight: int = 1024  # with its key (at most MAX_KEY characters) and the objects


Found = File | Listing | Redirect | Missing | Bad


def content_type(name: bytes) -> str:
    """The Content-Type of a file by its name (``mimetypes``); text gets ``charset=utf-8``."""
    ctype, _ = mimetypes.guess_type(os.fsdecode(name), strict=False)
    if ctype is None:
        return "application/octet-stream"
    if ctype.startswith("text/") or ctype in _TEXT_TYPES:
        return ctype + "; charset=utf-8"
    return ctype


def _variant(
    real: bytes, st: os.stat_result, encoding: str | None, ctype: str, vary: bool, data: bytes | None
):
    etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}{"-" + encoding if encoding else ""}"'
    mtime_s = st.st_mtime_ns // 1_000_000_000
    lm = email.utils.formatdate(mtime_s, usegmt=True)
    pairs = [("Content-Type", ctype), ("ETag", etag), ("Last-Modified", lm), ("Accept-Ranges", "bytes")]
    cond = [("ETag", etag), ("Last-Modified", lm)]
    if encoding:
        pairs.append(("Content-Encoding", encoding))
    if vary:
        pairs.append(("Vary", "Accept-Encoding"))
        cond.append(("Vary", "Accept-Encoding"))

    def lines(items: list[tuple[str, str]]) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in items).encode("latin-1", "replace")

    return Variant(
        real, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino), encoding, data, etag, lm, mtime_s,
        tuple(pairs), lines(pairs), lines(cond),
    )  # fmt: skip


def open_checked(real: bytes, dev_ino: tuple[int, int] | None = None) -> tuple[int, os.stat_result]:
    """Open ``real`` (already checked under the root) for reading: a regular file, no symlink swapped in,
    and (``dev_ino``) still the file that was resolved. Raises OSError (FileNotFoundError when it changed)."""
    fd = os.open(real, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError("not a regular file")
        if dev_ino is not None and (st.st_dev, st.st_ino) != dev_ino:
            raise FileNotFoundError("the file changed")
        if _PROC_FD and os.readlink(f"/proc/self/fd/{fd}".encode()) != real:
            raise FileNotFoundError("the path changed while it was opened")
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def read_all(fd: int, size: int) -> bytes:
    """The whole file (``size`` bytes as fstat said; a file that is being written may give fewer)."""
    parts = []
    offset = 0
    while offset < size:
        data = os.pread(fd, size - offset, offset)
        if not data:
            break
        parts.append(data)
        offset += len(data)
    return b"".join(parts)


@dataclass
class Files:
    """The file system side of one static service (``root`` already checked to be a directory)."""

    root: bytes  # real path of the root
    index: tuple[bytes, ...]
    browse: bool
    try_files: tuple[Template, ...]  # parsed tryFiles entries (parse_template)
    memory_max: int = MEMORY_MAX
    _prefix: bytes = field(init=False)

    def __post_init__(self) -> None:
        self._prefix = self.root.rstrip(b"/") + b"/"

    def inside(self, real: bytes) -> bool:
        return real == self.root or real.startswith(self._prefix)

    def resolve(self, path: str) -> Found:
        """What ``path`` (as the router left it) leads to. Blocking: runs in an executor. A file system
        error (permissions, a loop of symlinks, a name too long) is a 404 naming the error."""
        try:
            return self._resolve(path)
        except OSError as exc:
            return Missing(f"{type(exc).__name__}: {exc.strerror or exc}")

    def _resolve(self, path: str) -> Found:
        try:
            segs, trailing = split_path(path)
        except BadPath as exc:
            return Bad(str(exc))
        if not self.try_files:
            return self._lookup(segs, trailing, redirect=True)
        decoded = b"/" + b"/".join(segs) + (b"/" if trailing and segs else b"")
        slash = decoded.rfind(b"/")
        values = {"path": decoded, "dir": decoded[: slash + 1], "file": decoded[slash + 1 :]}
        for template in self.try_files:
            cand = b"".join(values[p] if isinstance(p, str) else p for p in template)
            try:
                csegs, ctrail = split_path(os.fsdecode(cand).replace("%", "%25"))
            except BadPath:
                continue
            found = self._lookup(csegs, ctrail, redirect=False)
            if isinstance(found, File | Listing):
                return found
        return Missing("no tryFiles entry exists")

    def _lookup(self, segs: list[bytes], want_dir: bool, redirect: bool) -> Found:
        full = self._prefix + b"/".join(segs) if segs else self.root
        real = os.path.realpath(full)
        if not self.inside(real):
            return Missing("outside the root (symlink)")
        try:
            st = os.stat(real)
        except OSError:
            return Missing("no such file")
        if stat.S_ISREG(st.st_mode):
            if want_dir:
                return Missing("a file asked for as a directory")
            return self._file(full, real)
        if not stat.S_ISDIR(st.st_mode):
            return Missing("not a regular file")
        if not want_dir:
            if redirect and segs:
                return Redirect(quote(segs[-1], safe="") + "/")
            return Missing("a directory")
        for name in self.index:
            ifull = full.rstrip(b"/") + b"/" + name
            ireal = os.path.realpath(ifull)
            if self.inside(ireal) and os.path.isfile(ireal):
                return self._file(ifull, ireal)
        if self.browse:
            return self._listing(real, segs)
        return Missing("a directory without an index")

    def _file(self, full: bytes, real: bytes) -> Found:
        """The file and its precompressed siblings (``name.br``, ``name.gz`` next to the name asked)."""
        found: list[tuple[bytes, os.stat_result, str | None, bytes | None]] = []
        for encoding, suffix in ((None, b""), *SIBLINGS):
            sreal = real if encoding is None else os.path.realpath(full + suffix)
            if encoding is not None and not self.inside(sreal):
                continue
            try:
                fd, st = open_checked(sreal)
            except OSError:
                if encoding is None:
                    return Missing("no such file")
                continue
            try:
                data = read_all(fd, st.st_size) if st.st_size <= self.memory_max else None
            finally:
                os.close(fd)
            found.append((sreal, st, encoding, data))
        ctype = content_type(full)
        vary = len(found) > 1
        variants = tuple(_variant(r, st, enc, ctype, vary, data) for r, st, enc, data in found)
        return File(variants, 1024 + sum(len(v.content or b"") for v in variants))

    def _listing(self, real: bytes, segs: list[bytes]) -> Listing:
        rows: list[tuple[bool, bytes]] = []
        with os.scandir(real) as it:
            for entry in it:
                if len(rows) >= LISTING_MAX:
                    break
                name = entry.name
                if entry.is_symlink() and not self.inside(os.path.realpath(entry.path)):
                    continue  # leads out of the root: not shown (and refused if asked for)
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                rows.append((is_dir, name))
        rows.sort(key=lambda r: (not r[0], r[1]))
        title = html.escape(os.fsdecode(b"/" + b"/".join(segs) + (b"/" if segs else b"")))
        items = ['<li><a href="../">../</a></li>'] if segs else []
        for is_dir, name in rows:
            shown = html.escape(name.decode("utf-8", "replace") + ("/" if is_dir else ""))
            href = html.escape("./" + quote(name, safe="") + ("/" if is_dir else ""))
            items.append(f'<li><a href="{href}">{shown}</a></li>')
        body = (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of {title}</title></head>\n'
            f"<body><h1>Index of {title}</h1>\n<ul>\n" + "\n".join(items) + "\n</ul></body></html>\n"
        )
        data = body.encode("utf-8")
        return Listing(data, 1024 + len(data))
