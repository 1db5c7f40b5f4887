"""The simulator's benchmarks run in --quick mode and report figures beside their baselines (never timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(name: str, *args: str, timeout: float = 180) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert report["bench"] == name
    assert "----" in done.stdout  # the readable table
    return report


def test_store_bench_reports_batched_and_baseline_rates() -> None:
    rows = run_bench("store")["rows"]
    assert isinstance(rows, list)
    writers = {(r["database"], r["writer"].split(" (")[0]) for r in rows}
    assert ("SQLite (WAL)", "hub Store") in writers
    assert ("SQLite (WAL)", "one commit per row") in writers
    assert all(r["rows/s (median)"] > 0 for r in rows)


def test_scale_bench_reports_hub_and_baseline() -> None:
    rows = run_bench("scale")["rows"]
    assert isinstance(rows, list)
    assert {r["subject"].split(" ")[0] for r in rows} == {"hub", "bare"}
    assert all(r["up in s (median)"] > 0 and r["RSS MB (median)"] > 0 for r in rows)


@pytest.mark.mosquitto
def test_latency_bench_reports_the_rule_beside_the_floor() -> None:
    rows = run_bench("latency")["rows"]
    assert isinstance(rows, list)
    subjects = {r["subject"] for r in rows}
    assert subjects == {"hub + night_path_light rule", "bare aiomqtt relay (floor)"}
    assert all(r["p99 ms"] is not None and r["p99 ms"] < 5000 for r in rows)  # every command arrived


@pytest.mark.mosquitto
def test_ingest_bench_reports_the_hub_beside_a_bare_subscriber() -> None:
    rows = run_bench("ingest", "--consumers", "hub,bare", "--brokers", "mosquitto")["rows"]
    assert isinstance(rows, list)
    assert {r["consumer"] for r in rows} == {"hub (whole path)", "bare aiomqtt"}
    assert all(r["sustained msg/s (median)"] >= 0 for r in rows)


@pytest.mark.mosquitto
def test_receive_bench_reports_the_link_beside_aiomqtt_at_both_qos() -> None:
    rows = run_bench("receive")["rows"]
    assert isinstance(rows, list)
    assert {(r["qos"], r["subscriber"]) for r in rows} == {
        (q, s) for q in (0, 1) for s in ("hub link", "bare aiomqtt (paho)")
    }
    assert all(r["msg/s"] > 0 for r in rows)
