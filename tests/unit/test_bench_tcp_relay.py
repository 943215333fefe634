"""bench.tcp_relay's own parts, without iperf3: its RESULTS.md section is written between its markers,
replaced (not added again) by the next run and kept when ``python -m bench --write-results`` rotates the
HTTP runs; iperf3's JSON gives the receiver's MB/s or a clear error; the ratios divide dockroute by each
peer, per second and per CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report, tcp_relay
from bench.tcp_relay import Plan, RelayRow

MARK = "<!-- tcp-relay -->"


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "RESULTS.md"
    monkeypatch.setattr(report, "RESULTS", path)
    monkeypatch.setattr(report, "versions", lambda: {"dockroute": "0 (test)", "haproxy": "2.6"})
    monkeypatch.setattr(tcp_relay, "iperf_version", lambda: "iperf 3.12")
    return path


def _rows(dockroute_up1: float) -> list[RelayRow]:
    labels = [m.label for m in tcp_relay.MODES]
    return [
        RelayRow("direct", mbps={label: [3000.0] for label in labels}),
        RelayRow(
            "dockroute", {label: [dockroute_up1] for label in labels}, {label: [50.0] for label in labels}
        ),
        RelayRow("haproxy", {label: [1000.0] for label in labels}, {label: [100.0] for label in labels}),
        RelayRow("nginx", status="not installed"),
    ]


def test_section_is_written_replaced_and_kept_through_the_http_rotation(results: Path):
    plan = Plan(tcp_relay.MODES, runs=3, duration=3, omit=2)
    tcp_relay.write_results(_rows(1500.0), "python -m bench.tcp_relay", plan, "load 0.1")
    first = results.read_text()
    assert first.count(MARK) == 2
    assert "## TCP relay throughput" in first and "1,500 ( 50%)" in first and "haproxy 2.6" in first
    assert "iperf 3.12 as backend and client; load 0.1" in first

    tcp_relay.write_results(_rows(1700.0), "python -m bench.tcp_relay", plan, "load 0.2")
    second = results.read_text()
    assert second.count(MARK) == 2 and "1,700 ( 50%)" in second and "1,500" not in second

    report.write_results(report.run_section([], "python -m bench", 10))
    rotated = results.read_text()
    assert rotated.count(MARK) == 2 and "1,700 ( 50%)" in rotated
    assert rotated.index("<!-- run -->") < rotated.index(MARK)


def test_ratios_per_second_and_per_cpu():
    lines = tcp_relay.ratios(_rows(1500.0))
    by_peer = {
        line.split(" vs ")[1].split()[0] + (" cpu" if "per CPU" in line else ""): line for line in lines[1:-1]
    }
    assert set(by_peer) == {"direct", "haproxy", "haproxy cpu"}  # nginx has no figures: no line
    assert by_peer["haproxy"].split()[3] == "1.50x"
    assert by_peer["haproxy cpu"].split()[4] == "3.00x"  # 1500/50 against 1000/100
    assert (
        "nginx" in tcp_relay.table(_rows(1500.0))[-1] and "not installed" in tcp_relay.table(_rows(1.0))[-1]
    )


def test_iperf_json_gives_the_receivers_mb_per_second_or_its_error():
    doc = {"end": {"sum_sent": {"bits_per_second": 9e9}, "sum_received": {"bits_per_second": 8e9}}}
    assert tcp_relay.parse_iperf(json.dumps(doc)) == pytest.approx(1000.0)
    with pytest.raises(tcp_relay.IperfError, match="unable to connect"):
        tcp_relay.parse_iperf(json.dumps({"start": {}, "error": "unable to connect to server"}))
    with pytest.raises(tcp_relay.IperfError, match="not iperf3's JSON"):
        tcp_relay.parse_iperf("iperf3: error - control socket has closed unexpectedly")


def test_iperf_command_per_mode():
    up = tcp_relay.iperf_command(5201, tcp_relay.Mode(64), 3, 2)
    assert up[up.index("-P") + 1] == "64" and "-R" not in up and up[up.index("-O") + 1] == "2"
    assert "-R" in tcp_relay.iperf_command(5201, tcp_relay.Mode(1, reverse=True), 3, 2)
