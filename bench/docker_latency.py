"""``python -m bench.docker_latency``: time from ``docker run`` returning to the first proxied 200.

Starts dockroute with the Docker provider on a real engine, then, ``--runs`` times (default 20): runs a
labelled busybox container with the ``docker`` CLI, starts the clock when the command returns, and polls the
proxy every 2 ms until the container's host answers 200; removes the container and waits until the route
is gone before the next run. Prints the median, p90, min and max; ``--write-results`` adds them to
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.procs import Procs, free_port
from bench.report import machine, put_section

ROOT = Path(__file__).resolve().parents[1]
_MARK = "<!-- docker-latency -->"


def status(port: int, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def wait_status(port: int, host: str, want: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if status(port, host) == want:
            return time.monotonic() - t0
        time.sleep(0.002)
    raise TimeoutError(f"{host} did not answer {want} within {timeout}s")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.docker_latency", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--write-results", action="store_true")
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests.integration import docker_env  # the offline busybox image, shared with the tests

    client = docker_env.engine()
    if client is None:
        print("bench.docker_latency: no Docker engine answers", file=sys.stderr)
        return 2
    image = docker_env.ensure_image(client)
    tmp = Path(tempfile.mkdtemp(prefix="dockroute-bench-docker-"))
    port = free_port()
    (tmp / "dockroute.yml").write_text(
        f'entryPoints:\n  web:\n    address: "127.0.0.1:{port}"\n'
        "providers:\n  docker: {}\nlog:\n  level: WARN\n"
    )
    procs = Procs()
    samples: list[float] = []
    try:
        proc = procs.start(
            [sys.executable, "-m", "dockroute", "--config", str(tmp / "dockroute.yml")],
            tmp / "out.log",
            cwd=ROOT,
        )
        wait_status(port, "nothing.test", 404, 20)
        for i in range(args.runs):
            name = f"lat-{uuid.uuid4().hex[:8]}"
            host = f"{name}.test"
            subprocess.run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--stop-signal",
                    "SIGKILL",
                    "-l",
                    f"traefik.http.routers.{name}.rule=Host(`{host}`)",
                    image,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            try:
                samples.append(wait_status(port, host, 200, 10))
            finally:
                subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, check=False)
            wait_status(port, host, 404, 10)
            print(f"  run {i + 1:2d}: {samples[-1] * 1000:6.0f} ms", flush=True)
        if proc.poll() is not None:
            print("dockroute died during the runs", file=sys.stderr)
            return 1
    finally:
        procs.kill_all()
    samples.sort()
    p90 = samples[max(0, int(len(samples) * 0.9) - 1)]
    line = (
        f"docker run returned → first proxied 200, {len(samples)} runs: median "
        f"{statistics.median(samples) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
        f"min {samples[0] * 1000:.0f} ms, max {samples[-1] * 1000:.0f} ms"
    )
    print(line)
    if args.write_results:
        m = machine()
        section = (
            f"{_MARK}\n## Docker discovery latency, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
            f"- machine: {m.get('nproc', '?')} CPUs, {m.get('cpu', '?')}; command: "
            f"`python -m bench.docker_latency --runs {args.runs}`\n- {line}\n{_MARK}\n"
        )
        print(f"wrote {put_section(_MARK, section)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
