"""``python -m bench.dns_wildcard``: time from dockroute's start to the first TLS handshake serving the
wildcard certificate it obtained through DNS-01.

Starts a real BIND 9 (authoritative for ``home.example.test``, RFC 2136 updates with a TSIG key) on its
own loopback address and Pebble validating DNS-01 against it (its HTTP-01 and TLS-ALPN-01 ports closed:
no inbound port), the same setup as tests/integration/test_acme_dns_wildcard.py. Then, ``--runs`` times
(default 3), a fresh dockroute (empty acme.json, so a new account and order each run) with resolver
``le`` on ``dnsChallenge.provider: rfc2136`` and a router asking for ``*.home.example.test``: the clock
starts just before the process is spawned and stops at the first handshake for ``a.home.example.test``
whose certificate verifies against Pebble's root (polled every 20 ms). Prints each run (with the time to
the entry point listening, i.e. the process's own start-up) and the median. Needs ``named`` (bind9),
``ip`` (iproute2), ``pebble`` and ``pebble-challtestsrv``; runs as root (BIND binds port 53).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.procs import Procs, free_port
from bench.report import machine, put_section

ROOT = Path(__file__).resolve().parents[1]
_MARK = "<!-- dns-wildcard -->"
_LISTEN = re.compile(r"entrypoint websecure listening on [\d.]+:(\d+)")
HOST = "a.home.example.test"
TOOLS = ("/usr/sbin/named", "ip", "pebble", "pebble-challtestsrv")


def handshake(port: int, ctx: ssl.SSLContext) -> bool:
    """One TLS handshake for HOST: True when the certificate served verifies (the wildcard from Pebble)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
            ctx.wrap_socket(sock, server_hostname=HOST),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


def one_run(procs: Procs, tmp: Path, pebble, bind, root_pem: Path, timeout: float) -> tuple[float, float]:
    """(seconds to websecure listening, seconds to the wildcard served) for one fresh dockroute."""
    from tests.integration.bind_env import dns_wildcard_static, wildcard_routers

    tmp.mkdir()
    (tmp / "dockroute.yml").write_text(
        yaml.safe_dump(dns_wildcard_static(tmp, pebble.directory_url, pebble.ca_bundle, bind))
    )
    (tmp / "dynamic.yml").write_text(yaml.safe_dump(wildcard_routers("http://127.0.0.1:9")))
    ctx = ssl.create_default_context(cafile=str(root_pem))
    env = {**_environ(), **bind.env(), "PYTHONPATH": str(ROOT)}
    log = tmp / "dockroute.log"
    t0 = time.monotonic()
    proc = procs.start(
        [sys.executable, "-m", "dockroute", "--config", str(tmp / "dockroute.yml")], log, cwd=tmp, env=env
    )
    port, listening = 0, 0.0
    try:
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"dockroute exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if not port:
                found = _LISTEN.search(log.read_text(errors="replace"))
                if found:
                    port, listening = int(found.group(1)), time.monotonic() - t0
            elif handshake(port, ctx):
                return listening, time.monotonic() - t0
            time.sleep(0.02)
        raise TimeoutError(f"no wildcard certificate served within {timeout}s:\n{log.read_text()[-3000:]}")
    finally:
        procs.kill(proc)


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_", "RFC2136_"))}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dns_wildcard", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per run (default 60)")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    p.add_argument("--write-results", action="store_true", help="add the median to bench/RESULTS.md")
    args = p.parse_args(argv)
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"bench.dns_wildcard: not installed: {', '.join(missing)}", file=sys.stderr)
        return 2

    sys.path.insert(0, str(ROOT))
    from tests.integration.bind_env import run_bind  # the same BIND and Pebble as the tests
    from tests.integration.pebble_env import run_pebble

    tmp = Path(tempfile.mkdtemp(prefix="dockroute-bench-dns-"))
    procs = Procs()
    samples: list[float] = []
    try:
        with (
            run_bind(tmp / "bind") as bind,
            run_pebble(
                tmp / "pebble", http_port=free_port(), tls_port=free_port(), dns_server=bind.hostport
            ) as pebble,
        ):
            root_pem = tmp / "pebble-root.pem"
            root_pem.write_bytes(pebble.root_pem())
            for i in range(args.runs):
                listening, served = one_run(procs, tmp / f"run{i}", pebble, bind, root_pem, args.timeout)
                samples.append(served)
                print(
                    f"  run {i + 1}: wildcard served {served * 1000:6.0f} ms after start "
                    f"(listening after {listening * 1000:.0f} ms)",
                    flush=True,
                )
    finally:
        procs.finish(tmp, args.keep_tmp)
    line = (
        f"start → first TLS handshake serving the DNS-01 wildcard (rfc2136 → BIND, Pebble), "
        f"{len(samples)} runs: median {statistics.median(samples) * 1000:.0f} ms, "
        f"min {min(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms"
    )
    print(line)
    if args.write_results:
        m, when = machine(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        section = (
            f"{_MARK}\n## DNS-01 wildcard: start to served, {when}\n\n"
            f"- machine: {m.get('nproc', '?')} CPUs, {m.get('cpu', '?')}; "
            f"command: `python -m bench.dns_wildcard --runs {args.runs}`\n- {line}\n{_MARK}\n"
        )
        print(f"wrote {put_section(_MARK, section)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
