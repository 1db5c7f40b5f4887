"""The rules benchmarks run in --quick mode and report their figures (not timed tests: no targets asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick(module: str) -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[0])
    assert "note:" in done.stdout  # the readable table follows the JSON
    return {str(r.get("stage") or r.get("step")): r for r in report["rows"]}


@pytest.mark.timeout(180)
def test_replay_bench_quick_reports_events_per_second() -> None:
    rows = quick("bench.replay")
    full = rows["replay, whole rule library"]
    assert full["events"] == rows["read the recording (baseline)"]["events"]
    assert int(str(full["events"])) > 5000
    assert float(str(full["events_per_s"])) > 0
    assert full["alerts"] == 4  # the three days hold the fall and the night exit (warning, then critical)


@pytest.mark.timeout(180)
def test_rules_cost_bench_quick_reports_each_step() -> None:
    rows = quick("bench.rules_cost")
    assert set(rows) == {"normalize", "registry", "rules (no rules)", "rules (whole library)"}
    assert rows["rules (whole library)"]["rules_loaded"] == 18
    assert all(float(str(r["us_per_message"])) > 0 for r in rows.values())
