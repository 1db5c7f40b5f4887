"""Microseconds per message to parse and normalize, beside `json.loads` of the same payload.

Cases: a Zigbee2MQTT state message, a Home Assistant discovery config (each one new to the
adapter, as at start-up), and a Home Assistant state message. Each run times the baseline
and the case back to back on the same payloads, so that a busy machine slows both alike;
the figures are medians over the runs. Target: normalization at most 3x json.loads.

    .venv/bin/python bench/normalize.py [--quick] [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.adapters.homeassistant import HomeAssistantAdapter
from hub.adapters.zigbee2mqtt import Zigbee2MqttAdapter
from hub.model import DeviceDiscovered, StateChanged
from hub.wire import Message

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
TARGET = 3.0


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@dataclass
class Case:
    """One timed path: a fresh setup per run, the messages, and what one message must produce."""

    name: str
    setup: Callable[[], Any]  # returns the adapter, ready for the messages
    messages: Callable[[int], list[Message]]  # n messages to feed, each once
    expect: type


def _z2m_adapter() -> Zigbee2MqttAdapter:
    a = Zigbee2MqttAdapter()
    network = fixture("zigbee2mqtt/bridge_devices_real_network.json")["payload"]
    a.feed(Message("zigbee2mqtt/bridge/devices", json.dumps(network).encode(), retain=True), NOW)
    return a


def _z2m_states(n: int) -> list[Message]:
    fx = fixture("zigbee2mqtt/state_aqara_temp_hum_pressure_battery0.json")
    return [Message(fx["topic"], fx["payload_raw"].encode())] * n


def _ha_configs(n: int) -> list[Message]:
    # n distinct devices, so every one is a real discovery and not a repeat the adapter skips.
    fx = fixture("ha_discovery/ha_docs_sensor_temperature_full_device.json")
    cfg = json.loads(fx["payload_raw"])
    out = []
    for i in range(n):
        device = {**cfg["device"], "identifiers": [f"bench{i}"], "name": f"Bench {i}"}
        c = {**cfg, "unique_id": f"bench_{i}", "state_topic": f"bench/{i}/state", "device": device}
        out.append(Message(f"homeassistant/sensor/bench{i}/config", json.dumps(c).encode(), retain=True))
    return out


def _ha_state_adapter() -> HomeAssistantAdapter:
    a = HomeAssistantAdapter()
    fx = fixture("ha_discovery/ha_docs_sensor_temperature_full_device.json")
    a.feed(Message(fx["topic"], fx["payload_raw"].encode(), retain=True), NOW)
    return a


def _ha_states(n: int) -> list[Message]:
    topic = json.loads(fixture("ha_discovery/ha_docs_sensor_temperature_full_device.json")["payload_raw"])[
        "state_topic"
    ]
    return [Message(topic, b'{"temperature":23.20,"humidity":43.70}')] * n


CASES = [
    Case("zigbee2mqtt state", _z2m_adapter, _z2m_states, StateChanged),
    Case("homeassistant discovery config", HomeAssistantAdapter, _ha_configs, DeviceDiscovered),
    Case("homeassistant state", _ha_state_adapter, _ha_states, StateChanged),
]


def _time(fn: Callable[[Message], Any], messages: list[Message]) -> float:
    start = time.perf_counter()
    for m in messages:
        fn(m)
    return (time.perf_counter() - start) / len(messages) * 1e6


def measure(case: Case, runs: int, n: int) -> dict[str, Any]:
    """Median µs per message of json.loads and of the adapter over `runs` runs of n messages."""
    messages = case.messages(n)
    probe = case.setup().feed(messages[0], NOW)
    if not any(isinstance(e, case.expect) for e in probe):
        raise SystemExit(f"{case.name}: the adapter produced {probe!r}, not a {case.expect.__name__}")
    base, norm = [], []
    for _ in range(runs):
        adapter = case.setup()
        base.append(_time(lambda m: json.loads(m.payload), messages))
        norm.append(_time(lambda m, a=adapter: a.feed(m, NOW), messages))
    b, v = statistics.median(base), statistics.median(norm)
    return {
        "case": case.name,
        "payload_bytes": len(messages[0].payload),
        "json_loads_us": round(b, 2),
        "normalize_us": round(v, 2),
        "ratio": round(v / b, 2),
        "target_ratio": TARGET,
        "runs": runs,
        "messages_per_run": n,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every case and print a table (and one JSON document with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few messages per run (for the test suite)")
    p.add_argument("--runs", type=int, default=7, help="runs per case (median; at least 5)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document too")
    args = p.parse_args(argv)
    runs = max(5, args.runs)
    n = 200 if args.quick else 20_000
    results = [measure(c, runs, n) for c in CASES]
    print(f"{'case':<32} {'bytes':>6} {'json.loads µs':>14} {'normalize µs':>13} {'ratio':>6}  target ≤ {TARGET:g}x")
    for r in results:
        flag = "ok" if r["ratio"] <= TARGET else "OVER"
        print(
            f"{r['case']:<32} {r['payload_bytes']:>6} {r['json_loads_us']:>14.2f} "
            f"{r['normalize_us']:>13.2f} {r['ratio']:>5.2f}x  {flag}"
        )
    print(f"median of {runs} runs × {n} messages{' (quick: timings are indicative only)' if args.quick else ''}")
    if args.json:
        print(json.dumps({"bench": "normalize", "quick": args.quick, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
