"""``python -m bench.https``: TLS termination, dockroute against nginx and Caddy, one nginx plain backend.

One self-signed ECDSA P-256 certificate for ``bench.test`` (made with ``cryptography``, PEM files in the
temp dir) is served by every target as its default certificate, so requests without SNI (wrk with an IP
URL sends none) get it. Each target terminates TLS on 127.0.0.1:<free port> and proxies to the same
backend as ``python -m bench``; it is measured twice with ``wrk -t1 -c64 --latency``:

- keep-alive: requests/s and p99 over long-lived TLS connections;
- ``-H "Connection: close"``: every request is a new TCP connection and a full TLS handshake (wrk does no
  session resumption), so requests/s = handshakes/s.

``--write-results`` puts the run into ``bench/RESULTS.md`` between ``<!-- https -->`` markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import shutil
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import runner, wrk
from bench.procs import NotReady, Procs, count_log_errors, tail
from bench.report import put_bench_section
from bench.runner import Started
from bench.targets import (
    BENCH_HOST,
    BODY,
    Launch,
    caddy_launch,
    dockroute_launch,
    nginx_proxy,
    proxy_dynamic,
    start_backend,
)

_MARK = "<!-- https -->"


# -- certificate ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path


def make_cert(d: Path) -> Cert:
    """A self-signed ECDSA P-256 certificate for bench.test, valid for a day."""
    from router.tls import self_signed

    pair = self_signed(
        BENCH_HOST, (BENCH_HOST,), valid_from=dt.timedelta(hours=-1), valid_for=dt.timedelta(days=1)
    )
    out = Cert(d / "bench.test.crt", d / "bench.test.key")
    out.cert.write_bytes(pair.cert_pem)
    out.key.write_bytes(pair.key_pem)
    out.key.chmod(0o600)
    return out


# -- targets ----------------------------------------------------------------------------------------------

Make = Callable[[Path, int, int, Cert], Launch]


def dockroute_tls(extra: list[str]) -> Make:
    def make(d: Path, port: int, backend_port: int, c: Cert) -> Launch:
        certs = f"""tls:
  certificates:
    - certFile: "{c.cert}"
      keyFile: "{c.key}"
  stores:
    default:
      defaultCertificate:
        certFile: "{c.cert}"
        keyFile: "{c.key}"
"""
        dynamic = proxy_dynamic(backend_port, "      tls: {}\n", certs)
        return dockroute_launch(d, port, extra, dynamic, "websecure")

    return make


def nginx_tls(d: Path, port: int, backend_port: int, c: Cert) -> Launch:
    return nginx_proxy(d, port, backend_port, tls=(c.cert, c.key))


def caddy_tls(d: Path, port: int, backend_port: int, c: Cert) -> Launch:
    # A catch-all site (no host matcher: the Host header is bench.test) bound to 127.0.0.1; default_sni
    # makes Caddy pick the bench.test certificate for ClientHellos without SNI.
    (d / "Caddyfile").write_text(
        f"""{{
    admin off
    auto_https disable_redirects
    default_sni {BENCH_HOST}
    storage file_system {d / "data"}
}}

