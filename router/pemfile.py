"""PEM text handed to OpenSSL as a file path, without putting a private key on a disk.

Python's ``ssl`` loads certificate chains and keys only from files. The PEM goes to an anonymous in-memory
file (``memfd``) where the kernel has them, and OpenSSL opens it as ``/proc/self/fd/N``; elsewhere to a
private (0600) temporary file, removed as soon as the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["pem_file", "read_pem"]


def read_pem(value: str) -> bytes:
    """Traefik's file-or-content: ``value`` is the PEM text itself, or the path of a file holding it.
    Raises ``OSError`` when the path cannot be read."""
    if "-----BEGIN" in value:
        return value.strip().encode("ascii") + b"\n"
    with open(value, "rb") as f:
        return f.read()


@contextlib.contextmanager
def pem_file(data: bytes) -> Iterator[str]:
    """A path whose content is ``data``, valid inside the ``with`` block only."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("dockroute-pem", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(prefix="dockroute-", suffix=".pem") as tmp:  # mode 0600
        tmp.write(data)
        tmp.flush()
        yield tmp.name
