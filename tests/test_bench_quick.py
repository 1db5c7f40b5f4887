"""bench/normalize.py --quick runs and prints its figures (never a timing assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from hub.model import StateChanged
from hub.reports import state_changed

ROOT = Path(__file__).resolve().parents[1]


def test_bench_normalize_quick_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "normalize.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    cases = {r["case"]: r for r in report["results"]}
    assert set(cases) == {
        "zigbee2mqtt state",
        "homeassistant discovery config",  # first announcements: the figure the target applies to
        "homeassistant config re-announced",
        "homeassistant config, 10/device",
        "homeassistant state",
    }
    for r in cases.values():
        assert r["json_loads_us"] > 0
        assert r["normalize_us"] > 0
        assert r["runs"] >= 5
        assert f"{r['normalize_us']:.2f}" in done.stdout  # the readable table shows each figure


def test_fast_state_event_equals_the_validated_model() -> None:
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    fast = state_changed(ts, "z2m-0x1", {"temperature": 21.5, "light": {"on": True}})
    slow = StateChanged(ts=ts, device_id="z2m-0x1", values={"temperature": 21.5, "light": {"on": True}})
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == StateChanged.model_construct(ts=ts, device_id="x", values={}).model_fields_set