https://:{port} {{
    bind 127.0.0.1
    tls {c.cert} {c.key}
    reverse_proxy 127.0.0.1:{backend_port}
}}
"""
    )
    return caddy_launch(d)


@dataclass(frozen=True)
class TlsTarget:
    name: str
    binary: str
    make: Make

    def installed(self) -> bool:
        return self.binary == "python" or shutil.which(self.binary) is not None


def all_targets(dockroute_args: list[str]) -> list[TlsTarget]:
    return [
        TlsTarget("dockroute", "python", dockroute_tls(dockroute_args)),
        TlsTarget("nginx", "nginx", nginx_tls),
        TlsTarget("caddy", "caddy", caddy_tls),
    ]


# -- readiness and measuring ------------------------------------------------------------------------------


def wait_ready_tls(port: int, c: Cert, proc: object, log: Path, deadline_s: float = 20.0) -> None:
    """Poll an HTTPS ``GET /`` without SNI (like wrk) until it answers 200 with the backend's body.

    The client trusts only the bench certificate (hostname not checked): a server that answers without
    SNI with another certificate never becomes ready.
    """
    ctx = ssl.create_default_context(cafile=str(c.cert))
    ctx.check_hostname = False
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # type: ignore[attr-defined]
            raise NotReady(f"exited with status {proc.returncode}; {tail(log)}")  # type: ignore[attr-defined]
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2.0, context=ctx)
        try:
            conn.request("GET", "/", headers={"Host": BENCH_HOST})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200 and body == BODY:
                return
            last = f"HTTP {resp.status}, {len(body)} bytes"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        time.sleep(0.05)
    raise NotReady(f"no 200 over TLS within {deadline_s:.0f}s ({last}); {tail(log)}")


def wrk_command(url: str, duration: int, close: bool) -> list[str]:
    cmd = wrk.command(url, BENCH_HOST, duration)
    if close:
        cmd[-1:-1] = ["-H", "Connection: close"]
    return cmd


@dataclass
class TlsRow:
    name: str
    keepalive: wrk.WrkResult | None = None
    handshake: wrk.WrkResult | None = None
    status: str = ""
    log_errors: int = 0


def run_target(
    procs: Procs, t: TlsTarget, tmp: Path, bport: int, c: Cert, duration: int, warmup: float
) -> TlsRow:
    def body(s: Started) -> TlsRow:
        wait_ready_tls(s.port, c, s.proc, s.log)
        print(f" ready in {s.ready_in()}", flush=True)
        url = f"https://127.0.0.1:{s.port}/"
        for close in (False, True):
            label = "new handshakes" if close else "keep-alive"
            print(f"    {label}, {duration}s ...", end="", flush=True)
            result = runner.measure(
                procs, lambda secs, close=close: wrk_command(url, secs, close), duration, warmup
            )
            print(f" {result.rps:,.0f} req/s" + (f", errors {result.error_text()}" if result.errors else ""))
            if close:
                row.handshake = result
            else:
                row.keepalive = result
            if s.proc.poll() is not None:
                row.status = runner.died(s.proc)
                return row
        row.log_errors = count_log_errors(s.log)
        return row

    row = TlsRow(t.name)
    make = lambda d, port: t.make(d, port, bport, c)  # noqa: E731
    return runner.run_target(procs, t.name, row, tmp, make, body, t.installed(), " (TLS)")


# -- output -----------------------------------------------------------------------------------------------


def table(rows: list[TlsRow]) -> list[str]:
    out = [
        f"{'target':<10} {'keep-alive req/s':>16} {'p99 ms':>8} {'handshakes/s':>13} "
        f"{'hs p99 ms':>9}  errors",
        f"{'-' * 10} {'-' * 16} {'-' * 8} {'-' * 13} {'-' * 9}  {'-' * 6}",
    ]
    for row in rows:
        ka, hs = row.keepalive, row.handshake
        if ka is None and hs is None:
            out.append(f"{row.name:<10} {row.status}")
            continue
        ka_fig = f"{ka.rps:>16,.0f} {ka.p99_ms:>8.2f}" if ka else f"{'-':>16} {'-':>8}"
        hs_fig = f"{hs.rps:>13,.0f} {hs.p99_ms:>9.2f}" if hs else f"{'-':>13} {'-':>9}"
        errs = []
        for label, r in (("ka", ka), ("hs", hs)):
            if r is not None and r.errors:
                errs.append(f"{label}: {r.error_text()}")
        err = "; ".join(errs) or "0"
        flag = "  << FLAGGED" if errs else ""
        extra = f" ({row.status})" if row.status else ""
        logged = f" (its log: {row.log_errors} error lines)" if row.log_errors else ""
        out.append(f"{row.name:<10} {ka_fig} {hs_fig}  {err}{flag}{extra}{logged}")
    return out


def ratios(rows: list[TlsRow]) -> list[str]:
    by = {r.name: r for r in rows}
    dr = by.get("dockroute")
    if dr is None or dr.keepalive is None:
        return []
    out = [f"{'dockroute / peer':<18} {'ka req/s':>8} {'ka p99':>7} {'hs/s':>7}   (>1 faster; p99 <1 better)"]
    for peer in ("nginx", "caddy"):
        p = by.get(peer)
        if p is None or p.keepalive is None:
            continue
        ka = f"{dr.keepalive.rps / p.keepalive.rps:>7.2f}x {dr.keepalive.p99_ms / p.keepalive.p99_ms:>6.2f}x"
        hs = f"{dr.handshake.rps / p.handshake.rps:>6.2f}x" if dr.handshake and p.handshake else f"{'-':>7}"
        out.append(f"  vs {peer:<14} {ka} {hs}")
    return out


def blocks(rows: list[TlsRow]) -> tuple[list[str], list[str]]:
    return table(rows), ratios(rows)


def write_results(rows: list[TlsRow], command: str, duration: int) -> Path:
    return put_bench_section(
        _MARK,
        "HTTPS termination",
        f"`{command}` (wrk -t1 -c64 -d{duration}s --latency, no SNI, self-signed ECDSA P-256 "
        'certificate; handshakes/s = req/s with `-H "Connection: close"`)',
        *blocks(rows),
    )


# -- main -------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(prog="python -m bench.https", description=__doc__.splitlines()[0])
    runner.add_args(p, f"comma-separated subset of: {', '.join(names)}", "certificate, configs, logs")
    args = runner.parse(p, argv)
    wanted = runner.wanted(p, args.only, names)

    def collect(procs: Procs, tmp: Path, rows: list[TlsRow]) -> None:
        c = make_cert(tmp)
        bport = start_backend(procs, tmp)
        print(
            f"backend: nginx on 127.0.0.1:{bport}; wrk -t1 -c64 -d{args.duration}s over TLS (no SNI), "
            f"warm-up {args.warmup}s"
        )
        for t in all_targets(args.dockroute_arg):
            if t.name in wanted:
                rows.append(run_target(procs, t, tmp, bport, c, args.duration, args.warmup))

    return runner.main_loop(
        "bench.https", argv, args, collect, blocks, write_results, "dockroute-bench-https-"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
