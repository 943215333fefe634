"""Static files served by the proxy itself: ``http.services.<name>.static`` (see :class:`StaticFiles`).

The service's options are checked here, at compile time (in the compile thread: the root's realpath and
a stat are fine there); what a request path leads to is resolved off the loop
(:mod:`router.static.resolve`), answered by :mod:`router.static.http`'s rules and sent by
:mod:`router.static.target` (sendfile on plain connections). docs/static-files.md is the user's guide.
"""

from __future__ import annotations

import mimetypes
import os
import threading

from cachetools import LRUCache

from discover.model import StaticFiles
from router.static.resolve import Files, parse_template
from router.static.target import FileCache, StaticTarget

__all__ = ["StaticError", "StaticTarget", "build_static"]

# One cache per service definition, kept across reloads while the definition is unchanged (the routers
# using it share it); the compile thread is the only writer.
_CACHES: LRUCache[tuple[StaticFiles, str], FileCache] = LRUCache(256)
_LOCK = threading.Lock()


class StaticError(ValueError):
    """A static service that cannot be served (its root does not exist, ...): the message says why."""


def files_for(spec: StaticFiles) -> Files:
    """The checked options of a static service, or :class:`StaticError` naming the option at fault."""
    root = os.path.realpath(spec.root)
    if not os.path.isdir(root):
        raise StaticError(f"root {spec.root!r} is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise StaticError(f"root {spec.root!r} is not readable")
    for name in spec.index:
        if not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
            raise StaticError(f"index {name!r} must be a file name")
    templates = []
    for entry in spec.try_files:
        try:
            templates.append(parse_template(entry))
        except ValueError as exc:
            raise StaticError(f"tryFiles {entry!r}: {exc}") from None
    if not mimetypes.inited:
        mimetypes.init()  # reads the system's types once, here rather than on the loop's first request
    return Files(os.fsencode(root), tuple(os.fsencode(n) for n in spec.index), spec.browse, tuple(templates))


def build_static(service: str, router: str, spec: StaticFiles) -> StaticTarget:
    """The target serving ``spec`` for ``router``: ``handle(...)`` like every target (the fast path, with
    sendfile) and ``serve(ex)`` at the end of a middleware chain. Raises :class:`StaticError`. Runs at
    compile time, off the request path."""
    files = files_for(spec)
    key = (spec, os.fsdecode(files.root))
    with _LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = FileCache(files)
    return StaticTarget(router, service, cache)
