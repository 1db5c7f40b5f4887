"""The TUI benchmark runs in --quick mode and reports its figures (not a timed test: no targets asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_tui_bench_quick_reports_latency_and_memory() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.tui", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[0])
    rows = {r["home"]: r for r in report["rows"]}
    assert set(rows) == {"small (baseline)", "large"}
    large = rows["large"]
    assert (large["devices"], large["alerts"]) == (1000, 500)
    assert 0 < large["update_median_ms"] <= large["update_p99_ms"]
    assert large["rss_mb"] > rows["small (baseline)"]["rss_mb"] * 0.5
    assert "update_p99_ms" in done.stdout  # the readable table follows the JSON
