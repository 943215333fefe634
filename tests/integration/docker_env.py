"""A real Docker engine for the tests: the backend image (built offline) and labelled containers.

No registry is reachable, so the backend image is made with ``docker import`` from a root filesystem that
holds only a static busybox: ``busybox httpd`` serves a page naming the container, which is all a routing
test needs. ``.ci/run`` starts the engine; these helpers build the image when it is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import uuid
from collections.abc import Mapping

from tests.unavailable import unavailable

IMAGE = "dockroute-test-backend:latest"


def engine():
    """A docker SDK client, or None when no engine answers (tests then skip, or fail under CI)."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:
        return None


def engine_for_tests():
    """:func:`engine`, or :func:`~tests.unavailable.unavailable` (skipped here, failed in CI)."""
    client = engine()
    if client is None:
        unavailable("no Docker engine answers (.ci/run starts dockerd)")
    return client


def _busybox() -> str | None:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            return path
    return shutil.which("busybox")


def ensure_image(client) -> str:
    """Build the busybox backend image with ``docker import`` unless it already exists."""
    try:
        client.images.get(IMAGE)
        return IMAGE
    except Exception:
        pass
    busybox = _busybox()
    if busybox is None:
        raise RuntimeError("busybox is not installed (apt-get install busybox-static)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "www", "tmp"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for link in ("sh", "httpd", "hostname", "sleep"):
            info = tarfile.TarInfo(f"bin/{link}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    buf.seek(0)
    changes = [
        'CMD ["/bin/sh", "-c", "hostname > /www/index.html; exec /bin/busybox httpd -f -p 80 -h /www"]',
        "EXPOSE 80",
    ]
    client.api.import_image_from_data(
        buf.getvalue(), repository=IMAGE.split(":")[0], tag="latest", changes=changes
    )
    return IMAGE


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def serve_cmd(port: int = 80, text: str | None = None) -> list[str]:
    """A command making busybox httpd answer on ``port`` with ``text`` (default: the container's hostname)."""
    body = f"echo {text}" if text else "hostname"
    return ["/bin/sh", "-c", f"{body} > /www/index.html; exec /bin/busybox httpd -f -p {port} -h /www"]


def host_echo_cmd(port: int = 80) -> list[str]:
    """A command making busybox httpd answer ``/cgi-bin/host`` with ``host=<the Host header it got>`` (CGI
    passes it as ``HTTP_HOST``), and ``/`` with the container's hostname as usual. The CGI's header lines end
    in CRLF (``printf`` turns ``\\r`` into a CR when writing the script): HTTP parsers may refuse bare LFs."""
    script = '#!/bin/sh\\necho "Content-Type: text/plain\\r"\\necho "\\r"\\necho "host=$HTTP_HOST"\\n'
    return [
        "/bin/sh",
        "-c",
        f"/bin/busybox mkdir -p /www/cgi-bin && printf '{script}' > /www/cgi-bin/host"
        " && /bin/busybox chmod 755 /www/cgi-bin/host && hostname > /www/index.html;"
        f" exec /bin/busybox httpd -f -p {port} -h /www",
    ]


def run(client, name: str, labels: Mapping[str, str] | None = None, **kw):
    """``docker run -d`` with a name, labels, and a fast stop (busybox as PID 1 ignores SIGTERM)."""
    return client.containers.run(
        IMAGE, name=name, hostname=name, labels=dict(labels or {}), detach=True, stop_signal="SIGKILL", **kw
    )


def remove(client, *names: str) -> None:
    for name in names:
        try:
            client.containers.get(name).remove(force=True)
        except Exception:
            pass
